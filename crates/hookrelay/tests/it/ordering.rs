//! Ordered delivery by key through the real binary (docs/delivery.md#ordered-delivery):
//! a receiver records, per ordering key, every request in the order it arrived, what it
//! answered and when; the checks read that record.
//!
//! - Thousands of events over many keys, with a receiver that fails a fifth of requests
//!   and delays the others: every key's deliveries arrive one at a time, in publish order.
//! - A key whose every request fails holds back nothing but itself.
//! - A head that ends FAILED deactivates the subscription; the key's later deliveries wait
//!   and go out in order after reactivation; a retried delivery joins the back of its line.
//!
//! The same on two PostgreSQL nodes with one killed mid-run is in `multinode`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::hooks::{deliveries, WAIT};
use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::{Options, Server, Token};
use serde_json::{json, Value};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub n: u64,
    pub ok: bool,
    pub at: Instant,
    /// When its answer was sent (after the reply's delay).
    pub answered: Instant,
}

/// Every request per ordering key, in arrival order.
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<HashMap<String, Vec<Arrival>>>>);

impl Ledger {
    /// Records a request whose body carries `data: {key, n}`; answered `ok` after `delay`.
    pub fn note(&self, body: &[u8], ok: bool, delay: Duration) {
        let body: Value = serde_json::from_slice(body).expect("a JSON body");
        let data = &body["data"];
        let key = data["key"].as_str().expect("data.key").to_owned();
        let n = data["n"].as_u64().expect("data.n");
        let at = Instant::now();
        self.0
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(Arrival {
                n,
                ok,
                at,
                answered: at + delay,
            });
    }

    pub fn arrivals(&self) -> HashMap<String, Vec<Arrival>> {
        self.0.lock().unwrap().clone()
    }

    /// The numbers of each key's first successful arrivals, in arrival order.
    pub fn first_successes(&self) -> BTreeMap<String, Vec<u64>> {
        self.arrivals()
            .into_iter()
            .map(|(key, arrivals)| {
                let mut seen = std::collections::HashSet::new();
                let firsts = arrivals
                    .iter()
                    .filter(|a| a.ok && seen.insert(a.n))
                    .map(|a| a.n)
                    .collect();
                (key, firsts)
            })
            .collect()
    }

    /// How many distinct events arrived successfully.
    pub fn succeeded(&self) -> usize {
        self.first_successes().values().map(Vec::len).sum()
    }

    /// Checks that no key ever went backwards: each arrival's number is the same as the
    /// one before it or higher. Returns the number of violations, with the first few.
    pub fn backwards(&self) -> (usize, Vec<String>) {
        let mut count = 0;
        let mut shown = Vec::new();
        for (key, arrivals) in self.arrivals() {
            for pair in arrivals.windows(2) {
                if pair[1].n < pair[0].n {
                    count += 1;
                    if shown.len() < 5 {
                        shown.push(format!("{key}: {} after {}", pair[1].n, pair[0].n));
                    }
                }
            }
        }
        (count, shown)
    }
}

/// A deterministic pseudo-random stream (xorshift), so a failing run can be replayed.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Dice(seed | 1)
    }
    /// A number in `0..n`.
    pub fn roll(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// A receiver that fails `fail_percent` % of requests (500) and answers the others after
/// 0-`max_delay_ms` ms, as a seeded die says; every request is noted in the ledger.
pub async fn flaky_receiver(ledger: &Ledger, fail_percent: u64, max_delay_ms: u64) -> Receiver {
    let ledger = ledger.clone();
    let mut dice = Dice::new(0x5eed_0123);
    Receiver::start(move |_, r| {
        let ok = dice.roll(100) >= fail_percent;
        let delay = Duration::from_millis(dice.roll(max_delay_ms + 1));
        ledger.note(&r.body, ok, delay);
        if ok {
            Reply::status(204).after(delay)
        } else {
            Reply::status(500).after(delay)
        }
    })
    .await
}

/// Options with a retry schedule, and an endpoint breaker that a fifth of failures does
/// not open (the default opens below 90 % success).
fn options(schedule: &str) -> Options {
    let mut options = Options::default();
    options.args.extend([
        "--retry-schedule".into(),
        schedule.into(),
        "--breaker-success-ratio".into(),
        "0.3".into(),
    ]);
    options
}

/// An ordered BigCommerce-style webhook for `scope` at `url`; checks that it reads back as
/// ordered and returns its id.
pub async fn ordered_webhook(server: &Server, client: &Token, url: &str, scope: &str) -> String {
    let data = server
        .gql_ok(
            client,
            &format!(
                r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "{scope}", destination: "{url}", ordered: true }}) {{ webhook {{ id ordered }} }} }} }}"#
            ),
        )
        .await;
    let webhook = &data["webhook"]["createHttpsWebhook"]["webhook"];
    assert_eq!(webhook["ordered"], true);
    webhook["id"].as_str().expect("webhook id").to_owned()
}

