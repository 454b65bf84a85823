//! Amazon SQS destinations end to end, against the AWS API emulator (moto_server):
//! `createEventSubscription` with an `sqs` destination, events published to hookrelay, and
//! the messages read back from the queue with the AWS SDK, with their message and system
//! attributes.
//!
//! hookrelay's credentials are the emulator's default account, so the queues are made
//! there (`Customer::default_account`), each with a name of its own: moto outlives a run.
//!
//! What moto 5.2.5 does here: `SendMessageBatch` with message attributes; FIFO queues with
//! `MessageGroupId` and `MessageDeduplicationId` (both returned as system attributes by
//! `ReceiveMessage`), and deduplication by `MessageDeduplicationId` — but only against
//! the messages the queue still holds (a deleted message no longer deduplicates, where
//! AWS keeps the id for 5 minutes), so the exactly-once test reads the queue only once
//! every delivery is done. A queue that does not exist is
//! `AWS.SimpleQueueService.NonExistentQueue` (AWS's `QueueDoesNotExist`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use crate::common::aws::{self, Customer, SqsMessage};
use crate::common::brokers::{self, subscription_status, PublishStream};
use crate::common::hooks::{deliveries, delivery_with_status, metrics, series};
use crate::common::*;
use serde_json::{json, Value};

/// A name no other test, or earlier run against the same emulator, uses.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", aws::fresh_account())
}

fn sqs_destination(queue_url: &str, region: &str) -> String {
    format!(r#"{{ sqs: {{ queueUrl: "{queue_url}", region: "{region}" }} }}"#)
}

/// What each test here starts with: a server on the emulator (with `args`), a client of
/// `store` and a publisher, and the customer in the emulator's default account, where
/// hookrelay's credentials make the queues.
pub(crate) struct AwsTest {
    pub endpoint: String,
    pub server: Server,
    pub store: String,
    pub app: Token,
    pub publisher: Token,
    pub customer: Customer,
}

impl AwsTest {
    pub(crate) async fn start(store: &str, args: &[&str]) -> AwsTest {
        let endpoint = aws::endpoint();
        let server = Server::start_with(aws::server_options(&endpoint, args)).await;
        let app = server.client(store);
        let publisher = server.token("publisher", None);
        let customer = Customer::default_account(&endpoint).await;
        AwsTest {
            endpoint,
            server,
            store: store.to_owned(),
            app,
            publisher,
            customer,
        }
    }

    /// A subscription of the store to `event_type` at `destination`; returns its id.
    pub(crate) async fn subscribe(&self, event_type: &str, destination: &str) -> String {
        brokers::subscribe(&self.server, &self.app, event_type, destination).await
    }

    /// Publishes `n` events of `event_type` in one batch request, `data.n` = 0..n; returns
    /// their ids in order.
    pub(crate) async fn publish(&self, event_type: &str, n: usize) -> Vec<String> {
        brokers::publish_batch(&self.server, &self.publisher, &self.store, event_type, 0..n).await
    }

    /// Publishes `total` events of `event_type`, waits until `subscription` delivered
    /// them all, and reads `queue`: one message per event, each checked by
    /// [`check_message`]. Returns the messages and the log.
    pub(crate) async fn deliver_each_once(
        &self,
        queue: &aws::Queue,
        subscription: &str,
        event_type: &str,
        total: usize,
    ) -> (Vec<SqsMessage>, BTreeMap<String, Value>) {
        let events = self.publish(event_type, total).await;
        let log = all_succeeded(
            &self.server,
            &self.app,
            subscription,
            total,
            Duration::from_secs(20),
        )
        .await;
        let messages = self.customer.receive_messages(queue, total).await;
        assert_eq!(messages.len(), total, "{messages:?}");
        let mut seen = BTreeSet::new();
        for m in &messages {
            let event_id = check_message(m, subscription, event_type, &events, &log);
            assert!(seen.insert(event_id.clone()), "{event_id} arrived twice");
        }
        assert_eq!(seen, events.iter().cloned().collect());
        (messages, log)
    }

    /// Publishes an event for `subscription` (with a 1 s retry schedule) and waits until
    /// its delivery failed: at its first attempt, not retried, the subscription still
    /// active. Returns the delivery.
    pub(crate) async fn fails_at_once(&self, subscription: &str) -> Value {
        self.publish("ORDER_CONFIRMED", 1).await;
        let (server, app) = (&self.server, &self.app);
        let failed = delivery_with_status(server, app, subscription, "FAILED").await;
        // Had it been retried, the 1 s schedule would have made more attempts by now.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let log = deliveries(server, app, subscription).await;
        assert_eq!(log.len(), 1);
        let delivery = &log[0];
        assert_eq!(delivery["id"], failed["id"]);
        assert_eq!(delivery["status"], "FAILED", "{delivery}");
        assert_eq!(delivery["attemptCount"], 1, "not retried: {delivery}");
        assert_eq!(
            subscription_status(server, app, subscription).await,
            "ACTIVE"
        );
        delivery.clone()
    }
}

/// A FIFO message's group is `{store}:{event_type}` and its deduplication id the
/// delivery id (= `webhook-id`), as SQS's system attributes tell; returns the group.
pub(crate) fn check_fifo_ids<'m>(m: &'m SqsMessage, store: &str, event_type: &str) -> &'m str {
    let group = m.system("MessageGroupId").expect("MessageGroupId");
    assert_eq!(group, format!("{store}:{event_type}"), "{m:?}");
    assert_eq!(
        m.system("MessageDeduplicationId"),
        m.attribute("webhook-id"),
        "the deduplication id is the delivery id: {m:?}"
    );
    group
}

