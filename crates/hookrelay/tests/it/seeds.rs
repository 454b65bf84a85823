//! Every request example of the two vendor guides (`shared/seeds/`), pasted verbatim into
//! `fixtures/`, run against the real server with only placeholders replaced.

use crate::common::*;
use serde_json::{json, Value};

const ENDPOINT: &str = "https://auth.example.com/oauth/token";

fn seed(name: &str) -> String {
    fixture(&format!("{name}.graphql")).replace("example-endpoint-url", ENDPOINT)
}

#[tokio::test]
async fn buy_with_prime_auth_profile_examples_run_as_pasted() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let bob = server.client("storeb");

    // Option 1: OAuth 2.0 client credentials, `// Optional` and `// Required` lines included.
    let body = server
        .gql(&alice, &seed("bwp_create_auth_profile_oauth"))
        .await;
    assert_eq!(
        body,
        json!({"data": {"createAuthProfile": {"authProfileId": "example-authprofilealiasid"}}})
    );

    // Option 2: basic auth. The seed uses the same alias, so it runs in another store.
    let body = server
        .gql(&bob, &seed("bwp_create_auth_profile_basic"))
        .await;
    assert_eq!(
        body,
        json!({"data": {"createAuthProfile": {"authProfileId": "example-authprofilealiasid"}}})
    );

    // Updates: the placeholder id becomes the id the create answered.
    let update_oauth = seed("bwp_update_auth_profile_oauth")
        .replace("example-authprofileid", "example-authprofilealiasid");
    let body = server.gql(&alice, &update_oauth).await;
    assert_eq!(
        body,
        json!({"data": {"updateAuthProfile": {"authProfileId": "example-authprofilealiasid"}}})
    );
    let profile = server
        .gql_ok(
            &alice,
            r#"{ authProfile(authProfileId: "example-authprofilealiasid") {
                authProfileId authType
                authConfig { oAuthConfig { clientParameters { clientId } authEndpoint httpMethod
                  httpParameters { bodyParameters { key value } headerParameters { key value } } } } } }"#,
        )
        .await;
    let oauth = &profile["authProfile"]["authConfig"]["oAuthConfig"];
    assert_eq!(
        oauth["clientParameters"]["clientId"],
        "example-new-clientid"
    );
    assert_eq!(oauth["authEndpoint"], ENDPOINT);
    assert_eq!(oauth["httpMethod"], "POST");
    assert_eq!(
        oauth["httpParameters"]["bodyParameters"],
        json!([{"key": "grant_type", "value": "client_credentials"}, {"key": "scope", "value": "write:order"}])
    );
    assert_eq!(
        oauth["httpParameters"]["headerParameters"],
        json!([{"key": "Content-Type", "value": "application/x-www-form-urlencoded"}])
    );

    let update_basic = seed("bwp_update_auth_profile_basic")
        .replace("example-authprofileid", "example-authprofilealiasid");
    let body = server.gql(&bob, &update_basic).await;
    assert_eq!(
        body,
        json!({"data": {"updateAuthProfile": {"authProfileId": "example-authprofilealiasid"}}})
    );
    let profile = server
        .gql_ok(
            &bob,
            r#"{ authProfile(authProfileId: "example-authprofilealiasid") { authType authConfig { basicAuthConfig { username } } } }"#,
        )
        .await;
    assert_eq!(profile["authProfile"]["authType"], "BASIC");
    assert_eq!(
        profile["authProfile"]["authConfig"]["basicAuthConfig"]["username"],
        "example-new-username"
    );

    // Delete: the request selects `authProfile { authProfileId }`.
    let delete = seed("bwp_delete_auth_profile")
        .replace("example-authprofileid", "example-authprofilealiasid");
    let body = server.gql(&alice, &delete).await;
    assert_eq!(
        body,
        json!({"data": {"deleteAuthProfile": {"authProfile": {"authProfileId": "example-authprofilealiasid"}}}})
    );
    // …and the response's shape works too.
    let body = server
        .gql(&bob, r#"mutation { deleteAuthProfile(authProfileId: "example-authprofilealiasid") { authProfileId } }"#)
        .await;
    assert_eq!(
        body,
        json!({"data": {"deleteAuthProfile": {"authProfileId": "example-authprofilealiasid"}}})
    );
    let gone = server
        .gql(
            &alice,
            r#"{ authProfile(authProfileId: "example-authprofilealiasid") { authProfileId } }"#,
        )
        .await;
    assert_eq!(classification(&gone), "AccessDeniedError");
}