/// Publishes `(key, n)` events through one batch request, in order, with an idempotency
/// key per event; returns the HTTP status.
pub async fn publish_keyed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    events: &[(String, u64)],
) -> Result<u16, reqwest::Error> {
    let events: Vec<Value> = events
        .iter()
        .map(|(key, n)| {
            json!({
                "store": "shop",
                "type": "store/order/updated",
                "orderingKey": key,
                "idempotencyKey": format!("{key}-{n}"),
                "data": {"key": key, "n": n},
            })
        })
        .collect();
    let resp = http
        .post(format!("{base}/v1/events/batch"))
        .bearer_auth(token)
        .json(&json!({ "events": events }))
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

/// `keys` keys named `k00`…, `per_key` events each, published by `tasks` tasks that each
/// own some keys and send them in batches of `batch` events (so each key's order is the
/// order of one task's requests).
async fn publish_all(
    server: &Server,
    token: &Token,
    keys: usize,
    per_key: u64,
    tasks: usize,
    batch: usize,
) {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let mine: Vec<String> = (0..keys)
            .filter(|k| k % tasks == t)
            .map(|k| format!("k{k:02}"))
            .collect();
        let events: Vec<(String, u64)> = (0..per_key)
            .flat_map(|n| mine.iter().map(move |k| (k.clone(), n)))
            .collect();
        let (http, base, token) = (
            server.http.clone(),
            server.base.clone(),
            token.token.clone(),
        );
        handles.push(tokio::spawn(async move {
            for chunk in events.chunks(batch) {
                let status = publish_keyed(&http, &base, &token, chunk)
                    .await
                    .expect("publish");
                assert_eq!(status, 202, "batch publish");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Every key's arrivals, checked one by one: a number repeats only after a failure, moves
/// on by one only after a success, and the next request of a key starts only after the
/// previous one was answered.
fn assert_one_at_a_time_in_order(ledger: &Ledger, keys: usize, per_key: u64) {
    let arrivals = ledger.arrivals();
    assert_eq!(arrivals.len(), keys, "every key arrived");
    for (key, list) in &arrivals {
        assert_eq!(list[0].n, 0, "{key} starts with its first event");
        for pair in list.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let expected = if a.ok { a.n + 1 } else { a.n };
            assert_eq!(
                b.n,
                expected,
                "{key}: after {} ({}) came {}",
                a.n,
                if a.ok { "succeeded" } else { "failed" },
                b.n
            );
            assert!(
                b.at >= a.answered,
                "{key}: {} started {:?} before {} was answered",
                b.n,
                a.answered - b.at,
                a.n
            );
        }
        let last = list.last().unwrap();
        assert!(
            last.ok && last.n == per_key - 1,
            "{key} ends with its last event, delivered"
        );
    }
}

#[tokio::test]
async fn thousands_of_events_over_fifty_keys_arrive_one_at_a_time_in_order() {
    const KEYS: usize = 50;
    const PER_KEY: u64 = 100;
    // Enough retries that a fifth of requests failing never uses them all up.
    let server = Server::start_with(options(&vec!["0.05"; 14].join(","))).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let ledger = Ledger::default();
    let hook = flaky_receiver(&ledger, 20, 4).await;
    let id = ordered_webhook(&server, &client, &hook.url, "store/order/*").await;

    let started = Instant::now();
    publish_all(&server, &publisher, KEYS, PER_KEY, 5, 100).await;
    let total = KEYS * PER_KEY as usize;
    eventually("every event delivered", Duration::from_secs(180), || {
        let done = ledger.succeeded();
        async move { (done == total).then_some(()) }
    })
    .await;
    let took = started.elapsed();
    let requests = hook.count();
    println!(
        "{total} events over {KEYS} keys: {requests} requests, delivered in {took:?} ({:.0}/s)",
        total as f64 / took.as_secs_f64()
    );
    assert_one_at_a_time_in_order(&ledger, KEYS, PER_KEY);
    assert!(
        requests > total + total / 10,
        "about a fifth of requests failed and were retried: {requests} for {total}"
    );

    // The log: deliveries SUCCEEDED, with their key.
    let log = server
        .gql_ok(
            &client,
            &format!(r#"{{ deliveries(subscriptionId: "{id}", first: 5) {{ edges {{ node {{ orderingKey status }} }} }} }}"#),
        )
        .await;
    for edge in log["deliveries"]["edges"].as_array().unwrap() {
        assert!(edge["node"]["orderingKey"]
            .as_str()
            .unwrap()
            .starts_with('k'));
        assert_eq!(edge["node"]["status"], "SUCCEEDED");
    }
}

#[tokio::test]
async fn a_key_that_always_fails_holds_back_only_itself() {
    const KEYS: usize = 10;
    const PER_KEY: u64 = 30;
    // Retries go on for the whole test (30 × 0.3 s): the stuck key never ends FAILED.
    let server = Server::start_with(options(&vec!["0.3"; 30].join(","))).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let ledger = Ledger::default();
    let recorder = ledger.clone();
    let hook = Receiver::start(move |_, r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let ok = body["data"]["key"] != "stuck";
        recorder.note(&r.body, ok, Duration::ZERO);
        Reply::status(if ok { 204 } else { 503 })
    })
    .await;
    let id = ordered_webhook(&server, &client, &hook.url, "store/order/*").await;

    // The stuck key first, so that its head is failing before the others are published.
    let stuck: Vec<(String, u64)> = (0..5).map(|n| ("stuck".to_owned(), n)).collect();
    let status = publish_keyed(&server.http, &server.base, &publisher.token, &stuck)
        .await
        .unwrap();
    assert_eq!(status, 202);
    eventually("the stuck key failing", WAIT, || {
        let failing = ledger.arrivals().get("stuck").map_or(0, Vec::len);
        async move { (failing >= 2).then_some(()) }
    })
    .await;
    publish_all(&server, &publisher, KEYS, PER_KEY, 2, 50).await;
    let healthy = KEYS * PER_KEY as usize;
    eventually("every healthy event delivered", WAIT, || {
        let done = ledger.succeeded();
        async move { (done == healthy).then_some(()) }
    })
    .await;

    let arrivals = ledger.arrivals();
    let stuck = &arrivals["stuck"];
    assert!(
        stuck.iter().all(|a| a.n == 0 && !a.ok),
        "only the stuck key's head was tried: {:?}",
        stuck.iter().map(|a| a.n).collect::<Vec<_>>()
    );
    let firsts = ledger.first_successes();
    for k in 0..KEYS {
        assert_eq!(
            firsts[&format!("k{k:02}")],
            (0..PER_KEY).collect::<Vec<_>>(),
            "k{k:02} in order"
        );
    }
    assert_eq!(ledger.backwards().0, 0);

    // In the log: the head retrying (due again, or in flight at that moment), the rest of
    // its line waiting (no time). The head moves between PENDING and IN_FLIGHT as it is
    // retried, so the two lists are read until they agree on five.
    let query = format!(
        r#"{{ p: deliveries(subscriptionId: "{id}", status: PENDING) {{ edges {{ node {{ orderingKey attemptCount nextAttemptAt waitingFor }} }} }} f: deliveries(subscriptionId: "{id}", status: IN_FLIGHT) {{ edges {{ node {{ orderingKey attemptCount nextAttemptAt waitingFor }} }} }} }}"#
    );
    let pending: Vec<Value> = eventually("the stuck key's five deliveries open", WAIT, || {
        let (server, client, query) = (&server, &client, &query);
        async move {
            let log = server.gql_ok(client, query).await;
            let open: Vec<Value> = ["p", "f"]
                .iter()
                .flat_map(|list| log[*list]["edges"].as_array().cloned().unwrap_or_default())
                .map(|e| e["node"].clone())
                .collect();
            (open.len() == 5).then_some(open)
        }
    })
    .await;
    assert!(pending.iter().all(|d| d["orderingKey"] == "stuck"));
    let retrying: Vec<_> = pending.iter().filter(|d| d["attemptCount"] != 0).collect();
    assert_eq!(
        retrying.len(),
        1,
        "only the head was attempted: {pending:?}"
    );
    let waiting = pending
        .iter()
        .filter(|d| d["attemptCount"] == 0 && d["nextAttemptAt"].is_null())
        .count();
    assert_eq!(waiting, 4, "the others wait with no time set: {pending:?}");
    for d in &pending {
        let expected = if d["attemptCount"] == 0 {
            json!("ORDER")
        } else {
            Value::Null
        };
        assert_eq!(d["waitingFor"], expected, "the log says why: {d}");
    }
    let backlog = crate::common::hooks::metrics(&server).await;
    assert_eq!(
        crate::common::hooks::series(&backlog, r#"hookrelay_deliveries_backlog{state="waiting"}"#),
        4.0
    );
}

#[tokio::test]
async fn a_failed_head_parks_its_line_until_reactivation_and_a_retry_joins_the_back() {
    // One retry: a head that fails twice is FAILED and deactivates the subscription.
    let server = Server::start_with(options("0.1")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let ledger = Ledger::default();
    let recorder = ledger.clone();
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let is_broken = broken.clone();
    let hook = Receiver::start(move |_, r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let ok = !(is_broken.load(std::sync::atomic::Ordering::Relaxed)
            && body["data"]["key"] == "a"
            && body["data"]["n"] == 0);
        recorder.note(&r.body, ok, Duration::ZERO);
        Reply::status(if ok { 204 } else { 500 })
    })
    .await;
    let id = ordered_webhook(&server, &client, &hook.url, "store/order/*").await;
    let events: Vec<(String, u64)> = (0..3).map(|n| ("a".to_owned(), n)).collect();
    publish_keyed(&server.http, &server.base, &publisher.token, &events)
        .await
        .unwrap();

    let status = || async {
        server
            .gql_ok(
                &client,
                r#"{ store { webhooks { edges { node { id status } } } } }"#,
            )
            .await["store"]["webhooks"]["edges"][0]["node"]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    eventually("the webhook deactivated", WAIT, || async {
        (status().await == "DEACTIVATED").then_some(())
    })
    .await;
    // a/1 and a/2 never went out: they wait for a/0's line to move on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let arrivals = ledger.arrivals();
    assert_eq!(
        arrivals["a"].iter().map(|a| a.n).collect::<Vec<_>>(),
        vec![0, 0],
        "only a/0, twice"
    );
    // The log says why a/1 and a/2 wait: for the subscription, before their turn.
    let waiting = server
        .gql_ok(
            &client,
            &format!(r#"{{ deliveries(subscriptionId: "{id}", status: PENDING) {{ edges {{ node {{ waitingFor nextAttemptAt }} }} }} }}"#),
        )
        .await;
    let reasons: Vec<&Value> = waiting["deliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"]["waitingFor"])
        .collect();
    assert_eq!(reasons, [&json!("REACTIVATION"), &json!("REACTIVATION")]);

    // The receiver is fixed; a/0 is retried first, then the webhook reactivated.
    broken.store(false, std::sync::atomic::Ordering::Relaxed);
    let log = deliveries(&server, &client, &id).await;
    let failed = log
        .iter()
        .find(|d| d["status"] == "FAILED")
        .expect("a FAILED delivery");
    let retried = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ retryDelivery(id: "{}") {{ status nextAttemptAt }} }}"#,
                failed["id"].as_str().unwrap()
            ),
        )
        .await;
    // It joined the back of its line, behind a/1 and a/2: waiting, with no time.
    assert_eq!(retried["retryDelivery"]["status"], "PENDING");
    assert!(retried["retryDelivery"]["nextAttemptAt"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ledger.arrivals()["a"].len(),
        2,
        "nothing went out while deactivated"
    );

    server
        .gql_ok(
            &client,
            &format!(r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ isActive: true }} }}) {{ webhook {{ status }} }} }} }}"#),
        )
        .await;
    eventually("the line delivered", WAIT, || {
        let n = ledger.arrivals()["a"].len();
        async move { (n == 5).then_some(()) }
    })
    .await;
    let order: Vec<(u64, bool)> = ledger.arrivals()["a"].iter().map(|a| (a.n, a.ok)).collect();
    assert_eq!(
        order,
        vec![(0, false), (0, false), (1, true), (2, true), (0, true)],
        "after reactivation: a/1, a/2, then the retried a/0"
    );
    assert_eq!(status().await, "ACTIVE");
}

