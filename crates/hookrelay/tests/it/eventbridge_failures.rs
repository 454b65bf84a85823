//! EventBridge failures (docs/eventbridge.md): entries AWS refuses, throttling, AWS's own errors, events
//! too large for an entry, AWS refusing an event source. moto cannot be made to fail like
//! this, so here hookrelay's AWS endpoint (`AWS_ENDPOINT_URL`) is a scripted EventBridge: a
//! real HTTP server on 127.0.0.1 that speaks AWS's JSON 1.1 protocol, records every call
//! and answers as each test says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::hooks::deliveries;
use crate::common::receiver::{eventually, Received, Receiver, Reply};
use crate::common::*;
use serde_json::{json, Value};

/// An AWS JSON 1.1 answer.
fn aws_json(status: u16, body: Value) -> Reply {
    Reply::json(status, body).header("content-type", "application/x-amz-json-1.1")
}

fn aws_error(status: u16, code: &str, message: &str) -> Reply {
    aws_json(status, json!({"__type": code, "message": message}))
}

/// The operation of a call (`PutPartnerEvents`…), from `X-Amz-Target: AWSEvents.…`.
fn operation(r: &Received) -> String {
    r.header("x-amz-target")
        .and_then(|t| t.strip_prefix("AWSEvents."))
        .unwrap_or_default()
        .to_owned()
}

/// The `n` of each entry's event data in a `PutPartnerEvents` call.
fn entry_ns(r: &Received) -> Vec<i64> {
    r.json()["Entries"]
        .as_array()
        .expect("Entries")
        .iter()
        .map(|e| {
            let detail: Value =
                serde_json::from_str(e["Detail"].as_str().expect("Detail")).unwrap();
            detail["data"]["n"].as_i64().expect("data.n")
        })
        .collect()
}

fn puts(aws: &Receiver) -> Vec<Received> {
    aws.requests()
        .into_iter()
        .filter(|r| operation(r) == "PutPartnerEvents")
        .collect()
}

/// Answers `CreatePartnerEventSource` and `DeletePartnerEventSource` as AWS does, and
/// `PutPartnerEvents` entry by entry with `entry(call number, n)`: `None` accepts the
/// entry, `Some(code)` refuses it. Whole calls can be refused by `call` first.
fn scripted(
    call: impl Fn(usize) -> Option<Reply> + Send + 'static,
    entry: impl Fn(usize, i64) -> Option<&'static str> + Send + 'static,
) -> impl FnMut(usize, &Received) -> Reply + Send + 'static {
    let mut puts = 0;
    move |_, r| match operation(r).as_str() {
        "CreatePartnerEventSource" => {
            let name = r.json()["Name"].as_str().unwrap_or_default().to_owned();
            aws_json(
                200,
                json!({"EventSourceArn": format!("arn:aws:events:us-east-1::event-source/{name}")}),
            )
        }
        "DeletePartnerEventSource" => aws_json(200, json!({})),
        "PutPartnerEvents" => {
            let n = puts;
            puts += 1;
            if let Some(reply) = call(n) {
                return reply;
            }
            let results: Vec<Value> = entry_ns(r)
                .into_iter()
                .map(|i| match entry(n, i) {
                    None => json!({"EventId": format!("ev-{n}-{i}")}),
                    Some(code) => json!({"ErrorCode": code, "ErrorMessage": "scripted refusal"}),
                })
                .collect();
            let failed = results
                .iter()
                .filter(|r| r.get("ErrorCode").is_some())
                .count();
            aws_json(200, json!({"FailedEntryCount": failed, "Entries": results}))
        }
        other => aws_error(400, "UnknownOperationException", other),
    }
}

/// A server talking to `aws`, a store with an event source and a BigCommerce EventBridge
/// webhook for `store/order/created`.
async fn setup(aws: &Receiver, retry_schedule: &str) -> (Server, Token, String) {
    let options = crate::common::aws::server_options(
        &aws.url,
        &[
            "--retry-schedule",
            retry_schedule,
            "--eventbridge-batch-wait",
            "200ms",
        ],
    );
    let server = Server::start_with(options).await;
    let app = server.client("ebfail");
    let source = crate::common::aws::create_event_source(
        &server,
        &app,
        "111122223333",
        "orders",
        "US_EAST_1",
    )
    .await;
    let arn = source["arn"].as_str().unwrap();
    let id =
        crate::common::aws::eventbridge_webhook(&server, &app, "store/order/created", arn).await;
    (server, app, id)
}

/// Publishes events with `data.n` = each of `ns`, in one batch request.
async fn publish(server: &Server, ns: impl IntoIterator<Item = i64>) {
    let publisher = server.token("publisher", None);
    let events: Vec<Value> = ns
        .into_iter()
        .map(|n| json!({"store": "ebfail", "type": "store/order/created", "data": {"n": n}}))
        .collect();
    let (status, body) = server
        .post_json("/v1/events/batch", &publisher, &json!({ "events": events }))
        .await;
    assert_eq!(status, 202, "{body}");
}

