//! BigCommerce-style webhooks: create, list, filter, page, update, reactivate, delete, and
//! BigCommerce's limits.

use crate::common::*;
use serde_json::{json, Value};

fn create(scope: &str, url: &str) -> String {
    format!(
        r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "{scope}", destination: "{url}", isActive: true,
            headers: [{{ key: "X-Custom", value: "v1" }}] }}) {{
            webhook {{ id scope destination status isActive createdAt headers {{ key value }} }} }} }} }}"#
    )
}

async fn create_ok(server: &Server, token: &Token, scope: &str, url: &str) -> Value {
    let data = server.gql_ok(token, &create(scope, url)).await;
    data["webhook"]["createHttpsWebhook"]["webhook"].clone()
}

#[tokio::test]
async fn webhook_lifecycle() {
    let server = Server::start().await;
    let app = server.client("shop");
    let hook = create_ok(
        &server,
        &app,
        "store/category/updated",
        "http://127.0.0.1:9/in",
    )
    .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    assert_eq!(hook["scope"], "store/category/updated");
    assert_eq!(hook["destination"], "http://127.0.0.1:9/in");
    assert_eq!(hook["status"], "ACTIVE");
    assert_eq!(hook["isActive"], true);
    assert_eq!(hook["headers"], json!([{"key": "X-Custom", "value": "v1"}]));
    assert!(chrono_like(&hook["createdAt"]));

    let update = |data: &str| {
        format!(
            r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ {data} }} }}) {{
                webhook {{ id scope destination status isActive updatedAt headers {{ key value }} }} }} }} }}"#
        )
    };
    let off = server.gql_ok(&app, &update("isActive: false")).await;
    let off = &off["webhook"]["updateWebhook"]["webhook"];
    assert_eq!(
        (off["status"].clone(), off["isActive"].clone()),
        (json!("INACTIVE"), json!(false))
    );

    let listed = server
        .gql_ok(
            &app,
            r#"{ store { webhooks(isActive: true) { totalCount } all: webhooks { totalCount } } }"#,
        )
        .await;
    assert_eq!(listed["store"]["webhooks"]["totalCount"], 0);
    assert_eq!(listed["store"]["all"]["totalCount"], 1);

    let changed = server
        .gql_ok(
            &app,
            &update(r#"isActive: true, scope: "store/order/*", destination: "http://127.0.0.1:9/new", headers: [{ key: "X-Other", value: "v2" }]"#),
        )
        .await;
    let changed = &changed["webhook"]["updateWebhook"]["webhook"];
    assert_eq!(changed["status"], "ACTIVE");
    assert_eq!(changed["scope"], "store/order/*");
    assert_eq!(changed["destination"], "http://127.0.0.1:9/new");
    assert_eq!(
        changed["headers"],
        json!([{"key": "X-Other", "value": "v2"}])
    );

    let listed = server
        .gql_ok(
            &app,
            r#"{ store { webhooks(scope: "store/order/*", isActive: true) { totalCount edges { cursor node {
                id scope status isActive createdAt updatedAt
                ... on HttpsWebhook { destination headers { key value } }
                ... on EventBridgeWebhook { destination } } } } } }"#,
        )
        .await;
    let edges = listed["store"]["webhooks"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["id"], id.as_str());
    // Read back exactly as answered at creation.
    assert_eq!(edges[0]["node"]["createdAt"], hook["createdAt"]);
    assert_eq!(edges[0]["node"]["destination"], "http://127.0.0.1:9/new");

    // A failed update changes nothing.
    let body = server
        .gql(&app, &update(r#"destination: "ftp://nope""#))
        .await;
    assert_eq!(classification(&body), "ValidationError");
    let after = server
        .gql_ok(
            &app,
            r#"{ store { webhooks { edges { node { destination } } } } }"#,
        )
        .await;
    assert_eq!(
        after["store"]["webhooks"]["edges"][0]["node"]["destination"],
        "http://127.0.0.1:9/new"
    );

    let deleted = server
        .gql_ok(
            &app,
            &format!(r#"mutation {{ webhook {{ deleteWebhook(id: "{id}") {{ id }} }} }}"#),
        )
        .await;
    assert_eq!(deleted["webhook"]["deleteWebhook"]["id"], id.as_str());
    let body = server
        .gql(
            &app,
            &format!(r#"mutation {{ webhook {{ deleteWebhook(id: "{id}") {{ id }} }} }}"#),
        )
        .await;
    assert_eq!(classification(&body), "AccessDeniedError");
}

fn chrono_like(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() >= 20 && s.contains('T'))
}

#[tokio::test]
async fn bigcommerce_limits_per_client_and_scope() {
    let server = Server::start().await;
    let app = server.client("shop");
    let other = server.client("shop");
    for i in 0..10 {
        create_ok(
            &server,
            &app,
            "store/product/updated",
            &format!("http://127.0.0.1:9/{i}"),
        )
        .await;
    }
    let body = server
        .gql(
            &app,
            &create("store/product/updated", "http://127.0.0.1:9/10"),
        )
        .await;
    assert_eq!(classification(&body), "ValidationError", "{body}");
    assert!(
        message(&body).contains("at most 10 webhooks per client and scope"),
        "{body}"
    );
    // Another scope, or another client, is not affected.
    create_ok(
        &server,
        &app,
        "store/product/created",
        "http://127.0.0.1:9/0",
    )
    .await;
    create_ok(
        &server,
        &other,
        "store/product/updated",
        "http://127.0.0.1:9/0",
    )
    .await;

    // One per client + scope + destination.
    let body = server
        .gql(
            &app,
            &create("store/product/created", "http://127.0.0.1:9/0"),
        )
        .await;
    assert_eq!(code(&body), "AlreadyExists", "{body}");
    assert_eq!(classification(&body), "ValidationError");

    // Moving a webhook onto a taken (scope, destination) is refused the same way.
    let hook = create_ok(&server, &app, "store/cart/created", "http://127.0.0.1:9/0").await;
    let body = server
        .gql(
            &app,
            &format!(
                r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{}", data: {{ scope: "store/product/created" }} }}) {{ webhook {{ id }} }} }} }}"#,
                hook["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(code(&body), "AlreadyExists", "{body}");
    let total = server
        .gql_ok(&app, "{ store { webhooks { totalCount } } }")
        .await;
    assert_eq!(total["store"]["webhooks"]["totalCount"], 12);
}

#[tokio::test]
async fn cursor_pagination() {
    let server = Server::start().await;
    let app = server.client("shop");
    let mut made = Vec::new();
    for i in 0..5 {
        let hook = create_ok(
            &server,
            &app,
            "store/order/created",
            &format!("http://127.0.0.1:9/{i}"),
        )
        .await;
        made.push(hook["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let body = server
            .gql_vars(
                &app,
                r#"query($after: String) { store { webhooks(first: 2, after: $after) { totalCount
                    pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { id } } } } }"#,
                json!({"after": after}),
            )
            .await;
        let conn = &body["data"]["store"]["webhooks"];
        assert_eq!(conn["totalCount"], 5, "{body}");
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], json!(pages > 0));
        for edge in conn["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if conn["pageInfo"]["hasNextPage"] == json!(false) {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made);
}

#[tokio::test]
async fn event_type_catalog() {
    let server = Server::start().await;
    let app = server.client("shop");
    let data = server.gql_ok(&app, "{ eventTypes }").await;
    let types: Vec<&str> = data["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for t in [
        "store/order/created",
        "store/category/updated",
        "ORDER_CONFIRMED",
        "REFUND_REQUESTED",
        "PACKAGE_DELIVERED",
    ] {
        assert!(types.contains(&t), "{t} missing");
    }
}
