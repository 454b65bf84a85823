//! Amazon SNS destinations end to end, against the AWS API emulator (moto_server):
//! `createEventSubscription` with an `sns` destination, a topic in the emulator's default
//! account (hookrelay's credentials) with an SQS queue subscribed with raw message
//! delivery, and the messages read back from the queue with their attributes.
//!
//! What moto 5.2.5 does here: `PublishBatch` with message attributes, which raw delivery
//! hands on as SQS message attributes; FIFO topics (`FifoTopic`), whose `MessageGroupId`
//! and `MessageDeduplicationId` reach a subscribed FIFO queue (moto's SNS does not
//! deduplicate by itself; the FIFO queue does). A topic that does not exist is `NotFound`
//! (`Topic does not exist`), as AWS answers.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::aws::{self, Customer};
use crate::common::hooks::deliveries;
use crate::common::receiver::eventually;
use crate::common::*;
use crate::sqs::{
    all_succeeded, check_message, logged_message_id, nothing_more_and_batched, publish_batch,
    unique,
};
use serde_json::json;

fn sns_destination(topic_arn: &str) -> String {
    format!(r#"{{ sns: {{ topicArn: "{topic_arn}" }} }}"#)
}

/// A topic with a queue subscribed: the subscription shows as `SnsData`; each event is
/// one message whose body is the subscription's JSON and whose attributes name the event
/// type and the delivery; the log keeps the message id SNS answered; the messages went in
/// batches.
#[tokio::test]
async fn events_reach_a_queue_subscribed_to_the_topic_with_their_attributes() {
    let endpoint = aws::endpoint();
    let server = Server::start_with(aws::server_options(&endpoint, &[])).await;
    let store = "snsshop";
    let app = server.client(store);
    let customer = Customer::default_account(&endpoint).await;
    let topic = customer.topic(&unique("orders")).await;
    let queue = customer.queue(&unique("orders-sub")).await;
    customer.subscribe_queue(&topic, &queue).await;

    let subscription =
        aws::subscribe(&server, &app, "ORDER_CONFIRMED", &sns_destination(&topic)).await;
    let shown = aws::event_subscription(&server, &app, &subscription).await;
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert_eq!(
        shown["eventSubscriptionDetails"]["destination"],
        json!({"__typename": "SnsData", "topicArn": topic})
    );

    let total = 15;
    let events = publish_batch(&server, store, "ORDER_CONFIRMED", total).await;
    publish_batch(&server, store, "ITEM_CANCELLED", 1).await;
    let log = all_succeeded(&server, &app, &subscription, total, Duration::from_secs(20)).await;

    let messages = customer.receive_messages(&queue, total).await;
    assert_eq!(messages.len(), total, "{messages:?}");
    let mut seen = BTreeSet::new();
    for m in &messages {
        let event_id = check_message(m, &subscription, "ORDER_CONFIRMED", &events, &log);
        assert!(seen.insert(event_id.clone()), "{event_id} arrived twice");
        // Raw delivery: the body is the message as published, not SNS's envelope.
        assert!(m.body.get("TopicArn").is_none(), "{m:?}");
    }
    assert_eq!(seen, events.iter().cloned().collect());
    let message_ids: BTreeSet<String> = log.values().map(logged_message_id).collect();
    assert_eq!(message_ids.len(), total, "one SNS message id each: {log:?}");
    nothing_more_and_batched(&server, &customer, &queue, "sns", total, 2.0).await;
}

/// A topic that does not exist: SNS answers `NotFound`; the delivery fails at its first
/// attempt with the reason, is not retried, and the subscription stays active. A topic
/// ARN that cannot be one is refused with the field's path.
#[tokio::test]
async fn a_topic_that_does_not_exist_fails_the_delivery_at_once() {
    let endpoint = aws::endpoint();
    let server =
        Server::start_with(aws::server_options(&endpoint, &["--retry-schedule", "1,1"])).await;
    let store = "nosnsshop";
    let app = server.client(store);
    let topic = format!(
        "arn:aws:sns:us-east-1:{}:{}",
        aws::DEFAULT_ACCOUNT,
        unique("missing")
    );
    let subscription =
        aws::subscribe(&server, &app, "ORDER_CONFIRMED", &sns_destination(&topic)).await;
    publish_batch(&server, store, "ORDER_CONFIRMED", 1).await;

    eventually("a FAILED delivery", Duration::from_secs(20), || async {
        deliveries(&server, &app, &subscription)
            .await
            .into_iter()
            .find(|d| d["status"] == "FAILED")
    })
    .await;
    // Had it been retried, the 1 s schedule would have made more attempts by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = deliveries(&server, &app, &subscription).await;
    assert_eq!(log.len(), 1);
    let delivery = &log[0];
    assert_eq!(delivery["status"], "FAILED", "{delivery}");
    assert_eq!(delivery["attemptCount"], 1, "not retried: {delivery}");
    let attempt = &delivery["attempts"][0];
    let error = attempt["error"].as_str().expect("error");
    println!("the attempt's error: {error}");
    assert!(
        error.contains("NotFound") && error.contains("Topic does not exist"),
        "the error gives AWS's code and reason: {error}"
    );
    assert!(
        error.contains(&format!("PublishBatch to {topic} failed")),
        "the error names the call and the topic: {error}"
    );
    assert_eq!(attempt["statusCode"], 404, "{delivery}");
    let shown = aws::event_subscription(&server, &app, &subscription).await;
    assert_eq!(shown["status"], "ACTIVE", "{shown}");

    // Bad ARNs never become subscriptions.
    let list = "{ eventSubscriptions { edges { node { subscriptionId } } } }";
    let before = server.gql_ok(&app, list).await;
    for arn in [
        "arn:aws:sqs:us-east-1:123456789012:orders",
        "arn:aws:sns:mars-1:123456789012:orders",
        "arn:aws:sns:us-east-1:1234:orders",
        "arn:aws:sns:us-east-1:123456789012:bad name",
        "orders",
    ] {
        let body = server
            .gql(
                &app,
                &format!(
                    r#"mutation {{ createEventSubscription(input: {{ eventType: "ORDER_CONFIRMED",
                        destination: {} }}) {{ subscriptionId }} }}"#,
                    sns_destination(arn)
                ),
            )
            .await;
        assert_eq!(classification(&body), "ValidationError", "{arn}: {body}");
        assert!(
            message(&body).contains(
                "/createEventSubscription/input/destination/sns/topicArn must be an SNS topic ARN"
            ),
            "{arn}: {body}"
        );
    }
    assert_eq!(server.gql_ok(&app, list).await, before);
}

