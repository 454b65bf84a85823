//! Destination auth through the real binary, against a real OAuth token endpoint: basic
//! auth (profile and inline), one token request for many deliveries and subscriptions, a
//! JSON token request, a refresh on 401 (once only), a new token after `updateAuthProfile`,
//! and a failing token endpoint logged as the attempt's error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::hooks::{deliveries, delivery_with_status, subscribe, WAIT};
use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::{Options, Server};
use serde_json::{json, Value};

fn with_retry_schedule(schedule: &str) -> Options {
    let mut options = Options::default();
    options
        .args
        .extend(["--retry-schedule".into(), schedule.into()]);
    options
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A token endpoint that hands out `tok-1`, `tok-2`, ...
async fn token_endpoint() -> Receiver {
    Receiver::start(|n, _| {
        Reply::json(
            200,
            json!({"access_token": format!("tok-{}", n + 1), "expires_in": 3600, "token_type": "Bearer"}),
        )
    })
    .await
}

/// Subscribes `url` to ORDER_CONFIRMED with the profile `oauth_profile` made.
async fn subscribe_with_oauth(server: &Server, client: &crate::common::Token, url: &str) -> String {
    subscribe(
        server,
        client,
        url,
        "ORDER_CONFIRMED",
        r#", authProfileId: "oauth""#,
    )
    .await
}

async fn oauth_profile(
    server: &Server,
    client: &crate::common::Token,
    endpoint: &str,
    secret: &str,
) {
    server
        .gql_ok(
            client,
            &format!(
                r#"mutation {{ createAuthProfile(input: {{ authProfileAliasId: "oauth", authConfig: {{ oAuthConfig: {{ clientParameters: {{ clientId: "app", clientSecret: "{secret}" }}, authEndpoint: "{endpoint}/token", httpMethod: POST, httpParameters: {{ bodyParameters: [{{key: "scope", value: "events"}}], headerParameters: [{{key: "X-Tenant", value: "t1"}}] }} }} }} }}) {{ authProfileId }} }}"#
            ),
        )
        .await;
}

#[tokio::test]
async fn basic_auth_header() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::ok().await;
    let inline = Receiver::ok().await;
    server
        .gql_ok(
            &client,
            r#"mutation { createAuthProfile(input: { authProfileAliasId: "basic", authConfig: { basicAuthConfig: { username: "user", password: "p@ss:word" } } }) { authProfileId } }"#,
        )
        .await;
    subscribe(
        &server,
        &client,
        &hook.url,
        "ORDER_CONFIRMED",
        r#", authProfileId: "basic""#,
    )
    .await;
    subscribe(
        &server,
        &client,
        &inline.url,
        "ORDER_CONFIRMED",
        r#", authConfig: { basicAuthConfig: { username: "inline", password: "pw" } }"#,
    )
    .await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    let got = hook.wait_for(1, WAIT).await;
    // base64("user:p@ss:word")
    assert_eq!(
        got[0].header("authorization"),
        Some("Basic dXNlcjpwQHNzOndvcmQ=")
    );
    // An inline config instead of a profile: base64("inline:pw")
    let got = inline.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Basic aW5saW5lOnB3"));
}

#[tokio::test]
async fn oauth_token_is_fetched_once_and_refreshed_on_401() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let tokens = token_endpoint().await;
    // The webhook refuses tok-1 once (as if revoked early), then accepts anything.
    let refused = Arc::new(AtomicUsize::new(0));
    let r2 = refused.clone();
    let hook = Receiver::start(move |_, req| {
        if req.header("authorization") == Some("Bearer tok-1")
            && r2.load(Ordering::SeqCst) == 0
            && req.json()["data"]["n"] == 20
        {
            r2.fetch_add(1, Ordering::SeqCst);
            return Reply::status(401);
        }
        Reply::status(204)
    })
    .await;
    oauth_profile(&server, &client, &tokens.url, "s3cret").await;
    let sub = subscribe_with_oauth(&server, &client, &hook.url).await;

    for n in 0..20 {
        server
            .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": n}))
            .await;
    }
    hook.wait_for(20, WAIT).await;
    // 20 deliveries shared one token.
    let token_requests = tokens.requests();
    assert_eq!(
        token_requests.len(),
        1,
        "one token request for 20 deliveries"
    );
    let t = &token_requests[0];
    assert_eq!(t.method, "POST");
    assert_eq!(t.header("x-tenant"), Some("t1"));
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let params = form(&t.body);
    for (k, v) in [
        ("client_id", "app"),
        ("client_secret", "s3cret"),
        ("scope", "events"),
    ] {
        assert!(
            params.contains(&(k.into(), v.into())),
            "{k}={v} in {params:?}"
        );
    }
    assert!(hook
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer tok-1")));

    // A 401 drops the token; the same attempt fetches a new one and tries again once.
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 20}))
        .await;
    let got = hook.wait_for(22, WAIT).await;
    assert_eq!(got[20].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(got[21].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(got[20].header("webhook-id"), got[21].header("webhook-id"));
    assert_eq!(tokens.count(), 2);
    // Once every outcome is written (just after the receiver answered):
    let all = eventually("21 deliveries SUCCEEDED", WAIT, || async {
        let all = deliveries(&server, &client, &sub).await;
        (all.len() == 21 && all.iter().all(|d| d["status"] == "SUCCEEDED")).then_some(all)
    })
    .await;
    assert!(
        all.iter().all(|d| d["attemptCount"] == 1),
        "the refresh is not a new attempt"
    );
}

#[tokio::test]
async fn one_token_serves_every_waiting_delivery_of_every_subscription_of_the_profile() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    // A slow token endpoint, so that all the deliveries wait for the token together.
    let tokens = Receiver::start(|n, _| {
        Reply::json(
            200,
            json!({"access_token": format!("tok-{}", n + 1), "expires_in": 3600}),
        )
        .after(Duration::from_millis(500))
    })
    .await;
    let a = Receiver::ok().await;
    let b = Receiver::ok().await;
    oauth_profile(&server, &client, &tokens.url, "s").await;
    for hook in [&a, &b] {
        subscribe_with_oauth(&server, &client, &hook.url).await;
    }
    let events: Vec<Value> = (0..10)
        .map(|n| json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {"n": n}}))
        .collect();
    let (status, body) = server
        .post_json("/v1/events/batch", &publisher, &json!({ "events": events }))
        .await;
    assert_eq!(status, 202, "{body}");
    for hook in [&a, &b] {
        let got = hook.wait_for(10, WAIT).await;
        assert!(got
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer tok-1")));
    }
    assert_eq!(
        tokens.count(),
        1,
        "one token request for 20 waiting deliveries of two subscriptions"
    );
}

