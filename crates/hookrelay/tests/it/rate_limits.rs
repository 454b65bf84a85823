//! Rate limits per subscription through the real binary (docs/delivery.md#rate-limits): a
//! receiver notes when each request arrives, and the test counts what came in a 10 s
//! window. The same on two PostgreSQL nodes is in `multinode`.

use std::time::{Duration, Instant};

use crate::common::hooks::{metrics, series, WAIT};
use crate::common::receiver::{eventually, Receiver};
use crate::common::{message, Server, Token};
use serde_json::{json, Value};

/// How far the measured rate may be from the limit.
pub const TOLERANCE: f64 = 0.10;

/// A BigCommerce webhook for `store/order/*` at `url` with `rateLimit`; checks that the
/// limit reads back and returns the webhook's id.
pub async fn limited_webhook(server: &Server, client: &Token, url: &str, limit: u32) -> String {
    let data = server
        .gql_ok(
            client,
            &format!(
                r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/order/*", destination: "{url}", rateLimit: {limit} }}) {{ webhook {{ id rateLimit }} }} }} }}"#
            ),
        )
        .await;
    let webhook = &data["webhook"]["createHttpsWebhook"]["webhook"];
    assert_eq!(webhook["rateLimit"], limit);
    webhook["id"].as_str().expect("webhook id").to_owned()
}

/// Publishes `count` order events to `bases` in turn, in batches of 100.
pub async fn publish_orders(http: &reqwest::Client, bases: &[&str], token: &str, count: usize) {
    let events: Vec<Value> = (0..count)
        .map(|n| json!({"store": "shop", "type": "store/order/created", "data": {"n": n}}))
        .collect();
    for (i, chunk) in events.chunks(100).enumerate() {
        let base = bases[i % bases.len()];
        let resp = http
            .post(format!("{base}/v1/events/batch"))
            .bearer_auth(token)
            .json(&json!({ "events": chunk }))
            .send()
            .await
            .expect("publish");
        assert_eq!(resp.status().as_u16(), 202, "batch publish to {base}");
    }
}

/// Requests that arrived in the 10 s from the first one, from the receiver's own clock.
pub fn in_ten_seconds(hook: &Receiver) -> usize {
    let times: Vec<Instant> = hook.requests().iter().map(|r| r.at).collect();
    let Some(first) = times.iter().min().copied() else {
        return 0;
    };
    times
        .iter()
        .filter(|t| **t < first + Duration::from_secs(10))
        .count()
}

/// Waits until the receiver has seen 10 s of traffic and returns the count of that window,
/// checked to be within [`TOLERANCE`] of `per_second` × 10.
pub async fn assert_rate(hook: &Receiver, per_second: u32, what: &str) -> usize {
    eventually("the first request", WAIT, || {
        let n = hook.count();
        async move { (n > 0).then_some(()) }
    })
    .await;
    let first = hook
        .requests()
        .iter()
        .map(|r| r.at)
        .min()
        .expect("a request");
    let end = first + Duration::from_millis(10_300);
    tokio::time::sleep_until(end.into()).await;
    let seen = in_ten_seconds(hook);
    let expected = f64::from(per_second) * 10.0;
    println!("{what}: {seen} requests in 10 s at a limit of {per_second}/s (expected {expected})");
    assert!(
        (seen as f64 - expected).abs() <= expected * TOLERANCE,
        "{what}: {seen} requests in 10 s, expected {expected} ± {:.0} %",
        TOLERANCE * 100.0
    );
    seen
}

#[tokio::test]
async fn a_limit_of_20_per_second_holds_at_the_receiver_and_uses_no_attempts() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let limited = Receiver::ok().await;
    let free = Receiver::ok().await;
    let id = limited_webhook(&server, &client, &limited.url, 20).await;
    crate::common::hooks::webhook(&server, &client, &free.url, "store/order/*").await;

    publish_orders(&server.http, &[&server.base], &publisher.token, 400).await;
    // The subscription without a limit is not held back by its neighbour.
    free.wait_for(400, WAIT).await;
    assert!(
        limited.count() < 100,
        "the limited subscription got {} while the other got all 400",
        limited.count()
    );
    assert_rate(&limited, 20, "one node").await;

    // Waiting used no attempt: what was delivered took one, what waits has none, and
    // nothing failed.
    let log = server
        .gql_ok(
            &client,
            &format!(r#"{{ deliveries(subscriptionId: "{id}", first: 400) {{ edges {{ node {{ status attemptCount }} }} }} }}"#),
        )
        .await;
    let nodes: Vec<&Value> = log["deliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(nodes.len(), 400);
    let mut waiting = 0;
    for node in nodes {
        match node["status"].as_str().unwrap() {
            "SUCCEEDED" => assert_eq!(node["attemptCount"], 1, "{node}"),
            "PENDING" | "IN_FLIGHT" => {
                waiting += 1;
                assert_eq!(node["attemptCount"], 0, "{node}");
            }
            other => panic!("a rate-limited delivery is {other}: {node}"),
        }
    }
    assert!(waiting > 100, "about half still wait: {waiting}");
    let text = metrics(&server).await;
    assert_eq!(
        series(&text, "hookrelay_deliveries_total{outcome=\"retry\"}"),
        0.0,
        "no retries"
    );

    // Removing the limit lets the rest go at once.
    let updated = server
        .gql_ok(
            &client,
            &format!(r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ rateLimit: null }} }}) {{ webhook {{ rateLimit }} }} }} }}"#),
        )
        .await;
    assert_eq!(
        updated["webhook"]["updateWebhook"]["webhook"]["rateLimit"],
        Value::Null
    );
    let started = Instant::now();
    limited.wait_for(400, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the rest went without the limit in {:?}",
        started.elapsed()
    );
}

async fn subscription_count(server: &Server, client: &Token) -> u64 {
    server
        .gql_ok(client, "{ eventSubscriptions { totalCount } }")
        .await["eventSubscriptions"]["totalCount"]
        .as_u64()
        .expect("totalCount")
}

#[tokio::test]
async fn rate_limits_are_checked_and_read_back_in_both_styles() {
    let server = Server::start().await;
    let client = server.client("shop");
    let before = subscription_count(&server, &client).await;
    for bad in [0, -1, 10_001] {
        let body = server
            .gql(
                &client,
                &format!(r#"mutation {{ createEventSubscription(input: {{ eventType: "ORDER_CONFIRMED", rateLimit: {bad}, destination: {{ webhook: {{ url: "http://127.0.0.1:9/x", method: POST }} }} }}) {{ subscriptionId }} }}"#),
            )
            .await;
        let text = message(&body);
        assert!(
            text.contains("/createEventSubscription/input/rateLimit must be between 1 and 10000"),
            "{bad}: {body}"
        );
        let body = server
            .gql(
                &client,
                &format!(r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/order/*", destination: "http://127.0.0.1:9/y", rateLimit: {bad} }}) {{ webhook {{ id }} }} }} }}"#),
            )
            .await;
        assert!(
            message(&body).contains("/webhook/createHttpsWebhook/input/rateLimit must be between"),
            "{bad}: {body}"
        );
    }
    assert_eq!(
        subscription_count(&server, &client).await,
        before,
        "nothing was made"
    );

    // Buy with Prime: set on create, readable; none by default.
    for (path, limit, expected) in [("a", "rateLimit: 5,", json!(5)), ("b", "", Value::Null)] {
        let made = server
            .gql_ok(
                &client,
                &format!(r#"mutation {{ createEventSubscription(input: {{ eventType: "ORDER_CONFIRMED", {limit} destination: {{ webhook: {{ url: "http://127.0.0.1:9/{path}", method: POST }} }} }}) {{ subscriptionId }} }}"#),
            )
            .await;
        let sub = made["createEventSubscription"]["subscriptionId"]
            .as_str()
            .unwrap();
        let read = server
            .gql_ok(
                &client,
                &format!(r#"{{ eventSubscription(subscriptionId: "{sub}") {{ rateLimit }} }}"#),
            )
            .await;
        assert_eq!(read["eventSubscription"]["rateLimit"], expected);
    }

    // BigCommerce: set, changed, kept when left out, refused when out of range (and then
    // unchanged), removed with null; readable through the Webhook interface.
    let id = limited_webhook(&server, &client, "http://127.0.0.1:9/y", 50).await;
    let update = |data: &str| {
        format!(
            r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ {data} }} }}) {{ webhook {{ rateLimit }} }} }} }}"#
        )
    };
    let read = server.gql_ok(&client, &update("rateLimit: 7")).await;
    assert_eq!(read["webhook"]["updateWebhook"]["webhook"]["rateLimit"], 7);
    let read = server.gql_ok(&client, &update("isActive: true")).await;
    assert_eq!(read["webhook"]["updateWebhook"]["webhook"]["rateLimit"], 7);
    let body = server.gql(&client, &update("rateLimit: 0")).await;
    assert!(
        message(&body).contains("/webhook/updateWebhook/input/data/rateLimit must be between"),
        "{body}"
    );
    let listed = server
        .gql_ok(
            &client,
            r#"{ store { webhooks { edges { node { id rateLimit } } } } }"#,
        )
        .await;
    let mine = listed["store"]["webhooks"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == id.as_str())
        .expect("the webhook is listed");
    assert_eq!(
        mine["node"]["rateLimit"], 7,
        "unchanged by the refused update"
    );
    let read = server.gql_ok(&client, &update("rateLimit: null")).await;
    assert_eq!(
        read["webhook"]["updateWebhook"]["webhook"]["rateLimit"],
        Value::Null
    );
}
