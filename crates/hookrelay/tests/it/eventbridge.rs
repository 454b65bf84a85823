//! Amazon EventBridge end to end (docs/eventbridge.md), against a real AWS API emulator (moto_server):
//! hookrelay makes partner event sources and puts events; the AWS customer's side (event
//! bus, rule, SQS target) is done with the AWS SDK as a separate client, and the events are
//! read back from SQS.
//!
//! moto 5 quirks worked around here, never relied on by hookrelay: `PutPartnerEvents` puts
//! the events on the default bus of the source's account, where the rules go (see
//! `Customer::route_source_to_queue`); the ARN moto answers for a partner source repeats
//! the `aws.partner/` prefix; `PutEvents` only reaches buses of the caller's own account;
//! its SQS messages leave out `account`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::aws::{self, Customer};
use crate::common::hooks::{deliveries, metrics, series};
use crate::common::*;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const PARTNER: &str = "hookrelay.example";

fn sha1_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A name no other test (or earlier run against the same emulator) uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", aws::fresh_account())
}

/// A store hash no earlier run against the same emulator used: partner event source names
/// contain it.
fn unique_store(prefix: &str) -> String {
    format!("{prefix}{}", aws::fresh_account())
}

/// The guide's flow: createEventSource (its request as written), the customer's event bus,
/// rule and SQS target, createEventBridgeWebhook (its request with the missing brace
/// added), an event, and the message in SQS.
#[tokio::test]
async fn the_bigcommerce_guide_flow_reaches_sqs_through_a_partner_event_source() {
    let endpoint = aws::endpoint();
    let server = Server::start_with(aws::server_options(&endpoint, &[])).await;
    let store = &unique_store("ebseed");
    let app = server.client(store);
    let customer = Customer::new(&endpoint).await;
    let graphql = format!("/stores/{store}/graphql");

    // 1. The event source, with the guide's variables: only the account and the app's
    // client id are this test's own.
    let mut variables: Value =
        serde_json::from_str(&fixture("bc_create_event_source.variables.json")).unwrap();
    variables["input"]["awsAccount"] = json!(customer.account);
    variables["input"]["clientId"] = json!(app.client_id);
    let (status, body) = server
        .gql_at(
            &graphql,
            &app,
            &fixture("bc_create_event_source.graphql"),
            variables,
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    let source = &body["data"]["webhook"]["createEventSource"]["eventSource"];
    assert_eq!(source["awsAccount"], customer.account.as_str());
    assert_eq!(source["eventSourceName"], "final-test-1");
    assert_eq!(source["eventSourceRegion"], "US_EAST_1");
    assert!(source["id"].as_str().unwrap().starts_with("es_"), "{body}");
    let source_name = format!("aws.partner/{PARTNER}/{store}/final-test-1");
    let arn = source["arn"].as_str().expect("arn").to_owned();
    assert!(
        arn.starts_with("arn:aws:events:us-east-1::event-source/") && arn.ends_with(&source_name),
        "the ARN AWS answered: {arn}"
    );
    // AWS knows the source, in the customer's account.
    assert_eq!(
        customer.event_source_state(&source_name).await.as_deref(),
        Some("ACTIVE")
    );

    // 2. The AWS customer associates an event bus with the source, and routes BigCommerce
    // webhooks to an SQS queue.
    let queue = customer
        .route_source_to_queue(
            &source_name,
            r#"{"detail-type":["bigCommerceWebhook"]}"#,
            "bigcommerce-events",
        )
        .await;

    // 3. The EventBridge webhook, as the guide writes it.
    let query = format!("{}}}\n", fixture("bc_create_eventbridge_webhook.graphql"));
    let mut variables: Value =
        serde_json::from_str(&fixture("bc_create_eventbridge_webhook.variables.json")).unwrap();
    variables["input"]["destination"] = json!(arn);
    let (_, body) = server.gql_at(&graphql, &app, &query, variables).await;
    assert!(body.get("errors").is_none(), "{body}");
    let webhook = &body["data"]["webhook"]["createEventBridgeWebhook"]["webhook"];
    assert_eq!(webhook["scope"], "store/category/updated");
    assert_eq!(webhook["destination"], arn.as_str());
    assert_eq!(webhook["isActive"], true);
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();

    // 4. The platform publishes the event, and one it was not subscribed to.
    let publisher = server.token("publisher", None);
    let data = json!({"type": "category", "id": 42});
    let (status, accepted) = server
        .post_json(
            "/v1/events",
            &publisher,
            &json!({"store": store, "type": "store/category/updated", "data": data,
                    "resources": ["categories/42"]}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    server
        .publish(
            &publisher,
            store,
            "store/category/created",
            json!({"id": 7}),
        )
        .await;

    // 5. The message in SQS: EventBridge's envelope around the webhook body.
    let messages = customer.receive(&queue, 1).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(m["detail-type"], "bigCommerceWebhook");
    assert_eq!(m["source"], source_name.as_str());
    // (moto leaves `account` out of the envelope; the queue is the customer account's.)
    assert_eq!(m["region"], "us-east-1");
    assert_eq!(m["resources"], json!(["categories/42"]));
    let detail = &m["detail"];
    assert_eq!(detail["scope"], "store/category/updated");
    assert_eq!(detail["store_id"], store.as_str());
    assert_eq!(detail["producer"], format!("stores/{store}"));
    assert_eq!(detail["data"], data);
    assert_eq!(detail["hash"], sha1_hex(&data.to_string()));
    let created_at = detail["created_at"].as_i64().expect("created_at");
    assert!((created_at - unix_now()).abs() < 120, "{detail}");
    // The envelope's time is the event's.
    let time = m["time"].as_str().expect("time");
    assert!(
        (unix_of(time) - created_at).abs() <= 1,
        "{time} vs {created_at}"
    );
    assert!(
        customer
            .receive_for(&queue, Duration::from_secs(1))
            .await
            .is_empty(),
        "one event, one message"
    );

    // The delivery log tells the same story.
    let log = deliveries(&server, &app, &webhook_id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "SUCCEEDED");
    assert_eq!(log[0]["attempts"][0]["statusCode"], 200);
    assert!(log[0]["attempts"][0]["error"].is_null());

    // The source is listed, and cannot go while the webhook uses it.
    let listed = server
        .gql_ok(
            &app,
            "{ store { eventSources { edges { node { id arn eventSourceName partnerEventSourceName eventSourceRegion } } } } }",
        )
        .await;
    let edges = &listed["store"]["eventSources"]["edges"];
    assert_eq!(edges.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(edges[0]["node"]["arn"], arn.as_str());
    assert_eq!(
        edges[0]["node"]["partnerEventSourceName"],
        source_name.as_str()
    );
    let source_id = edges[0]["node"]["id"].as_str().unwrap().to_owned();
    let delete_source =
        format!(r#"mutation {{ webhook {{ deleteEventSource(id: "{source_id}") {{ id }} }} }}"#);
    let refused = server.gql(&app, &delete_source).await;
    assert_eq!(code(&refused), "EventSourceInUse", "{refused}");
    assert!(message(&refused).contains(&webhook_id), "{refused}");
    assert_eq!(
        customer.event_source_state(&source_name).await.as_deref(),
        Some("ACTIVE")
    );

    server
        .gql_ok(
            &app,
            &format!(r#"mutation {{ webhook {{ deleteWebhook(id: "{webhook_id}") {{ id }} }} }}"#),
        )
        .await;
    let deleted = server.gql_ok(&app, &delete_source).await;
    assert_eq!(deleted["webhook"]["deleteEventSource"]["id"], source_id);
    assert_eq!(
        customer.event_source_state(&source_name).await.as_deref(),
        Some("DELETED")
    );
    let listed = server
        .gql_ok(&app, "{ store { eventSources { edges { node { id } } } } }")
        .await;
    assert_eq!(listed["store"]["eventSources"]["edges"], json!([]));
}

/// The Buy with Prime way: `createEventSubscription` with an `eventBridge` destination
/// makes the partner event source itself; the `DetailType` is the event type.
#[tokio::test]
async fn a_buy_with_prime_eventbridge_subscription_makes_its_source_and_delivers() {
    let endpoint = aws::endpoint();
    let server = Server::start_with(aws::server_options(&endpoint, &[])).await;
    let store = &unique_store("ebbwp");
    let app = server.client(store);
    let customer = Customer::new(&endpoint).await;

    let create = |name: &str, region: &str, event_type: &str| {
        format!(
            r#"mutation {{ createEventSubscription(input: {{
                destination: {{ eventBridge: {{ partnerEventSource: {{ account: "{}", name: "{name}" }}, region: "{region}" }} }},
                eventType: "{event_type}" }}) {{ subscriptionId }} }}"#,
            customer.account
        )
    };
    let created = server
        .gql_ok(&app, &create("Orders-Feed", "us-east-1", "ORDER_CONFIRMED"))
        .await;
    let subscription_id = created["createEventSubscription"]["subscriptionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let source_name = format!("aws.partner/{PARTNER}/{store}/orders-feed");

    let shown = server
        .gql_ok(
            &app,
            &format!(
                r#"{{ eventSubscription(subscriptionId: "{subscription_id}") {{ status eventSubscriptionDetails {{
                    eventType destination {{ __typename ... on EventBridgeData {{ arn region partnerEventSourceName }} }} }} }} }}"#
            ),
        )
        .await;
    let details = &shown["eventSubscription"]["eventSubscriptionDetails"];
    assert_eq!(details["eventType"], "ORDER_CONFIRMED");
    assert_eq!(details["destination"]["__typename"], "EventBridgeData");
    assert_eq!(details["destination"]["region"], "us-east-1");
    assert_eq!(
        details["destination"]["partnerEventSourceName"],
        source_name.as_str()
    );
    assert!(details["destination"]["arn"]
        .as_str()
        .unwrap()
        .ends_with(&source_name));
    assert_eq!(
        customer.event_source_state(&source_name).await.as_deref(),
        Some("ACTIVE")
    );
    // Buy with Prime sources belong to their subscription; they are not BigCommerce's.
    let listed = server
        .gql_ok(&app, "{ store { eventSources { edges { node { id } } } } }")
        .await;
    assert_eq!(listed["store"]["eventSources"]["edges"], json!([]));

    let queue = customer
        .route_source_to_queue(
            &source_name,
            r#"{"detail-type":["ORDER_CONFIRMED"]}"#,
            "prime-orders",
        )
        .await;

    let publisher = server.token("publisher", None);
    let data = json!({"orderId": "o-1", "total": 12.5});
    let (status, body) = server
        .post_json(
            "/v1/events",
            &publisher,
            &json!({"store": store, "type": "ORDER_CONFIRMED", "data": data, "resources": ["orders/o-1"]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let event_id = body["eventId"].as_str().unwrap().to_owned();

    let messages = customer.receive(&queue, 1).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(m["detail-type"], "ORDER_CONFIRMED");
    assert_eq!(m["source"], source_name.as_str());
    assert_eq!(m["resources"], json!(["orders/o-1"]));
    let detail = &m["detail"];
    assert_eq!(detail["eventDescriptor"], "ORDER_CONFIRMED");
    assert_eq!(detail["eventId"], event_id.as_str());
    assert_eq!(detail["subscriptionId"], subscription_id.as_str());
    assert_eq!(detail["data"], data);
    assert_eq!(detail["resources"], json!(["orders/o-1"]));
    let log = deliveries(&server, &app, &subscription_id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        detail["idempotencyKey"], log[0]["id"],
        "the idempotency key is the delivery's id"
    );

    // The name is taken now; bad input is refused before AWS is asked.
    let again = server
        .gql(&app, &create("orders-feed", "us-east-1", "ITEM_CANCELLED"))
        .await;
    assert_eq!(code(&again), "DestinationNameAlreadyExists", "{again}");
    let bad_region = server
        .gql(&app, &create("other", "us-middle-1", "ORDER_CONFIRMED"))
        .await;
    assert_eq!(classification(&bad_region), "ValidationError");
    assert!(
        message(&bad_region)
            .contains("/createEventSubscription/input/destination/eventBridge/region"),
        "{bad_region}"
    );
    let bad_account = server
        .gql(
            &app,
            r#"mutation { createEventSubscription(input: { destination: { eventBridge: {
                partnerEventSource: { account: "1234", name: "x" }, region: "us-east-1" } },
                eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
        )
        .await;
    assert!(
        message(&bad_account).contains("partnerEventSource/account must be a 12-digit"),
        "{bad_account}"
    );

    // Deleting the subscription deletes its source at AWS, and frees the name.
    server
        .gql_ok(
            &app,
            &format!(
                r#"mutation {{ deleteEventSubscription(subscriptionId: "{subscription_id}") {{ subscriptionId }} }}"#
            ),
        )
        .await;
    assert_eq!(
        customer.event_source_state(&source_name).await.as_deref(),
        Some("DELETED")
    );
    let third = server
        .gql_ok(&app, &create("orders-feed", "us-east-1", "ORDER_CONFIRMED"))
        .await;
    assert!(third["createEventSubscription"]["subscriptionId"].is_string());
}

