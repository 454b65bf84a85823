//! `hookrelay bench --destination rabbitmq|nats`: the real local broker, with consumers
//! that count what arrives (by the `webhook-id` header) into the same tally as the
//! receivers. Each run gets queues (one per subscription) or a stream of its own, removed
//! at the end.

use std::sync::Arc;

use anyhow::{Context, Result};
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};

use super::receiver::Tally;

/// The `webhook-id` header of an AMQP message.
fn amqp_webhook_id(properties: &lapin::BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get("webhook-id")? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// The exchange the bench's subscriptions publish to, with routing keys `{prefix}.{n}`.
pub const RABBIT_EXCHANGE: &str = "amq.topic";

/// Queues of the run's own on the broker at `url`, one per subscription as a subscriber
/// would have (`{prefix}-{n}`, bound to [`RABBIT_EXCHANGE`] for `{prefix}.{n}`), consumed
/// into `tally` until removed.
pub struct RabbitQueue {
    pub name: String,
    queues: Vec<String>,
    channel: lapin::Channel,
    _connection: lapin::Connection,
}

impl RabbitQueue {
    pub async fn start(url: &str, tally: Arc<Tally>, subscriptions: usize) -> Result<RabbitQueue> {
        let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to RabbitMQ at {}", redact(url)))?;
        let channel = connection.create_channel().await?;
        let name = format!("hookrelay-bench-{}", std::process::id());
        let mut queues = Vec::with_capacity(subscriptions);
        for n in 0..subscriptions {
            let queue = format!("{name}-{n}");
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .context("declaring a bench queue")?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    RABBIT_EXCHANGE.into(),
                    format!("{name}.{n}").as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .context("binding a bench queue")?;
            let mut consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    format!("hookrelay-bench-{n}").as_str().into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .context("consuming a bench queue")?;
            let tally = tally.clone();
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    tally.arrived(0, amqp_webhook_id(&delivery.properties), &delivery.data);
                }
            });
            queues.push(queue);
        }
        Ok(RabbitQueue {
            name,
            queues,
            channel,
            _connection: connection,
        })
    }

    pub async fn remove(self) {
        for queue in &self.queues {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
}

/// A stream of the run's own on the NATS server at `url` (subjects `{prefix}.>`), whose
/// messages are counted into `tally` as they are published.
pub struct NatsStream {
    pub prefix: String,
    stream: String,
    jetstream: async_nats::jetstream::Context,
}

impl NatsStream {
    pub async fn start(url: &str, tally: Arc<Tally>) -> Result<NatsStream> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {}", redact(url)))?;
        let id = std::process::id();
        let prefix = format!("hookrelay.bench.{id}");
        let stream = format!("HOOKRELAY_BENCH_{id}");
        let jetstream = async_nats::jetstream::new(client.clone());
        jetstream
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: stream.clone(),
                subjects: vec![format!("{prefix}.>")],
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("creating the bench stream: {e}"))?;
        let mut subscriber = client
            .subscribe(format!("{prefix}.>"))
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to the bench subjects: {e}"))?;
        tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let id = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("webhook-id"))
                    .map(|v| v.as_str().to_owned());
                tally.arrived(0, id, &message.payload);
            }
        });
        Ok(NatsStream {
            prefix,
            stream,
            jetstream,
        })
    }

    pub async fn remove(self) {
        let _ = self.jetstream.delete_stream(&self.stream).await;
    }
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
