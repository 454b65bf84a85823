//! RabbitMQ destinations (docs/destinations.md#rabbitmq): AMQP 0-9-1 publishes with
//! publisher confirms, up to 100 messages a batch, one lane per broker, virtual host and
//! exchange (`rabbitmq:{host}:{port}/{vhost} {exchange}`, never with the credentials).
//!
//! - Each message is the subscription style's JSON (`application/json`, persistent:
//!   delivery mode 2) published to the subscription's exchange with its routing key. The
//!   delivery id is the `webhook-id` header and the message id, the event type the
//!   `event-type` header and the message type, the event's time the timestamp.
//! - A message is delivered when the broker confirms it (`basic.ack`). A batch is published
//!   on one channel in confirm mode and its confirms are awaited together, within the
//!   request timeout; each message's answer is its own confirm. A `basic.nack`, or no
//!   confirm in time, is retried.
//! - Messages are published `mandatory`: one the exchange routes to no queue comes back
//!   (`basic.return`, 312 NO_ROUTE) and is refused with code `unroutable`, retried on the
//!   schedule (a queue may be bound later) instead of being dropped by the broker.
//! - Permanent refusals fail the delivery at once, with the AMQP reply code as the failure's
//!   code: an exchange that does not exist (404 NOT_FOUND), access refused (403
//!   ACCESS_REFUSED: wrong credentials at connect, or no write permission on the
//!   exchange), a virtual host that does not exist or is not allowed to the user (530
//!   NOT_ALLOWED), a message the broker will not take (406 PRECONDITION_FAILED, 311). A
//!   broker that is down, restarting (320 CONNECTION_FORCED, a virtual host still
//!   starting), unreachable or resetting the connection is retried.
//! - Connections: one per broker URL, credentials included (that key is kept in memory
//!   only), opened on first use and again, lazily, when the broker closed it or it failed:
//!   a broken connection leaves the pool, so the next batch reconnects and a broker
//!   restart loses nothing. A connection unused for 5 minutes is closed. Batches take a
//!   channel (in confirm mode) from a small pool of idle ones on the connection and give it
//!   back after; a channel the broker closed, or with confirms still owed, is dropped.
//! - The address policy holds for the address actually connected to: the host is
//!   resolved here with [`GuardedResolver`] (an IP literal is checked as it is), and the
//!   TCP connection is made to the checked addresses, by hookrelay rather than by lapin.
//!   For `amqps://` TLS then runs on that connection with the URL's host name (SNI and
//!   certificate verification against the name), so TLS leaves no gap in the policy. A
//!   forbidden address is not connected to at all (the attempt fails with the resolver's
//!   reason and is retried).
//! - At least once, not exactly once: a message the broker confirmed whose outcome was not
//!   yet recorded (a crash, a lost connection before the confirm arrived) is published
//!   again. Consumers deduplicate by the `webhook-id` header.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::{Destination as Stored, RabbitMqDestination, Sealed};
use lapin::message::BasicReturnMessage;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPError, AMQPErrorKind};
use lapin::tcp::{AsyncTcpStream, TLSConfig};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use tokio::time::Instant;
use url::Host;

use super::{
    Action, Answer, Destination, Failure, Lane, Message, Resolve, Sent, Shared, Verdict, UNSENDABLE,
};
use crate::resolver::{GuardedResolver, ResolveError};

/// Messages per batch at most: published on one channel, their confirms awaited together.
pub const BATCH_LIMIT: usize = 100;
/// Idle channels kept per connection at most (more batches in flight open more).
const IDLE_CHANNELS: usize = 64;
/// A connection no batch used for this long is closed.
const IDLE_CONNECTION: Duration = Duration::from_secs(300);

/// The code of a failure to reach the broker (DNS, TCP, TLS, a lost connection, the
/// broker going down): retried.
const CONNECTION: &str = "connection";
/// A message the exchange routed to no queue (returned, 312 NO_ROUTE): retried.
const UNROUTABLE: &str = "unroutable";
/// A forbidden address (the address policy): retried, as the webhooks' are.
const FORBIDDEN: &str = "forbidden";
/// A message not sent or not confirmed because the broker closed the channel over an
/// earlier message of the batch: retried.
const CHANNEL: &str = "channel";

/// Codes that will be answered the same way every time: AMQP reply codes, and ours.
const PERMANENT: &[&str] = &["311", "402", "403", "404", "406", "530", UNSENDABLE];

/// What a delivered message's log keeps.
const CONFIRMED: &str = r#"{"confirmed":true}"#;

