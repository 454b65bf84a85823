//! Destination auth through the real binary, against a real OAuth token endpoint: basic
//! auth, one token request for many deliveries, a refresh on 401, a new token after
//! `updateAuthProfile`, and a failing token endpoint logged as the attempt's error.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::hooks::{delivery_with_status, subscribe, WAIT};
use common::receiver::{Receiver, Reply};
use common::Server;
use serde_json::json;

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

async fn oauth_profile(server: &Server, client: &common::Token, endpoint: &str, secret: &str) {
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
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    let got = hook.wait_for(1, WAIT).await;
    // base64("user:p@ss:word")
    assert_eq!(
        got[0].header("authorization"),
        Some("Basic dXNlcjpwQHNzOndvcmQ=")
    );
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
    let sub = subscribe(
        &server,
        &client,
        &hook.url,
        "ORDER_CONFIRMED",
        r#", authProfileId: "oauth""#,
    )
    .await;

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
    let all = common::hooks::deliveries(&server, &client, &sub).await;
    assert!(
        all.iter().all(|d| d["attemptCount"] == 1),
        "the refresh is not a new attempt"
    );
}

#[tokio::test]
async fn update_auth_profile_drops_the_cached_token() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let tokens = token_endpoint().await;
    let hook = Receiver::ok().await;
    oauth_profile(&server, &client, &tokens.url, "old-secret").await;
    subscribe(
        &server,
        &client,
        &hook.url,
        "ORDER_CONFIRMED",
        r#", authProfileId: "oauth""#,
    )
    .await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    hook.wait_for(1, WAIT).await;

    server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ updateAuthProfile(input: {{ authProfileId: "oauth", authConfig: {{ oAuthConfig: {{ clientParameters: {{ clientId: "app", clientSecret: "new-secret" }}, authEndpoint: "{}/token", httpMethod: POST }} }} }}) {{ authProfileId }} }}"#,
                tokens.url
            ),
        )
        .await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 2}))
        .await;
    let got = hook.wait_for(2, WAIT).await;
    assert_eq!(tokens.count(), 2);
    assert!(
        form(&tokens.requests()[1].body).contains(&("client_secret".into(), "new-secret".into()))
    );
    assert_eq!(got[1].header("authorization"), Some("Bearer tok-2"));
}

#[tokio::test]
async fn failing_token_endpoint_fails_the_attempt_with_a_reason() {
    let mut options = common::Options::default();
    options
        .args
        .extend(["--retry-schedule".into(), "60".into()]);
    let server = Server::start_with(options).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let tokens = Receiver::start(|_, _| Reply::status(500).body("boom")).await;
    let hook = Receiver::ok().await;
    oauth_profile(&server, &client, &tokens.url, "s").await;
    let sub = subscribe(
        &server,
        &client,
        &hook.url,
        "ORDER_CONFIRMED",
        r#", authProfileId: "oauth""#,
    )
    .await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    let d = delivery_with_status(&server, &client, &sub, "PENDING").await;
    let d = if d["attemptCount"] == 0 {
        common::receiver::eventually("an attempt", WAIT, || async {
            common::hooks::deliveries(&server, &client, &sub)
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