async fn webhook_status(server: &Server, app: &Token, id: &str) -> Value {
    let data = server
        .gql_ok(
            app,
            r#"{ store { webhooks { edges { node { id status isActive } } } } }"#,
        )
        .await;
    data["store"]["webhooks"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .find(|n| n["id"] == id)
        .expect("webhook listed")
}

#[tokio::test]
async fn refused_entries_are_retried_alone_and_the_others_are_not_sent_again() {
    // Entries 2, 5 and 7 are refused the first time they are seen.
    let seen = Arc::new(Mutex::new(HashMap::<i64, usize>::new()));
    let counts = seen.clone();
    let aws = Receiver::start(scripted(
        |_| None,
        move |_, n| {
            let mut seen = counts.lock().unwrap();
            let times = seen.entry(n).or_insert(0);
            *times += 1;
            ([2, 5, 7].contains(&n) && *times == 1).then_some("InternalFailure")
        },
    ))
    .await;
    let (server, app, webhook) = setup(&aws, "1,1").await;
    publish(&server, 0..10).await;

    eventually(
        "every delivery to succeed",
        Duration::from_secs(20),
        || async {
            let log = deliveries(&server, &app, &webhook).await;
            (log.len() == 10 && log.iter().all(|d| d["status"] == "SUCCEEDED")).then_some(())
        },
    )
    .await;

    let calls = puts(&aws);
    let sent: Vec<Vec<i64>> = calls.iter().map(entry_ns).collect();
    assert_eq!(sent[0].len(), 10, "the ten events go in one call: {sent:?}");
    let mut retried: Vec<i64> = sent[1..].iter().flatten().copied().collect();
    retried.sort();
    assert_eq!(
        retried,
        vec![2, 5, 7],
        "only the refused entries again: {sent:?}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        (0..10)
            .map(|n| (n, if [2, 5, 7].contains(&n) { 2 } else { 1 }))
            .collect()
    );

    let log = deliveries(&server, &app, &webhook).await;
    let twice: Vec<&Value> = log.iter().filter(|d| d["attemptCount"] == 2).collect();
    assert_eq!(twice.len(), 3, "{log:?}");
    for d in twice {
        let first = &d["attempts"][0];
        assert_eq!(first["statusCode"], 200);
        assert_eq!(
            first["error"],
            "PutPartnerEvents entry refused: InternalFailure: scripted refusal"
        );
        assert!(d["attempts"][1]["error"].is_null());
    }
    // Accepted entries carry AWS's event id in the log.
    let once = log.iter().find(|d| d["attemptCount"] == 1).unwrap();
    assert!(
        once["attempts"][0]["responseBody"]
            .as_str()
            .unwrap()
            .contains("\"EventId\":\"ev-0-"),
        "{once}"
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    // Three throttled calls (the SDK's own attempts for our first try), then a 500 (the
    // SDK retries it at once), then success.
    let aws = Receiver::start(scripted(
        |n| match n {
            0..=2 => Some(aws_error(400, "ThrottlingException", "Rate exceeded")),
            3 => Some(aws_error(500, "InternalException", "try again")),
            _ => None,
        },
        |_, _| None,
    ))
    .await;
    let (server, app, webhook) = setup(&aws, "1,1").await;
    publish(&server, [1]).await;

    let delivery = eventually(
        "the delivery to succeed",
        Duration::from_secs(30),
        || async {
            let log = deliveries(&server, &app, &webhook).await;
            log.into_iter().find(|d| d["status"] == "SUCCEEDED")
        },
    )
    .await;
    assert_eq!(delivery["attemptCount"], 2, "{delivery}");
    let first = &delivery["attempts"][0];
    assert_eq!(first["statusCode"], 400);
    assert_eq!(
        first["error"],
        "PutPartnerEvents failed: ThrottlingException: Rate exceeded"
    );
    assert_eq!(
        puts(&aws).len(),
        5,
        "three throttled, one 500, one accepted"
    );
    assert_eq!(
        webhook_status(&server, &app, &webhook).await["status"],
        "ACTIVE"
    );
}

/// Waits until a delivery of `webhook` is FAILED.
async fn until_one_failed(server: &Server, app: &Token, webhook: &str) {
    eventually(
        "the refused delivery to fail",
        Duration::from_secs(20),
        || async {
            let log = deliveries(server, app, webhook).await;
            log.iter().any(|d| d["status"] == "FAILED").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_entry_refused_every_time_fails_and_deactivates_after_the_last_retry() {
    let aws = Receiver::start(scripted(
        |_| None,
        |_, n| (n == 13).then_some("InternalFailure"),
    ))
    .await;
    let (server, app, webhook) = setup(&aws, "1,1").await;
    publish(&server, [12, 13]).await;

    until_one_failed(&server, &app, &webhook).await;
    let log = deliveries(&server, &app, &webhook).await;
    let failed = log.iter().find(|d| d["status"] == "FAILED").unwrap();
    assert_eq!(failed["attemptCount"], 3, "the first try and two retries");
    assert!(log.iter().any(|d| d["status"] == "SUCCEEDED"));
    let status = webhook_status(&server, &app, &webhook).await;
    assert_eq!(status["status"], "DEACTIVATED");
    assert_eq!(status["isActive"], false);
    let sent: Vec<i64> = puts(&aws).iter().flat_map(entry_ns).collect();
    assert_eq!(sent.iter().filter(|&&n| n == 12).count(), 1, "{sent:?}");
    assert_eq!(sent.iter().filter(|&&n| n == 13).count(), 3, "{sent:?}");
}

/// An entry refused with a code that will not change (access denied) is not retried: the
/// delivery fails at its first attempt with AWS's reason, and the webhook stays active.
#[tokio::test]
async fn an_entry_refused_for_good_fails_at_once_and_deactivates_nothing() {
    let aws = Receiver::start(scripted(
        |_| None,
        |_, n| (n == 13).then_some("AccessDeniedException"),
    ))
    .await;
    let (server, app, webhook) = setup(&aws, "1,1").await;
    publish(&server, [12, 13]).await;

    until_one_failed(&server, &app, &webhook).await;
    // Longer than the whole retry schedule: nothing more is sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = deliveries(&server, &app, &webhook).await;
    let failed = log.iter().find(|d| d["status"] == "FAILED").unwrap();
    assert_eq!(failed["attemptCount"], 1, "not retried: {failed}");
    let error = failed["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("AccessDeniedException"), "{error}");
    assert!(log.iter().any(|d| d["status"] == "SUCCEEDED"));
    let status = webhook_status(&server, &app, &webhook).await;
    assert_eq!(status["status"], "ACTIVE");
    let sent: Vec<i64> = puts(&aws).iter().flat_map(entry_ns).collect();
    assert_eq!(sent.iter().filter(|&&n| n == 13).count(), 1, "{sent:?}");
}

#[tokio::test]
async fn an_event_too_large_for_an_entry_fails_at_once_with_the_reason() {
    let aws = Receiver::start(scripted(|_| None, |_, _| None)).await;
    let (server, app, webhook) = setup(&aws, "1,1").await;
    let publisher = server.token("publisher", None);
    // Within max_event_bytes (256 KiB of data), but not once wrapped in the webhook body.
    let big = "x".repeat(262_000);
    let (status, body) = server
        .post_json(
            "/v1/events",
            &publisher,
            &json!({"store": "ebfail", "type": "store/order/created", "data": {"n": 1, "blob": big}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    publish(&server, [2]).await;

    let failed = eventually(
        "the large event to fail",
        Duration::from_secs(20),
        || async {
            let log = deliveries(&server, &app, &webhook).await;
            let done = log
                .iter()
                .filter(|d| d["status"] != "PENDING" && d["status"] != "IN_FLIGHT")
                .count();
            (done == 2)
                .then(|| log.into_iter().find(|d| d["status"] == "FAILED"))
                .flatten()
        },
    )
    .await;
    let error = failed["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("event too large for EventBridge: the entry is ")
            && error.ends_with("bytes, the limit is 262144"),
        "{error}"
    );
    assert_eq!(failed["attemptCount"], 1, "not retried: it can never fit");
    let sent: Vec<i64> = puts(&aws).iter().flat_map(entry_ns).collect();
    assert_eq!(sent, vec![2], "the large event never went to AWS");
    assert_eq!(
        webhook_status(&server, &app, &webhook).await["status"],
        "ACTIVE"
    );
}

#[tokio::test]
async fn aws_refusing_an_event_source_is_an_upstream_error_and_nothing_is_stored() {
    let aws = Receiver::start(|_, r: &Received| match operation(r).as_str() {
        "CreatePartnerEventSource" => aws_error(
            400,
            "ValidationException",
            "Account 000000000000 is not a valid AWS account",
        ),
        "DeletePartnerEventSource" => aws_error(500, "InternalException", "try again later"),
        _ => aws_error(400, "UnknownOperationException", "no"),
    })
    .await;
    let server = Server::start_with(crate::common::aws::server_options(&aws.url, &[])).await;
    let app = server.client("ebrefuse");
    let body = server
        .gql(
            &app,
            r#"mutation { webhook { createEventSource(input: { awsAccount: "000000000000",
                eventSourceName: "nope", eventSourceRegion: US_WEST_2 }) { eventSource { id } } } }"#,
        )
        .await;
    let error = only_error(&body);
    assert_eq!(
        error["extensions"]["classification"], "UpstreamError",
        "{body}"
    );
    assert_eq!(error["extensions"]["code"], "ValidationException");
    assert_eq!(error["extensions"]["errorType"], "DependencyException");
    assert_eq!(error["extensions"]["errorCode"], 502);
    assert!(
        message(&body).contains("Account 000000000000 is not a valid AWS account"),
        "{body}"
    );
    let listed = server
        .gql_ok(&app, "{ store { eventSources { edges { node { id } } } } }")
        .await;
    assert_eq!(listed["store"]["eventSources"]["edges"], json!([]));

    // A Buy with Prime subscription is not stored either.
    let body = server
        .gql(
            &app,
            r#"mutation { createEventSubscription(input: { destination: { eventBridge: {
                partnerEventSource: { account: "000000000000", name: "nope" }, region: "us-west-2" } },
                eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
        )
        .await;
    assert_eq!(classification(&body), "UpstreamError", "{body}");
    let listed = server
        .gql_ok(
            &app,
            "{ eventSubscriptions { edges { node { subscriptionId } } } }",
        )
        .await;
    assert_eq!(listed["eventSubscriptions"]["edges"], json!([]));
    // The region and path of the call.
    let create = aws
        .requests()
        .into_iter()
        .find(|r| operation(r) == "CreatePartnerEventSource")
        .unwrap();
    assert_eq!(
        create.json(),
        json!({"Name": "aws.partner/hookrelay.example/ebrefuse/nope", "Account": "000000000000"})
    );
    assert!(
        create
            .header("authorization")
            .unwrap()
            .contains("/us-west-2/events/aws4_request"),
        "signed for the source's region"
    );
}

#[tokio::test]
async fn a_source_aws_will_not_delete_stays() {
    let aws = Receiver::start(scripted(|_| None, |_, _| None)).await;
    let (server, app, webhook) = setup(&aws, "1,1").await;
    server
        .gql_ok(
            &app,
            &format!(r#"mutation {{ webhook {{ deleteWebhook(id: "{webhook}") {{ id }} }} }}"#),
        )
        .await;
    aws.set_plan(|_, _| aws_error(500, "InternalException", "try again later"));
    let listed = server
        .gql_ok(&app, "{ store { eventSources { edges { node { id } } } } }")
        .await;
    let id = listed["store"]["eventSources"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = server
        .gql(
            &app,
            &format!(r#"mutation {{ webhook {{ deleteEventSource(id: "{id}") {{ id }} }} }}"#),
        )
        .await;
    assert_eq!(classification(&body), "UpstreamError", "{body}");
    assert_eq!(code(&body), "InternalException");
    let listed = server
        .gql_ok(&app, "{ store { eventSources { edges { node { id } } } } }")
        .await;
    assert_eq!(
        listed["store"]["eventSources"]["edges"][0]["node"]["id"],
        id
    );
}

/// AWS never reached: without credentials anywhere the error says so
/// (`CredentialsError`), an endpoint nothing listens on is a `ConnectionError`; either
/// way nothing is stored.
#[tokio::test]
async fn aws_out_of_reach_is_named_and_nothing_is_stored() {
    let create = r#"mutation { webhook { createEventSource(input: { awsAccount: "111122223333",
        eventSourceName: "orders", eventSourceRegion: US_EAST_1 }) { eventSource { id } } } }"#;
    let aws = Receiver::start(scripted(|_| None, |_, _| None)).await;
    let mut no_credentials = Options::default();
    no_credentials.envs.extend(
        crate::common::aws::aws_env(&aws.url)
            .into_iter()
            .map(|(k, v)| match k.as_str() {
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => (k, String::new()),
                _ => (k, v),
            }),
    );
    let server = Server::start_with(no_credentials).await;
    let app = server.client("ebreach");
    let body = server.gql(&app, create).await;
    assert_eq!(classification(&body), "UpstreamError", "{body}");
    assert_eq!(code(&body), "CredentialsError", "{body}");
    assert!(message(&body).contains("AWS_ACCESS_KEY_ID"), "{body}");
    assert_eq!(aws.count(), 0, "nothing unsigned went out");
    let listed = server
        .gql_ok(&app, "{ store { eventSources { edges { node { id } } } } }")
        .await;
    assert_eq!(listed["store"]["eventSources"]["edges"], json!([]));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start_with(crate::common::aws::server_options(
        &format!("http://127.0.0.1:{port}"),
        &[],
    ))
    .await;
    let app = server.client("ebreach");
    let body = server.gql(&app, create).await;
    assert_eq!(code(&body), "ConnectionError", "{body}");
    assert!(message(&body).contains("Connection refused"), "{body}");
}