/// Many events to a partner event source go out in few `PutPartnerEvents` calls of up to
/// 20 entries, each event exactly once.
#[tokio::test]
async fn partner_events_go_out_in_batches_of_up_to_twenty() {
    let endpoint = aws::endpoint();
    let server = Server::start_with(aws::server_options(&endpoint, &[])).await;
    let store = &unique_store("ebbatch");
    let app = server.client(store);
    let customer = Customer::new(&endpoint).await;
    let source =
        aws::create_event_source(&server, &app, &customer.account, "bulk", "US_EAST_1").await;
    let arn = source["arn"].as_str().unwrap();
    aws::eventbridge_webhook(&server, &app, "store/order/*", arn).await;
    let queue = customer
        .route_source_to_queue(
            source["partnerEventSourceName"].as_str().unwrap(),
            r#"{"detail-type":["bigCommerceWebhook"]}"#,
            "bulk",
        )
        .await;

    // 200 events, one request each, from 8 publishers at once.
    let publisher = server.token("publisher", None);
    let total = 200;
    let mut tasks = Vec::new();
    for p in 0..8 {
        let (base, http, token) = (
            server.base.clone(),
            server.http.clone(),
            publisher.token.clone(),
        );
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (p..total).step_by(8) {
                let resp = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&token)
                    .json(&json!({"store": store, "type": "store/order/created", "data": {"n": i}}))
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(resp.status(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let messages = customer.receive(&queue, total).await;
    let seen: BTreeSet<i64> = messages
        .iter()
        .map(|m| m["detail"]["data"]["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(messages.len(), total, "each event exactly once");
    assert_eq!(seen, (0..total as i64).collect());

    let text = metrics(&server).await;
    let calls = series(
        &text,
        r#"hookrelay_destination_requests_total{kind="eventbridge",result="succeeded"}"#,
    );
    let accepted = series(
        &text,
        r#"hookrelay_destination_messages_total{kind="eventbridge",result="accepted"}"#,
    );
    assert_eq!(accepted, total as f64, "{text}");
    assert!(
        calls >= (total / 20) as f64 && calls <= (total / 5) as f64,
        "{total} events took {calls} PutPartnerEvents calls"
    );
    println!("{total} events → {calls} PutPartnerEvents calls");
}

/// An event bus ARN as the destination (operators who are not registered SaaS partners):
/// `PutEvents` in batches of up to 10, `Source` = `hookrelay.{store}`.
#[tokio::test]
async fn an_event_bus_destination_gets_put_events_in_batches_of_ten() {
    let endpoint = aws::endpoint();
    let server = Server::start_with(aws::server_options(&endpoint, &[])).await;
    let store = &unique_store("ebbus");
    let app = server.client(store);
    let customer = Customer::default_account(&endpoint).await;
    let bus = unique("orders");
    let bus_arn = customer
        .events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("CreateEventBus")
        .event_bus_arn()
        .expect("bus arn")
        .to_owned();
    let queue = customer.queue(&unique("bus-queue")).await;
    customer
        .route(
            &bus,
            "from-hookrelay",
            &format!(r#"{{"source":["hookrelay.{store}"]}}"#),
            &queue,
        )
        .await;

    aws::eventbridge_webhook(&server, &app, "store/product/updated", &bus_arn).await;

    // One batch request of 95 events.
    let publisher = server.token("publisher", None);
    let events: Vec<Value> = (0..95)
        .map(|i| json!({"store": store, "type": "store/product/updated", "data": {"n": i}}))
        .collect();
    let (status, body) = server
        .post_json("/v1/events/batch", &publisher, &json!({ "events": events }))
        .await;
    assert_eq!(status, 202, "{body}");

    let messages = customer.receive(&queue, 95).await;
    assert_eq!(messages.len(), 95);
    let seen: BTreeSet<i64> = messages
        .iter()
        .map(|m| m["detail"]["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(seen.len(), 95);
    assert_eq!(messages[0]["source"], format!("hookrelay.{store}"));
    assert_eq!(messages[0]["detail-type"], "bigCommerceWebhook");

    let text = metrics(&server).await;
    let calls = series(
        &text,
        r#"hookrelay_destination_requests_total{kind="eventbridge",result="succeeded"}"#,
    );
    assert!(
        (10.0..=20.0).contains(&calls),
        "95 events took {calls} PutEvents calls"
    );

    // A Buy with Prime subscription may name a bus too.
    let sub = server
        .gql_ok(
            &app,
            &format!(
                r#"mutation {{ createEventSubscription(input: {{ destination: {{ eventBridge: {{
                    eventBusArn: "{bus_arn}" }} }}, eventType: "ITEM_CANCELLED" }}) {{ subscriptionId }} }}"#
            ),
        )
        .await;
    assert!(sub["createEventSubscription"]["subscriptionId"].is_string());
}

