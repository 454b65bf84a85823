//! NATS JetStream destinations (docs/destinations.md#nats-jetstream): each message is
//! published to the subscription's subject and taken when JetStream acknowledges it; up to
//! [`BATCH_LIMIT`] messages a batch, all published at once and then every acknowledgement
//! awaited; one lane per server and subject. The body is the subscription style's JSON;
//! the `Nats-Msg-Id` and `webhook-id` headers carry the delivery id (JetStream drops a
//! delivery sent again within the stream's duplicate window) and `event-type` the event
//! type.
//!
//! One client connection per server URL and credentials, kept in memory only: made on
//! first use, made again once it is lost (async-nats reconnects by itself in between, to
//! the same checked addresses), dropped after [`IDLE`] unused. Every wait (connecting,
//! publishing, acknowledgements) is bounded by the request timeout.
//!
//! The address policy holds for the address connected to: the host is resolved here with
//! the [`GuardedResolver`] (an IP literal is checked as it is), and async-nats is given the
//! checked IP addresses, never the name, and not the cluster URLs servers advertise.
//! Limit: a `tls://` URL with a host name must keep the name for TLS, so async-nats
//! resolves it again itself; the connection is refused when every address the name
//! resolves to here is forbidden, but a name that answers differently to async-nats' own
//! lookup (DNS rebinding) is not caught.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{ConnectError, ConnectErrorKind, ConnectOptions, Event, ServerAddr, ServerError};
use async_trait::async_trait;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::{Destination as Stored, NatsDestination, Sealed};
use url::{Host, Url};

use super::{Action, Answer, Destination, Failure, Lane, Message, Resolve, Sent, Shared, Verdict};
use crate::resolver::{GuardedResolver, ResolveError};

/// Messages per batch at most: published together, then acknowledged one by one.
pub const BATCH_LIMIT: usize = 100;
/// The NATS port, where the URL names none.
pub const DEFAULT_PORT: u16 = 4222;
/// A connection unused this long is closed.
pub const IDLE: Duration = Duration::from_secs(300);
/// Reconnections async-nats tries by itself before it gives a lost connection up (the
/// next batch then makes a new one, with the address checked again).
const MAX_RECONNECTS: usize = 8;

/// Failure codes ([`Failure::code`]) of this kind.
mod code {
    /// The server could not be reached, or the connection was lost.
    pub const CONNECTION: &str = "connection";
    /// The address policy forbids every address of the server.
    pub const FORBIDDEN: &str = "forbidden";
    /// JetStream did not acknowledge in time, on a live connection.
    pub const TIMEOUT: &str = "timeout";
    /// The server refused the credentials.
    pub const AUTH: &str = "auth";
    /// The server does not let these credentials publish to the subject.
    pub const PERMISSION: &str = "permission";
    /// No stream captures the subject ("no responders").
    pub const NO_STREAM: &str = "no-stream";
    /// Larger than the server's `max_payload` or the stream's `max_msg_size`.
    pub const TOO_LARGE: &str = "too-large";
    /// The message could not be made (event data that is not JSON, a bad header value).
    pub const PAYLOAD: &str = crate::destinations::UNSENDABLE;
    /// The destination itself is unusable (a subject or URL async-nats refuses).
    pub const CONFIG: &str = "config";
    /// Another error JetStream answered.
    pub const JETSTREAM: &str = "jetstream";
}

/// Codes that fail the same way every time.
const PERMANENT: &[&str] = &[
    code::AUTH,
    code::PERMISSION,
    code::NO_STREAM,
    code::TOO_LARGE,
    code::PAYLOAD,
    code::CONFIG,
];

/// JetStream error codes that fail the same way every time.
const PERMANENT_JETSTREAM: &[ErrorCode] = &[ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM];

