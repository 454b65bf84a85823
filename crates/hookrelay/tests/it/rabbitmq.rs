//! RabbitMQ destinations end to end (docs/destinations.md#rabbitmq), against a real broker
//! at `HOOKRELAY_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`): each
//! test declares an exchange and a queue of its own with lapin, subscribes to the exchange
//! through the API, publishes events, and consumes what hookrelay published.
//!
//! The broker restart test stops and starts the broker's application with
//! `HOOKRELAY_TEST_RABBITMQCTL` (default `/usr/sbin/rabbitmqctl`). So that it never pulls
//! the broker from under another test, every test holds a file lock on the broker: shared,
//! and exclusive for the restart test (nextest runs each test in a process of its own).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

use crate::common::brokers::{self, refused_subscription, subscription_status, PublishStream};
use crate::common::hooks::{deliveries, delivery_with_status, metrics_with, WAIT};
use crate::common::receiver::eventually;
use crate::common::{Options, Server, Token};

const EVENT_TYPE: &str = "ORDER_CONFIRMED";
const ROUTING_KEY: &str = "orders.confirmed";

fn amqp_url() -> String {
    std::env::var("HOOKRELAY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn rabbitmqctl() -> String {
    std::env::var("HOOKRELAY_TEST_RABBITMQCTL").unwrap_or_else(|_| "/usr/sbin/rabbitmqctl".into())
}

/// A name no other test or run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A store hash of its own: `[a-z0-9]`, at most 32 characters.
fn unique_store() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("shop{}{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// The broker, held shared by every test and exclusively by the one that restarts it.
fn hold_broker(exclusive: bool) -> File {
    let path = std::env::temp_dir().join("hookrelay-rabbitmq-tests.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tokio::task::block_in_place(|| {
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
    })
    .expect("lock the broker");
    file
}

/// A message as the consumer got it.
#[derive(Debug, Clone)]
struct Got {
    at: Instant,
    body: Value,
    headers: HashMap<String, String>,
    delivery_mode: Option<u8>,
    content_type: Option<String>,
    message_id: Option<String>,
    timestamp: Option<u64>,
}

impl Got {
    fn webhook_id(&self) -> &str {
        self.headers
            .get("webhook-id")
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// The customer's side: a durable direct exchange of this test, a durable queue bound to
/// it, and a consumer filling `got`.
struct Customer {
    exchange: String,
    queue: String,
    got: Arc<Mutex<Vec<Got>>>,
    channel: Channel,
    _connection: Connection,
}

impl Customer {
    async fn connect() -> (Connection, Channel) {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("connect to the test broker (HOOKRELAY_TEST_AMQP_URL)");
        let channel = connection.create_channel().await.expect("channel");
        (connection, channel)
    }

    /// An exchange and a queue bound with `binding` (none: no queue is bound yet).
    async fn new(binding: Option<&str>) -> Customer {
        let (connection, channel) = Self::connect().await;
        let exchange = unique("hr-x");
        let queue = unique("hr-q");
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange.declare");
        let mut customer = Customer {
            exchange,
            queue,
            got: Arc::new(Mutex::new(Vec::new())),
            channel,
            _connection: connection,
        };
        customer.declare_queue().await;
        if let Some(key) = binding {
            customer.bind(key).await;
        }
        customer.consume().await;
        customer
    }

    async fn declare_queue(&mut self) {
        // Gone ten minutes after its last use, so that runs leave nothing behind.
        let mut arguments = FieldTable::default();
        arguments.insert("x-expires".into(), AMQPValue::LongInt(600_000));
        self.channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .expect("queue.declare");
    }

    async fn bind(&self, key: &str) {
        self.channel
            .queue_bind(
                self.queue.as_str().into(),
                self.exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue.bind");
    }

    /// Consumes the queue on a new connection (after a broker restart).
    async fn reconnect(&mut self) {
        let (connection, channel) = Self::connect().await;
        self.channel = channel;
        self._connection = connection;
        self.consume().await;
    }

    async fn consume(&self) {
        let mut consumer = self
            .channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        let got = self.got.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let properties = &delivery.properties;
                let headers = properties
                    .headers()
                    .as_ref()
                    .map(|table| {
                        table
                            .inner()
                            .iter()
                            .map(|(k, v)| {
                                let v = match v {
                                    AMQPValue::LongString(s) => s.to_string(),
                                    AMQPValue::ShortString(s) => s.to_string(),
                                    other => format!("{other:?}"),
                                };
                                (k.to_string(), v)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let body = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
                got.lock().unwrap().push(Got {
                    at: Instant::now(),
                    body,
                    headers,
                    delivery_mode: *properties.delivery_mode(),
                    content_type: properties.content_type().as_ref().map(|s| s.to_string()),
                    message_id: properties.message_id().as_ref().map(|s| s.to_string()),
                    timestamp: *properties.timestamp(),
                });
            }
        });
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Waits until the event ids of what arrived include all of `events`; returns what
    /// arrived.
    async fn wait_for_events(&self, events: &HashSet<String>, limit: Duration) -> Vec<Got> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.got();
            let seen: HashSet<String> = got
                .iter()
                .filter_map(|g| g.body["eventId"].as_str().map(str::to_owned))
                .collect();
            let missing = events.difference(&seen).count();
            if missing == 0 {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} of {} accepted events never reached the queue",
                events.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn destination(url: &str, exchange: &str, key: &str) -> String {
    format!(r#"{{ rabbitmq: {{ url: "{url}", exchange: "{exchange}", routingKey: "{key}" }} }}"#)
}

/// What each test here starts with: the broker held (exclusively by the test that
/// restarts it), a server with `options`, a store of its own with a client and a
/// publisher, and a customer whose queue is bound with `binding`.
struct Setup {
    server: Server,
    store: String,
    client: Token,
    publisher: Token,
    customer: Customer,
    /// Last, so that it is let go after all else.
    _broker: File,
}

impl Setup {
    async fn start(exclusive: bool, options: Options, binding: Option<&str>) -> Setup {
        let broker = hold_broker(exclusive);
        let server = Server::start_with(options).await;
        let store = unique_store();
        let client = server.client(&store);
        let publisher = server.token("publisher", None);
        let customer = Customer::new(binding).await;
        Setup {
            server,
            store,
            client,
            publisher,
            customer,
            _broker: broker,
        }
    }

    /// A subscription to `EVENT_TYPE` at `exchange` of the broker at `url`, with
    /// `ROUTING_KEY`; returns its id.
    async fn subscribe_at(&self, url: &str, exchange: &str) -> String {
        let destination = destination(url, exchange, ROUTING_KEY);
        brokers::subscribe(&self.server, &self.client, EVENT_TYPE, &destination).await
    }

    /// A subscription to the customer's exchange on the test broker.
    async fn subscribe(&self) -> String {
        self.subscribe_at(&amqp_url(), &self.customer.exchange)
            .await
    }

    /// Publishes `n` events in one batch request; returns their ids.
    async fn publish(&self, n: usize) -> Vec<String> {
        let (server, publisher) = (&self.server, &self.publisher);
        brokers::publish_batch(server, publisher, &self.store, EVENT_TYPE, 0..n).await
    }

    /// Publishes one event at a time from `tasks` tasks (pausing `pause` after each) until
    /// stopped, `limit` events, or the server stops answering.
    fn publish_stream(&self, tasks: usize, limit: usize, pause: Duration) -> PublishStream {
        let (server, publisher) = (&self.server, &self.publisher);
        PublishStream::start(
            server,
            publisher,
            &self.store,
            EVENT_TYPE,
            tasks,
            limit,
            pause,
        )
    }

    /// Waits until a delivery of `sub` was attempted; returns it.
    async fn attempted(&self, sub: &str) -> Value {
        eventually("a refused attempt", WAIT, || async {
            deliveries(&self.server, &self.client, sub)
                .await
                .into_iter()
                .find(|d| d["attemptCount"].as_i64().unwrap_or(0) >= 1)
        })
        .await
    }
}

/// Messages carry the Buy with Prime body webhooks receive, the `webhook-id` and
/// `event-type` headers, and are persistent; the delivery log says each succeeded, with the
/// broker's confirm; the URL shown and the lane in the metrics have no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_the_body_and_headers_and_are_confirmed() {
    let t = Setup::start(false, Options::default(), Some(ROUTING_KEY)).await;
    let (server, client, customer) = (&t.server, &t.client, &t.customer);
    let sub = t.subscribe().await;

    let n = 25;
    let events = t.publish(n).await;
    let wanted: HashSet<String> = events.iter().cloned().collect();
    let got = customer.wait_for_events(&wanted, WAIT).await;
    // Nothing more comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_all = customer.got();
    assert_eq!(got_all.len(), n, "each event once: {got:?}");

    let mut ns = HashSet::new();
    for g in &got_all {
        let body = &g.body;
        assert_eq!(body["eventDescriptor"], EVENT_TYPE, "{body}");
        assert_eq!(body["subscriptionId"], sub.as_str(), "{body}");
        assert_eq!(body["apiVersion"], "1.0", "{body}");
        assert!(
            wanted.contains(body["eventId"].as_str().unwrap_or("")),
            "{body}"
        );
        ns.insert(body["data"]["n"].as_i64().expect("data.n"));
        // The idempotency key is the delivery id, in the header and the message id too.
        let id = body["idempotencyKey"].as_str().expect("idempotencyKey");
        assert_eq!(g.webhook_id(), id, "{g:?}");
        assert_eq!(g.message_id.as_deref(), Some(id), "{g:?}");
        assert_eq!(
            g.headers.get("event-type").map(String::as_str),
            Some(EVENT_TYPE)
        );
        assert_eq!(g.delivery_mode, Some(2), "persistent");
        assert_eq!(g.content_type.as_deref(), Some("application/json"));
        let timestamp = g.timestamp.expect("timestamp") as i64;
        assert!(
            (timestamp - crate::common::unix_now()).abs() < 120,
            "{timestamp}"
        );
    }
    assert_eq!(ns, (0..n as i64).collect::<HashSet<_>>());

    let log = deliveries(server, client, &sub).await;
    assert_eq!(log.len(), n, "{log:?}");
    let ids: HashSet<&str> = got_all.iter().map(Got::webhook_id).collect();
    for d in &log {
        assert_eq!(d["status"], "SUCCEEDED", "{d}");
        assert_eq!(d["attemptCount"], 1, "{d}");
        let attempt = &d["attempts"][0];
        assert!(attempt["error"].is_null(), "{d}");
        assert!(attempt["statusCode"].is_null(), "{d}");
        assert_eq!(attempt["responseBody"], r#"{"confirmed":true}"#, "{d}");
        assert!(ids.contains(d["id"].as_str().unwrap_or("")), "{d}");
    }

    // The password is masked where the subscription is shown.
    let shown = server
        .gql_ok(
            client,
            &format!(
                r#"{{ eventSubscription(subscriptionId: "{sub}") {{ eventSubscriptionDetails {{
                    destination {{ ... on RabbitMqData {{ url exchange routingKey }} }} }} }} }}"#
            ),
        )
        .await;
    let destination = &shown["eventSubscription"]["eventSubscriptionDetails"]["destination"];
    let url = url::Url::parse(&amqp_url()).expect("test URL");
    let shown_url = destination["url"].as_str().expect("url");
    if let Some(password) = url.password() {
        assert!(!shown_url.contains(&format!(":{password}@")), "{shown_url}");
    }
    assert_eq!(destination["exchange"], customer.exchange.as_str());
    assert_eq!(destination["routingKey"], ROUTING_KEY);

    // The lane: broker, vhost and exchange, without credentials.
    let lane = format!(
        r#"host="rabbitmq:{}:{}/%2f {}""#,
        url.host_str().unwrap_or_default(),
        url.port().unwrap_or(5672),
        customer.exchange
    );
    let text = metrics_with(server, &lane).await;
    for line in text.lines().filter(|l| l.contains("rabbitmq:")) {
        assert!(!line.contains('@'), "credentials in a lane: {line}");
    }
}

/// `kill -9` of hookrelay while it publishes, then a restart on the same storage: every
/// accepted event reaches the queue. Publisher confirms make this at least once, not
/// exactly once: a message the broker confirmed whose outcome was not yet written when the
/// process died is published again after the restart (consumers deduplicate by
/// `webhook-id`). The duplicates are checked to be only such deliveries: each was first
/// published by the killed process and again by the restarted one, never twice by one
/// process; and there are at most what the killed process can have had unrecorded: the
/// lane's requests in flight (`--max-in-flight-per-host`) times the batch limit (100),
/// for the batches under way and those whose outcomes were waiting to be written (three
/// rounds, as in multinode.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_publish_loses_nothing_and_duplicates_only_what_was_in_flight() {
    const IN_FLIGHT: usize = 4;
    const BATCH: usize = 100;
    let mut options = Options::default();
    options.args.extend([
        "--lease-timeout".into(),
        "1s".into(),
        "--max-in-flight-per-host".into(),
        IN_FLIGHT.to_string(),
    ]);
    // A run where the deliveries kept up with the publishers until the kill proves
    // nothing (everything had arrived): it is made again, three times at most.
    let mut run = 0;
    let (customer, _broker, dir, accepted, killed_at) = loop {
        run += 1;
        let t = Setup::start(false, options.clone(), Some(ROUTING_KEY)).await;
        t.subscribe().await;
        // Publish up to 2000 events from 8 tasks until the kill.
        let publishing = t.publish_stream(8, 2000, Duration::ZERO);
        eventually(
            "1000 messages in the queue",
            Duration::from_secs(30),
            || async { (t.customer.count() >= 1000).then_some(()) },
        )
        .await;
        let before_kill = t.customer.count();
        let Setup {
            server,
            customer,
            _broker,
            ..
        } = t;
        let dir = server.kill9();
        let killed_at = Instant::now();
        let accepted = publishing.stop().await;
        println!(
            "run {run}: killed with {before_kill} messages in the queue, {} events accepted",
            accepted.len()
        );
        if before_kill < accepted.len() {
            break (customer, _broker, dir, accepted, killed_at);
        }
        assert!(
            run < 3,
            "in 3 runs, everything arrived before the kill; the test proves nothing"
        );
    };
    let customer = &customer;

    // Restart on the same storage.
    let server = Server::start_in(dir, options);
    let wanted: HashSet<String> = accepted.iter().cloned().collect();
    customer
        .wait_for_events(&wanted, Duration::from_secs(30))
        .await;
    // Let re-sends still under way land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = customer.got();

    let mut by_id: HashMap<&str, Vec<&Got>> = HashMap::new();
    for g in &got {
        by_id.entry(g.webhook_id()).or_default().push(g);
    }
    let mut event_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (id, copies) in &by_id {
        for c in copies {
            event_of
                .entry(c.body["eventId"].as_str().unwrap_or(""))
                .or_default()
                .insert(id);
        }
    }
    assert!(
        event_of.values().all(|ids| ids.len() == 1),
        "one delivery (webhook-id) per event"
    );
    let duplicated: Vec<&Vec<&Got>> = by_id.values().filter(|c| c.len() > 1).collect();
    let duplicates: usize = duplicated.iter().map(|c| c.len() - 1).sum();
    println!(
        "{} events accepted, {} messages: {duplicates} duplicates of {} deliveries",
        accepted.len(),
        got.len(),
        duplicated.len()
    );
    let bound = 3 * IN_FLIGHT * BATCH;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates; the killed process could have had at most {bound} unrecorded"
    );
    for copies in duplicated {
        let mut copies = copies.clone();
        copies.sort_by_key(|g| g.at);
        assert_eq!(
            copies.len(),
            2,
            "a delivery published more than twice: {copies:?}"
        );
        // The restarted process takes the killed one's deliveries once their lease has
        // expired (1 s after the kill): a first copy that arrived by half of it was the
        // killed process's (allowing for the consumer's lag), a second one after it the
        // restarted process's.
        let split = killed_at + Duration::from_millis(500);
        assert!(
            copies[0].at < split && copies[1].at > split,
            "a delivery published twice by one process: {:?} and {:?} after the kill",
            copies[0].at.saturating_duration_since(killed_at),
            copies[1].at.saturating_duration_since(killed_at)
        );
    }
    drop(server);
}