#[tokio::test]
async fn oauth_token_request_is_json_when_a_content_type_header_parameter_says_so() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let tokens = token_endpoint().await;
    let hook = Receiver::ok().await;
    server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ createAuthProfile(input: {{ authProfileAliasId: "json", authConfig: {{ oAuthConfig: {{ clientParameters: {{ clientId: "app", clientSecret: "s3cret" }}, authEndpoint: "{}/token", httpMethod: POST, httpParameters: {{ bodyParameters: [{{key: "scope", value: "events"}}], headerParameters: [{{key: "Content-Type", value: "application/json"}}] }} }} }} }}) {{ authProfileId }} }}"#,
                tokens.url
            ),
        )
        .await;
    subscribe(
        &server,
        &client,
        &hook.url,
        "ORDER_CONFIRMED",
        r#", authProfileId: "json""#,
    )
    .await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    let got = hook.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-1"));
    let t = &tokens.requests()[0];
    assert!(
        t.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        t.header("content-type")
    );
    let body: Value = serde_json::from_slice(&t.body).expect("a JSON token request");
    for (k, v) in [
        ("client_id", "app"),
        ("client_secret", "s3cret"),
        ("scope", "events"),
    ] {
        assert_eq!(body[k], v, "{body}");
    }
}

#[tokio::test]
async fn a_second_401_fails_the_attempt_without_a_third_try() {
    let server = Server::start_with(with_retry_schedule("60")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let tokens = token_endpoint().await;
    let hook = Receiver::start(|_, _| Reply::status(401)).await;
    oauth_profile(&server, &client, &tokens.url, "s").await;
    let sub = subscribe_with_oauth(&server, &client, &hook.url).await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    // The attempt is logged once it is over, the at-once retry included. (A delivery's
    // `attempts` are read after the delivery itself, so one answer may show the attempt
    // before the state it led to: wait for both.)
    let d = eventually("a failed attempt", WAIT, || async {
        deliveries(&server, &client, &sub)
            .await
            .into_iter()
            .find(|d| d["attempts"][0]["error"].is_string() && d["status"] != "IN_FLIGHT")
    })
    .await;
    assert_eq!(d["status"], "PENDING", "{d}");
    assert_eq!(d["attemptCount"], 1, "{d}");
    assert_eq!(d["attempts"][0]["statusCode"], 401, "{d}");
    assert_eq!(hook.count(), 2, "the 401 is retried at once, once");
    assert_eq!(tokens.count(), 2);
}

#[tokio::test]
async fn update_auth_profile_drops_the_cached_token() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let tokens = token_endpoint().await;
    let hook = Receiver::ok().await;
    oauth_profile(&server, &client, &tokens.url, "old-secret").await;
    subscribe_with_oauth(&server, &client, &hook.url).await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    hook.wait_for(1, WAIT).await;

    server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ updateAuthProfile(input: {{ authProfileId: "oauth", authConfig: {{ oAuthConfig: {{ clientParameters: {{ clientId: "app", clientSecret: "new-secret" }}, authEndpoint: "{}/token2", httpMethod: POST }} }} }}) {{ authProfileId }} }}"#,
                tokens.url
            ),
        )
        .await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 2}))
        .await;
    let got = hook.wait_for(2, WAIT).await;
    assert_eq!(tokens.count(), 2);
    let t = &tokens.requests()[1];
    assert_eq!(t.path, "/token2");
    assert!(form(&t.body).contains(&("client_secret".into(), "new-secret".into())));
    assert_eq!(
        t.header("x-tenant"),
        None,
        "the old config is gone entirely"
    );
    assert_eq!(got[1].header("authorization"), Some("Bearer tok-2"));
}

#[tokio::test]
async fn failing_token_endpoint_fails_the_attempt_with_a_reason() {
    let server = Server::start_with(with_retry_schedule("60")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let tokens = Receiver::start(|_, _| Reply::status(500).body("boom")).await;
    let hook = Receiver::ok().await;
    oauth_profile(&server, &client, &tokens.url, "s").await;
    let sub = subscribe_with_oauth(&server, &client, &hook.url).await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    let d = delivery_with_status(&server, &client, &sub, "PENDING").await;
    let d = if d["attemptCount"] == 0 {
        eventually("an attempt", WAIT, || async {
            deliveries(&server, &client, &sub)
                .await
                .into_iter()
                .find(|d| d["attemptCount"] == 1)
        })
        .await
    } else {
        d
    };
    let error = d["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("token request failed"), "{error}");
    assert!(error.contains("500"), "{error}");
    assert!(d["nextAttemptAt"].as_str().is_some(), "retried later: {d}");
    assert_eq!(hook.count(), 0, "nothing sent without a token");
}