/// A FIFO topic with a FIFO queue subscribed: each message's group is
/// `{store}:{eventType}` and its deduplication id the delivery id, as the queue's system
/// attributes tell.
#[tokio::test]
async fn a_fifo_topic_passes_group_and_deduplication_ids_to_a_fifo_queue() {
    let endpoint = aws::endpoint();
    let server = Server::start_with(aws::server_options(&endpoint, &[])).await;
    let store = "snsfifo";
    let app = server.client(store);
    let customer = Customer::default_account(&endpoint).await;
    let topic = customer.topic(&format!("{}.fifo", unique("orders"))).await;
    let queue = customer
        .fifo_queue(&format!("{}.fifo", unique("orders-sub")))
        .await;
    customer.subscribe_queue(&topic, &queue).await;
    let subscription =
        aws::subscribe(&server, &app, "ORDER_CONFIRMED", &sns_destination(&topic)).await;

    let total = 12;
    let events = publish_batch(&server, store, "ORDER_CONFIRMED", total).await;
    let log = all_succeeded(&server, &app, &subscription, total, Duration::from_secs(20)).await;
    let messages = customer.receive_messages(&queue, total).await;
    assert_eq!(messages.len(), total, "{messages:?}");
    let mut seen = BTreeSet::new();
    for m in &messages {
        seen.insert(check_message(
            m,
            &subscription,
            "ORDER_CONFIRMED",
            &events,
            &log,
        ));
        assert_eq!(
            m.system("MessageGroupId"),
            Some(format!("{store}:ORDER_CONFIRMED").as_str()),
            "{m:?}"
        );
        assert_eq!(
            m.system("MessageDeduplicationId"),
            m.attribute("webhook-id"),
            "the deduplication id is the delivery id: {m:?}"
        );
    }
    assert_eq!(seen.len(), total);
}