/// A permanent refusal fails the delivery at once, with the broker's reason, after one
/// attempt; the subscription stays active. An exchange that does not exist (404), wrong
/// credentials (403 at login), a virtual host that does not exist (530).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusals_fail_the_delivery_at_once() {
    let t = Setup::start(false, Options::default(), Some(ROUTING_KEY)).await;
    let (server, client, customer) = (&t.server, &t.client, &t.customer);

    let base = url::Url::parse(&amqp_url()).expect("test URL");
    let missing = unique("hr-missing");
    let mut wrong_password = base.clone();
    wrong_password
        .set_password(Some("not-the-password"))
        .expect("password");
    let mut no_vhost = base.clone();
    no_vhost.set_path(&unique("/hr-no-vhost"));
    let cases = [
        (
            amqp_url(),
            missing.clone(),
            format!("exchange \"{missing}\" does not exist (404 NOT_FOUND: "),
        ),
        (
            wrong_password.to_string(),
            customer.exchange.clone(),
            "the broker refused the login (403 ACCESS_REFUSED: ".to_owned(),
        ),
        (
            no_vhost.to_string(),
            customer.exchange.clone(),
            "the virtual host cannot be used (530 NOT_ALLOWED: ".to_owned(),
        ),
    ];
    let mut subs = Vec::new();
    for (url, exchange, says) in &cases {
        subs.push((t.subscribe_at(url, exchange).await, says));
    }
    t.publish(1).await;

    for (sub, says) in &subs {
        let failed = delivery_with_status(server, client, sub, "FAILED").await;
        assert_eq!(
            failed["attemptCount"], 1,
            "given up after one attempt: {failed}"
        );
        let attempts = failed["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{failed}");
        let error = attempts[0]["error"].as_str().expect("error");
        assert!(error.starts_with(says.as_str()), "{error}");
        assert!(failed["nextAttemptAt"].is_null(), "not retried: {failed}");
        assert_eq!(subscription_status(server, client, sub).await, "ACTIVE");
    }
    // None of them reached the queue of the exchange that exists.
    assert_eq!(customer.count(), 0, "{:?}", customer.got());
}

