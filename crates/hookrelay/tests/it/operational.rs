//! Operational events through the real binary (docs/delivery.md#operational-events): a
//! subscriber of `hookrelay/*` gets them, signed, after a real deactivation and
//! reactivation and after an endpoint breaker opens and closes; a subscription never gets
//! the ones about itself, and a failing subscriber of operational events feeds no loop.

use std::time::Duration;

use crate::common::hooks::WAIT;
use crate::common::receiver::{eventually, Received, Receiver, Reply};
use crate::common::{Options, Server, Token};
use serde_json::Value;

/// The operational events a receiver got, as (type, data), in arrival order; each one's
/// signature checked with `secret` first.
fn events_at(hook: &Receiver, secret: &str, type_field: &str) -> Vec<(String, Value)> {
    hook.requests()
        .iter()
        .map(|r| {
            crate::delivery::verify(secret, r);
            let body = r.json();
            (
                body[type_field].as_str().expect("event type").to_owned(),
                body["data"].clone(),
            )
        })
        .collect()
}

/// Waits for an event of `event_type` whose `data` satisfies `matches`; returns its data.
async fn wait_for_event(
    hook: &Receiver,
    secret: &str,
    type_field: &str,
    event_type: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    eventually(&format!("{event_type} at the receiver"), WAIT, || {
        let found = events_at(hook, secret, type_field)
            .into_iter()
            .find(|(t, data)| t == event_type && matches(data))
            .map(|(_, data)| data);
        async move { found }
    })
    .await
}

/// A BigCommerce webhook for `scope` at `url`: its id and signing secret.
async fn webhook_with_secret(
    server: &Server,
    client: &Token,
    url: &str,
    scope: &str,
) -> (String, String) {
    let data = server
        .gql_ok(
            client,
            &format!(r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "{scope}", destination: "{url}" }}) {{ webhook {{ id signingSecret }} }} }} }}"#),
        )
        .await;
    let w = &data["webhook"]["createHttpsWebhook"]["webhook"];
    (
        w["id"].as_str().unwrap().to_owned(),
        w["signingSecret"].as_str().unwrap().to_owned(),
    )
}