/// The stored form of `destination: { nats: { url, subject } }`, or why it is not one.
/// The URL (`nats://` or `tls://`, with its user and password or token) is sealed with
/// `seal`. The subject is one to publish to: dot-separated tokens, no wildcards.
pub fn stored(
    policy: &AddressPolicy,
    url: &str,
    subject: &str,
    seal: impl FnOnce(&[u8]) -> Result<Sealed, String>,
) -> Result<NatsDestination, String> {
    let token_ok = |t: &str| {
        !t.is_empty()
            && t != "*"
            && t != ">"
            && !t
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    };
    if subject.len() > 255 || !subject.split('.').all(token_ok) {
        return Err(format!(
            "subject must be dot-separated tokens without spaces or wildcards \
             (orders.created), at most 255 bytes, got {subject:?}"
        ));
    }
    // `nats://` is not a special scheme to the URL parser: an IPv4 host is not parsed as
    // an address, so the policy's literal check is made here too.
    if let Ok(parsed) = Url::parse(url) {
        if let Some(Host::Domain(name)) = parsed.host() {
            if let Ok(ip) = name.parse::<IpAddr>() {
                policy.check_ip(ip).map_err(|e| format!("url {e}"))?;
            }
        }
    }
    let url = super::seal_url(policy, url, &["nats", "tls"], "nats:// or tls://", seal)
        .map_err(|e| format!("url {e}"))?;
    Ok(NatsDestination {
        url,
        subject: subject.to_owned(),
    })
}

/// How a connection authenticates. Not `Debug`: it holds secrets.
#[derive(Clone, PartialEq, Eq)]
enum Credentials {
    None,
    Token(String),
    UserPassword(String, String),
}

/// A NATS subscription, ready to send to. Not `Debug`: it holds the credentials.
pub struct NatsConfig {
    /// `tls://`: TLS required, verified for `host`.
    pub tls: bool,
    /// The host as the URL names it (IPv6 in brackets), lowercased.
    pub host: String,
    /// The host, where it is an IP literal.
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub subject: String,
    credentials: Credentials,
    /// Which connection it uses: the URL with its credentials (in memory only).
    connection: String,
}

impl NatsConfig {
    /// The config of the opened URL `raw` and `subject`.
    fn parse(raw: &str, subject: &str) -> Result<NatsConfig, String> {
        let url = Url::parse(raw).map_err(|e| format!("url: {e}"))?;
        let tls = match url.scheme() {
            "nats" => false,
            "tls" => true,
            other => return Err(format!("url: scheme {other} is not nats:// or tls://")),
        };
        let (host, ip) = match url.host() {
            Some(Host::Ipv4(v4)) => (v4.to_string(), Some(IpAddr::V4(v4))),
            Some(Host::Ipv6(v6)) => (format!("[{v6}]"), Some(IpAddr::V6(v6))),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name.is_empty() {
                    return Err("url has no host".into());
                }
                let ip = name.parse::<IpAddr>().ok();
                (name, ip)
            }
            None => return Err("url has no host".into()),
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => Credentials::None,
            (token, None) => Credentials::Token(decode(token)),
            (user, Some(password)) => Credentials::UserPassword(decode(user), decode(password)),
        };
        Ok(NatsConfig {
            tls,
            port: url.port().unwrap_or(DEFAULT_PORT),
            host,
            ip,
            subject: subject.to_owned(),
            credentials,
            connection: raw.to_owned(),
        })
    }

    /// `host:port`, as reasons name the server.
    fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Percent-decodes a URL's user or password; a `%` not followed by two hex digits stays.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A client connection to one server with one set of credentials.