/// A message the exchange routes to no queue comes back (mandatory); it is refused as
/// `unroutable` and retried on schedule, and delivered once a queue is bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_messages_are_retried_until_a_queue_is_bound() {
    let mut options = Options::default();
    options
        .args
        .extend(["--retry-schedule".into(), "1,1,1,1,1,1,1,1,1,1".into()]);
    let t = Setup::start(false, options, None).await;
    let customer = &t.customer;
    let sub = t.subscribe().await;
    let events = t.publish(1).await;

    let refused = t.attempted(&sub).await;
    assert_eq!(refused["status"], "PENDING", "retried: {refused}");
    let error = refused["attempts"][0]["error"].as_str().expect("error");
    assert!(
        error.starts_with(&format!(
            "unroutable: exchange \"{}\" routed the message to no queue with routing key \"{ROUTING_KEY}\" (312 NO_ROUTE)",
            customer.exchange
        )),
        "{error}"
    );

    customer.bind(ROUTING_KEY).await;
    let wanted: HashSet<String> = events.into_iter().collect();
    customer.wait_for_events(&wanted, WAIT).await;
    let done = delivery_with_status(&t.server, &t.client, &sub, "SUCCEEDED").await;
    assert!(done["attemptCount"].as_i64().unwrap_or(0) >= 2, "{done}");
}