/// The stored form of `destination: { rabbitmq: { url, exchange, routingKey } }`, or why
/// it is not one. The URL (`amqp://` or `amqps://`, with its password) is sealed with
/// `seal`. An empty exchange is the default exchange, where the routing key names a queue.
pub fn stored(
    policy: &AddressPolicy,
    url: &str,
    exchange: &str,
    routing_key: &str,
    seal: impl FnOnce(&[u8]) -> Result<Sealed, String>,
) -> Result<RabbitMqDestination, String> {
    if exchange.len() > 255
        || !exchange
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(format!(
            "exchange must be at most 255 letters, digits, '-', '_', '.' or ':', got {exchange:?}"
        ));
    }
    if routing_key.len() > 255 {
        return Err("routingKey must be at most 255 bytes long".into());
    }
    let url = super::seal_url(policy, url, &["amqp", "amqps"], "amqp:// or amqps://", seal)
        .map_err(|e| format!("url {e}"))?;
    Ok(RabbitMqDestination {
        url,
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
    })
}

/// A RabbitMQ subscription, ready to send to. Holds the broker's password: not `Debug`.
pub struct RabbitMqConfig {
    /// The URL as stored, credentials and all: the key of its connection, in memory only.
    url: String,
    /// The URL as lapin takes it (credentials, virtual host, heartbeat and frame options).
    uri: AMQPUri,
    /// The broker's host, as the URL names it.
    host: Host<String>,
    pub exchange: ShortString,
    pub routing_key: ShortString,
}

impl RabbitMqConfig {
    /// The config of `url`, `exchange` and `routing_key` (as [`stored`] made them). Errors
    /// never repeat the URL (it has the password).
    fn parse(url: String, exchange: &str, routing_key: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(&url).map_err(|e| format!("url: {e}"))?;
        // `amqp:` is not a special scheme to the URL standard: its IPv4 literals are
        // opaque hosts, which are read as addresses here.
        let host = match parsed.host().ok_or("url: no host")? {
            Host::Domain(name) => match name.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => Host::Ipv4(ip),
                Ok(IpAddr::V6(ip)) => Host::Ipv6(ip),
                Err(_) => Host::Domain(name.to_ascii_lowercase()),
            },
            host => host.to_owned(),
        };
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|e: String| format!("url: {}", e.replace(url.as_str(), "…")))?;
        // amq-protocol-uri reads IP literals as "localhost"; lapin is given the host as
        // written (it is only used for TLS here: the address is connected to by `connect`).
        uri.authority.host = host_name(&host);
        let short = |what: &str, value: &str| {
            ShortString::try_new(value).map_err(|_| format!("{what} is longer than 255 bytes"))
        };
        Ok(RabbitMqConfig {
            exchange: short("exchange", exchange)?,
            routing_key: short("routingKey", routing_key)?,
            url,
            uri,
            host,
        })
    }

    /// `rabbitmq:{host}:{port}/{vhost} {exchange}`: no credentials (lane keys show up in
    /// metrics and the API). The vhost is percent-encoded as in a URL (`/` is `%2f`), the
    /// default exchange is `(default)` (no exchange name has parentheses).
    fn lane_key(&self) -> String {
        let exchange = match self.exchange.as_str() {
            "" => "(default)",
            name => name,
        };
        format!(
            "rabbitmq:{}:{}/{} {exchange}",
            self.host,
            self.uri.authority.port,
            encode_vhost(&self.uri.vhost)
        )
    }

    fn tls(&self) -> bool {
        self.uri.scheme == AMQPScheme::AMQPS
    }
}