struct Connection {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// Subjects the server said these credentials may not publish to, and when.
    denied: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Connection {
    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Whether the server refused a publish to `subject` since `since`.
    fn denied_since(&self, subject: &str, since: Instant) -> bool {
        let denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
        denied.get(subject).is_some_and(|at| *at >= since)
    }
}

/// Notes the subject of a publish permission violation (`-ERR 'Permissions Violation for
/// Publish to "orders.x"'`): the server answers nothing else to the publish.
fn note_denied(denied: &Mutex<HashMap<String, Instant>>, event: &Event) {
    let Event::ServerError(ServerError::Other(text)) = event else {
        return;
    };
    let lower = text.to_ascii_lowercase();
    let Some(at) = lower.find("permissions violation for publish to") else {
        return;
    };
    let rest = &text[at..];
    let mut quoted = rest.split('"');
    if let (Some(_), Some(subject)) = (quoted.next(), quoted.next()) {
        let mut denied = denied.lock().unwrap_or_else(|e| e.into_inner());
        denied.insert(subject.to_owned(), Instant::now());
    }
}

/// Where a connection is kept: made by one batch at a time, used by all.
struct Slot {
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    used: Mutex<Instant>,
}

/// Why there is no connection to send on.
struct Trouble {
    verdict: Verdict,
    failure: Failure,
}

impl Trouble {
    fn new(verdict: Verdict, code: &str, reason: impl Into<String>) -> Self {
        Trouble {
            verdict,
            failure: Failure::new(code, reason),
        }
    }
}

/// The NATS JetStream destination kind: a connection per server and credentials.
pub struct Nats {
    policy: Arc<AddressPolicy>,
    resolver: GuardedResolver,
    timeout: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Nats {
    pub fn new(shared: &Shared) -> Self {
        Nats {
            policy: shared.policy.clone(),
            resolver: GuardedResolver::new(shared.policy.clone()),
            timeout: shared.request_timeout,
            slots: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Destination for Nats {
    type Config = NatsConfig;

    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn config(&self, at: &Resolve<'_>) -> Result<NatsConfig, String> {
        let Stored::Nats(d) = &at.sub.destination else {
            return Err("not a NATS destination".into());
        };
        NatsConfig::parse(&at.open(&d.url.sealed)?, &d.subject)
    }

    fn lane(&self, config: &NatsConfig) -> Lane {
        Lane {
            key: format!("nats:{}:{} {}", config.host, config.port, config.subject),
            endpoint: None,
        }
    }

    fn batch_limit(&self, _config: &NatsConfig) -> usize {
        BATCH_LIMIT
    }

    async fn send(&self, batch: &[Message<'_, NatsConfig>]) -> Sent {
        let mut outcomes: Vec<Option<(Answer, Verdict)>> = vec![None; batch.len()];
        let mut rtt = None;
        // A lane is a server and a subject; its subscriptions may still use different
        // credentials, and so connections.
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, message) in batch.iter().enumerate() {
            let key = message.config.connection.as_str();
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for (_, members) in groups {
            let took = self.send_group(batch, &members, &mut outcomes).await;
            rtt = match (rtt, took) {
                (Some(a), Some(b)) => Some(std::cmp::max(a, b)),
                (a, b) => a.or(b),
            };
        }
        let mut verdict = Verdict::NotSent;
        let answers = outcomes
            .into_iter()
            .map(|outcome| {
                let (answer, v) = outcome.unwrap_or_else(|| {
                    let unsent = Answer::unsent("unanswered", "no answer for this message");
                    (unsent, Verdict::NotSent)
                });
                verdict = worse(verdict, v);
                answer
            })
            .collect();
        Sent {
            verdict,
            rtt,
            answers,
        }
    }

    fn classify(&self, failure: &Failure) -> Action {
        classify(failure)
    }
}

/// Gives up on what fails the same way every time; retries the rest.
fn classify(failure: &Failure) -> Action {
    let code = failure.code.as_str();
    let permanent_jetstream = code
        .strip_prefix(code::JETSTREAM)
        .and_then(|c| c.strip_prefix('-'))
        .and_then(|c| c.parse().ok())
        .is_some_and(|c| PERMANENT_JETSTREAM.contains(&ErrorCode(c)));
    if PERMANENT.contains(&code) || permanent_jetstream {
        Action::GiveUp
    } else {
        super::retry(failure)
    }
}

/// Whose failure a batch was, of two parts of it: the host's, then the endpoint's, then
/// success, then nothing sent.
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

fn refused(verdict: Verdict, code: &str, reason: impl Into<String>) -> (Answer, Verdict) {
    (Answer::Refused(Failure::new(code, reason)), verdict)
}

impl Nats {
    /// Publishes the messages `members` of `batch` (of one connection) and awaits their
    /// acknowledgements, all within the request timeout; fills in their outcomes.
    /// Returns the time from the first publish to the last acknowledgement.
    async fn send_group(
        &self,
        batch: &[Message<'_, NatsConfig>],
        members: &[usize],
        outcomes: &mut [Option<(Answer, Verdict)>],
    ) -> Option<Duration> {
        let config = members.first().map(|&i| batch[i].config)?;
        let mut publishes = Vec::with_capacity(members.len());
        for &i in members {
            match publish(&batch[i]) {
                Ok(publish) => publishes.push((i, publish)),
                Err(why) => outcomes[i] = Some(refused(Verdict::NotSent, code::PAYLOAD, why)),
            }
        }
        if publishes.is_empty() {
            return None;
        }
        let connection = match self.connection(config).await {
            Ok(connection) => connection,
            Err(trouble) => {
                for (i, _) in publishes {
                    let answer = Answer::Refused(trouble.failure.clone());
                    outcomes[i] = Some((answer, trouble.verdict));
                }
                return None;
            }
        };

        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let subject = &config.subject;
        let mut pending = Vec::with_capacity(publishes.len());
        for (i, publish) in publishes {
            let sent = tokio::time::timeout_at(
                deadline,
                connection.jetstream.send_publish(subject.clone(), publish),
            )
            .await;
            match sent {
                Ok(Ok(ack)) => pending.push((i, ack)),
                Ok(Err(e)) => {
                    outcomes[i] = Some(self.publish_failed(config, &connection, e, started))
                }
                Err(_) => outcomes[i] = Some(self.timed_out(config, &connection, started)),
            }
        }
        let mut rtt = None;
        for (i, ack) in pending {
            let outcome =
                match tokio::time::timeout_at(deadline, std::future::IntoFuture::into_future(ack))
                    .await
                {
                    Ok(Ok(ack)) => {
                        rtt = Some(started.elapsed());
                        let body = serde_json::json!({
                            "stream": ack.stream,
                            "seq": ack.sequence,
                            "duplicate": ack.duplicate,
                        });
                        let answer = Answer::Delivered {
                            status: None,
                            body: Some(body.to_string()),
                        };
                        (answer, Verdict::Succeeded)
                    }
                    Ok(Err(e)) => self.publish_failed(config, &connection, e, started),
                    Err(_) => self.timed_out(config, &connection, started),
                };
            outcomes[i] = Some(outcome);
        }
        let lost = members
            .iter()
            .any(|&i| matches!(&outcomes[i], Some((_, Verdict::HostFailed))));
        if lost || !connection.connected() {
            self.discard(config, &connection).await;
        }
        rtt
    }

    /// What a failed publish or acknowledgement came to.
    fn publish_failed(
        &self,
        config: &NatsConfig,
        connection: &Connection,
        e: PublishError,
        started: Instant,
    ) -> (Answer, Verdict) {
        let subject = &config.subject;
        match e.kind() {
            PublishErrorKind::StreamNotFound => refused(
                Verdict::EndpointFailed,
                code::NO_STREAM,
                format!("no JetStream stream captures subject {subject:?}"),
            ),
            PublishErrorKind::MaxPayloadExceeded => refused(
                Verdict::NotSent,
                code::TOO_LARGE,
                format!(
                    "event too large for the NATS server {} (its max_payload): {e}",
                    config.server()
                ),
            ),
            PublishErrorKind::TimedOut => self.timed_out(config, connection, started),
            PublishErrorKind::BrokenPipe => self.lost(config),
            _ => {
                let source = std::error::Error::source(&e);
                if let Some(js) = source.and_then(|s| s.downcast_ref::<jetstream::Error>()) {
                    let c = js.error_code();
                    let code = if PERMANENT_JETSTREAM.contains(&c) {
                        code::TOO_LARGE.to_owned()
                    } else {
                        format!("{}-{}", code::JETSTREAM, c.0)
                    };
                    refused(
                        Verdict::EndpointFailed,
                        &code,
                        format!("JetStream refused the message: {js}"),
                    )
                } else if source.is_some_and(|s| s.is::<async_nats::SubjectError>()) {
                    refused(
                        Verdict::NotSent,
                        code::CONFIG,
                        format!("subject {subject:?} is not one to publish to: {e}"),
                    )
                } else if connection.connected() {
                    refused(
                        Verdict::EndpointFailed,
                        code::JETSTREAM,
                        format!("publishing to {subject:?} failed: {e}"),
                    )
                } else {
                    self.lost(config)
                }
            }
        }
    }

    /// No acknowledgement before the deadline: a refused permission, a server too slow to
    /// answer, or a connection lost.
    fn timed_out(
        &self,
        config: &NatsConfig,
        connection: &Connection,
        started: Instant,
    ) -> (Answer, Verdict) {
        let subject = &config.subject;
        if connection.denied_since(subject, started) {
            refused(
                Verdict::EndpointFailed,
                code::PERMISSION,
                format!(
                    "the NATS server {} does not permit these credentials to publish to {subject:?}",
                    config.server()
                ),
            )
        } else if connection.connected() {
            refused(
                Verdict::EndpointFailed,
                code::TIMEOUT,
                format!(
                    "JetStream did not acknowledge the message within {}s",
                    self.timeout.as_secs_f64()
                ),
            )
        } else {
            self.lost(config)
        }
    }

    fn lost(&self, config: &NatsConfig) -> (Answer, Verdict) {
        refused(
            Verdict::HostFailed,
            code::CONNECTION,
            format!(
                "the connection to the NATS server {} was lost before JetStream acknowledged the message",
                config.server()
            ),
        )
    }

    /// The live connection of `config`, made now if there is none.
    async fn connection(&self, config: &NatsConfig) -> Result<Arc<Connection>, Trouble> {
        let slot = self.slot(&config.connection);
        let mut held = slot.connection.lock().await;
        if let Some(connection) = held.as_ref() {
            if connection.connected() {
                return Ok(connection.clone());
            }
        }
        // Lost (async-nats gave up reconnecting, or is still trying): a new one, with the
        // address checked again.
        *held = None;
        let connection = Arc::new(self.connect(config).await?);
        *held = Some(connection.clone());
        Ok(connection)
    }

    /// The slot of a connection key; closes connections unused for [`IDLE`].
    fn slot(&self, key: &str) -> Arc<Slot> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|k, slot| {
            let used = *slot.used.lock().unwrap_or_else(|e| e.into_inner());
            // A slot in use (connecting) is locked: kept.
            k == key || now.duration_since(used) < IDLE || slot.connection.try_lock().is_err()
        });
        let slot = slots
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    connection: tokio::sync::Mutex::new(None),
                    used: Mutex::new(now),
                })
            })
            .clone();
        *slot.used.lock().unwrap_or_else(|e| e.into_inner()) = now;
        slot
    }