async fn status_of(server: &Server, client: &Token, id: &str) -> String {
    let data = server
        .gql_ok(
            client,
            "{ store { webhooks { edges { node { id status } } } } }",
        )
        .await;
    data["store"]["webhooks"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == id)
        .map(|e| e["node"]["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_deactivation_a_failed_delivery_and_a_reactivation_reach_a_subscriber_signed() {
    let mut options = Options::default();
    options
        .args
        .extend(["--retry-schedule".into(), "0.1,0.1".into()]);
    let server = Server::start_with(options).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let ops = Receiver::ok().await;
    let (ops_id, secret) = webhook_with_secret(&server, &client, &ops.url, "hookrelay/*").await;
    // A second subscriber of operational events whose endpoint always fails.
    let broken_ops = Receiver::start(|_, _| Reply::status(500)).await;
    let (broken_ops_id, _) =
        webhook_with_secret(&server, &client, &broken_ops.url, "hookrelay/*").await;
    let bad = Receiver::start(|_, _| Reply::status(503).body("down for maintenance")).await;
    let (bad_id, _) = webhook_with_secret(&server, &client, &bad.url, "store/order/*").await;

    server
        .publish(
            &publisher,
            "shop",
            "store/order/created",
            serde_json::json!({"id": 1}),
        )
        .await;
    // Three attempts, then FAILED and deactivated.
    let failed = wait_for_event(&ops, &secret, "scope", "hookrelay/delivery/failed", |d| {
        d["subscriptionId"] == bad_id.as_str()
    })
    .await;
    assert_eq!(failed["eventType"], "store/order/created");
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["statusCode"], 503);
    let delivery_id = failed["deliveryId"].as_str().unwrap().to_owned();
    assert!(delivery_id.starts_with("msg_"), "{failed}");
    let deactivated = wait_for_event(
        &ops,
        &secret,
        "scope",
        "hookrelay/subscription/deactivated",
        |d| d["subscriptionId"] == bad_id.as_str(),
    )
    .await;
    assert_eq!(deactivated["failedDeliveryId"], delivery_id.as_str());
    assert!(
        deactivated["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{deactivated}"
    );
    assert_eq!(status_of(&server, &client, &bad_id).await, "DEACTIVATED");

    // The broken subscriber fails its deliveries of those two events and is deactivated
    // in turn: the working one hears of that, but of no failed delivery of an
    // operational event, and the broken one never got an event about itself.
    wait_for_event(
        &ops,
        &secret,
        "scope",
        "hookrelay/subscription/deactivated",
        |d| d["subscriptionId"] == broken_ops_id.as_str(),
    )
    .await;

    // Reactivation through updateWebhook.
    server
        .gql_ok(
            &client,
            &format!(r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{bad_id}", data: {{ isActive: true }} }}) {{ webhook {{ status }} }} }} }}"#),
        )
        .await;
    wait_for_event(
        &ops,
        &secret,
        "scope",
        "hookrelay/subscription/reactivated",
        |d| d["subscriptionId"] == bad_id.as_str(),
    )
    .await;
    // Settle, then read everything each receiver got.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got = events_at(&ops, &secret, "scope");
    for (t, data) in &got {
        assert_ne!(
            data["subscriptionId"],
            ops_id.as_str(),
            "the subscriber got an event about itself: {t} {data}"
        );
        if t == "hookrelay/delivery/failed" {
            assert_eq!(
                data["subscriptionId"],
                bad_id.as_str(),
                "only the order event's failure is told, not those of operational events: {data}"
            );
        }
    }
    let types: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types.len(),
        4,
        "failed + deactivated (bad), deactivated (broken), reactivated (bad): {types:?}"
    );
    let broken_got: Vec<Received> = broken_ops.requests();
    assert!(!broken_got.is_empty());
    for r in &broken_got {
        assert_ne!(
            r.json()["data"]["subscriptionId"],
            broken_ops_id.as_str(),
            "an event about itself"
        );
    }
    // The catalog lists them.
    let catalog = server.gql_ok(&client, "{ eventTypes }").await;
    let listed = catalog.to_string();
    for t in [
        "hookrelay/subscription/deactivated",
        "hookrelay/subscription/reactivated",
        "hookrelay/delivery/failed",
        "hookrelay/destination/blocked",
        "hookrelay/destination/unblocked",
    ] {
        assert!(listed.contains(t), "{t} in {listed}");
    }
    // Publishers cannot send them.
    let (status, body) = server
        .post_json(
            "/v1/events",
            &publisher,
            &serde_json::json!({"store": "shop", "type": "hookrelay/delivery/failed", "data": {}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("ReservedEventType"), "{body}");
}

#[tokio::test]
async fn an_endpoint_breaker_opening_and_closing_reaches_a_buy_with_prime_subscriber() {
    let mut options = Options::default();
    for arg in [
        "--retry-schedule",
        "0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
        "--endpoint-breaker-window",
        "10s",
        "--endpoint-breaker-min-requests",
        "5",
        "--endpoint-breaker-pause",
        "1s",
    ] {
        options.args.push(arg.into());
    }
    let server = Server::start_with(options).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    // Buy with Prime style, subscribed to the destination events only.
    let ops = Receiver::ok().await;
    let made = server
        .gql_ok(
            &client,
            &format!(r#"mutation {{ createEventSubscription(input: {{ eventType: "hookrelay/destination/*", destination: {{ webhook: {{ url: "{}", method: POST }} }} }}) {{ subscriptionId }} }}"#, ops.url),
        )
        .await;
    let ops_id = made["createEventSubscription"]["subscriptionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = server
        .gql_ok(
            &client,
            &format!(r#"{{ eventSubscription(subscriptionId: "{ops_id}") {{ signingSecret }} }}"#),
        )
        .await["eventSubscription"]["signingSecret"]
        .as_str()
        .unwrap()
        .to_owned();

    let flaky = Receiver::start(|_, _| Reply::status(500)).await;
    let (id, _) = webhook_with_secret(&server, &client, &flaky.url, "store/order/*").await;
    for n in 0..10 {
        server
            .publish(
                &publisher,
                "shop",
                "store/order/created",
                serde_json::json!({"n": n}),
            )
            .await;
    }
    let blocked = wait_for_event(
        &ops,
        &secret,
        "eventDescriptor",
        "hookrelay/destination/blocked",
        |_| true,
    )
    .await;
    assert_eq!(blocked["scope"], "ENDPOINT");
    let url = format!("{}/", flaky.url.trim_end_matches('/'));
    assert_eq!(blocked["destination"], url.as_str());
    assert_eq!(blocked["subscriptionIds"], serde_json::json!([id]));
    assert!(blocked["pausedUntil"].is_string(), "{blocked}");

    // The endpoint recovers: after the pause its deliveries go through and the breaker
    // closes.
    flaky.set_plan(|_, _| Reply::status(204));
    let unblocked = wait_for_event(
        &ops,
        &secret,
        "eventDescriptor",
        "hookrelay/destination/unblocked",
        |_| true,
    )
    .await;
    assert_eq!(unblocked["destination"], url.as_str());
    assert_eq!(unblocked["pausedUntil"], Value::Null);
    // Blocked came before unblocked, once each.
    let types: Vec<String> = events_at(&ops, &secret, "eventDescriptor")
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        types,
        [
            "hookrelay/destination/blocked",
            "hookrelay/destination/unblocked"
        ]
    );
}
