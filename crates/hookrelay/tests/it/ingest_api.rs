//! The ingest API and `hookrelay publish` through the real binary (docs/api.md, "Ingest").

use std::time::Duration;

use crate::common::hooks::{subscribe, WAIT};
use crate::common::receiver::Receiver;
use crate::common::Server;
use serde_json::{json, Value};

#[tokio::test]
async fn ingest_errors_have_their_status_and_code() {
    let mut options = crate::common::Options::default();
    options
        .args
        .extend(["--max-event-bytes".into(), "64".into()]);
    let server = Server::start_with(options).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let ok = json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {}});

    // No token, a bad token: the same 401.
    let no_token = server
        .http
        .post(format!("{}/v1/events", server.base))
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let bad = crate::common::Token {
        client_id: "x".into(),
        token: "hrat_nope".into(),
    };
    assert_eq!(server.post_json("/v1/events", &bad, &ok).await.0, 401);
    // A client token may not publish.
    let (status, body) = server.post_json("/v1/events", &client, &ok).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("AccessDenied"))
    );

    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"store": "shop", "type": "ORDER_CONFIRMED"}),
            400,
            "ValidationError",
        ),
        (
            json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {}, "extra": 1}),
            400,
            "ValidationError",
        ),
        (
            json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {}, "time": "noon"}),
            400,
            "ValidationError",
        ),
        (
            json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {"x": "a long string that makes data larger than 64 bytes of JSON"}}),
            413,
            "PayloadTooLarge",
        ),
        (
            json!({"store": "shop", "type": "NO_SUCH_TYPE", "data": {}}),
            422,
            "UnknownEventType",
        ),
        (
            json!({"store": "nostore", "type": "ORDER_CONFIRMED", "data": {}}),
            422,
            "UnknownStore",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = server.post_json("/v1/events", &publisher, &body).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Not JSON at all.
    let resp = server
        .http
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&publisher.token)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn the_default_limit_is_256_kib_of_data() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::ok().await;
    subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    // `{"x":"aaa…"}` whose JSON is `bytes` long.
    let event = |bytes: usize| {
        let data = json!({"x": "a".repeat(bytes - 8)});
        assert_eq!(data.to_string().len(), bytes);
        json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": data})
    };
    let (status, body) = server
        .post_json("/v1/events", &publisher, &event(256 * 1024 + 1))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("PayloadTooLarge")),
        "{body}"
    );
    let (status, body) = server
        .post_json("/v1/events", &publisher, &event(256 * 1024))
        .await;
    assert_eq!(status, 202, "exactly 256 KiB: {body}");
    let got = hook.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["eventId"], body["eventId"]);
}

#[tokio::test]
async fn idempotency_keys_deliver_once() {
    let server = Server::start().await;
    let client = server.client("shop");
    let admin = server.token("admin", None);
    let hook = Receiver::ok().await;
    subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    let event = json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {"n": 1}, "idempotencyKey": "order-1"});
    // An admin token may publish too.
    let (s1, first) = server.post_json("/v1/events", &admin, &event).await;
    let (s2, second) = server.post_json("/v1/events", &admin, &event).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first["eventId"], second["eventId"]);
    // The key is per store: another store's event with the same key is its own.
    server.client("other");
    let elsewhere = json!({"store": "other", "type": "ORDER_CONFIRMED", "data": {"n": 1}, "idempotencyKey": "order-1"});
    let (s3, third) = server.post_json("/v1/events", &admin, &elsewhere).await;
    assert_eq!(s3, 202, "{third}");
    assert!(third["eventId"].is_string() && third["eventId"] != first["eventId"]);
    hook.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(hook.count(), 1);
}

#[tokio::test]
async fn batches_answer_in_order_and_deliver_the_good_ones() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::ok().await;
    subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    let batch = json!({"events": [
        {"store": "shop", "type": "ORDER_CONFIRMED", "data": {"n": 1}},
        {"store": "shop", "type": "NOPE", "data": {}},
        {"store": "shop", "type": "ORDER_CONFIRMED", "data": {"n": 2}, "idempotencyKey": "k"},
        {"store": "shop", "type": "ORDER_CONFIRMED", "data": {"n": 3}, "idempotencyKey": "k"},
        {"store": "ghost", "type": "ORDER_CONFIRMED", "data": {}},
    ]});
    let (status, body) = server
        .post_json("/v1/events/batch", &publisher, &batch)
        .await;
    assert_eq!(status, 202, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert!(results[0]["eventId"].is_string());
    assert_eq!(results[1]["error"]["code"], "UnknownEventType");
    assert_eq!(
        results[2]["eventId"], results[3]["eventId"],
        "same key, same event"
    );
    assert_eq!(results[4]["error"]["code"], "UnknownStore");
    let got = hook.wait_for(2, WAIT).await;
    let mut ns: Vec<i64> = got
        .iter()
        .map(|r| r.json()["data"]["n"].as_i64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, vec![1, 2]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.count(), 2);

    let (status, _) = server
        .post_json("/v1/events/batch", &publisher, &json!({"events": []}))
        .await;
    assert_eq!(status, 400);
    // Up to 1000 events (of a type nobody here subscribes to).
    let event = json!({"store": "shop", "type": "store/product/created", "data": {}});
    let (status, body) = server
        .post_json(
            "/v1/events/batch",
            &publisher,
            &json!({"events": vec![event.clone(); 1000]}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1000));
    let (status, body) = server
        .post_json(
            "/v1/events/batch",
            &publisher,
            &json!({"events": vec![event; 1001]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("ValidationError")),
        "{body}"
    );
}

#[tokio::test]
async fn resources_and_time_reach_the_payload() {
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::ok().await;
    subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    let (status, _) = server
        .post_json(
            "/v1/events",
            &publisher,
            &json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {}, "resources": ["orders/1"], "time": "2024-05-06T07:08:09Z"}),
        )
        .await;
    assert_eq!(status, 202);
    let body = hook.wait_for(1, WAIT).await[0].json();
    assert_eq!(body["resources"], json!(["orders/1"]));
    assert_eq!(body["eventTime"], "2024-05-06T07:08:09.000Z");
}

#[tokio::test]
async fn publish_command_is_delivered_by_the_running_server() {
    let server = Server::start().await;
    let client = server.client("shop");
    let hook = Receiver::ok().await;
    subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    let out = server.cli(&[
        "publish",
        "--store",
        "shop",
        "--type",
        "ORDER_CONFIRMED",
        "--data",
        r#"{"from": "cli"}"#,
        "--resource",
        "orders/9",
    ]);
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["deliveries"], 1);
    let body = hook.wait_for(1, WAIT).await[0].json();
    assert_eq!(body["eventId"], printed["eventId"]);
    assert_eq!(body["data"]["from"], "cli");
    assert_eq!(body["resources"], json!(["orders/9"]));

    let err = server.cli_fails(&[
        "publish", "--store", "shop", "--type", "NOPE", "--data", "{}",
    ]);
    assert!(err.contains("unknown event type"), "{err}");
}