    /// Forgets `connection` (lost): the next batch makes a new one.
    async fn discard(&self, config: &NatsConfig, connection: &Arc<Connection>) {
        let slot = self.slot(&config.connection);
        let mut held = slot.connection.lock().await;
        if held.as_ref().is_some_and(|c| Arc::ptr_eq(c, connection)) {
            *held = None;
        }
    }

    /// The addresses to connect to, as async-nats takes them: the checked IP addresses of
    /// the host (`tls://` with a host name: the name, once it resolves to an allowed one).
    async fn addresses(&self, config: &NatsConfig) -> Result<Vec<ServerAddr>, Trouble> {
        let forbidden =
            |e: ResolveError| Trouble::new(Verdict::NotSent, code::FORBIDDEN, e.to_string());
        let ips: Vec<IpAddr> = match config.ip {
            Some(ip) => match ResolveError::check(&self.policy, ip) {
                Some(e) => return Err(forbidden(e)),
                None => vec![ip],
            },
            None => {
                let looked_up =
                    tokio::time::timeout(self.timeout, self.resolver.lookup(&config.host))
                        .await
                        .map_err(|_| {
                            Trouble::new(
                                Verdict::HostFailed,
                                code::CONNECTION,
                                format!("dns error: looking up {} timed out", config.host),
                            )
                        })?;
                match looked_up {
                    Ok(addrs) => addrs.into_iter().map(|a| a.ip()).collect(),
                    Err(e @ ResolveError::Forbidden { .. }) => return Err(forbidden(e)),
                    Err(e) => {
                        return Err(Trouble::new(
                            Verdict::HostFailed,
                            code::CONNECTION,
                            format!(
                                "could not connect to the NATS server {}: {e}",
                                config.server()
                            ),
                        ))
                    }
                }
            }
        };
        let urls: Vec<String> = if config.tls && config.ip.is_none() {
            vec![format!("tls://{}:{}", config.host, config.port)]
        } else {
            let scheme = if config.tls { "tls" } else { "nats" };
            let mut urls: Vec<String> = Vec::new();
            for ip in ips {
                let url = format!("{scheme}://{}", SocketAddr::new(ip, config.port));
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
            urls
        };
        urls.iter()
            .map(|url| {
                url.parse::<ServerAddr>().map_err(|e| {
                    Trouble::new(Verdict::NotSent, code::CONFIG, format!("url {url}: {e}"))
                })
            })
            .collect()
    }

    /// A new connection for `config`, to its checked addresses.
    async fn connect(&self, config: &NatsConfig) -> Result<Connection, Trouble> {
        let addresses = self.addresses(config).await?;
        let denied = Arc::new(Mutex::new(HashMap::new()));
        let noted = denied.clone();
        let mut options = ConnectOptions::new()
            .name("hookrelay")
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .ignore_discovered_servers()
            .retain_servers_order()
            .max_reconnects(MAX_RECONNECTS)
            .event_callback(move |event| {
                note_denied(&noted, &event);
                std::future::ready(())
            });
        options = match &config.credentials {
            Credentials::None => options,
            Credentials::Token(token) => options.token(token.clone()),
            Credentials::UserPassword(user, password) => {
                options.user_and_password(user.clone(), password.clone())
            }
        };
        if config.tls {
            options = options.require_tls(true);
        }
        let client = match tokio::time::timeout(self.timeout, options.connect(addresses)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(connect_failed(&config.server(), &e)),
            Err(_) => {
                return Err(Trouble::new(
                    Verdict::HostFailed,
                    code::CONNECTION,
                    format!(
                        "could not connect to the NATS server {}: timed out after {}s",
                        config.server(),
                        self.timeout.as_secs_f64()
                    ),
                ))
            }
        };
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(self.timeout)
            .build(client.clone());
        Ok(Connection {
            client,
            jetstream,
            denied,
        })
    }
}

/// Whose failure a refused connection was: credentials the server refuses fail the same
/// way every time; the rest is the host's.
fn connect_failed(server: &str, e: &ConnectError) -> Trouble {
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            Trouble::new(
                Verdict::EndpointFailed,
                code::AUTH,
                format!("the NATS server {server} refused the credentials: {e}"),
            )
        }
        ConnectErrorKind::ServerParse => Trouble::new(
            Verdict::NotSent,
            code::CONFIG,
            format!("the NATS server {server}: {e}"),
        ),
        _ => Trouble::new(
            Verdict::HostFailed,
            code::CONNECTION,
            format!("could not connect to the NATS server {server}: {e}"),
        ),
    }
}

