//! Durability with the real binary: publish, `kill -9` the server mid-delivery (or stop it
//! with SIGTERM), restart it on the same data dir, and every accepted (event,
//! subscription) pair arrives.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Options, Server, Token};
use serde_json::{json, Value};

fn options() -> Options {
    let mut options = Options::default();
    // A short lease so the restart takes the dead node's deliveries back quickly; few
    // requests in flight per host so that many deliveries wait in memory at the kill.
    options.args.extend([
        "--lease-timeout".into(),
        "1s".into(),
        "--max-in-flight-per-host".into(),
        "4".into(),
    ]);
    options
}

/// (eventId, subscriptionId) pairs a receiver got, and how many requests in all.
fn pairs(receivers: &[Receiver]) -> (HashSet<(String, String)>, usize) {
    let mut seen = HashSet::new();
    let mut total = 0;
    for r in receivers {
        for req in r.requests() {
            let body = req.json();
            total += 1;
            seen.insert((
                body["eventId"].as_str().unwrap_or_default().to_owned(),
                body["subscriptionId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    (seen, total)
}

/// Three slow receivers with a subscription each, so that deliveries are still in flight
/// and queued when the server stops.
async fn slow_subscriptions(server: &Server, client: &Token) -> (Vec<Receiver>, Vec<String>) {
    let mut receivers = Vec::new();
    let mut subscriptions = Vec::new();
    for _ in 0..3 {
        let r = Receiver::start(|_, _| Reply::status(204).after(Duration::from_millis(40))).await;
        let data = server
            .gql_ok(
                client,
                &format!(
                    r#"mutation {{ createEventSubscription(input: {{ destination: {{ webhook: {{ url: "{}/in" }} }}, eventType: "ORDER_CONFIRMED" }}) {{ subscriptionId }} }}"#,
                    r.url
                ),
            )
            .await;
        subscriptions.push(
            data["createEventSubscription"]["subscriptionId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        receivers.push(r);
    }
    (receivers, subscriptions)
}

/// Waits until every (event, subscription) pair of `accepted` × `subscriptions` arrived.
async fn wait_for_every_pair(
    receivers: &[Receiver],
    accepted: &[String],
    subscriptions: &[String],
) {
    let expected: HashSet<(String, String)> = accepted
        .iter()
        .flat_map(|e| subscriptions.iter().map(move |s| (e.clone(), s.clone())))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (seen, total) = pairs(receivers);
        let missing = expected.difference(&seen).count();
        if missing == 0 {
            println!(
                "{} events accepted, {} pairs delivered, {} requests ({} duplicates from deliveries in flight at the stop)",
                accepted.len(),
                expected.len(),
                total,
                total - seen.len()
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing} of {} accepted (event, subscription) pairs never arrived",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_delivery_loses_nothing() {
    let server = Server::start_with(options()).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let (receivers, subscriptions) = slow_subscriptions(&server, &client).await;

    // Publish from 8 tasks until the kill; keep the ids of the events answered 202.
    let stop = Arc::new(AtomicBool::new(false));
    let base = server.base.clone();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (stop, base, token) = (stop.clone(), base.clone(), publisher.token.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut accepted = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) || i >= 150 {
                    break;
                }
                let sent = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&token)
                    .json(&json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {"task": t, "i": i}}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 202 => {
                        let body: serde_json::Value = r.json().await.unwrap();
                        accepted.push(body["eventId"].as_str().unwrap().to_owned());
                    }
                    // The server died under us: this one was not accepted.
                    _ => break,
                }
            }
            accepted
        }));
    }
    // Kill once some, but far from all, deliveries have arrived.
    receivers[0].wait_for(30, Duration::from_secs(30)).await;
    let counts: Vec<usize> = receivers.iter().map(Receiver::count).collect();
    let dir = server.kill9();
    println!("killed with {counts:?} requests received");
    stop.store(true, Ordering::Relaxed);
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.unwrap());
    }
    let (before, _) = pairs(&receivers);
    assert!(
        before.len() < accepted.len() * 3,
        "everything arrived before the kill; the test proves nothing"
    );

    // Restart on the same data dir; the receivers keep their ports.
    let server = Server::start_in(dir, options());
    wait_for_every_pair(&receivers, &accepted, &subscriptions).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_delivery_then_restart_loses_nothing() {
    let server = Server::start_with(options()).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let (receivers, subscriptions) = slow_subscriptions(&server, &client).await;
    let events: Vec<Value> = (0..300)
        .map(|i| json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {"i": i}}))
        .collect();
    let (status, body) = server
        .post_json("/v1/events/batch", &publisher, &json!({ "events": events }))
        .await;
    assert_eq!(status, 202, "{body}");
    let accepted: Vec<String> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["eventId"].as_str().expect("eventId").to_owned())
        .collect();

    // Stop once some, but far from all, deliveries have arrived.
    receivers[0].wait_for(30, Duration::from_secs(30)).await;
    let (status, dir) = server.terminate();
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    let (before, _) = pairs(&receivers);
    assert!(
        before.len() < accepted.len() * 3,
        "everything arrived before SIGTERM; the test proves nothing"
    );

    let server = Server::start_in(dir, options());
    wait_for_every_pair(&receivers, &accepted, &subscriptions).await;
    drop(server);
}
