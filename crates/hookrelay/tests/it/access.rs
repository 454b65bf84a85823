//! Authentication, roles and isolation between stores and between clients of one store,
//! through the real HTTP API.

use crate::common::*;
use serde_json::{json, Value};

const BASIC_PROFILE: &str = r#"mutation { createAuthProfile(input: { authProfileAliasId: "prof-1",
    authConfig: { basicAuthConfig: { username: "u", password: "p" } } }) { authProfileId } }"#;

async fn create_subscription(
    server: &Server,
    token: &Token,
    url: &str,
    profile: Option<&str>,
) -> String {
    let auth = profile
        .map(|p| format!(r#", authProfileId: "{p}""#))
        .unwrap_or_default();
    let q = format!(
        r#"mutation {{ createEventSubscription(input: {{ destination: {{ webhook: {{ url: "{url}", method: POST{auth} }} }}, eventType: "ORDER_CONFIRMED" }}) {{ subscriptionId }} }}"#
    );
    let data = server.gql_ok(token, &q).await;
    data["createEventSubscription"]["subscriptionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn create_webhook(server: &Server, token: &Token, url: &str) -> String {
    let q = format!(
        r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/order/created", destination: "{url}", isActive: true }}) {{ webhook {{ id }} }} }} }}"#
    );
    let data = server.gql_ok(token, &q).await;
    data["webhook"]["createHttpsWebhook"]["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn missing_and_bad_tokens_get_the_same_401() {
    let server = Server::start().await;
    let url = format!("{}/graphql", server.base);
    let none = server
        .http
        .post(&url)
        .json(&json!({"query": "{ eventTypes }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let none: Value = none.json().await.unwrap();
    assert_eq!(none["error"]["code"], "Unauthorized");
    for header in [
        ("X-Auth-Token", "hrat_nope"),
        ("Authorization", "Bearer hrat_nope"),
        ("Authorization", "Basic eDp5"),
    ] {
        let resp = server
            .http
            .post(&url)
            .header(header.0, header.1)
            .json(&json!({"query": "{ eventTypes }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.json::<Value>().await.unwrap(), none);
    }
    // Both header styles work with a real token.
    let alice = server.client("storea");
    for (name, value) in [
        ("X-Auth-Token", alice.token.clone()),
        ("Authorization", format!("Bearer {}", alice.token)),
    ] {
        let resp = server
            .http
            .post(&url)
            .header(name, value)
            .json(&json!({"query": "{ eventTypes }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test]
async fn publisher_tokens_cannot_use_graphql_and_admins_must_name_the_store() {
    let server = Server::start().await;
    let publisher = server.token("publisher", None);
    let (status, body) = server
        .gql_at("/graphql", &publisher, "{ eventTypes }", json!({}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(classification(&body), "AccessDeniedError");

    let alice = server.client("storea");
    create_webhook(&server, &alice, "http://127.0.0.1:9/a").await;
    let admin = server.token("admin", None);
    let (status, body) = server
        .gql_at("/graphql", &admin, "{ eventTypes }", json!({}))
        .await;
    assert_eq!(status, 400);
    assert!(
        message(&body).contains("/stores/{store_hash}/graphql"),
        "{body}"
    );
    let (status, body) = server
        .gql_at(
            "/stores/storea/graphql",
            &admin,
            "{ store { webhooks { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["store"]["webhooks"]["totalCount"], 1);
    let (status, body) = server
        .gql_at(
            "/stores/nosuchstore/graphql",
            &admin,
            "{ eventTypes }",
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(classification(&body), "AccessDeniedError");
}

#[tokio::test]
async fn store_path_must_be_the_tokens_store() {
    let server = Server::start().await;
    let alice = server.client("storea");
    server.client("storeb");
    let (status, body) = server
        .gql_at(
            "/stores/storea/graphql",
            &alice,
            "{ store { storeHash } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["data"]["store"]["storeHash"].clone()),
        (200, json!("storea"))
    );
    let (status, body) = server
        .gql_at(
            "/stores/storeb/graphql",
            &alice,
            "{ store { storeHash } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(classification(&body), "AccessDeniedError");
    assert_eq!(code(&body), "AccessDenied");
    assert_eq!(
        only_error(&body)["extensions"]["errorType"],
        "AccessDeniedException"
    );
}

/// Store B probing store A's ids gets exactly what it gets for ids that do not exist, and
/// store A's records are untouched.
#[tokio::test]
async fn another_stores_ids_look_like_ids_that_do_not_exist() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let mallory = server.client("storeb");
    server.gql_ok(&alice, BASIC_PROFILE).await;
    let sub = create_subscription(&server, &alice, "http://127.0.0.1:9/a", Some("prof-1")).await;
    let hook = create_webhook(&server, &alice, "http://127.0.0.1:9/b").await;

    let probes = |profile: &str, sub: &str, hook: &str| {
        vec![
            format!(r#"{{ authProfile(authProfileId: "{profile}") {{ authProfileId }} }}"#),
            format!(
                r#"mutation {{ updateAuthProfile(input: {{ authProfileId: "{profile}", authConfig: {{ basicAuthConfig: {{ username: "x", password: "y" }} }} }}) {{ authProfileId }} }}"#
            ),
            format!(
                r#"mutation {{ deleteAuthProfile(authProfileId: "{profile}") {{ authProfileId }} }}"#
            ),
            format!(
                r#"mutation {{ createEventSubscription(input: {{ destination: {{ webhook: {{ url: "http://127.0.0.1:9/m", authProfileId: "{profile}" }} }}, eventType: "ORDER_CONFIRMED" }}) {{ subscriptionId }} }}"#
            ),
            format!(r#"{{ eventSubscription(subscriptionId: "{sub}") {{ subscriptionId }} }}"#),
            format!(
                r#"mutation {{ deleteEventSubscription(subscriptionId: "{sub}") {{ subscriptionId }} }}"#
            ),
            format!(
                r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{hook}", data: {{ isActive: false }} }}) {{ webhook {{ id }} }} }} }}"#
            ),
            format!(r#"mutation {{ webhook {{ deleteWebhook(id: "{hook}") {{ id }} }} }}"#),
            // A webhook id is not an event subscription and vice versa.
            format!(r#"{{ eventSubscription(subscriptionId: "{hook}") {{ subscriptionId }} }}"#),
        ]
    };
    let real = probes("prof-1", &sub, &hook);
    let fake = probes(
        "prof-404",
        "sub_01AAAAAAAAAAAAAAAAAAAAAAAA",
        "wh_01AAAAAAAAAAAAAAAAAAAAAAAA",
    );
    for (q_real, q_fake) in real.iter().zip(&fake) {
        let got = server.gql(&mallory, q_real).await;
        let missing = server.gql(&mallory, q_fake).await;
        assert_eq!(classification(&got), "AccessDeniedError", "{q_real}: {got}");
        assert_eq!(
            only_error(&got)["extensions"],
            only_error(&missing)["extensions"]
        );
        let normalise = |body: &Value, ids: [&str; 3]| {
            let mut m = message(body).to_owned();
            for id in ids {
                m = m.replace(id, "ID");
            }
            m
        };
        assert_eq!(
            normalise(&got, ["prof-1", &sub, &hook]),
            normalise(
                &missing,
                [
                    "prof-404",
                    "sub_01AAAAAAAAAAAAAAAAAAAAAAAA",
                    "wh_01AAAAAAAAAAAAAAAAAAAAAAAA"
                ]
            ),
            "{q_real}"
        );
    }
    // Mallory's listings are empty; Alice's records are all still there and unchanged.
    let theirs = server
        .gql_ok(&mallory, "{ authProfiles { totalCount } eventSubscriptions { totalCount } store { webhooks { totalCount } } }")
        .await;
    assert_eq!(
        theirs,
        json!({"authProfiles": {"totalCount": 0}, "eventSubscriptions": {"totalCount": 0}, "store": {"webhooks": {"totalCount": 0}}})
    );
    let mine = server
        .gql_ok(
            &alice,
            r#"{ authProfile(authProfileId: "prof-1") { authConfig { basicAuthConfig { username } } }
                 eventSubscriptions { totalCount } store { webhooks(isActive: true) { totalCount } } }"#,
        )
        .await;
    assert_eq!(
        mine["authProfile"]["authConfig"]["basicAuthConfig"]["username"],
        "u"
    );
    assert_eq!(mine["eventSubscriptions"]["totalCount"], 1);
    assert_eq!(mine["store"]["webhooks"]["totalCount"], 1);
}

/// Subscriptions belong to the client that made them; a store admin sees the whole store
/// (but not other clients' signing secrets).
#[tokio::test]
async fn clients_of_one_store_see_their_own_and_the_store_admin_sees_all() {
    let server = Server::start().await;
    let app1 = server.client("shop");
    let app2 = server.client("shop");
    let owner = server.token("store-admin", Some("shop"));
    let s1 = create_subscription(&server, &app1, "http://127.0.0.1:9/one", None).await;
    create_subscription(&server, &app2, "http://127.0.0.1:9/two", None).await;
    create_webhook(&server, &app1, "http://127.0.0.1:9/three").await;

    let count = "{ eventSubscriptions { totalCount } store { webhooks { totalCount } } }";
    assert_eq!(
        server.gql_ok(&app1, count).await,
        json!({"eventSubscriptions": {"totalCount": 1}, "store": {"webhooks": {"totalCount": 1}}})
    );
    assert_eq!(
        server.gql_ok(&app2, count).await,
        json!({"eventSubscriptions": {"totalCount": 1}, "store": {"webhooks": {"totalCount": 0}}})
    );
    assert_eq!(
        server.gql_ok(&owner, count).await,
        json!({"eventSubscriptions": {"totalCount": 2}, "store": {"webhooks": {"totalCount": 1}}})
    );

    let q = format!(
        r#"{{ eventSubscription(subscriptionId: "{s1}") {{ subscriptionId signingSecret }} }}"#
    );
    assert_eq!(
        classification(&server.gql(&app2, &q).await),
        "AccessDeniedError"
    );
    let seen_by_admin = server.gql_ok(&owner, &q).await;
    assert_eq!(
        seen_by_admin["eventSubscription"]["subscriptionId"],
        s1.as_str()
    );
    assert_eq!(
        seen_by_admin["eventSubscription"]["signingSecret"],
        Value::Null
    );
    let seen_by_owner = server.gql_ok(&app1, &q).await;
    assert!(seen_by_owner["eventSubscription"]["signingSecret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));

    // The same event type and destination is a duplicate for one client, not across clients.
    let dup = r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/one" } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#;
    let body = server.gql(&app1, dup).await;
    assert_eq!(code(&body), "SubscriptionAlreadyExists", "{body}");
    assert_eq!(classification(&body), "ValidationError");
    server.gql_ok(&app2, dup).await;
}