/// A host as a name or a bare address (no brackets): what TLS verifies and lapin is told.
fn host_name(host: &Host<String>) -> String {
    match host {
        Host::Domain(name) => name.clone(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    }
}

fn encode_vhost(vhost: &str) -> String {
    let mut out = String::with_capacity(vhost.len());
    for b in vhost.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// A refusal of a whole group of messages: whose failure it was, and why.
type Refusal = (Verdict, Failure);

/// An open connection and its idle channels, each in confirm mode.
struct Broker {
    connection: Connection,
    idle: Mutex<Vec<Channel>>,
}

impl Broker {
    fn idle(&self) -> MutexGuard<'_, Vec<Channel>> {
        // A panic while holding this lock cannot leave the list inconsistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle channel, or a new one in confirm mode.
    async fn channel(&self) -> lapin::Result<Channel> {
        loop {
            let idle = self.idle().pop();
            match idle {
                Some(channel) if channel.status().connected() => return Ok(channel),
                Some(_closed) => continue,
                None => break,
            }
        }
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    /// Gives back a channel that is still open and owes no confirms.
    fn give_back(&self, channel: Channel) {
        let mut idle = self.idle();
        if channel.status().connected() && idle.len() < IDLE_CHANNELS {
            idle.push(channel);
        }
    }
}

/// The connection of one broker URL.
enum Slot {
    None,
    Open(Arc<Broker>),
    /// The last attempt to connect failed: batches that waited for it get its answer
    /// rather than trying again one after the other.
    Failed {
        at: Instant,
        refusal: Refusal,
    },
}

struct Entry {
    /// Held while connecting, so that one batch connects and the others wait for it.
    slot: tokio::sync::Mutex<Slot>,
    used: Mutex<Instant>,
}

/// The RabbitMQ destination kind: a connection per broker URL, a channel pool on each.
pub struct RabbitMq {
    policy: Arc<AddressPolicy>,
    resolver: GuardedResolver,
    timeout: Duration,
    /// By URL (credentials included): in memory only.
    brokers: Mutex<HashMap<String, Arc<Entry>>>,
}

impl RabbitMq {
    pub fn new(shared: &Shared) -> Self {
        Self::with(shared.policy.clone(), shared.request_timeout)
    }

    fn with(policy: Arc<AddressPolicy>, timeout: Duration) -> Self {
        RabbitMq {
            resolver: GuardedResolver::new(policy.clone()),
            policy,
            timeout,
            brokers: Mutex::new(HashMap::new()),
        }
    }

    /// The pool entry of `url`, marked used; entries nobody used for a while go (their
    /// connection closes once no batch holds it).
    fn entry(&self, url: &str) -> Arc<Entry> {
        let now = Instant::now();
        let mut brokers = self.brokers.lock().unwrap_or_else(|e| e.into_inner());
        brokers.retain(|key, entry| {
            key == url
                || Arc::strong_count(entry) > 1
                || now.duration_since(*entry.used.lock().unwrap_or_else(|e| e.into_inner()))
                    < IDLE_CONNECTION
        });
        let entry = brokers
            .entry(url.to_owned())
            .or_insert_with(|| {
                Arc::new(Entry {
                    slot: tokio::sync::Mutex::new(Slot::None),
                    used: Mutex::new(now),
                })
            })
            .clone();
        *entry.used.lock().unwrap_or_else(|e| e.into_inner()) = now;
        entry
    }

    /// The open connection of `config`'s URL, connecting if there is none (or it broke).
    async fn broker(&self, config: &RabbitMqConfig) -> Result<Arc<Broker>, Refusal> {
        let entry = self.entry(&config.url);
        let asked = Instant::now();
        let mut slot = entry.slot.lock().await;
        match &*slot {
            Slot::Open(broker) if broker.connection.status().connected() => {
                return Ok(broker.clone())
            }
            Slot::Failed { at, refusal } if *at >= asked => return Err(refusal.clone()),
            _ => {}
        }
        let connected = match tokio::time::timeout(self.timeout, self.connect(config)).await {
            Ok(connected) => connected,
            Err(_) => Err((
                Verdict::HostFailed,
                Failure::new(
                    CONNECTION,
                    format!(
                        "cannot connect to the broker: no answer within {}",
                        seconds(self.timeout)
                    ),
                ),
            )),
        };
        match connected {
            Ok(connection) => {
                let broker = Arc::new(Broker {
                    connection,
                    idle: Mutex::new(Vec::new()),
                });
                *slot = Slot::Open(broker.clone());
                Ok(broker)
            }
            Err(refusal) => {
                *slot = Slot::Failed {
                    at: Instant::now(),
                    refusal: refusal.clone(),
                };
                Err(refusal)
            }
        }
    }

    /// Takes `broker` out of the pool (if it is still the one there), so that the next
    /// batch connects again. Batches under way keep it until they finish.
    async fn forget(&self, config: &RabbitMqConfig, broker: &Arc<Broker>) {
        let entry = self.entry(&config.url);
        let mut slot = entry.slot.lock().await;
        if matches!(&*slot, Slot::Open(open) if Arc::ptr_eq(open, broker)) {
            *slot = Slot::None;
        }
    }

    /// Where `config`'s broker may be reached: its addresses the policy allows, or why none.
    async fn addresses(&self, config: &RabbitMqConfig) -> Result<Vec<SocketAddr>, Refusal> {
        let port = config.uri.authority.port;
        let forbidden =
            |e: ResolveError| (Verdict::NotSent, Failure::new(FORBIDDEN, e.to_string()));
        let ip = match &config.host {
            Host::Ipv4(ip) => IpAddr::V4(*ip),
            Host::Ipv6(ip) => IpAddr::V6(*ip),
            Host::Domain(name) => {
                return match self.resolver.lookup(name).await {
                    Ok(addrs) => Ok(addrs
                        .into_iter()
                        .map(|a| SocketAddr::new(a.ip(), port))
                        .collect()),
                    Err(e @ ResolveError::Forbidden { .. }) => Err(forbidden(e)),
                    Err(e) => Err((
                        Verdict::HostFailed,
                        Failure::new(CONNECTION, format!("cannot connect to the broker: {e}")),
                    )),
                }
            }
        };
        match ResolveError::check(&self.policy, ip) {
            Some(e) => Err(forbidden(e)),
            None => Ok(vec![SocketAddr::new(ip, port)]),
        }
    }

    /// Opens a connection to `config`'s broker, at a checked address.
    async fn connect(&self, config: &RabbitMqConfig) -> Result<Connection, Refusal> {
        let addrs = self.addresses(config).await?;
        let tls = config.tls().then(|| host_name(&config.host));
        let runtime = lapin::runtime::default_runtime()
            .map_err(|e| (Verdict::NotSent, Failure::new(CONNECTION, e.to_string())))?;
        let timeout = self.timeout;
        let properties = ConnectionProperties::default().with_connection_name("hookrelay".into());
        Connection::connector(
            config.uri.clone(),
            runtime,
            async move |_uri, runtime| {
                let stream =
                    tokio::time::timeout(timeout, AsyncTcpStream::connect(&runtime, addrs.clone()))
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "connect timed out")
                        })??;
                Ok(match &tls {
                    Some(name) => stream.into_tls(name, TLSConfig::default()).await?,
                    None => stream,
                })
            },
            properties,
        )
        .await
        .map_err(|e| failure_of(&e, Stage::Connect, ""))
    }

    /// Publishes the messages `indices` of `batch` (of one URL) and fills in their answers.
    /// Returns what it tells the lane, and the round trip when the broker answered.
    async fn publish(
        &self,
        batch: &[Message<'_, RabbitMqConfig>],
        indices: &[usize],
        answers: &mut [Option<Answer>],
    ) -> (Verdict, Option<std::time::Duration>) {
        let mut ready = Vec::with_capacity(indices.len());
        for &i in indices {
            match prepare(&batch[i]) {
                Ok(message) => ready.push((i, message)),
                Err(why) => answers[i] = Some(Answer::unsent(UNSENDABLE, why)),
            }
        }
        let Some(&(first, _)) = ready.first() else {
            return (Verdict::NotSent, None);
        };
        let config = batch[first].config;
        let refuse_all = |answers: &mut [Option<Answer>], (verdict, failure): Refusal| {
            for &(i, _) in &ready {
                answers[i] = Some(Answer::Refused(failure.clone()));
            }
            (verdict, None)
        };
        let deadline = Instant::now() + self.timeout;
        let broker = match self.broker(config).await {
            Ok(broker) => broker,
            Err(refusal) => return refuse_all(answers, refusal),
        };
        if broker.connection.status().blocked() {
            return refuse_all(
                answers,
                (
                    Verdict::HostFailed,
                    Failure::new(
                        CONNECTION,
                        "the broker is blocking publishers (a memory or disk alarm)",
                    ),
                ),
            );
        }
        let channel = match tokio::time::timeout_at(deadline, broker.channel()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                self.forget_if_closed(config, &broker).await;
                return refuse_all(answers, failure_of(&e, Stage::Channel, ""));
            }
            Err(_) => {
                self.forget(config, &broker).await;
                let why = format!("no channel opened within {}", seconds(self.timeout));
                return refuse_all(
                    answers,
                    (Verdict::HostFailed, Failure::new(CONNECTION, why)),
                );
            }
        };

        // Publish everything, then wait for every confirm; what came before the deadline
        // is kept.
        let clock = Instant::now();
        let mut results: Vec<(usize, Option<lapin::Result<Confirmation>>)> =
            Vec::with_capacity(ready.len());
        let timed_out = tokio::time::timeout_at(deadline, async {
            let options = BasicPublishOptions {
                mandatory: true,
                immediate: false,
            };
            let mut confirms = Vec::with_capacity(ready.len());
            for (i, (body, properties)) in ready {
                let config = batch[i].config;
                let published = channel
                    .basic_publish(
                        config.exchange.clone(),
                        config.routing_key.clone(),
                        options,
                        &body,
                        properties,
                    )
                    .await;
                confirms.push((i, published));
                results.push((i, None));
            }
            for (slot, (_, published)) in confirms.into_iter().enumerate() {
                results[slot].1 = Some(match published {
                    Ok(confirm) => confirm.await,
                    Err(e) => Err(e),
                });
            }
        })
        .await
        .is_err();
        let rtt = clock.elapsed();

        let mut verdict = Verdict::Succeeded;
        let mut channel_closed: Option<Refusal> = None;
        for (i, result) in results {
            let config = batch[i].config;
            let answer = match result {
                Some(Ok(confirmation)) => answer_of(confirmation, config),
                Some(Err(e)) => {
                    let (v, failure) = match &channel_closed {
                        // The broker closed the channel over an earlier message: what
                        // it said holds for this one if it is about the exchange or the
                        // connection, not if it was about that message.
                        Some((v, earlier)) => match earlier.code.as_str() {
                            "403" | "404" | CONNECTION => (*v, earlier.clone()),
                            _ => (
                                Verdict::EndpointFailed,
                                Failure::new(
                                    CHANNEL,
                                    format!(
                                        "not confirmed: the broker closed the channel over an \
                                         earlier message of the batch ({})",
                                        earlier.reason
                                    ),
                                ),
                            ),
                        },
                        None => {
                            let refusal = failure_of(&e, Stage::Publish, config.exchange.as_str());
                            channel_closed = Some(refusal.clone());
                            refusal
                        }
                    };
                    verdict = worse(verdict, v);
                    Answer::Refused(failure)
                }
                None => {
                    verdict = worse(verdict, Verdict::EndpointFailed);
                    Answer::Refused(Failure::new(
                        "timeout",
                        format!("no publisher confirm within {}", seconds(self.timeout)),
                    ))
                }
            };
            answers[i] = Some(answer);
        }
        // Not given back: a channel that owes confirms, or that the broker closed.
        if timed_out {
            // The connection may be dead without a word (no FIN); the next batch
            // reconnects, those under way finish on this one.
            self.forget(config, &broker).await;
        } else if channel_closed.is_none() {
            broker.give_back(channel);
        } else {
            self.forget_if_closed(config, &broker).await;
        }
        let rtt = (verdict != Verdict::HostFailed).then_some(rtt);
        (verdict, rtt)
    }

    async fn forget_if_closed(&self, config: &RabbitMqConfig, broker: &Arc<Broker>) {
        if !broker.connection.status().connected() {
            self.forget(config, broker).await;
        }
    }
}

