//! Secrets never come back out of the API and are never on disk in plain text.

use crate::common::*;

const CLIENT_SECRET: &str = "cs-7f3a9b2e-never-shown";
const PASSWORD: &str = "pw-41c8d6aa-never-shown";
const INLINE_SECRET: &str = "inline-5d2e-never-shown";
const HEADER_VALUE: &str = "api-key-header-visible-to-owner";

#[tokio::test]
async fn secrets_are_write_only_and_sealed_at_rest() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let owner = server.token("store-admin", Some("storea"));
    server
        .gql_ok(
            &alice,
            &format!(
                r#"mutation {{ createAuthProfile(input: {{ authProfileAliasId: "oauth", authConfig: {{ oAuthConfig: {{
                    clientParameters: {{ clientId: "cid", clientSecret: "{CLIENT_SECRET}" }},
                    authEndpoint: "https://auth.example.com/token", httpMethod: POST }} }} }}) {{ authProfileId }} }}"#
            ),
        )
        .await;
    server
        .gql_ok(
            &alice,
            &format!(
                r#"mutation {{ createAuthProfile(input: {{ authProfileAliasId: "basic", authConfig: {{ basicAuthConfig: {{
                    username: "user", password: "{PASSWORD}" }} }} }}) {{ authProfileId }} }}"#
            ),
        )
        .await;
    let data = server
        .gql_ok(
            &alice,
            &format!(
                r#"mutation {{ createEventSubscription(input: {{ destination: {{ webhook: {{ url: "https://hooks.example.com/a",
                    headers: [{{ key: "X-Api-Key", value: "{HEADER_VALUE}" }}],
                    authConfig: {{ basicAuthConfig: {{ username: "u", password: "{INLINE_SECRET}" }} }} }} }},
                    eventTypes: ["ORDER_CONFIRMED", "REFUND_REQUESTED"] }}) {{ subscriptionId }} }}"#
            ),
        )
        .await;
    let sub = data["createEventSubscription"]["subscriptionId"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .gql_ok(
            &alice,
            r#"mutation { webhook { createHttpsWebhook(input: { scope: "store/order/*", destination: "https://hooks.example.com/b" }) { webhook { id } } } }"#,
        )
        .await;

    // Read everything back, every way, as the owner and as the store admin.
    let everything = r#"{
        authProfiles { edges { node { authProfileId authType createdAt updatedAt authConfig {
            oAuthConfig { clientParameters { clientId } authEndpoint httpMethod httpParameters { bodyParameters { key value } headerParameters { key value } } }
            basicAuthConfig { username } } } } }
        a: authProfile(authProfileId: "oauth") { authProfileId }
        b: authProfile(authProfileId: "basic") { authConfig { basicAuthConfig { username } } }
        eventSubscriptions { edges { node { subscriptionId signingSecret eventSubscriptionDetails { eventTypes destination {
            ... on WebhookData { url method authProfileId headers { key value } } } } } } }
        store { webhooks { edges { node { id scope destination signingSecret headers { key value } } } } }
    }"#;
    let mut signing_secrets = Vec::new();
    for token in [&alice, &owner] {
        let body = server.gql_ok(token, everything).await;
        let text = body.to_string();
        for secret in [CLIENT_SECRET, PASSWORD, INLINE_SECRET] {
            assert!(
                !text.contains(secret),
                "{secret} returned by a query: {text}"
            );
        }
        for edge in body["eventSubscriptions"]["edges"].as_array().unwrap() {
            if let Some(s) = edge["node"]["signingSecret"].as_str() {
                signing_secrets.push(s.to_owned());
            }
        }
        for edge in body["store"]["webhooks"]["edges"].as_array().unwrap() {
            if let Some(s) = edge["node"]["signingSecret"].as_str() {
                signing_secrets.push(s.to_owned());
            }
        }
    }
    // The owner sees both signing secrets; the store admin (not the owner) sees none.
    assert_eq!(signing_secrets.len(), 2, "{signing_secrets:?}");
    // The owner sees its own custom header values (they are configuration, not secrets).
    let body = server.gql_ok(&alice, everything).await;
    assert!(body.to_string().contains(HEADER_VALUE));

    // Stored: no secret, no signing secret, no access token. SQLite: in the database file
    // or its WAL; PostgreSQL: in any value of any row of the database.
    let (status, dir) = server.terminate();
    assert!(status.success());
    let bytes = dir.storage.stored_bytes().await;
    assert!(
        contains(&bytes, "storea"),
        "sanity: the database is where we look"
    );
    for secret in [
        CLIENT_SECRET,
        PASSWORD,
        INLINE_SECRET,
        &alice.token,
        &owner.token,
    ] {
        assert!(
            !contains(&bytes, secret),
            "{secret} is stored in plain text"
        );
    }
    for secret in &signing_secrets {
        assert!(
            !contains(&bytes, secret),
            "signing secret stored in plain text"
        );
        assert!(
            !contains(&bytes, secret.trim_start_matches("whsec_")),
            "signing secret stored in plain text"
        );
    }
    if let Some(key) = &dir.storage.master_key {
        // PostgreSQL: the key is given to every node, never kept next to what it seals.
        assert!(!contains(&bytes, key), "the master key is in the database");
    }
    // SQLite generates the key into the data dir (PostgreSQL has no key file: it is given).
    #[cfg(unix)]
    if dir.backend() == Backend::Sqlite {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "master key readable by others: {mode:o}");
    }

    // After a restart the same master key opens the same secrets.
    let server = Server::start_in(dir, Options::default());
    let q = format!(r#"{{ eventSubscription(subscriptionId: "{sub}") {{ signingSecret }} }}"#);
    let again = server.gql_ok(&alice, &q).await;
    assert!(signing_secrets.contains(
        &again["eventSubscription"]["signingSecret"]
            .as_str()
            .unwrap()
            .to_owned()
    ));
}

#[tokio::test]
async fn a_wrong_master_key_fails_closed() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let data = server
        .gql_ok(
            &alice,
            r#"mutation { webhook { createHttpsWebhook(input: { scope: "store/order/created", destination: "https://hooks.example.com/b" }) { webhook { id signingSecret } } } }"#,
        )
        .await;
    assert!(
        data["webhook"]["createHttpsWebhook"]["webhook"]["signingSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let (_, dir) = server.terminate();
    let other_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let server = Server::start_in(
        dir,
        Options {
            envs: vec![("HOOKRELAY_MASTER_KEY".into(), other_key.into())],
            ..Options::default()
        },
    );
    let body = server
        .gql(
            &alice,
            "{ store { webhooks { edges { node { signingSecret } } } } }",
        )
        .await;
    assert_eq!(classification(&body), "InternalError", "{body}");
    assert_eq!(message(&body), "internal error");
    assert!(!body.to_string().contains("whsec_"));
}