#[tokio::test]
async fn generated_auth_profile_id_without_alias() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let query = seed("bwp_create_auth_profile_basic")
        .replace("authProfileAliasId: \"example-authprofilealiasid\",", "");
    let data = server.gql_ok(&alice, &query).await;
    let id = data["createAuthProfile"]["authProfileId"].as_str().unwrap();
    assert!(id.starts_with("ap_"), "{id}");
    let listed = server
        .gql_ok(
            &alice,
            "{ authProfiles { totalCount edges { node { authProfileId } } } }",
        )
        .await;
    assert_eq!(listed["authProfiles"]["totalCount"], 1);
    assert_eq!(
        listed["authProfiles"]["edges"][0]["node"]["authProfileId"],
        id
    );
}

/// The `createEventSubscription` examples of the Buy with Prime API reference write the
/// method as an enum literal, as a string, and as `httpMethod`.
#[tokio::test]
async fn create_event_subscription_examples_of_the_reference() {
    let server = Server::start().await;
    let alice = server.client("storea");
    server
        .gql_ok(&alice, &seed("bwp_create_auth_profile_oauth"))
        .await;

    let with_profile = r#"mutation {
    createEventSubscription(
        input: {
            destination: {
                webhook: {
                    httpMethod: "POST",
                    url: "https://my-webhook.com",
                    authProfileId: "example-authprofilealiasid"
                }
            },
            eventType: "REFUND_REQUESTED"
        }
    ) {
        subscriptionId
    }
}"#;
    let inline = r#"mutation {
