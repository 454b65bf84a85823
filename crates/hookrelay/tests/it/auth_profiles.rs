//! Auth profiles in use, changed, and the rules that must hold under concurrent writes.

use crate::common::*;
use futures::future::join_all;
use serde_json::json;

const PROFILE: &str = r#"mutation { createAuthProfile(input: { authProfileAliasId: "shared",
    authConfig: { oAuthConfig: { clientParameters: { clientId: "c", clientSecret: "s" },
    authEndpoint: "http://127.0.0.1:9/token", httpMethod: "POST" } } }) { authProfileId } }"#;

fn subscription(url: &str) -> String {
    format!(
        r#"mutation {{ createEventSubscription(input: {{ destination: {{ webhook: {{ url: "{url}", method: POST, authProfileId: "shared" }} }}, eventTypes: ["ORDER_CONFIRMED", "REFUND_REQUESTED"] }}) {{ subscriptionId }} }}"#
    )
}

#[tokio::test]
async fn an_auth_profile_in_use_is_not_deleted() {
    let server = Server::start().await;
    let app = server.client("shop");
    server.gql_ok(&app, PROFILE).await;
    let mut subs = Vec::new();
    for url in ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"] {
        let data = server.gql_ok(&app, &subscription(url)).await;
        subs.push(
            data["createEventSubscription"]["subscriptionId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let delete = r#"mutation { deleteAuthProfile(authProfileId: "shared") { authProfileId } }"#;
    let body = server.gql(&app, delete).await;
    assert_eq!(classification(&body), "ValidationError", "{body}");
    assert_eq!(code(&body), "AuthProfileInUse");
    for sub in &subs {
        assert!(message(&body).contains(sub.as_str()), "{body}");
    }
    // Still there, still usable.
    let data = server
        .gql_ok(
            &app,
            r#"{ authProfile(authProfileId: "shared") { authProfileId } }"#,
        )
        .await;
    assert_eq!(data["authProfile"]["authProfileId"], "shared");

    for sub in &subs {
        server
            .gql_ok(&app, &format!(r#"mutation {{ deleteEventSubscription(subscriptionId: "{sub}") {{ subscriptionId }} }}"#))
            .await;
    }
    let data = server.gql_ok(&app, delete).await;
    assert_eq!(
        data,
        json!({"deleteAuthProfile": {"authProfileId": "shared"}})
    );
}

#[tokio::test]
async fn updating_a_profile_can_switch_its_kind() {
    let server = Server::start().await;
    let app = server.client("shop");
    server.gql_ok(&app, PROFILE).await;
    let data = server
        .gql_ok(
            &app,
            r#"mutation { updateAuthProfile(input: { authProfileId: "shared", authConfig: { basicAuthConfig: { username: "user", password: "pw" } } }) { authProfileId } }"#,
        )
        .await;
    assert_eq!(data["updateAuthProfile"]["authProfileId"], "shared");
    let data = server
        .gql_ok(
            &app,
            r#"{ authProfile(authProfileId: "shared") { authType authConfig { oAuthConfig { authEndpoint } basicAuthConfig { username } } } }"#,
        )
        .await;
    assert_eq!(
        data,
        json!({"authProfile": {"authType": "BASIC", "authConfig": {"oAuthConfig": null, "basicAuthConfig": {"username": "user"}}}})
    );
    // A bad update changes nothing.
    let body = server
        .gql(
            &app,
            r#"mutation { updateAuthProfile(input: { authProfileId: "shared", authConfig: { basicAuthConfig: { username: "a:b", password: "pw" } } }) { authProfileId } }"#,
        )
        .await;
    assert_eq!(
        message(&body),
        "/updateAuthProfile/input/authConfig/basicAuthConfig/username must not contain ':'"
    );
    let data = server.gql_ok(&app, r#"{ authProfile(authProfileId: "shared") { authConfig { basicAuthConfig { username } } } }"#).await;
    assert_eq!(
        data["authProfile"]["authConfig"]["basicAuthConfig"]["username"],
        "user"
    );
}

/// Fifty concurrent creates of the same rules: the limits hold exactly.
#[tokio::test]
async fn rules_hold_under_concurrent_writes() {
    let server = Server::start().await;
    let app = server.client("shop");
    let creates = (0..50).map(|i| {
        let q = format!(
            r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/cart/created", destination: "http://127.0.0.1:9/{i}" }}) {{ webhook {{ id }} }} }} }}"#
        );
        let server = &server;
        let app = &app;
        async move { server.gql(app, &q).await }
    });
    let results = join_all(creates).await;
    let ok = results.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(ok, 10, "exactly BigCommerce's 10 webhooks per scope");
    assert!(results
        .iter()
        .filter(|b| b.get("errors").is_some())
        .all(|b| message(b).contains("at most 10")));

    let dupes = (0..20).map(|_| {
        let server = &server;
        let app = &app;
        async move {
            server
                .gql(
                    app,
                    r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/same" } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
                )
                .await
        }
    });
    let results = join_all(dupes).await;
    assert_eq!(
        results.iter().filter(|b| b.get("errors").is_none()).count(),
        1
    );
    assert!(results
        .iter()
        .filter(|b| b.get("errors").is_some())
        .all(|b| code(b) == "SubscriptionAlreadyExists"));
}