/// The message of a delivery: its body and headers.
fn publish(message: &Message<'_, NatsConfig>) -> Result<PublishMessage, String> {
    let body = message.body()?;
    let delivery = message.delivery;
    let value = |v: &str| {
        v.parse::<async_nats::HeaderValue>()
            .map_err(|e| format!("header value {v:?}: {e}"))
    };
    Ok(PublishMessage::build()
        .payload(body.into())
        .message_id(&delivery.id)
        .header("webhook-id", value(&delivery.id)?)
        .header("event-type", value(&delivery.event.event_type)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Aws;

    fn nats(policy: AddressPolicy) -> Nats {
        Nats::new(&Shared {
            policy: Arc::new(policy),
            request_timeout: Duration::from_secs(2),
            aws: Arc::new(Aws::new(Duration::from_secs(2))),
        })
    }

    fn strict() -> AddressPolicy {
        AddressPolicy {
            allow_http: true,
            allowed_networks: Vec::new(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        }
    }

    fn loopback_allowed() -> AddressPolicy {
        AddressPolicy {
            allow_http: true,
            allowed_networks: AddressPolicy::parse_networks("127.0.0.0/8").unwrap(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        }
    }

    fn seal(plain: &[u8]) -> Result<Sealed, String> {
        Ok(Sealed(plain.to_vec()))
    }

    #[test]
    fn lane_keys_have_no_credentials() {
        let kind = nats(strict());
        for (url, key) in [
            (
                "nats://alice:s3cret@Broker.Example:4333",
                "nats:broker.example:4333 orders.x",
            ),
            (
                "nats://t0ken@broker.example",
                "nats:broker.example:4222 orders.x",
            ),
            (
                "tls://u:p%40ss@10.1.2.3:7422",
                "nats:10.1.2.3:7422 orders.x",
            ),
            ("nats://[::1]:4222", "nats:[::1]:4222 orders.x"),
        ] {
            let config = NatsConfig::parse(url, "orders.x").unwrap();
            let lane = kind.lane(&config);
            assert_eq!(lane.key, key, "{url}");
            assert!(lane.endpoint.is_none());
            for secret in ["alice", "s3cret", "t0ken", "p%40ss", "p@ss"] {
                assert!(!lane.key.contains(secret), "{url}: {}", lane.key);
            }
        }
    }

    #[test]
    fn credentials_come_from_the_url() {
        let config = NatsConfig::parse("nats://alice:p%40ss%2F@h:1", "s").unwrap();
        assert!(config.credentials == Credentials::UserPassword("alice".into(), "p@ss/".into()));
        let config = NatsConfig::parse("tls://s3cr%3At@h", "s").unwrap();
        assert!(config.credentials == Credentials::Token("s3cr:t".into()));
        assert!(config.tls);
        let config = NatsConfig::parse("nats://127.0.0.1:4222", "s").unwrap();
        assert!(config.credentials == Credentials::None);
        assert_eq!(config.ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert!(NatsConfig::parse("amqp://h", "s").is_err());
        assert_eq!(decode("a%zz%4"), "a%zz%4");
        assert_eq!(decode("%41%62"), "Ab");
    }

    #[test]
    fn permanent_failures_are_given_up() {
        let f = |code: &str| Failure::new(code, "why");
        for code in [
            code::NO_STREAM,
            code::AUTH,
            code::PERMISSION,
            code::TOO_LARGE,
            code::PAYLOAD,
            "jetstream-10054",
        ] {
            assert_eq!(classify(&f(code)), Action::GiveUp, "{code}");
        }
        for code in [
            code::CONNECTION,
            code::TIMEOUT,
            code::FORBIDDEN,
            code::JETSTREAM,
            "jetstream-10077",
            "unanswered",
        ] {
            assert_eq!(classify(&f(code)), Action::Retry, "{code}");
        }
    }

    #[test]
    fn refused_credentials_are_permanent_and_the_rest_the_hosts() {
        let auth = connect_failed(
            "h:4222",
            &ConnectError::new(ConnectErrorKind::AuthorizationViolation),
        );
        assert_eq!(auth.verdict, Verdict::EndpointFailed);
        assert_eq!(classify(&auth.failure), Action::GiveUp);
        assert!(
            auth.failure.reason.contains("refused the credentials"),
            "{}",
            auth.failure.reason
        );
        let io = connect_failed("h:4222", &ConnectError::new(ConnectErrorKind::Io));
        assert_eq!(io.verdict, Verdict::HostFailed);
        assert_eq!(classify(&io.failure), Action::Retry);
    }

    #[test]
    fn permission_violations_are_noted_by_subject() {
        let denied = Mutex::new(HashMap::new());
        let before = Instant::now();
        note_denied(
            &denied,
            &Event::ServerError(ServerError::Other(
                "Permissions Violation for Publish to \"orders.x\"".into(),
            )),
        );
        note_denied(&denied, &Event::Disconnected);
        let denied = denied.into_inner().unwrap();
        assert_eq!(denied.len(), 1);
        assert!(denied["orders.x"] >= before);
    }

    #[test]
    fn stored_urls_are_checked_and_masked() {
        let ok = stored(
            &loopback_allowed(),
            "nats://u:pw@127.0.0.1:4222",
            "orders.x",
            seal,
        )
        .unwrap();
        assert_eq!(ok.url.shown, "nats://u:***@127.0.0.1:4222");
        let token = stored(&loopback_allowed(), "nats://t0ken@127.0.0.1", "a.b", seal).unwrap();
        assert_eq!(token.url.shown, "nats://***@127.0.0.1");
        let err = stored(&strict(), "nats://127.0.0.1:4222", "orders.x", seal).unwrap_err();
        assert!(err.contains("127.0.0.1"), "{err}");
        assert!(stored(&strict(), "nats://localhost:4222", "orders.x", seal).is_err());
        assert!(stored(&strict(), "http://example.com", "orders.x", seal).is_err());
        for subject in ["", "orders.*", "orders.>", "a..b", "a b", &"x".repeat(256)] {
            assert!(
                stored(&strict(), "nats://example.com", subject, seal).is_err(),
                "{subject:?}"
            );
        }
    }

    #[tokio::test]
    async fn forbidden_addresses_are_not_connected_to() {
        let kind = nats(strict());
        for url in [
            "nats://127.0.0.1:4222",
            "nats://localhost:4222",
            "tls://localhost:4222",
        ] {
            let config = NatsConfig::parse(url, "orders.x").unwrap();
            let Err(trouble) = kind.connection(&config).await else {
                panic!("{url} must be refused");
            };
            assert_eq!(trouble.verdict, Verdict::NotSent, "{url}");
            let reason = &trouble.failure.reason;
            assert!(
                reason == "forbidden address 127.0.0.1 (loopback)"
                    || reason == "forbidden address ::1 (loopback)",
                "{url}: {reason}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_the_hosts_failure() {
        // Nothing listens on port 1.
        let kind = nats(loopback_allowed());
        let config = NatsConfig::parse("nats://u:secret@127.0.0.1:1", "orders.x").unwrap();
        let Err(trouble) = kind.connection(&config).await else {
            panic!("nothing listens on 127.0.0.1:1");
        };
        assert_eq!(trouble.verdict, Verdict::HostFailed);
        assert_eq!(trouble.failure.code, code::CONNECTION);
        assert_eq!(classify(&trouble.failure), Action::Retry);
        assert!(
            !trouble.failure.reason.contains("secret"),
            "{}",
            trouble.failure.reason
        );
    }
}
