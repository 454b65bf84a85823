//! NATS JetStream end to end (docs/destinations.md#nats-jetstream), against the NATS server
//! at `HOOKRELAY_TEST_NATS_URL` (default `nats://127.0.0.1:4222`, with JetStream): each test
//! makes a stream of its own (unique subjects, deleted at the end, and expiring anyway),
//! subscribes to a subject in it with `createEventSubscription`, and reads the stream back
//! with a pull consumer. The last test runs a NATS server of its own (`nats-server` on the
//! PATH or in /usr/sbin) with users, permissions and a small `max_payload`.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::brokers::{self, refused_subscription, subscription_status};
use crate::common::hooks::{
    deliveries, delivery_count, delivery_with_status, metrics, metrics_with, WAIT,
};
use crate::common::receiver::eventually;
use crate::common::*;

fn nats_url() -> String {
    std::env::var("HOOKRELAY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// `host:port` of the test server, as lane keys name it.
fn nats_server() -> String {
    let url = url::Url::parse(&nats_url()).expect("HOOKRELAY_TEST_NATS_URL");
    format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(4222)
    )
}

/// A name no other test (or earlier run against the same server) uses: letters and digits.
fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!(
        "{nanos:x}{:x}n{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A stream of this test's own on `{prefix}.>`.
struct TestStream {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    name: String,
    prefix: String,
}

impl TestStream {
    async fn new() -> TestStream {
        Self::on(&nats_url(), ConnectAs::Anonymous).await
    }

    async fn on(url: &str, who: ConnectAs) -> TestStream {
        let options = match who {
            ConnectAs::Anonymous => async_nats::ConnectOptions::new(),
            ConnectAs::User(user, password) => {
                async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
            }
        };
        let client = options
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to NATS at {url}: {e}"));
        let js = jetstream::new(client.clone());
        let u = unique();
        let (name, prefix) = (format!("HR_{u}"), format!("hr.{u}"));
        let stream = js
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.>")],
                // Left behind by a failed test: gone in a while.
                max_age: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .expect("create stream");
        TestStream {
            client,
            js,
            stream,
            name,
            prefix,
        }
    }

    fn subject(&self, last: &str) -> String {
        format!("{}.{last}", self.prefix)
    }

    /// How many messages the stream holds.
    async fn count(&self) -> u64 {
        self.stream
            .get_info()
            .await
            .expect("stream info")
            .state
            .messages
    }

    /// Reads the stream from the start with a pull consumer until it has `want`
    /// messages, or [`WAIT`] has passed.
    async fn read(&self, want: usize) -> Vec<jetstream::Message> {
        let consumer: consumer::PullConsumer = self
            .stream
            .create_consumer(consumer::pull::Config {
                ack_policy: consumer::AckPolicy::None,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .expect("pull consumer");
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            let mut batch = consumer
                .batch()
                .max_messages(want - got.len())
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .expect("pull");
            while let Some(message) = batch.next().await {
                got.push(message.expect("message"));
            }
        }
        got
    }

    async fn delete(self) {
        self.js
            .delete_stream(&self.name)
            .await
            .expect("delete stream");
        drop(self.client);
    }
}

enum ConnectAs {
    Anonymous,
    User(&'static str, &'static str),
}

fn header<'a>(message: &'a jetstream::Message, name: &str) -> Option<&'a str> {
    message.headers.as_ref()?.get(name).map(|v| v.as_str())
}

fn body(message: &jetstream::Message) -> Value {
    serde_json::from_slice(&message.payload).expect("a JSON body")
}

fn destination(url: &str, subject: &str) -> String {
    format!(r#"{{ nats: {{ url: "{url}", subject: "{subject}" }} }}"#)
}

/// A Buy with Prime subscription of `event_type` to `subject` at `url`; returns its id.
async fn subscribe(
    server: &Server,
    client: &Token,
    url: &str,
    subject: &str,
    event_type: &str,
) -> String {
    brokers::subscribe(server, client, event_type, &destination(url, subject)).await
}

/// Publishes events of `event_type` to the store `shop` in one batch request, `data.n` =
/// each of `ns`; returns their ids.
async fn publish_batch(
    server: &Server,
    publisher: &Token,
    event_type: &str,
    ns: std::ops::Range<usize>,
) -> Vec<String> {
    brokers::publish_batch(server, publisher, "shop", event_type, ns).await
}

/// Waits until the only delivery of `subscription` is FAILED; returns it.
async fn failed_delivery(server: &Server, client: &Token, subscription: &str) -> Value {
    eventually("a FAILED delivery", WAIT, || async {
        let log = deliveries(server, client, subscription).await;
        assert!(log.len() <= 1, "{log:?}");
        log.into_iter().find(|d| d["status"] == "FAILED")
    })
    .await
}

/// Every message in JetStream, with the subscription style's body and the headers; the
/// log says SUCCEEDED with JetStream's acknowledgement; no secret in the lane.
#[tokio::test]
async fn events_reach_the_stream_with_their_body_and_headers() {
    let nats = TestStream::new().await;
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let subject = nats.subject("orders");
    // The test server has no auth: it takes any credentials. They must not show.
    let url = format!("nats://hookrelay:s3cret-pw@{}", nats_server());
    let id = subscribe(&server, &client, &url, &subject, "ORDER_CONFIRMED").await;

    let shown = server
        .gql_ok(
            &client,
            &format!(
                r#"{{ eventSubscription(subscriptionId: "{id}") {{ status eventSubscriptionDetails {{
                    destination {{ __typename ... on NatsData {{ url subject }} }} }} }} }}"#
            ),
        )
        .await;
    let destination = &shown["eventSubscription"]["eventSubscriptionDetails"]["destination"];
    assert_eq!(destination["__typename"], "NatsData", "{shown}");
    assert_eq!(destination["subject"], subject.as_str());
    assert_eq!(
        destination["url"],
        format!("nats://hookrelay:***@{}", nats_server()),
        "{shown}"
    );

    let n = 5;
    let events = publish_batch(&server, &publisher, "ORDER_CONFIRMED", 0..n).await;
    // Another type: not subscribed to.
    publish_batch(&server, &publisher, "ITEM_CANCELLED", 100..101).await;

    let messages = nats.read(n).await;
    assert_eq!(messages.len(), n, "one message per event");
    let log = eventually("every delivery SUCCEEDED", WAIT, || async {
        let log = deliveries(&server, &client, &id).await;
        (log.len() == n && log.iter().all(|d| d["status"] == "SUCCEEDED")).then_some(log)
    })
    .await;
    let delivery_of: HashMap<&str, &Value> = log
        .iter()
        .map(|d| (d["eventId"].as_str().expect("eventId"), d))
        .collect();

    let mut seen = HashSet::new();
    for message in &messages {
        assert_eq!(message.subject.as_str(), subject);
        let body = body(message);
        let event_id = body["eventId"].as_str().expect("eventId");
        assert!(events.iter().any(|e| e == event_id), "{body}");
        assert!(seen.insert(event_id.to_owned()), "{event_id} twice");
        assert_eq!(body["subscriptionId"], id.as_str());
        assert_eq!(body["eventDescriptor"], "ORDER_CONFIRMED");
        let i = events
            .iter()
            .position(|e| e == event_id)
            .expect("published");
        assert_eq!(body["data"], json!({"n": i}));

        let delivery = delivery_of[event_id];
        let delivery_id = delivery["id"].as_str().expect("delivery id");
        assert_eq!(header(message, "Nats-Msg-Id"), Some(delivery_id));
        assert_eq!(header(message, "webhook-id"), Some(delivery_id));
        assert_eq!(header(message, "event-type"), Some("ORDER_CONFIRMED"));
        assert_eq!(body["idempotencyKey"], delivery_id);

        assert_eq!(delivery["attemptCount"], 1);
        let attempt = &delivery["attempts"][0];
        assert!(attempt["error"].is_null(), "{delivery}");
        assert!(attempt["statusCode"].is_null(), "{delivery}");
        let ack: Value =
            serde_json::from_str(attempt["responseBody"].as_str().expect("the ack")).expect("json");
        let info = message.info().expect("JetStream metadata");
        assert_eq!(ack["stream"], nats.name.as_str(), "{ack}");
        assert_eq!(ack["seq"], info.stream_sequence, "{ack}");
        assert_eq!(ack["duplicate"], false, "{ack}");
    }
    assert_eq!(seen.len(), n);

    // The lane, as metrics name it: the server and the subject, no credentials.
    let lane = format!("host=\"nats:{} {subject}\"", nats_server());
    let text = metrics_with(&server, &lane).await;
    assert!(!text.contains("s3cret"), "a secret in /metrics");
    assert!(
        !server
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("s3cret")),
        "a secret in the log"
    );
    nats.delete().await;
}

