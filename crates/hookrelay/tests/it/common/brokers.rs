//! What the tests of the message destinations (SQS, SNS, RabbitMQ, NATS) share: Buy with
//! Prime subscriptions to a destination literal, events published in a batch or streamed
//! one request at a time, and the subscription's status.
#![allow(dead_code)]

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{classification, message, Server, Token};

/// The `createEventSubscription` mutation of `event_type` to `destination` (the GraphQL
/// literal of a `DestinationInput`, e.g. `{ sqs: { queueUrl: "…", region: "us-east-1" } }`).
pub fn create_subscription(event_type: &str, destination: &str) -> String {
    format!(
        r#"mutation {{ createEventSubscription(input: {{ eventType: "{event_type}",
            destination: {destination} }}) {{ subscriptionId }} }}"#
    )
}

/// [`create_subscription`], which must succeed; returns the subscription's id.
pub async fn subscribe(
    server: &Server,
    client: &Token,
    event_type: &str,
    destination: &str,
) -> String {
    let data = server
        .gql_ok(client, &create_subscription(event_type, destination))
        .await;
    data["createEventSubscription"]["subscriptionId"]
        .as_str()
        .expect("subscriptionId")
        .to_owned()
}

/// [`create_subscription`], which must be refused as a `ValidationError`; returns the
/// error's message.
pub async fn refused_subscription(
    server: &Server,
    client: &Token,
    event_type: &str,
    destination: &str,
) -> String {
    let body = server
        .gql(client, &create_subscription(event_type, destination))
        .await;
    assert_eq!(
        classification(&body),
        "ValidationError",
        "{destination}: {body}"
    );
    message(&body).to_owned()
}

/// The `status` of subscription `id` (`ACTIVE`…).
pub async fn subscription_status(server: &Server, client: &Token, id: &str) -> String {
    let data = server
        .gql_ok(
            client,
            &format!(r#"{{ eventSubscription(subscriptionId: "{id}") {{ status }} }}"#),
        )
        .await;
    data["eventSubscription"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Publishes one event of `event_type` to `store` for each `n` of `ns` (`data.n` = n) in
/// one batch request; returns their ids in order.
pub async fn publish_batch(
    server: &Server,
    publisher: &Token,
    store: &str,
    event_type: &str,
    ns: Range<usize>,
) -> Vec<String> {
    let events: Vec<Value> = ns
        .map(|n| json!({"store": store, "type": event_type, "data": {"n": n}}))
        .collect();
    let (status, body) = server
        .post_json("/v1/events/batch", publisher, &json!({ "events": events }))
        .await;
    assert_eq!(status, 202, "{body}");
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["eventId"].as_str().expect("eventId").to_owned())
        .collect()
}

/// Events published one request at a time from tasks of their own, while a test kills,
/// restarts or stops something: event `n` (`data.n` = n) of `0..limit` from task
/// `n % tasks`, until [`PublishStream::stop`] or the server stops answering.
pub struct PublishStream {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl PublishStream {
    /// Starts `tasks` tasks publishing events of `event_type` to `store`, each pausing
    /// `pause` after every event.
    pub fn start(
        server: &Server,
        publisher: &Token,
        store: &str,
        event_type: &str,
        tasks: usize,
        limit: usize,
        pause: Duration,
    ) -> PublishStream {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let tasks = (0..tasks)
            .map(|t| {
                let (stop, count) = (stop.clone(), accepted.clone());
                let (base, token) = (server.base.clone(), publisher.token.clone());
                let (store, event_type) = (store.to_owned(), event_type.to_owned());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut accepted = Vec::new();
                    for n in (t..limit).step_by(tasks) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let event = json!({"store": store, "type": event_type, "data": {"n": n}});
                        // The server died under us: this one was not accepted.
                        let Some(id) = try_publish(&http, &base, &token, &event).await else {
                            break;
                        };
                        accepted.push(id);
                        count.fetch_add(1, Ordering::Relaxed);
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                    accepted
                })
            })
            .collect();
        PublishStream {
            stop,
            accepted,
            tasks,
        }
    }

    /// How many events were accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops publishing; returns the ids of every event accepted (answered 202).
    pub async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("publisher task"));
        }
        all
    }
}

/// POSTs `event` to `{base}/v1/events`; its id if accepted (202), `None` otherwise (the
/// server refused it, or did not answer).
async fn try_publish(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    event: &Value,
) -> Option<String> {
    let response = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(token)
        .json(event)
        .send()
        .await
        .ok()?;
    if response.status() != 202 {
        return None;
    }
    let body: Value = response.json().await.expect("JSON");
    Some(body["eventId"].as_str().expect("eventId").to_owned())
}
