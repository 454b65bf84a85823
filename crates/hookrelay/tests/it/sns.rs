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

use crate::common::aws;
use crate::common::brokers::refused_subscription;
use crate::sqs::{check_fifo_ids, logged_message_id, nothing_more_and_batched, unique, AwsTest};
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
    let t = AwsTest::start("snsshop", &[]).await;
    let topic = t.customer.topic(&unique("orders")).await;
    let queue = t.customer.queue(&unique("orders-sub")).await;
    t.customer.subscribe_queue(&topic, &queue).await;

    let subscription = t
        .subscribe("ORDER_CONFIRMED", &sns_destination(&topic))
        .await;
    let shown = aws::event_subscription(&t.server, &t.app, &subscription).await;
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert_eq!(
        shown["eventSubscriptionDetails"]["destination"],
        json!({"__typename": "SnsData", "topicArn": topic})
    );

    let total = 15;
    t.publish("ITEM_CANCELLED", 1).await;
    let (messages, log) = t
        .deliver_each_once(&queue, &subscription, "ORDER_CONFIRMED", total)
        .await;
    for m in &messages {
        // Raw delivery: the body is the message as published, not SNS's envelope.
        assert!(m.body.get("TopicArn").is_none(), "{m:?}");
    }
    let message_ids: BTreeSet<String> = log.values().map(logged_message_id).collect();
    assert_eq!(message_ids.len(), total, "one SNS message id each: {log:?}");
    nothing_more_and_batched(&t, &queue, "sns", total, 2.0).await;
}

/// A topic that does not exist: SNS answers `NotFound`; the delivery fails at its first
/// attempt with the reason, is not retried, and the subscription stays active. A topic
/// ARN that cannot be one is refused with the field's path.
#[tokio::test]
async fn a_topic_that_does_not_exist_fails_the_delivery_at_once() {
    let t = AwsTest::start("nosnsshop", &["--retry-schedule", "1,1"]).await;
    let topic = format!(
        "arn:aws:sns:us-east-1:{}:{}",
        aws::DEFAULT_ACCOUNT,
        unique("missing")
    );
    let subscription = t
        .subscribe("ORDER_CONFIRMED", &sns_destination(&topic))
        .await;

    let delivery = t.fails_at_once(&subscription).await;
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

    // Bad ARNs never become subscriptions.
    let list = "{ eventSubscriptions { edges { node { subscriptionId } } } }";
    let before = t.server.gql_ok(&t.app, list).await;
    for arn in [
        "arn:aws:sqs:us-east-1:123456789012:orders",
        "arn:aws:sns:mars-1:123456789012:orders",
        "arn:aws:sns:us-east-1:1234:orders",
        "arn:aws:sns:us-east-1:123456789012:bad name",
        "orders",
    ] {
        let refused =
            refused_subscription(&t.server, &t.app, "ORDER_CONFIRMED", &sns_destination(arn)).await;
        assert!(
            refused.contains(
                "/createEventSubscription/input/destination/sns/topicArn must be an SNS topic ARN"
            ),
            "{arn}: {refused}"
        );
    }
    assert_eq!(t.server.gql_ok(&t.app, list).await, before);
}

/// A FIFO topic with a FIFO queue subscribed: each message's group is
/// `{store}:{eventType}` and its deduplication id the delivery id, as the queue's system
/// attributes tell.
#[tokio::test]
async fn a_fifo_topic_passes_group_and_deduplication_ids_to_a_fifo_queue() {
    let store = "snsfifo";
    let t = AwsTest::start(store, &[]).await;
    let topic = t
        .customer
        .topic(&format!("{}.fifo", unique("orders")))
        .await;
    let queue = t
        .customer
        .fifo_queue(&format!("{}.fifo", unique("orders-sub")))
        .await;
    t.customer.subscribe_queue(&topic, &queue).await;
    let subscription = t
        .subscribe("ORDER_CONFIRMED", &sns_destination(&topic))
        .await;

    let (messages, _) = t
        .deliver_each_once(&queue, &subscription, "ORDER_CONFIRMED", 12)
        .await;
    for m in &messages {
        check_fifo_ids(m, store, "ORDER_CONFIRMED");
    }
}