#[tokio::test]
async fn events_without_a_key_and_unordered_subscriptions_keep_no_line() {
    let mut with_room = options("0.1");
    with_room
        .args
        .extend(["--min-in-flight-per-host".into(), "16".into()]);
    let server = Server::start_with(with_room).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    // Every request is held 300 ms: deliveries that keep no line overlap.
    let hook = Receiver::start(|_, _| Reply::status(204).after(Duration::from_millis(300))).await;
    ordered_webhook(&server, &client, &hook.url, "store/order/*").await;
    let plain = Receiver::start(|_, _| Reply::status(204).after(Duration::from_millis(300))).await;
    crate::common::hooks::webhook(&server, &client, &plain.url, "store/order/*").await;
    // Five keyless events, and five of one key.
    for n in 0..5 {
        server
            .publish(
                &publisher,
                "shop",
                "store/order/updated",
                json!({"key": "none", "n": n}),
            )
            .await;
    }
    let keyed: Vec<(String, u64)> = (0..5).map(|n| ("one".to_owned(), n)).collect();
    publish_keyed(&server.http, &server.base, &publisher.token, &keyed)
        .await
        .unwrap();
    // The ordered webhook: the keyless ones and the key's head at once, then one by one.
    eventually("six requests open at once", WAIT, || {
        let open = hook.open_requests().len();
        async move { (open == 6).then_some(()) }
    })
    .await;
    // The unordered webhook takes all ten at once, key or not.
    eventually("ten requests open at once", WAIT, || {
        let open = plain.open_requests().len();
        async move { (open == 10).then_some(()) }
    })
    .await;
    hook.wait_for(10, WAIT).await;
}