/// Every delivery of `subscription` (up to 1000), by id.
pub(crate) async fn deliveries_by_id(
    server: &Server,
    client: &Token,
    subscription: &str,
) -> BTreeMap<String, Value> {
    let data = server
        .gql_ok(
            client,
            &format!(
                r#"{{ deliveries(subscriptionId: "{subscription}", first: 1000) {{ edges {{ node {{
                    id eventId status attemptCount attempts {{ statusCode error responseBody }} }} }} }} }}"#
            ),
        )
        .await;
    data["deliveries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            let node = e["node"].clone();
            (node["id"].as_str().expect("id").to_owned(), node)
        })
        .collect()
}

/// Waits until `subscription` has `n` deliveries and all are SUCCEEDED; fails with
/// what the log shows if they are not within `within`.
pub(crate) async fn all_succeeded(
    server: &Server,
    client: &Token,
    subscription: &str,
    n: usize,
    within: Duration,
) -> BTreeMap<String, Value> {
    succeeded_when(
        server,
        client,
        subscription,
        within,
        &format!("{n}"),
        |log| log.len() == n,
    )
    .await
}

/// Waits until every delivery of `subscription` is SUCCEEDED and `done(log)`; fails with
/// what the log shows if that is not so within `within` (`what`: the deliveries expected).
async fn succeeded_when(
    server: &Server,
    client: &Token,
    subscription: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + within;
    loop {
        let log = deliveries_by_id(server, client, subscription).await;
        if done(&log) && log.values().all(|d| d["status"] == "SUCCEEDED") {
            return log;
        }
        if Instant::now() >= deadline {
            let mut statuses = BTreeMap::<String, usize>::new();
            for d in log.values() {
                *statuses.entry(d["status"].to_string()).or_default() += 1;
            }
            let unfinished: Vec<&Value> = log
                .values()
                .filter(|d| d["status"] != "SUCCEEDED")
                .take(3)
                .collect();
            panic!(
                "{what} SUCCEEDED deliveries expected within {within:?}; the log has {} ({statuses:?}), such as {unfinished:?}",
                log.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks one message against hookrelay's log: the body is the Buy with Prime JSON of
/// one of `events` for `subscription`, the attributes name the event type and the
/// delivery, and the delivery SUCCEEDED at its first attempt. Returns the event id.
pub(crate) fn check_message(
    m: &SqsMessage,
    subscription: &str,
    event_type: &str,
    events: &[String],
    log: &BTreeMap<String, Value>,
) -> String {
    let body = &m.body;
    let event_id = body["eventId"].as_str().expect("eventId").to_owned();
    let n = events
        .iter()
        .position(|e| *e == event_id)
        .unwrap_or_else(|| panic!("a message of an event never published: {body}"));
    assert_eq!(body["subscriptionId"], subscription, "{body}");
    assert_eq!(body["eventDescriptor"], event_type, "{body}");
    assert_eq!(body["data"], json!({"n": n}), "{body}");
    assert_eq!(body["apiVersion"], "1.0", "{body}");
    assert_eq!(body["resources"], json!([]), "{body}");
    assert!(body["eventTime"].is_string(), "{body}");

    assert_eq!(m.attribute("event-type"), Some(event_type), "{m:?}");
    let webhook_id = m.attribute("webhook-id").expect("webhook-id attribute");
    assert_eq!(
        body["idempotencyKey"], webhook_id,
        "the body's key is the delivery id"
    );
    let delivery = log
        .get(webhook_id)
        .unwrap_or_else(|| panic!("webhook-id {webhook_id} is no delivery in the log"));
    assert_eq!(delivery["eventId"], event_id.as_str());
    assert_eq!(delivery["status"], "SUCCEEDED", "{delivery}");
    assert_eq!(delivery["attemptCount"], 1, "{delivery}");
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["statusCode"], 200, "{delivery}");
    assert!(attempt["error"].is_null(), "{delivery}");
    event_id
}

/// The log's answer for a delivery: `{"MessageId": …}`.
pub(crate) fn logged_message_id(delivery: &Value) -> String {
    let body: Value = serde_json::from_str(
        delivery["attempts"][0]["responseBody"]
            .as_str()
            .unwrap_or_else(|| panic!("no response body: {delivery}")),
    )
    .expect("the response body is JSON");
    body["MessageId"]
        .as_str()
        .unwrap_or_else(|| panic!("no MessageId: {body}"))
        .to_owned()
}

/// A standard queue: the subscription shows as `SqsData`; each event is one message
/// whose body is the subscription's JSON and whose attributes name the event type and the
/// delivery; the log shows the message id SQS answered; the messages went in batches.
#[tokio::test]
async fn events_reach_a_standard_queue_with_their_attributes_in_batches() {
    let t = AwsTest::start("sqsshop", &[]).await;
    let queue = t.customer.queue(&unique("orders")).await;

    let subscription = t
        .subscribe("ORDER_CONFIRMED", &sqs_destination(&queue.url, "us-east-1"))
        .await;
    let shown = aws::event_subscription(&t.server, &t.app, &subscription).await;
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    let details = &shown["eventSubscriptionDetails"];
    assert_eq!(details["eventType"], "ORDER_CONFIRMED");
    assert_eq!(
        details["destination"],
        json!({"__typename": "SqsData", "queueUrl": queue.url, "region": "us-east-1"})
    );

    let total = 25;
    // An event of another type goes nowhere.
    t.publish("ITEM_CANCELLED", 1).await;
    let (messages, log) = t
        .deliver_each_once(&queue, &subscription, "ORDER_CONFIRMED", total)
        .await;
    for m in &messages {
        // The log keeps the id SQS gave the message.
        let delivery = &log[m.attribute("webhook-id").unwrap()];
        assert_eq!(logged_message_id(delivery), m.message_id, "{delivery}");
        // A standard queue has no groups.
        assert_eq!(m.system("MessageGroupId"), None, "{m:?}");
    }
    // 25 messages, in `SendMessageBatch` calls of at most 10: fewer calls than messages.
    nothing_more_and_batched(&t, &queue, "sqs", total, 3.0).await;
}

/// Nothing else arrives on `queue`, and the `total` messages of kind `kind` went out in
/// at least `least_calls` calls but fewer than one per message (`/metrics`).
pub(crate) async fn nothing_more_and_batched(
    t: &AwsTest,
    queue: &aws::Queue,
    kind: &str,
    total: usize,
    least_calls: f64,
) {
    assert!(
        t.customer
            .receive_messages_for(queue, Duration::from_secs(1))
            .await
            .is_empty(),
        "one message per event"
    );
    let text = metrics(&t.server).await;
    let calls = series(
        &text,
        &format!(r#"hookrelay_destination_requests_total{{kind="{kind}",result="succeeded"}}"#),
    );
    let accepted = series(
        &text,
        &format!(r#"hookrelay_destination_messages_total{{kind="{kind}",result="accepted"}}"#),
    );
    assert_eq!(accepted, total as f64, "{text}");
    assert!(
        calls >= least_calls && calls < total as f64,
        "{total} {kind} messages took {calls} calls"
    );
    println!("{total} {kind} messages → {calls} calls");
}

/// A test on the emulator (see [`AwsTest::start`]), a new FIFO queue named after
/// `prefix`, and a subscription of `ORDER_CONFIRMED` to it.
async fn fifo_subscription(
    store: &str,
    prefix: &str,
    args: &[&str],
) -> (AwsTest, aws::Queue, String) {
    let t = AwsTest::start(store, args).await;
    let queue = t
        .customer
        .fifo_queue(&format!("{}.fifo", unique(prefix)))
        .await;
    let subscription = t
        .subscribe("ORDER_CONFIRMED", &sqs_destination(&queue.url, "us-east-1"))
        .await;
    (t, queue, subscription)
}

/// A FIFO queue: each message's group is `{store}:{eventType}` and its deduplication id
/// the delivery id (= `webhook-id`), as SQS's system attributes tell.
#[tokio::test]
async fn a_fifo_queue_gets_group_and_deduplication_ids() {
    let store = "fifoshop";
    let (t, queue, subscription) = fifo_subscription(store, "orders", &[]).await;
    let other = t
        .subscribe("ITEM_CANCELLED", &sqs_destination(&queue.url, "us-east-1"))
        .await;

    let confirmed = t.publish("ORDER_CONFIRMED", 12).await;
    let cancelled = t.publish("ITEM_CANCELLED", 3).await;
    let (server, app) = (&t.server, &t.app);
    let mut log = all_succeeded(server, app, &subscription, 12, Duration::from_secs(20)).await;
    log.extend(all_succeeded(server, app, &other, 3, Duration::from_secs(20)).await);

    let messages = t.customer.receive_messages(&queue, 15).await;
    assert_eq!(messages.len(), 15, "{messages:?}");
    let mut groups = BTreeMap::<String, usize>::new();
    for m in &messages {
        let event_type = m.attribute("event-type").expect("event-type").to_owned();
        let (sub, events) = match event_type.as_str() {
            "ORDER_CONFIRMED" => (&subscription, &confirmed),
            "ITEM_CANCELLED" => (&other, &cancelled),
            unexpected => panic!("unexpected event type {unexpected}"),
        };
        check_message(m, sub, &event_type, events, &log);
        let group = check_fifo_ids(m, store, &event_type);
        *groups.entry(group.to_owned()).or_default() += 1;
        assert!(m.system("SequenceNumber").is_some(), "{m:?}");
    }
    assert_eq!(
        groups,
        BTreeMap::from([
            (format!("{store}:ITEM_CANCELLED"), 3),
            (format!("{store}:ORDER_CONFIRMED"), 12)
        ])
    );
}

/// Exactly once across `kill -9`: deliveries sent to SQS but not yet recorded when the
/// server dies are sent again after the restart, with the same `MessageDeduplicationId`
/// (the delivery id), and the FIFO queue drops the second copy. Every accepted event is
/// in the queue exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_delivery_to_a_fifo_queue_delivers_each_event_exactly_once() {
    // A short lease, so that the restart takes the dead node's deliveries back soon.
    let args = ["--lease-timeout", "1s"];
    let (t, queue, subscription) = fifo_subscription("crashshop", "crash", &args).await;
    let AwsTest {
        endpoint,
        server,
        store,
        app,
        publisher,
        customer,
    } = t;

    // 200 events, one request each, from 8 tasks.
    let total = 200;
    let publishing = PublishStream::start(
        &server,
        &publisher,
        &store,
        "ORDER_CONFIRMED",
        8,
        total,
        Duration::ZERO,
    );
    // Kill once some messages are in the queue and far more events were published.
    // Nothing is read from the queue until the end: moto deduplicates only against the
    // messages it still holds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while customer.queue_depth(&queue).await < 20 || publishing.accepted() < total / 2 {
        assert!(Instant::now() < deadline, "nothing reached the queue");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dir = server.kill9();
    let accepted = publishing.stop().await;
    // A call the dead server had in flight may still land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_kill = customer.queue_depth(&queue).await;

    let server = Server::start_in(dir, aws::server_options(&endpoint, &args));
    // Every accepted event, and those the server stored but died before answering 202.
    let accepted_set: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    let log = succeeded_when(
        &server,
        &app,
        &subscription,
        Duration::from_secs(60),
        &format!("{} or more", accepted.len()),
        |log| {
            let logged: HashSet<&str> =
                log.values().filter_map(|d| d["eventId"].as_str()).collect();
            logged.is_superset(&accepted_set)
        },
    )
    .await;
    let by_delivery: BTreeMap<&str, &str> = log
        .iter()
        .map(|(id, d)| (id.as_str(), d["eventId"].as_str().expect("eventId")))
        .collect();
    let expected: HashSet<&str> = by_delivery.values().copied().collect();
    assert_eq!(expected.len(), log.len(), "one delivery per event");
    assert!(
        at_kill < expected.len(),
        "every event was in the queue before the kill; the test proves nothing"
    );
    let depth = customer.queue_depth(&queue).await;

    let messages = customer.receive_messages(&queue, expected.len()).await;
    let late = customer
        .receive_messages_for(&queue, Duration::from_secs(1))
        .await;
    let mut arrived = BTreeMap::<String, usize>::new();
    for m in messages.iter().chain(&late) {
        let event_id = m.body["eventId"].as_str().expect("eventId").to_owned();
        assert!(
            expected.contains(event_id.as_str()),
            "an event hookrelay never stored: {m:?}"
        );
        let webhook_id = m.attribute("webhook-id").expect("webhook-id");
        assert_eq!(
            by_delivery.get(webhook_id),
            Some(&event_id.as_str()),
            "{m:?}"
        );
        assert_eq!(m.system("MessageDeduplicationId"), Some(webhook_id));
        *arrived.entry(event_id).or_default() += 1;
    }
    let missing = expected
        .iter()
        .filter(|e| !arrived.contains_key(**e))
        .count();
    let twice: Vec<(&String, &usize)> = arrived.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(missing, 0, "{missing} stored events never arrived");
    assert!(
        twice.is_empty(),
        "events that arrived more than once: {twice:?}"
    );
    assert_eq!(
        depth,
        expected.len(),
        "the queue holds one message per event"
    );

    // What the restarted server sent again: the messages it had SQS accept, less those
    // the queue did not already hold at the restart.
    let resent = series(
        &metrics(&server).await,
        r#"hookrelay_destination_messages_total{kind="sqs",result="accepted"}"#,
    ) as i64
        + at_kill as i64
        - expected.len() as i64;
    println!(
        "{} events accepted ({} stored), {at_kill} in the queue at the kill, {resent} sent \
         again after the restart and dropped by FIFO deduplication",
        accepted.len(),
        expected.len()
    );
}

/// A queue that does not exist: the delivery fails at its first attempt with AWS's
/// code, is not retried, and the subscription stays active.
#[tokio::test]
async fn a_queue_that_does_not_exist_fails_the_delivery_at_once() {
    let t = AwsTest::start("missingshop", &["--retry-schedule", "1,1"]).await;
    // A real queue gives the URL's form; the missing one differs in its name only.
    let real = t.customer.queue(&unique("present")).await;
    let name = unique("missing");
    let url = format!("{}/{name}", real.url.rsplit_once('/').unwrap().0);
    let subscription = t
        .subscribe("ORDER_CONFIRMED", &sqs_destination(&url, "us-east-1"))
        .await;

    let delivery = t.fails_at_once(&subscription).await;
    assert!(delivery["nextAttemptAt"].is_null(), "{delivery}");
    let attempt = &delivery["attempts"][0];
    let error = attempt["error"].as_str().expect("error");
    println!("the attempt's error: {error}");
    assert!(
        error.contains("AWS.SimpleQueueService.NonExistentQueue")
            || error.contains("QueueDoesNotExist"),
        "the error names AWS's code: {error}"
    );
    assert!(error.contains("does not exist"), "{error}");
    assert!(
        error.contains(&format!("SendMessageBatch to {url} failed")),
        "the error names the call and the queue: {error}"
    );
    assert_eq!(attempt["statusCode"], 400, "{delivery}");

    // Nothing was made at AWS by the attempt.
    let listed = t
        .customer
        .sqs
        .get_queue_url()
        .queue_name(&name)
        .send()
        .await;
    assert!(listed.is_err(), "the queue appeared: {listed:?}");
}

/// Queue URLs and regions that cannot be an SQS queue are refused with the field's path,
/// and nothing is stored.
#[tokio::test]
async fn bad_sqs_destinations_are_refused_with_the_field_path() {
    let AwsTest { server, app, .. } = AwsTest::start("badshop", &[]).await;
    let list = "{ eventSubscriptions { edges { node { subscriptionId } } } }";
    let before = server.gql_ok(&app, list).await;
    assert_eq!(before["eventSubscriptions"]["edges"], json!([]));

    let path = "/createEventSubscription/input/destination";
    let good_url = "https://sqs.us-east-1.amazonaws.com/123456789012/orders";
    for (destination, says) in [
        (
            sqs_destination("not a url", "us-east-1"),
            format!("{path}/sqs/queueUrl must be an SQS queue URL"),
        ),
        (
            sqs_destination("https://sqs.us-east-1.amazonaws.com/orders", "us-east-1"),
            format!("{path}/sqs/queueUrl must be an SQS queue URL"),
        ),
        (
            sqs_destination(
                "https://sqs.us-east-1.amazonaws.com/1234/orders",
                "us-east-1",
            ),
            format!("{path}/sqs/queueUrl must be an SQS queue URL"),
        ),
        (
            sqs_destination(
                "https://sqs.us-east-1.amazonaws.com/123456789012/bad%20name",
                "us-east-1",
            ),
            format!("{path}/sqs/queueUrl must be an SQS queue URL"),
        ),
        (
            sqs_destination(
                "ftp://sqs.us-east-1.amazonaws.com/123456789012/orders",
                "us-east-1",
            ),
            format!("{path}/sqs/queueUrl must be an SQS queue URL"),
        ),
        (
            sqs_destination(good_url, "mars-1"),
            format!("{path}/sqs/region must be an AWS region name"),
        ),
        (
            sqs_destination(good_url, ""),
            format!("{path}/sqs/region must be an AWS region name"),
        ),
        (
            format!(
                r#"{{ sqs: {{ queueUrl: "{good_url}", region: "us-east-1" }},
                     sns: {{ topicArn: "arn:aws:sns:us-east-1:123456789012:t" }} }}"#
            ),
            format!("{path} must have only one of"),
        ),
    ] {
        let refused =
            brokers::refused_subscription(&server, &app, "ORDER_CONFIRMED", &destination).await;
        assert!(
            refused.contains(&says),
            "{destination}: {refused} should say {says}"
        );
    }
    let after = server.gql_ok(&app, list).await;
    assert_eq!(after, before, "nothing was stored");
}