/// Stops the broker's application while events stream in, starts it again 3 s later:
/// every accepted event arrives (hookrelay reconnects; confirmed messages are persistent
/// in a durable queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let ctl = rabbitmqctl();
    if !std::path::Path::new(&ctl).exists() {
        println!("skipped: {ctl} (HOOKRELAY_TEST_RABBITMQCTL) is not there to restart the broker");
        return;
    }
    let mut options = Options::default();
    options.args.extend([
        "--retry-schedule".into(),
        vec!["1"; 30].join(","),
        // The breaker may open on the failures of the outage: pause briefly.
        "--breaker-pause".into(),
        "2s".into(),
    ]);
    let mut t = Setup::start(true, options, Some(ROUTING_KEY)).await;
    let sub = t.subscribe().await;

    // About 100 events a second, from before the stop until 2 s after the broker is back.
    let publishing = t.publish_stream(2, usize::MAX, Duration::from_millis(20));
    eventually("50 messages before the restart", WAIT, || async {
        (t.customer.count() >= 50).then_some(())
    })
    .await;
    let before_stop = t.customer.count();
    {
        let broker = Stopped::stop(&ctl);
        tokio::time::sleep(Duration::from_secs(3)).await;
        broker.start();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = publishing.stop().await;
    assert!(
        accepted.len() >= before_stop + 100,
        "only {} events accepted, {before_stop} of them before the stop",
        accepted.len()
    );

    // The consumer's connection went with the broker: consume again.
    t.customer.reconnect().await;
    let wanted: HashSet<String> = accepted.iter().cloned().collect();
    let got = t
        .customer
        .wait_for_events(&wanted, Duration::from_secs(30))
        .await;
    let ids: HashSet<&str> = got.iter().map(Got::webhook_id).collect();
    println!(
        "{} events accepted, {} messages ({} duplicates)",
        accepted.len(),
        got.len(),
        got.len() - ids.len()
    );
    // The outage was seen: some attempts failed and were retried.
    let logs = t.server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("attempt failed; will retry"),
        "no delivery failed during the broker's restart; the test proves nothing"
    );
    assert_eq!(
        subscription_status(&t.server, &t.client, &sub).await,
        "ACTIVE"
    );
}