createEventSubscription(
input: {
destination: {
webhook: {
url: "https://webhook-endpoint.com",
method: POST,
authConfig: {
oAuthConfig: {
clientParameters: {
clientId: "client_id"
clientSecret: "client_secret"
},
authEndpoint: "https://auth-endpoint.com",
httpMethod: POST
}
}
}
}
eventType: "BUYABILITY_CHANGED"
}
) {
subscriptionId
}
}"#;
    let plain = r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "https://webhook-endpoint.com", method: "PUT" } } eventType: "DELIVERY_COMPLETED" }) { subscriptionId } }"#;
    let mut ids = Vec::new();
    for query in [with_profile, inline, plain] {
        let data = server.gql_ok(&alice, query).await;
        ids.push(
            data["createEventSubscription"]["subscriptionId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let q = |id: &str| {
        format!(
            r#"{{ eventSubscription(subscriptionId: "{id}") {{ subscriptionId status isActive createdAt signingSecret
                eventSubscriptionDetails {{ eventType eventTypes destination {{ __typename
                  ... on WebhookData {{ url method authProfileId }} ... on EventBridgeData {{ arn }} }} }} }} }}"#
        )
    };
    let first = server.gql_ok(&alice, &q(&ids[0])).await;
    let sub = &first["eventSubscription"];
    assert_eq!(sub["subscriptionId"], ids[0].as_str());
    assert_eq!(sub["status"], "ACTIVE");
    assert_eq!(sub["isActive"], true);
    assert!(sub["signingSecret"].as_str().unwrap().starts_with("whsec_"));
    let details = &sub["eventSubscriptionDetails"];
    assert_eq!(details["eventType"], "REFUND_REQUESTED");
    assert_eq!(details["eventTypes"], json!(["REFUND_REQUESTED"]));
    assert_eq!(
        details["destination"],
        json!({"__typename": "WebhookData", "url": "https://my-webhook.com", "method": "POST", "authProfileId": "example-authprofilealiasid"})
    );
    // An inline auth config is private to its subscription: no profile id is shown.
    let second = server.gql_ok(&alice, &q(&ids[1])).await;
    assert_eq!(
        second["eventSubscription"]["eventSubscriptionDetails"]["destination"]["authProfileId"],
        Value::Null
    );
    let third = server.gql_ok(&alice, &q(&ids[2])).await;
    assert_eq!(
        third["eventSubscription"]["eventSubscriptionDetails"]["destination"]["method"],
        "PUT"
    );

    let listed = server
        .gql_ok(
            &alice,
            "{ eventSubscriptions { totalCount edges { cursor node { subscriptionId } } } }",
        )
        .await;
    assert_eq!(listed["eventSubscriptions"]["totalCount"], 3);
    // The inline profile is not one of the caller's listed profiles.
    let profiles = server
        .gql_ok(&alice, "{ authProfiles { totalCount } }")
        .await;
    assert_eq!(profiles["authProfiles"]["totalCount"], 1);

    let deleted = server
        .gql_ok(&alice, &format!(r#"mutation {{ deleteEventSubscription(subscriptionId: "{}") {{ subscriptionId }} }}"#, ids[1]))
        .await;
    assert_eq!(
        deleted["deleteEventSubscription"]["subscriptionId"],
        ids[1].as_str()
    );
    let listed = server
        .gql_ok(&alice, "{ eventSubscriptions { totalCount } }")
        .await;
    assert_eq!(listed["eventSubscriptions"]["totalCount"], 2);
}

/// The guide's request as written carries the guide's own app's client id: it parses, and
/// is refused with the field named (the full flow with real ids is in `eventbridge.rs`).
#[tokio::test]
async fn bigcommerce_create_event_source_example_parses_and_names_the_foreign_client_id() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let variables: Value =
        serde_json::from_str(&fixture("bc_create_event_source.variables.json")).unwrap();
    let (status, body) = server
        .gql_at(
            "/stores/storea/graphql",
            &alice,
            &fixture("bc_create_event_source.graphql"),
            variables,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(classification(&body), "ValidationError", "{body}");
    assert!(
        message(&body).starts_with(
            "/webhook/createEventSource/input/clientId \"4yk6pb824t53hirbuz5akdr652lpjb2\" is not the client id of this token"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn bigcommerce_eventbridge_webhook_example_missing_brace_is_a_syntax_error_with_position() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let query = fixture("bc_create_eventbridge_webhook.graphql");
    let variables: Value =
        serde_json::from_str(&fixture("bc_create_eventbridge_webhook.variables.json")).unwrap();
    let (status, body) = server
        .gql_at("/stores/storea/graphql", &alice, &query, variables)
        .await;
    assert_eq!(status, 200);
    let error = only_error(&body);
    let lines = query.lines().count();
    let expected_line = lines + 1;
    assert_eq!(
        error["message"],
        format!("Syntax error at line {expected_line}, column 1: expected selection"),
        "{body}"
    );
    assert_eq!(
        error["locations"],
        json!([{"line": expected_line, "column": 1}])
    );
    assert_eq!(error["extensions"]["classification"], "ValidationError");
    assert_eq!(error["extensions"]["code"], "InvalidSyntax");

    // With the missing brace added, the same example is valid GraphQL.
    let fixed = format!("{query}}}\n");
    let variables: Value =
        serde_json::from_str(&fixture("bc_create_eventbridge_webhook.variables.json")).unwrap();
    let (_, body) = server
        .gql_at("/stores/storea/graphql", &alice, &fixed, variables)
        .await;
    // Its destination is still the placeholder `{{event_source_arn}}`.
    assert_eq!(classification(&body), "ValidationError", "{body}");
    assert!(
        message(&body)
            .starts_with("/webhook/createEventBridgeWebhook/input/destination must be the ARN"),
        "{body}"
    );
}

/// BigCommerce's Postman collection sends `variables` as a JSON-encoded string.
#[tokio::test]
async fn variables_as_a_json_string_like_postman_sends_them() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let query = r#"mutation CreateHttps($input: CreateHttpsWebhookInput!) { webhook { createHttpsWebhook(input: $input) { webhook { id scope } } } }"#;
    let variables = "{\n \"input\": {\n \t\"scope\": \"store/customer/created\",\n \t\"destination\": \"http://127.0.0.1:9/hook\"\n }\n}";
    let (status, body) = server
        .gql_at("/stores/storea/graphql", &alice, query, json!(variables))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["webhook"]["createHttpsWebhook"]["webhook"]["scope"], "store/customer/created",
        "{body}"
    );
    let (status, body) = server
        .gql_at("/graphql", &alice, query, json!("{not json"))
        .await;
    assert_eq!(status, 400);
    assert!(
        message(&body).contains("\"variables\" is a string but not JSON"),
        "{body}"
    );
}