#[async_trait]
impl Destination for RabbitMq {
    type Config = RabbitMqConfig;

    fn kind(&self) -> &'static str {
        "rabbitmq"
    }

    async fn config(&self, at: &Resolve<'_>) -> Result<RabbitMqConfig, String> {
        let Stored::RabbitMq(d) = &at.sub.destination else {
            return Err("not a RabbitMQ destination".into());
        };
        RabbitMqConfig::parse(at.open(&d.url.sealed)?, &d.exchange, &d.routing_key)
    }

    fn lane(&self, config: &RabbitMqConfig) -> Lane {
        Lane {
            key: config.lane_key(),
            endpoint: None,
        }
    }

    fn batch_limit(&self, _config: &RabbitMqConfig) -> usize {
        BATCH_LIMIT
    }

    async fn send(&self, batch: &[Message<'_, RabbitMqConfig>]) -> Sent {
        // A lane is one broker, vhost and exchange; its subscriptions may still log in
        // differently: one connection, and one publish, per URL.
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, message) in batch.iter().enumerate() {
            let url = message.config.url.as_str();
            match groups.iter_mut().find(|(u, _)| *u == url) {
                Some((_, indices)) => indices.push(i),
                None => groups.push((url, vec![i])),
            }
        }
        let mut answers: Vec<Option<Answer>> = vec![None; batch.len()];
        let (mut verdict, mut rtt) = (Verdict::NotSent, None);
        for (_, indices) in groups {
            let (v, r) = self.publish(batch, &indices, &mut answers).await;
            verdict = worse(verdict, v);
            rtt = rtt.max(r);
        }
        Sent {
            verdict,
            rtt,
            answers: answers
                .into_iter()
                .map(|a| {
                    a.unwrap_or_else(|| {
                        Answer::unsent("unanswered", "the broker gave no answer for this message")
                    })
                })
                .collect(),
        }
    }

    fn classify(&self, failure: &Failure) -> Action {
        if PERMANENT.contains(&failure.code.as_str()) {
            Action::GiveUp
        } else {
            super::retry(failure)
        }
    }
}

