//! The delivery log and its controls through GraphQL: paging and filters, another
//! client's delivery, sendTestEvent, rotateSigningSecret (both signatures verify for 24 h),
//! and the metrics the engine exports.

use crate::common::hooks::{deliveries, metrics, subscribe, WAIT};
use crate::common::receiver::{eventually, Received, Receiver};
use crate::common::{unix_now, unix_of, Server};
use serde_json::json;

fn verifies(secret: &str, r: &Received) -> bool {
    let wh = standardwebhooks::Webhook::new(secret).expect("secret");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.header(name).expect(name).parse().unwrap());
    }
    wh.verify(&r.body, &headers).is_ok()
}

#[tokio::test]
async fn log_pages_filters_and_hides_other_clients() {
    let server = Server::start().await;
    let client = server.client("shop");
    let other = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::ok().await;
    let sub = subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    for n in 0..5 {
        server
            .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": n}))
            .await;
    }
    hook.wait_for(5, WAIT).await;
    eventually("all succeeded", WAIT, || async {
        let all = deliveries(&server, &client, &sub).await;
        (all.len() == 5 && all.iter().all(|d| d["status"] == "SUCCEEDED")).then_some(())
    })
    .await;

    let page = server
        .gql_ok(
            &client,
            &format!(
                r#"{{ deliveries(subscriptionId: "{sub}", status: SUCCEEDED, first: 2) {{ totalCount pageInfo {{ hasNextPage endCursor }} edges {{ node {{ id subscriptionId eventType createdAt updatedAt }} }} }} }}"#
            ),
        )
        .await;
    let d = &page["deliveries"];
    assert_eq!(d["totalCount"], 5);
    assert_eq!(d["pageInfo"]["hasNextPage"], true);
    assert_eq!(d["edges"].as_array().unwrap().len(), 2);
    assert_eq!(d["edges"][0]["node"]["eventType"], "ORDER_CONFIRMED");
    let cursor = d["pageInfo"]["endCursor"].as_str().unwrap();
    let rest = server
        .gql_ok(
            &client,
            &format!(
                r#"{{ deliveries(subscriptionId: "{sub}", first: 10, after: "{cursor}") {{ edges {{ node {{ id }} }} pageInfo {{ hasNextPage }} }} }}"#
            ),
        )
        .await;
    assert_eq!(rest["deliveries"]["edges"].as_array().unwrap().len(), 3);
    let failed = server
        .gql_ok(
            &client,
            r#"{ deliveries(status: FAILED) { edges { node { id } } } }"#,
        )
        .await;
    assert_eq!(failed["deliveries"]["edges"].as_array().unwrap().len(), 0);

    // One delivery with its attempts.
    let id = d["edges"][0]["node"]["id"].as_str().unwrap();
    let one = server
        .gql_ok(
            &client,
            &format!(r#"{{ delivery(id: "{id}") {{ id status attemptCount attempts {{ startedAt durationMs statusCode error }} }} }}"#),
        )
        .await;
    assert_eq!(one["delivery"]["attempts"][0]["statusCode"], 204);

    // Another client of the same store: the delivery and the subscription do not exist.
    let denied = server
        .gql(&other, &format!(r#"{{ delivery(id: "{id}") {{ id }} }}"#))
        .await;
    assert_eq!(crate::common::classification(&denied), "AccessDeniedError");
    let denied = server
        .gql(
            &other,
            &format!(
                r#"{{ deliveries(subscriptionId: "{sub}") {{ edges {{ node {{ id }} }} }} }}"#
            ),
        )
        .await;
    assert_eq!(crate::common::classification(&denied), "AccessDeniedError");
    let mine = server
        .gql_ok(&other, "{ deliveries { edges { node { id } } } }")
        .await;
    assert_eq!(mine["deliveries"]["edges"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn test_events_go_to_one_subscription() {
    let server = Server::start().await;
    let client = server.client("shop");
    let a = Receiver::ok().await;
    let b = Receiver::ok().await;
    let sub = subscribe(&server, &client, &a.url, "ORDER_CONFIRMED", "").await;
    subscribe(&server, &client, &b.url, "ORDER_CONFIRMED", "").await;
    let sent = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ sendTestEvent(subscriptionId: "{sub}") {{ eventId deliveryId }} }}"#
            ),
        )
        .await;
    let got = a.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["data"]["test"], true);
    assert_eq!(
        got[0].header("webhook-id"),
        sent["sendTestEvent"]["deliveryId"].as_str()
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn rotated_secret_signs_alongside_the_new_one() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::ok().await;
    let sub = subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    let old = server
        .gql_ok(
            &client,
            &format!(r#"{{ eventSubscription(subscriptionId: "{sub}") {{ signingSecret }} }}"#),
        )
        .await["eventSubscription"]["signingSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = server
        .gql_ok(
            &client,
            &format!(r#"mutation {{ rotateSigningSecret(subscriptionId: "{sub}") {{ signingSecret previousSecretExpiresAt }} }}"#),
        )
        .await;
    let new = rotated["rotateSigningSecret"]["signingSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old, new);
    let expires = rotated["rotateSigningSecret"]["previousSecretExpiresAt"]
        .as_str()
        .expect("previousSecretExpiresAt");
    let in_secs = unix_of(expires) - unix_now();
    assert!(
        (24 * 3600 - 120..=24 * 3600 + 5).contains(&in_secs),
        "the old secret signs for 24 h: it expires in {in_secs} s"
    );

    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    let got = hook.wait_for(1, WAIT).await;
    let signature = got[0].header("webhook-signature").unwrap();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert!(verifies(&new, &got[0]), "the new secret verifies");
    assert!(verifies(&old, &got[0]), "the old secret still verifies");
    assert!(!verifies("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &got[0]));
}

#[tokio::test]
async fn metrics_count_events_deliveries_and_attempts() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::ok().await;
    subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    hook.wait_for(1, WAIT).await;
    let text = eventually("succeeded in metrics", WAIT, || async {
        let text = metrics(&server).await;
        text.contains(r#"hookrelay_deliveries_total{outcome="succeeded"} 1"#)
            .then_some(text)
    })
    .await;
    for name in [
        "hookrelay_events_accepted_total 1",
        r#"hookrelay_attempts_total{result="success"} 1"#,
        "hookrelay_attempt_duration_seconds_bucket",
        r#"hookrelay_deliveries_backlog{state="due"}"#,
        r#"hookrelay_deliveries_backlog{state="scheduled"}"#,
        "hookrelay_breakers_open",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}
