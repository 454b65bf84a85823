//! Amazon SQS destinations (docs/destinations.md#amazon-sqs): `SendMessageBatch`, up to 10
//! messages a call, one lane per queue. Each message is the subscription style's JSON,
//! with the event type and the delivery id as message attributes; FIFO queues group by
//! the event's store and type and deduplicate by delivery id.

use async_trait::async_trait;
use aws_sdk_sqs::config::Region;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use hookrelay_core::aws::{is_account, is_region};
use hookrelay_core::{Destination as Stored, SqsDestination};

use super::aws_batch;
use super::{Action, Destination, Failure, Lane, Message, Resolve, Sent, Shared};
use crate::aws::Clients;

/// Messages per `SendMessageBatch` at most.
pub const BATCH_LIMIT: usize = 10;
/// The most a call may carry, all messages together (and so one message).
pub const MAX_BATCH_BYTES: usize = 262_144;

/// Error codes SQS answers the same way every time.
const PERMANENT: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidSecurity",
    "InvalidAddress",
    "InvalidMessageContents",
    "UnsupportedOperation",
    "KmsDisabled",
    "KmsNotFound",
    "KmsInvalidState",
    "KmsInvalidKeyUsage",
    "KmsAccessDenied",
    "AWS.SimpleQueueService.UnsupportedOperation",
    aws_batch::UNSENDABLE,
];

/// The stored form of `destination: { sqs: { queueUrl, region } }`, or why it is not
/// one: `https://sqs.{region}.amazonaws.com/{account}/{name}` (any host, for emulators),
/// and a region name.
pub fn stored(queue_url: &str, region: &str) -> Result<SqsDestination, String> {
    queue_name(queue_url)?;
    if !is_region(region) {
        return Err(format!(
            "region must be an AWS region name such as us-east-1, got {region:?}"
        ));
    }
    Ok(SqsDestination {
        queue_url: queue_url.to_owned(),
        region: region.to_owned(),
    })
}

/// The queue's name, from its URL.
fn queue_name(queue_url: &str) -> Result<&str, String> {
    let bad = || {
        format!(
            "queueUrl must be an SQS queue URL such as \
             https://sqs.us-east-1.amazonaws.com/123456789012/orders, got {queue_url:?}"
        )
    };
    let url = url::Url::parse(queue_url).map_err(|_| bad())?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(bad());
    }
    let path = queue_url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| path.trim_end_matches('/'))
        .ok_or_else(bad)?;
    let (account, name) = path.split_once('/').ok_or_else(bad)?;
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let name_ok = !base.is_empty()
        && name.len() <= 80
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !is_account(account) || !name_ok {
        return Err(bad());
    }
    Ok(name)
}

/// An SQS subscription, ready to send to.
pub struct SqsConfig {
    pub queue_url: String,
    pub region: String,
    pub fifo: bool,
}

/// The SQS destination kind: one SDK client per region.
pub struct Sqs {
    clients: Clients<Client>,
}

impl Sqs {
    pub fn new(shared: &Shared) -> Self {
        Sqs {
            clients: Clients::new(shared.aws.clone(), |config, region| {
                Client::from_conf(
                    aws_sdk_sqs::config::Builder::from(config)
                        .region(Region::new(region.to_owned()))
                        .build(),
                )
            }),
        }
    }
}

#[async_trait]
impl Destination for Sqs {
    type Config = SqsConfig;

    fn kind(&self) -> &'static str {
        "sqs"
    }

    async fn config(&self, at: &Resolve<'_>) -> Result<SqsConfig, String> {
        let Stored::Sqs(d) = &at.sub.destination else {
            return Err("not an SQS destination".into());
        };
        Ok(SqsConfig {
            fifo: queue_name(&d.queue_url)?.ends_with(".fifo"),
            queue_url: d.queue_url.clone(),
            region: d.region.clone(),
        })
    }

    fn lane(&self, config: &SqsConfig) -> Lane {
        Lane {
            key: format!("sqs:{}", config.queue_url),
            endpoint: None,
        }
    }

    fn batch_limit(&self, _config: &SqsConfig) -> usize {
        BATCH_LIMIT
    }

    async fn send(&self, batch: &[Message<'_, SqsConfig>]) -> Sent {
        let Some(first) = batch.first() else {
            return aws_batch::nothing_sent(Vec::new());
        };
        let (queue_url, region) = (&first.config.queue_url, &first.config.region);
        let client = self.clients.get(region).await;
        aws_batch::send_batch! {
            batch: batch,
            max_bytes: MAX_BATCH_BYTES,
            aws: self.clients.aws(),
            what: &format!("SendMessageBatch to {queue_url}"),
            entry: SendMessageBatchRequestEntry.message_body,
            attribute: MessageAttributeValue,
            call: |entries| client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries)),
            accepted: |ok| Some(ok.id()),
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
    fn queue_urls_are_checked() {
        assert!(stored(
            "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
            "us-east-1"
        )
        .is_ok());
        assert!(stored(
            "http://127.0.0.1:5000/123456789012/orders.fifo",
            "eu-west-1"
        )
        .is_ok());
        assert!(stored("https://sqs.us-east-1.amazonaws.com/orders", "us-east-1").is_err());
        assert!(stored(
            "https://sqs.us-east-1.amazonaws.com/123/orders",
            "us-east-1"
        )
        .is_err());
        assert!(stored("ftp://x/123456789012/orders", "us-east-1").is_err());
        assert!(stored(
            "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
            "mars-1"
        )
        .is_err());
        assert_eq!(
            queue_name("http://h/123456789012/a.fifo").ok(),
            Some("a.fifo")
        );
    }
}