/// The body and properties of a message.
fn prepare(message: &Message<'_, RabbitMqConfig>) -> Result<(Vec<u8>, BasicProperties), String> {
    let body = message.body()?;
    let delivery = message.delivery;
    let short = |what: &str, value: &str| {
        ShortString::try_new(value).map_err(|_| format!("{what} is longer than 255 bytes"))
    };
    let mut headers = FieldTable::default();
    for (name, value) in super::aws_batch::attributes(delivery) {
        headers.insert(
            short("header name", name)?,
            AMQPValue::LongString(value.into()),
        );
    }
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(short("the delivery id", &delivery.id)?)
        .with_type(short("the event type", &delivery.event.event_type)?)
        .with_timestamp(delivery.event.time.timestamp().max(0) as u64)
        .with_app_id("hookrelay".into())
        .with_headers(headers);
    Ok((body, properties))
}

/// What the broker's confirm of one message says.
fn answer_of(confirmation: Confirmation, config: &RabbitMqConfig) -> Answer {
    match confirmation {
        Confirmation::Ack(None) => Answer::Delivered {
            status: None,
            body: Some(CONFIRMED.to_owned()),
        },
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Answer::Refused(unroutable(&returned, config))
        }
        Confirmation::Nack(None) => Answer::unsent(
            "nack",
            "the broker did not take the message (basic.nack); it will be sent again",
        ),
        Confirmation::NotRequested => Answer::unsent(
            "unconfirmed",
            "the channel was not in confirm mode; the message will be sent again",
        ),
    }
}

