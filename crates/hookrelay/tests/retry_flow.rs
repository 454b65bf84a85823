//! Retries through the real binary: the schedule, `Retry-After`, FAILED after the last
//! retry with the subscription deactivated, reactivation, replay and retryDelivery.

mod common;

use std::time::Duration;

use common::hooks::{deliveries, delivery_with_status, metrics, webhook, WAIT};
use common::receiver::{eventually, Receiver, Reply};
use common::{Options, Server};
use serde_json::json;

fn with_schedule(schedule: &str) -> Options {
    let mut options = Options::default();
    options
        .args
        .extend(["--retry-schedule".into(), schedule.into()]);
    options
}

#[tokio::test]
async fn a_failure_is_retried_with_the_same_webhook_id() {
    let server = Server::start_with(with_schedule("0.2,0.2")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|n, _| {
        if n == 0 {
            Reply::status(500).body("try later")
        } else {
            Reply::status(204)
        }
    })
    .await;
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    let got = hook.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(150),
        "waited the schedule: {gap:?}"
    );
    let d = delivery_with_status(&server, &client, &id, "SUCCEEDED").await;
    assert_eq!(d["attemptCount"], 2);
    assert_eq!(d["attempts"][0]["statusCode"], 500);
    assert_eq!(d["attempts"][0]["error"], "endpoint answered 500");
    assert_eq!(d["attempts"][0]["responseBody"], "try later");
    assert_eq!(d["attempts"][1]["statusCode"], 204);
}

#[tokio::test]
async fn retry_after_is_honoured_when_longer() {
    let server = Server::start_with(with_schedule("0.1")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|n, _| {
        if n == 0 {
            Reply::status(429).header("Retry-After", "2")
        } else {
            Reply::status(204)
        }
    })
    .await;
    webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    let got = hook.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1800),
        "Retry-After: 2 → {gap:?}"
    );
}

#[tokio::test]
async fn last_failure_deactivates_then_reactivation_and_replay_deliver() {
    let server = Server::start_with(with_schedule("0.2,0.2")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|_, _| Reply::status(503)).await;
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    let first = server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;

    // 1 attempt + 2 retries, then FAILED and the webhook DEACTIVATED.
    let d = delivery_with_status(&server, &client, &id, "FAILED").await;
    assert_eq!(d["attemptCount"], 3);
    assert_eq!(hook.count(), 3);
    let status = server
        .gql_ok(
            &client,
            "{ store { webhooks { edges { node { id status isActive } } } } }",
        )
        .await;
    let node = &status["store"]["webhooks"]["edges"][0]["node"];
    assert_eq!(node["status"], "DEACTIVATED", "{status}");
    assert_eq!(node["isActive"], false);
    assert!(metrics(&server)
        .await
        .lines()
        .any(|l| l.starts_with("hookrelay_subscriptions_deactivated_total") && !l.ends_with(" 0")));

    // While deactivated, new events make no delivery for it.
    server
        .publish(&publisher, "shop", "store/order/updated", json!({"id": 2}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(deliveries(&server, &client, &id).await.len(), 1);

    // Reactivate, let the receiver recover, replay what failed.
    hook.set_plan(|_, _| Reply::status(204));
    server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ isActive: true }} }}) {{ webhook {{ status isActive }} }} }} }}"#
            ),
        )
        .await;
    let replay = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ replayDeliveries(subscriptionId: "{id}", status: FAILED) {{ count }} }}"#
            ),
        )
        .await;
    assert_eq!(replay["replayDeliveries"]["count"], 1);
    let got = hook.wait_for(4, WAIT).await;
    assert_eq!(got[3].json()["data"]["id"], 1);
    let d = delivery_with_status(&server, &client, &id, "SUCCEEDED").await;
    assert_eq!(d["eventId"], first.as_str());
    assert_eq!(d["attemptCount"], 4);

    // retryDelivery sends a succeeded delivery again.
    let retried = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ retryDelivery(id: "{}") {{ id status }} }}"#,
                d["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(retried["retryDelivery"]["status"], "PENDING");
    hook.wait_for(5, WAIT).await;
}

#[tokio::test]
async fn deliveries_waiting_at_deactivation_go_out_after_reactivation() {
    // One retry. Event 2 is told to come back in 30 s (Retry-After), so it is still
    // waiting when event 1 fails for good and deactivates the webhook.
    let server = Server::start_with(with_schedule("0.2")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|_, r| {
        if r.json()["data"]["id"] == 2 {
            Reply::status(500).header("Retry-After", "30")
        } else {
            Reply::status(500)
        }
    })
    .await;
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 2}))
        .await;
    eventually("event 2 waits for its retry", WAIT, || async {
        deliveries(&server, &client, &id)
            .await
            .into_iter()
            .find(|d| d["attemptCount"] == 1 && d["status"] == "PENDING")
    })
    .await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    delivery_with_status(&server, &client, &id, "FAILED").await;
    let parked = deliveries(&server, &client, &id)
        .await
        .into_iter()
        .find(|d| d["status"] == "PENDING")
        .expect("event 2 still waiting");
    assert_eq!(
        parked["nextAttemptAt"],
        serde_json::Value::Null,
        "parked: {parked}"
    );

    hook.set_plan(|_, _| Reply::status(204));
    server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ isActive: true }} }}) {{ webhook {{ status }} }} }} }}"#
            ),
        )
        .await;
    let d = eventually(
        "the parked delivery goes out after reactivation",
        WAIT,
        || async {
            deliveries(&server, &client, &id)
                .await
                .into_iter()
                .find(|d| d["id"] == parked["id"] && d["status"] == "SUCCEEDED")
        },
    )
    .await;
    assert_eq!(d["attemptCount"], 2);
}
