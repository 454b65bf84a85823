//! Amazon SNS destinations (docs/destinations.md#amazon-sns): `PublishBatch`, up to 10
//! messages a call, one lane per topic. Each message is the subscription style's JSON,
//! with the event type and the delivery id as message attributes; FIFO topics group by
//! the event's store and type and deduplicate by delivery id.

use async_trait::async_trait;
use aws_sdk_sns::config::Region;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;
use hookrelay_core::aws::{is_account, is_region};
use hookrelay_core::{Destination as Stored, SnsDestination};

use super::aws_batch;
use super::{Action, Destination, Failure, Lane, Message, Resolve, Sent, Shared};
use crate::aws::Clients;

/// Messages per `PublishBatch` at most.
pub const BATCH_LIMIT: usize = 10;
/// The most a call may carry, all messages together (and so one message).
pub const MAX_BATCH_BYTES: usize = 262_144;

/// Error codes SNS answers the same way every time.
const PERMANENT: &[&str] = &[
    "NotFound",
    "NotFoundException",
    "AuthorizationError",
    "AuthorizationErrorException",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidSecurity",
    "KMSAccessDenied",
    "KMSDisabled",
    "KMSInvalidState",
    "KMSNotFound",
    "KMSOptInRequired",
    "EndpointDisabled",
    aws_batch::UNSENDABLE,
];

/// A topic ARN's parts: region and name.
struct TopicArn<'a> {
    region: &'a str,
    name: &'a str,
}

fn topic_arn(arn: &str) -> Result<TopicArn<'_>, String> {
    let bad = || {
        format!(
            "topicArn must be an SNS topic ARN such as \
             arn:aws:sns:us-east-1:123456789012:orders, got {arn:?}"
        )
    };
    let parts: Vec<&str> = arn.split(':').collect();
    let [prefix, partition, service, region, account, name] = parts[..] else {
        return Err(bad());
    };
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let name_ok = !base.is_empty()
        && name.len() <= 256
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if prefix != "arn"
        || !partition.starts_with("aws")
        || service != "sns"
        || !is_region(region)
        || !is_account(account)
        || !name_ok
    {
        return Err(bad());
    }
    Ok(TopicArn { region, name })
}

/// The stored form of `destination: { sns: { topicArn } }`, or why it is not one.
pub fn stored(arn: &str) -> Result<SnsDestination, String> {
    topic_arn(arn)?;
    Ok(SnsDestination {
        topic_arn: arn.to_owned(),
    })
}

/// An SNS subscription, ready to send to.
pub struct SnsConfig {
    pub topic_arn: String,
    pub region: String,
    pub fifo: bool,
}

/// The SNS destination kind: one SDK client per region.
pub struct Sns {
    clients: Clients<Client>,
}

impl Sns {
    pub fn new(shared: &Shared) -> Self {
        Sns {
            clients: Clients::new(shared.aws.clone(), |config, region| {
                Client::from_conf(
                    aws_sdk_sns::config::Builder::from(config)
                        .region(Region::new(region.to_owned()))
                        .build(),
                )
            }),
        }
    }
}

#[async_trait]
impl Destination for Sns {
    type Config = SnsConfig;

    fn kind(&self) -> &'static str {
        "sns"
    }

    async fn config(&self, at: &Resolve<'_>) -> Result<SnsConfig, String> {
        let Stored::Sns(d) = &at.sub.destination else {
            return Err("not an SNS destination".into());
        };
        let arn = topic_arn(&d.topic_arn)?;
        Ok(SnsConfig {
            fifo: arn.name.ends_with(".fifo"),
            region: arn.region.to_owned(),
            topic_arn: d.topic_arn.clone(),
        })
    }

    fn lane(&self, config: &SnsConfig) -> Lane {
        Lane {
            key: format!("sns:{}", config.topic_arn),
            endpoint: None,
        }
    }

    fn batch_limit(&self, _config: &SnsConfig) -> usize {
        BATCH_LIMIT
    }

    async fn send(&self, batch: &[Message<'_, SnsConfig>]) -> Sent {
        let Some(first) = batch.first() else {
            return aws_batch::nothing_sent(Vec::new());
        };
        let (topic_arn, region) = (&first.config.topic_arn, &first.config.region);
        let client = self.clients.get(region).await;
        aws_batch::send_batch! {
            batch: batch,
            max_bytes: MAX_BATCH_BYTES,
            aws: self.clients.aws(),
            what: &format!("PublishBatch to {topic_arn}"),
            entry: PublishBatchRequestEntry.message,
            attribute: MessageAttributeValue,
            call: |entries| client
                .publish_batch()
                .topic_arn(topic_arn)
                .set_publish_batch_request_entries(Some(entries)),
            accepted: |ok| ok.id(),
        }
    }

    fn classify(&self, failure: &Failure) -> Action {
        aws_batch::classify(PERMANENT, failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns_are_checked() {
        assert!(stored("arn:aws:sns:us-east-1:123456789012:orders").is_ok());
        assert!(stored("arn:aws:sns:us-east-1:123456789012:orders.fifo").is_ok());
        assert!(stored("arn:aws:sqs:us-east-1:123456789012:orders").is_err());
        assert!(stored("arn:aws:sns:mars-1:123456789012:orders").is_err());
        assert!(stored("arn:aws:sns:us-east-1:1234:orders").is_err());
        assert!(stored("orders").is_err());
        assert_eq!(
            topic_arn("arn:aws:sns:eu-west-1:123456789012:t").map(|a| a.region),
            Ok("eu-west-1")
        );
    }
}