/// A message the broker returned: its exchange routed it to no queue.
fn unroutable(returned: &BasicReturnMessage, config: &RabbitMqConfig) -> Failure {
    let exchange = match config.exchange.as_str() {
        "" => "the default exchange".to_owned(),
        name => format!("exchange {name:?}"),
    };
    let mut failure = Failure::new(
        UNROUTABLE,
        format!(
            "unroutable: {exchange} routed the message to no queue with routing key {:?} \
             ({} {}); it will be sent again on schedule",
            config.routing_key.as_str(),
            returned.reply_code,
            returned.reply_text
        ),
    );
    failure.body = Some(
        serde_json::json!({
            "returned": true,
            "replyCode": returned.reply_code,
            "replyText": returned.reply_text.as_str(),
        })
        .to_string(),
    );
    failure
}

/// Where a lapin error happened, for its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connect,
    Channel,
    Publish,
}

/// What a lapin error is: whose failure, with the AMQP reply code as the code where the
/// broker gave one, and the reason in words.
fn failure_of(e: &lapin::Error, stage: Stage, exchange: &str) -> Refusal {
    let lost = |why: String| {
        let reason = match stage {
            Stage::Connect => format!("cannot connect to the broker: {why}"),
            Stage::Channel | Stage::Publish => {
                format!("the connection to the broker failed: {why}")
            }
        };
        (Verdict::HostFailed, Failure::new(CONNECTION, reason))
    };
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => amqp_failure(amqp, stage, exchange),
        ErrorKind::IOError(io) => lost(io.to_string()),
        ErrorKind::MissingHeartbeatError => lost("no heartbeat from the broker".into()),
        ErrorKind::InvalidChannelState(..) | ErrorKind::InvalidConnectionState(_) => {
            lost(format!("it is closed ({e})"))
        }
        _ => lost(e.to_string()),
    }
}