/// `kill -9` while events come in and deliveries are in flight, a restart on the same
/// storage: every event is in the stream exactly once. The deliveries in flight at the
/// kill are sent again after the restart (at least once); JetStream drops the copies by
/// `Nats-Msg-Id`.
///
/// Where the kill lands is chance: when every acknowledged delivery happened to be
/// recorded already, nothing is sent again and the run proves exactly-once without
/// exercising JetStream's deduplication. Such a run is made again, three times at most,
/// and one of them must have sent copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_delivery_leaves_every_event_in_the_stream_exactly_once() {
    for run in 1..=3 {
        let again = kill_9_run().await;
        if again > 0 {
            return;
        }
        println!("run {run}: nothing was sent again after the restart; once more");
    }
    panic!("in three runs nothing was sent again after the restart; the test proves nothing");
}

/// One kill -9 run: every check but the one on copies; returns how many publishes were
/// copies that JetStream dropped.
async fn kill_9_run() -> usize {
    let nats = TestStream::new().await;
    let subject = nats.subject("orders");
    // Every publish to the subject, the copies JetStream drops included.
    let mut tap = nats
        .client
        .subscribe(subject.clone())
        .await
        .expect("subscribe");
    let published = Arc::new(Mutex::new(Vec::<String>::new()));
    let counted = published.clone();
    // Told when the first publish of the third batch is seen (see the kill below).
    let third_batch = Arc::new(tokio::sync::Notify::new());
    let seen_third = third_batch.clone();
    let tapping = tokio::spawn(async move {
        while let Some(m) = tap.next().await {
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let mut counted = counted.lock().unwrap();
            counted.push(id);
            if counted.len() == 201 {
                seen_third.notify_one();
            }
        }
    });
    nats.client.flush().await.expect("flush");

    let mut options = Options::default();
    // A short lease: the restart takes the dead node's deliveries back at once. One batch
    // at a time to the server.
    options.args.extend([
        "--lease-timeout".into(),
        "1s".into(),
        "--max-in-flight-per-host".into(),
        "1".into(),
        "--min-in-flight-per-host".into(),
        "1".into(),
    ]);
    let server = Server::start_with(options.clone()).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let id = subscribe(&server, &client, &nats_url(), &subject, "ORDER_CONFIRMED").await;

    // 2000 events in requests of 100, from a task that carries on with the restarted
    // server (a request the kill cut off is made again: its events may be there twice,
    // as distinct events).
    let total = 2000;
    let (base_tx, mut base_rx) = tokio::sync::watch::channel(server.base.clone());
    let token = publisher.token.clone();
    let publishing = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut accepted = Vec::new();
        for from in (0..total).step_by(100) {
            let events: Vec<Value> = (from..from + 100)
                .map(|i| json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {"n": i}}))
                .collect();
            loop {
                let base = base_rx.borrow_and_update().clone();
                let sent = http
                    .post(format!("{base}/v1/events/batch"))
                    .bearer_auth(&token)
                    .json(&json!({ "events": events }))
                    .send()
                    .await;
                if let Ok(response) = sent {
                    if response.status() == 202 {
                        if let Ok(body) = response.json::<Value>().await {
                            for r in body["results"].as_array().expect("results") {
                                accepted.push(r["eventId"].as_str().expect("eventId").to_owned());
                            }
                            break;
                        }
                    }
                }
                // The server died under us: wait for the next one.
                base_rx.changed().await.expect("a restarted server");
            }
        }
        accepted
    });

    // Kill once two batches are in the stream and the third is being sent: its
    // outcome cannot be recorded before JetStream has acknowledged all of it, so the
    // kill almost always lands with sends that are not yet recorded. (Waiting for the
    // stream count alone landed, on a fast store, between a recorded batch and the
    // next ingest, where nothing is sent again.)
    tokio::time::timeout(WAIT, third_batch.notified())
        .await
        .expect("a third batch was sent");
    let dir = server.kill9();
    let sent_at_kill = published.lock().unwrap().len();
    let at_kill = nats.count().await;
    println!("killed with {at_kill} messages in the stream, {sent_at_kill} published");
    assert!(
        (at_kill as usize) < total,
        "every event was delivered before the kill; the test proves nothing"
    );

    let server = Server::start_in(dir, options);
    base_tx
        .send(server.base.clone())
        .expect("the publishing task");
    let accepted = publishing.await.expect("publishing");
    assert_eq!(accepted.len(), total);
    // Every event hookrelay holds (the accepted ones, and any of a cut-off request).
    let events = delivery_count(&server, &client, &id, None).await;
    assert!(events >= total as u64, "{events} events");
    eventually(
        "every delivery SUCCEEDED",
        Duration::from_secs(30),
        || async {
            let succeeded = delivery_count(&server, &client, &id, Some("SUCCEEDED")).await;
            (succeeded == events).then_some(())
        },
    )
    .await;
    // Copies sent late would show now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        nats.count().await,
        events,
        "the stream holds each event once"
    );
    let messages = nats.read(events as usize).await;
    assert_eq!(messages.len() as u64, events);
    let mut seen = HashSet::new();
    for message in &messages {
        let event_id = body(message)["eventId"]
            .as_str()
            .expect("eventId")
            .to_owned();
        assert!(
            seen.insert(event_id.clone()),
            "{event_id} twice in the stream"
        );
    }
    let missing = accepted.iter().filter(|e| !seen.contains(*e)).count();
    assert_eq!(missing, 0, "accepted events missing from the stream");

    let published = published.lock().unwrap().clone();
    let distinct: HashSet<&String> = published.iter().collect();
    let again = published.len() - distinct.len();
    println!(
        "{events} events, {} publishes: {again} sent again after the restart and dropped by JetStream",
        published.len()
    );
    assert_eq!(distinct.len() as u64, events);
    tapping.abort();
    drop(server);
    nats.delete().await;
    again
}