/// Destinations that are neither an event source of the store nor an event bus are
/// refused, with the field and the reason.
#[tokio::test]
async fn eventbridge_destinations_are_checked() {
    let endpoint = aws::endpoint();
    let server = Server::start_with(aws::server_options(&endpoint, &[])).await;
    let (mine, theirs_store) = (unique_store("ebcheck"), unique_store("ebother"));
    let app = server.client(&mine);
    let other = server.client(&theirs_store);
    let customer = Customer::new(&endpoint).await;
    // Another store's event source.
    let their_source =
        &aws::create_event_source(&server, &other, &customer.account, "theirs", "EU_WEST_1").await;
    assert_eq!(their_source["eventSourceRegion"], "EU_WEST_1");
    let their_arn = their_source["arn"].as_str().unwrap();
    assert!(
        their_arn.starts_with("arn:aws:events:eu-west-1:"),
        "{their_arn}"
    );

    for (destination, says) in [
        (their_arn, "is not the ARN of an event source of this store"),
        ("arn:aws:events:us-east-1:123:event-bus/x", "12 digits"),
        (
            "arn:aws:events:mars-1:123456789012:event-bus/x",
            "not an AWS region",
        ),
        (
            "https://example.com/hook",
            "must be the ARN of one of this store's event sources",
        ),
    ] {
        let body = server
            .gql(
                &app,
                &format!(
                    r#"mutation {{ webhook {{ createEventBridgeWebhook(input: {{ scope: "store/order/created",
                        destination: "{destination}" }}) {{ webhook {{ id }} }} }} }}"#
                ),
            )
            .await;
        assert_eq!(classification(&body), "ValidationError", "{body}");
        let text = message(&body);
        assert!(
            text.contains("/webhook/createEventBridgeWebhook/input/destination")
                && text.contains(says),
            "{destination}: {text}"
        );
    }

    // Another store's source is invisible: deleting it is AccessDenied.
    let listed = server
        .gql_ok(
            &other,
            "{ store { eventSources { edges { node { id } } } } }",
        )
        .await;
    let their_id = listed["store"]["eventSources"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = server
        .gql(
            &app,
            &format!(
                r#"mutation {{ webhook {{ deleteEventSource(id: "{their_id}") {{ id }} }} }}"#
            ),
        )
        .await;
    assert_eq!(classification(&denied), "AccessDeniedError", "{denied}");
    // The same name again in the other store is taken.
    let again = server
        .gql(
            &other,
            &format!(
                r#"mutation {{ webhook {{ createEventSource(input: {{ awsAccount: "{}",
                    eventSourceName: "THEIRS", eventSourceRegion: EU_WEST_1 }}) {{ eventSource {{ arn }} }} }} }}"#,
                customer.account
            ),
        )
        .await;
    assert_eq!(code(&again), "AlreadyExists", "{again}");
}