/// The broker's application, stopped; started again on drop, whatever happens.
struct Stopped {
    ctl: String,
    started: bool,
}

impl Stopped {
    fn stop(ctl: &str) -> Stopped {
        let broker = Stopped {
            ctl: ctl.to_owned(),
            started: false,
        };
        broker.run("stop_app");
        broker
    }

    fn start(mut self) {
        self.run("start_app");
        self.run("await_startup");
        self.started = true;
    }

    fn run(&self, command: &str) {
        let out = tokio::task::block_in_place(|| Command::new(&self.ctl).arg(command).output())
            .unwrap_or_else(|e| panic!("{} {command}: {e}", self.ctl));
        assert!(
            out.status.success(),
            "{} {command}: {}",
            self.ctl,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.started {
            let _ = Command::new(&self.ctl).arg("start_app").status();
            let _ = Command::new(&self.ctl).arg("await_startup").status();
        }
    }
}

/// The address policy, without loopback allowed: an IP literal of loopback is refused
/// when the subscription is made, `localhost` too; a name that resolves to loopback is
/// accepted then (it could resolve elsewhere later) and refused at delivery, where the
/// address connected to is checked: nothing reaches the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_refused_at_creation_and_at_delivery() {
    let options = Options {
        args: vec!["--allow-http".into()],
        envs: Vec::new(),
    };
    let t = Setup::start(false, options, Some(ROUTING_KEY)).await;
    let exchange = &t.customer.exchange;

