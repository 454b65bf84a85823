//! Shortcuts for delivery tests: subscriptions of both styles, the delivery log, metrics.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use super::receiver::eventually;
use super::{Server, Token};

pub const WAIT: Duration = Duration::from_secs(20);

/// A Buy with Prime subscription to `event_type` at `url`, with extra webhook fields
/// (e.g. `authProfileId: "p"`); returns its id.
pub async fn subscribe(
    server: &Server,
    client: &Token,
    url: &str,
    event_type: &str,
    extra: &str,
) -> String {
    create_subscription(
        server,
        client,
        &format!(
            r#"destination: {{ webhook: {{ url: "{url}", method: POST {extra} }} }}, eventType: "{event_type}""#
        ),
    )
    .await
}

/// `createEventSubscription(input: { <input> })`, which must succeed; returns the id.
pub async fn create_subscription(server: &Server, client: &Token, input: &str) -> String {
    let data = server
        .gql_ok(
            client,
            &format!(r#"mutation {{ createEventSubscription(input: {{ {input} }}) {{ subscriptionId }} }}"#),
        )
        .await;
    data["createEventSubscription"]["subscriptionId"]
        .as_str()
        .expect("subscriptionId")
        .to_owned()
}

/// A BigCommerce-style webhook for `scope` at `url`; returns its id.
pub async fn webhook(server: &Server, client: &Token, url: &str, scope: &str) -> String {
    let data = server
        .gql_ok(
            client,
            &format!(
                r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "{scope}", destination: "{url}", isActive: true }}) {{ webhook {{ id }} }} }} }}"#
            ),
        )
        .await;
    data["webhook"]["createHttpsWebhook"]["webhook"]["id"]
        .as_str()
        .expect("webhook id")
        .to_owned()
}

/// The deliveries of a subscription, oldest first, with their attempts.
pub async fn deliveries(server: &Server, client: &Token, subscription: &str) -> Vec<Value> {
    let data = server
        .gql_ok(
            client,
            &format!(
                r#"{{ deliveries(subscriptionId: "{subscription}") {{ edges {{ node {{ id eventId status attemptCount nextAttemptAt attempts {{ statusCode error responseBody durationMs }} }} }} }} }}"#
            ),
        )
        .await;
    data["deliveries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Waits until the first delivery of `subscription` has `status`; returns it.
pub async fn delivery_with_status(
    server: &Server,
    client: &Token,
    subscription: &str,
    status: &str,
) -> Value {
    eventually(&format!("a {status} delivery"), WAIT, || async {
        deliveries(server, client, subscription)
            .await
            .into_iter()
            .find(|d| d["status"] == status)
    })
    .await
}

/// How many deliveries of `subscription` hookrelay holds (with `status`, if given).
pub async fn delivery_count(
    server: &Server,
    client: &Token,
    subscription: &str,
    status: Option<&str>,
) -> u64 {
    let filter = status.map(|s| format!(", status: {s}")).unwrap_or_default();
    let query =
        format!(r#"{{ deliveries(subscriptionId: "{subscription}"{filter}) {{ totalCount }} }}"#);
    server.gql_ok(client, &query).await["deliveries"]["totalCount"]
        .as_u64()
        .expect("totalCount")
}

/// The `/metrics` text.
pub async fn metrics(server: &Server) -> String {
    server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of one series of a `/metrics` text, its name and labels written exactly as
/// printed (`name{label="value"}`); 0 when absent (counters appear on first increment).
pub fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the `/metrics` text contains `needle` (a series appears on its first
/// increment); returns the text.
pub async fn metrics_with(server: &Server, needle: &str) -> String {
    eventually(&format!("{needle} in /metrics"), WAIT, || async {
        let text = metrics(server).await;
        text.contains(needle).then_some(text)
    })
    .await
}