/// A subject no stream captures: the delivery is FAILED at its first attempt, with the
/// reason; the subscription stays active.
#[tokio::test]
async fn a_subject_no_stream_captures_fails_the_delivery_at_once() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let subject = format!("hr.{}.nowhere", unique());
    let id = subscribe(&server, &client, &nats_url(), &subject, "ORDER_CONFIRMED").await;
    publish_batch(&server, &publisher, "ORDER_CONFIRMED", 0..1).await;

    let delivery = failed_delivery(&server, &client, &id).await;
    assert_eq!(delivery["attemptCount"], 1, "{delivery}");
    let attempts = delivery["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{delivery}");
    let error = attempts[0]["error"].as_str().expect("error");
    assert_eq!(
        error,
        format!("no JetStream stream captures subject \"{subject}\"")
    );
    assert!(delivery["nextAttemptAt"].is_null(), "{delivery}");
    assert_eq!(subscription_status(&server, &client, &id).await, "ACTIVE");
}

/// A server whose policy does not allow loopback refuses a NATS URL on it when the
/// subscription is made.
#[tokio::test]
async fn a_forbidden_server_address_is_refused_at_creation() {
    let server = Server::start_with(Options {
        args: vec!["--allow-http".into()],
        envs: Vec::new(),
    })
    .await;
    let client = server.client("shop");
    for url in [
        "nats://127.0.0.1:4222",
        "nats://user:pw@127.0.0.1:4222",
        "tls://127.0.0.1:4222",
        "nats://localhost:4222",
        "nats://[::1]:4222",
    ] {
        let text = refused_subscription(
            &server,
            &client,
            "ORDER_CONFIRMED",
            &destination(url, "orders.x"),
        )
        .await;
        assert!(
            text.contains("/createEventSubscription/input/destination/nats/url"),
            "{url}: {text}"
        );
        assert!(
            text.contains("127.0.0.1") || text.contains("::1") || text.contains("localhost"),
            "{url}: {text}"
        );
        assert!(!text.contains("pw@"), "{url}: {text}");
    }
    let none = server
        .gql_ok(&client, "{ eventSubscriptions { totalCount } }")
        .await;
    assert_eq!(none["eventSubscriptions"]["totalCount"], 0, "{none}");
}