    for url in [
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "amqp://guest:guest@[::1]:5672/%2f",
        "amqp://guest:guest@localhost:5672/%2f",
    ] {
        let destination = destination(url, exchange, ROUTING_KEY);
        let refused = refused_subscription(&t.server, &t.client, EVENT_TYPE, &destination).await;
        assert!(
            refused.contains("/createEventSubscription/input/destination/rabbitmq/url"),
            "{url}: {refused}"
        );
    }

    let Some(name) = loopback_name() else {
        println!("skipped the delivery half: no name in /etc/hosts resolves to 127.0.0.0/8 but localhost");
        return;
    };
    let url = format!("amqp://guest:guest@{name}:5672/%2f");
    let sub = t.subscribe_at(&url, exchange).await;
    t.publish(1).await;
    let refused = t.attempted(&sub).await;
    let error = refused["attempts"][0]["error"].as_str().expect("error");
    assert!(
        error.starts_with("forbidden address 127.") && error.ends_with("(loopback)"),
        "{name}: {error}"
    );
    assert_eq!(refused["status"], "PENDING", "retried normally: {refused}");
    assert_eq!(t.customer.count(), 0, "a message reached the broker");
}

/// A name of `/etc/hosts` for a 127.0.0.0/8 address, other than `localhost` and its
/// subdomains (which are refused when a subscription is made).
fn loopback_name() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let ip: std::net::Ipv4Addr = fields.next()?.parse().ok()?;
        if !ip.is_loopback() {
            return None;
        }
        fields
            .find(|name| {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name != "localhost"
                    && !name.ends_with(".localhost")
                    && !name.starts_with("localhost.")
            })
            .map(str::to_owned)
    })
}