/// An AMQP error the broker closed the connection or channel with.
fn amqp_failure(amqp: &AMQPError, stage: Stage, exchange: &str) -> Refusal {
    let id = amqp.get_id();
    let name = match amqp.kind() {
        AMQPErrorKind::Soft(soft) => soft.to_string(),
        AMQPErrorKind::Hard(hard) => hard.to_string(),
    }
    .replace('-', "_");
    let said = format!("{id} {name}: {}", amqp.get_message());
    let refused = |reason: String| {
        (
            Verdict::EndpointFailed,
            Failure::new(&id.to_string(), reason),
        )
    };
    let message = amqp.get_message().as_str().to_ascii_lowercase();
    match id {
        404 => refused(format!("exchange {exchange:?} does not exist ({said})")),
        403 if stage == Stage::Connect => refused(format!("the broker refused the login ({said})")),
        403 => refused(format!("access refused to exchange {exchange:?} ({said})")),
        // "vhost x not found", "access to vhost 'x' refused for user 'y'"; not "vhost x is
        // down" (it is starting or stopping).
        530 if message.contains("not found") || message.contains("refused") => {
            refused(format!("the virtual host cannot be used ({said})"))
        }
        406 | 311 => refused(format!("the broker refused the message ({said})")),
        _ => match amqp.kind() {
            // A channel-level refusal: the broker answered.
            AMQPErrorKind::Soft(_) => refused(format!("the broker refused ({said})")),
            // The connection is gone: the broker stopping (320), a vhost going down.
            AMQPErrorKind::Hard(_) => (
                Verdict::HostFailed,
                Failure::new(
                    CONNECTION,
                    format!("the broker closed the connection ({said})"),
                ),
            ),
        },
    }
}