/// A NATS server of this test's own, with users and permissions and a small
/// `max_payload`; killed when dropped.
struct PrivateNats {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

const MAX_PAYLOAD: usize = 4096;

impl PrivateNats {
    fn start() -> PrivateNats {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                r#"
listen: "127.0.0.1:{port}"
max_payload: {MAX_PAYLOAD}
jetstream {{ store_dir: "{store}" }}
authorization {{
  users: [
    {{ user: "hookrelay", password: "s3cret-pw", permissions: {{ publish: {{ deny: ["denied.>"] }} }} }}
  ]
}}
"#,
                store = dir.path().join("js").display()
            ),
        )
        .expect("write nats.conf");
        let bin = [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
        .expect("nats-server on the PATH or in /usr/sbin (scripts/test installs it)");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateNats {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, credentials: &str) -> String {
        format!("nats://{credentials}@127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What fails the same way every time is FAILED at the first attempt, with the reason:
/// credentials the server refuses, a subject they may not publish to, an event larger
/// than the server's `max_payload`. The same server takes what it may.
#[tokio::test]
async fn refused_credentials_permissions_and_oversized_events_fail_at_once() {
    let private = PrivateNats::start();
    let nats = TestStream::on(
        &private.url("hookrelay:s3cret-pw"),
        ConnectAs::User("hookrelay", "s3cret-pw"),
    )
    .await;
    let mut options = Options::default();
    // A denied publish is answered by nothing but an -ERR: its acknowledgement times out.
    options
        .args
        .extend(["--request-timeout".into(), "2s".into()]);
    let server = Server::start_with(options).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);

    let good = private.url("hookrelay:s3cret-pw");
    let ok = subscribe(
        &server,
        &client,
        &good,
        &nats.subject("ok"),
        "ORDER_CONFIRMED",
    )
    .await;
    let wrong = subscribe(
        &server,
        &client,
        &private.url("hookrelay:wrong-pw"),
        &nats.subject("wrong"),
        "ORDER_CONFIRMED",
    )
    .await;
    let denied = subscribe(&server, &client, &good, "denied.orders", "ORDER_CONFIRMED").await;
    let large = subscribe(
        &server,
        &client,
        &good,
        &nats.subject("large"),
        "ITEM_CANCELLED",
    )
    .await;

    publish_batch(&server, &publisher, "ORDER_CONFIRMED", 0..1).await;
    let big = "x".repeat(MAX_PAYLOAD + 100);
    let (status, body) = server
        .post_json(
            "/v1/events",
            &publisher,
            &json!({"store": "shop", "type": "ITEM_CANCELLED", "data": {"big": big}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    let taken = delivery_with_status(&server, &client, &ok, "SUCCEEDED").await;
    assert_eq!(taken["attemptCount"], 1);
    assert_eq!(nats.read(1).await.len(), 1);

    for (id, says) in [
        (&wrong, "refused the credentials"),
        (
            &denied,
            "does not permit these credentials to publish to \"denied.orders\"",
        ),
        (&large, "too large"),
    ] {
        let delivery = failed_delivery(&server, &client, id).await;
        assert_eq!(delivery["attemptCount"], 1, "{delivery}");
        let error = delivery["attempts"][0]["error"].as_str().expect("error");
        assert!(error.contains(says), "{says}: {error}");
        assert!(
            !error.contains("s3cret") && !error.contains("wrong-pw"),
            "{error}"
        );
        assert_eq!(subscription_status(&server, &client, id).await, "ACTIVE");
    }
    // Only the good message reached the stream.
    assert_eq!(nats.count().await, 1);
    let text = metrics(&server).await;
    assert!(
        !text.contains("s3cret") && !text.contains("wrong-pw"),
        "a secret in /metrics"
    );
    nats.delete().await;
}