#[tokio::test]
async fn ordering_keys_are_checked_and_ordered_reads_back_in_both_styles() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    for (key, why) in [(json!(""), "empty"), (json!("k".repeat(257)), "257 bytes")] {
        let (status, body) = server
            .post_json(
                "/v1/events",
                &publisher,
                &json!({"store": "shop", "type": "store/order/created", "data": {}, "orderingKey": key}),
            )
            .await;
        assert_eq!(status, 400, "{why}: {body}");
        assert!(
            body.to_string().contains("orderingKey must be 1-256 bytes"),
            "{body}"
        );
    }
    let (status, _) = server
        .post_json(
            "/v1/events",
            &publisher,
            &json!({"store": "shop", "type": "store/order/created", "data": {}, "orderingKey": "é".repeat(128)}),
        )
        .await;
    assert_eq!(status, 202, "256 bytes of key");

    // Buy with Prime: ordered on create, readable.
    let made = server
        .gql_ok(
            &client,
            r#"mutation { createEventSubscription(input: { eventType: "ORDER_CONFIRMED", ordered: true, destination: { webhook: { url: "http://127.0.0.1:9/x", method: POST } } }) { subscriptionId } }"#,
        )
        .await;
    let sub = made["createEventSubscription"]["subscriptionId"]
        .as_str()
        .unwrap();
    let read = server
        .gql_ok(
            &client,
            &format!(r#"{{ eventSubscription(subscriptionId: "{sub}") {{ ordered }} }}"#),
        )
        .await;
    assert_eq!(read["eventSubscription"]["ordered"], true);

    // BigCommerce: off by default, turned on and off by updateWebhook.
    let id =
        crate::common::hooks::webhook(&server, &client, "http://127.0.0.1:9/y", "store/cart/*")
            .await;
    for ordered in [true, false] {
        let updated = server
            .gql_ok(
                &client,
                &format!(r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ ordered: {ordered} }} }}) {{ webhook {{ ordered }} }} }} }}"#),
            )
            .await;
        assert_eq!(
            updated["webhook"]["updateWebhook"]["webhook"]["ordered"],
            ordered
        );
    }
}