/// Whose failure a request with several publishes was: the host's before the endpoint's
/// before an answer before nothing sent.
fn worse(a: Verdict, b: Verdict) -> Verdict {
    let rank = |v| match v {
        Verdict::HostFailed => 3,
        Verdict::EndpointFailed => 2,
        Verdict::Succeeded => 1,
        Verdict::NotSent => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::{AMQPHardError, AMQPSoftError};

    fn config(url: &str, exchange: &str) -> RabbitMqConfig {
        RabbitMqConfig::parse(url.to_owned(), exchange, "orders.created").unwrap()
    }

    fn loopback_allowed() -> Arc<AddressPolicy> {
        Arc::new(AddressPolicy {
            allow_http: true,
            allowed_networks: AddressPolicy::parse_networks("127.0.0.0/8").unwrap(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        })
    }

    #[test]
    fn lane_keys_have_no_credentials() {
        let c = config(
            "amqp://hookrelay:s3cret-pw@Broker.Example:5672/%2f",
            "orders",
        );
        let key = c.lane_key();
        assert_eq!(key, "rabbitmq:broker.example:5672/%2f orders");
        assert!(
            !key.contains("s3cret") && !key.contains("hookrelay"),
            "{key}"
        );
        // The pool keeps the whole URL.
        assert!(c.url.contains("s3cret-pw"));
        assert_eq!(c.uri.authority.userinfo.password, "s3cret-pw");

        let c = config("amqps://u:p@10.1.2.3/prod", "");
        assert_eq!(c.lane_key(), "rabbitmq:10.1.2.3:5671/prod (default)");
        assert!(c.tls());
        // Not "localhost", as amq-protocol-uri alone reads IP literals.
        assert_eq!(c.uri.authority.host, "10.1.2.3");
        // An address, checked as one (the URL standard leaves it an opaque host).
        assert!(matches!(c.host, Host::Ipv4(_)));
        assert_eq!(
            config("amqp://u:p@[::1]:5673/a%20b", "x").lane_key(),
            "rabbitmq:[::1]:5673/a%20b x"
        );
    }

    #[test]
    fn bad_urls_are_not_repeated() {
        let err = RabbitMqConfig::parse("amqp://u:p4ss@h:99999/".into(), "x", "k")
            .err()
            .unwrap();
        assert!(!err.contains("p4ss"), "{err}");
        let err = RabbitMqConfig::parse("amqp://u:p4ss@h/?heartbeat=soon".into(), "x", "k")
            .err()
            .unwrap();
        assert!(!err.contains("p4ss") && err.starts_with("url: "), "{err}");
    }

    #[test]
    fn stored_checks_the_exchange_and_routing_key() {
        let policy = AddressPolicy::default();
        let seal = |_: &[u8]| Err::<Sealed, String>("sealed".into());
        let err = stored(&policy, "amqp://h/", "bad name", "k", seal).unwrap_err();
        assert!(err.starts_with("exchange must be"), "{err}");
        let err = stored(&policy, "amqp://h/", "x", &"k".repeat(256), seal).unwrap_err();
        assert!(err.starts_with("routingKey"), "{err}");
        let err = stored(&policy, "http://h/", "x", "k", seal).unwrap_err();
        assert!(err.starts_with("url "), "{err}");
    }

    #[test]
    fn permanent_refusals_are_given_up_on() {
        let kind = RabbitMq::with(loopback_allowed(), Duration::from_secs(1));
        let action = |code: &str| kind.classify(&Failure::new(code, "x"));
        for code in ["404", "403", "530", "406", UNSENDABLE] {
            assert_eq!(action(code), Action::GiveUp, "{code}");
        }
        for code in [
            CONNECTION, UNROUTABLE, FORBIDDEN, CHANNEL, "timeout", "nack", "320",
        ] {
            assert_eq!(action(code), Action::Retry, "{code}");
        }
    }

    #[test]
    fn amqp_errors_read_as_codes_and_words() {
        let err = |kind: AMQPErrorKind, text: &str| AMQPError::new(kind, text.into());
        let (v, f) = amqp_failure(
            &err(
                AMQPSoftError::NOTFOUND.into(),
                "NOT_FOUND - no exchange 'nope' in vhost '/'",
            ),
            Stage::Publish,
            "nope",
        );
        assert_eq!(v, Verdict::EndpointFailed);
        assert_eq!(f.code, "404");
        assert_eq!(
            f.reason,
            "exchange \"nope\" does not exist (404 NOT_FOUND: NOT_FOUND - no exchange 'nope' in vhost '/')"
        );
        let (_, f) = amqp_failure(
            &err(
                AMQPSoftError::ACCESSREFUSED.into(),
                "ACCESS_REFUSED - Login was refused",
            ),
            Stage::Connect,
            "",
        );
        assert_eq!(f.code, "403");
        assert!(
            f.reason
                .starts_with("the broker refused the login (403 ACCESS_REFUSED"),
            "{}",
            f.reason
        );
        let (_, f) = amqp_failure(
            &err(
                AMQPHardError::NOTALLOWED.into(),
                "NOT_ALLOWED - vhost nope not found",
            ),
            Stage::Connect,
            "",
        );
        assert_eq!(f.code, "530");
        // A virtual host that is starting or stopping is the broker's state, not a refusal.
        let (v, f) = amqp_failure(
            &err(
                AMQPHardError::NOTALLOWED.into(),
                "NOT_ALLOWED - vhost / is down",
            ),
            Stage::Connect,
            "",
        );
        assert_eq!((v, f.code.as_str()), (Verdict::HostFailed, CONNECTION));
        let (v, f) = amqp_failure(
            &err(
                AMQPHardError::CONNECTIONFORCED.into(),
                "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
            ),
            Stage::Publish,
            "x",
        );
        assert_eq!((v, f.code.as_str()), (Verdict::HostFailed, CONNECTION));
        assert!(f.reason.contains("320 CONNECTION_FORCED"), "{}", f.reason);
    }

    #[test]
    fn verdicts_combine_to_the_worst() {
        assert_eq!(
            worse(Verdict::NotSent, Verdict::Succeeded),
            Verdict::Succeeded
        );
        assert_eq!(
            worse(Verdict::HostFailed, Verdict::Succeeded),
            Verdict::HostFailed
        );
        assert_eq!(
            worse(Verdict::Succeeded, Verdict::EndpointFailed),
            Verdict::EndpointFailed
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forbidden_addresses_are_not_connected_to() {
        let strict = Arc::new(AddressPolicy {
            allow_http: true,
            allowed_networks: Vec::new(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        });
        let kind = RabbitMq::with(strict, Duration::from_secs(2));
        for url in [
            "amqp://guest:guest@127.0.0.1:1/%2f",
            "amqps://guest:guest@localhost:1/%2f",
        ] {
            let Err((verdict, failure)) = kind.broker(&config(url, "x")).await else {
                panic!("{url} was connected to");
            };
            assert_eq!(verdict, Verdict::NotSent, "{url}");
            assert_eq!(failure.code, FORBIDDEN);
            assert!(
                failure.reason.starts_with("forbidden address ")
                    && failure.reason.ends_with("(loopback)"),
                "{url}: {}",
                failure.reason
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_port_is_a_connection_failure() {
        let kind = RabbitMq::with(loopback_allowed(), Duration::from_secs(2));
        let c = config("amqp://guest:guest@127.0.0.1:1/%2f", "x");
        let Err((verdict, failure)) = kind.broker(&c).await else {
            panic!("connected to port 1");
        };
        assert_eq!(verdict, Verdict::HostFailed);
        assert_eq!(failure.code, CONNECTION);
        assert!(
            failure.reason.starts_with("cannot connect to the broker: "),
            "{}",
            failure.reason
        );
        assert_eq!(kind.classify(&failure), Action::Retry);
    }
}
