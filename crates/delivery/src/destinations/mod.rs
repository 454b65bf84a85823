//! Destination kinds (docs/destinations.md). Each kind is one module here that implements
//! [`Destination`]: how a subscription's stored destination becomes a ready config, the
//! lane it is bounded and batched by, how many messages go in one request, how a batch is
//! sent, and which failures are worth retrying. The dispatcher, the worker, metrics and
//! the delivery log know only the trait; [`Registry`] is where kinds are registered.
//!
//! Adding a kind: its module, one line in [`Registry`], its stored form
//! (`hookrelay_core::Destination`) and its GraphQL input.

mod aws_batch;
pub mod eventbridge;
pub mod nats;
pub mod rabbitmq;
pub mod sns;
pub mod sqs;
pub mod webhook;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::secrets::Cipher;
use hookrelay_core::{Destination as Stored, Sealed, SecretUrl, SubscriptionRecord};
use hookrelay_store::{ClaimedDelivery, Store};

use crate::aws::Aws;
use crate::target::Target;

/// Whose failure a request was (docs/delivery.md "Blocking a failing destination"): the
/// host's failures count for the lane's breaker and push its concurrency down; failing
/// answers count for the endpoint (a webhook's URL) alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The destination answered (for a batch: it answered the call, whatever it said of
    /// each message), with success.
    Succeeded,
    /// The destination answered, but not with success (a webhook's status outside 2xx),
    /// or the answer did not come in time after the request was sent.
    EndpointFailed,
    /// The host itself failed: DNS, a refused or reset connection, a connect or TLS error
    /// or timeout, a broker that went away.
    HostFailed,
    /// Nothing reached the host: the payload, the credentials or the address policy
    /// failed first.
    NotSent,
}

/// The code of a message no destination would take as it is (its body cannot be made, or
/// it is over the destination's size limit): every kind gives up on it at once.
pub const UNSENDABLE: &str = "unsendable";

/// What a destination said of one message it was given.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Taken. `status`: the HTTP status where there is one; `body`: what the log keeps of
    /// the answer (a webhook's response body, SQS's message id, JetStream's sequence).
    Delivered {
        status: Option<u16>,
        body: Option<String>,
    },
    Refused(Failure),
}

impl Answer {
    /// A refusal for a message that was never sent (`reason` says why).
    pub fn unsent(code: &str, reason: impl Into<String>) -> Self {
        Answer::Refused(Failure::new(code, reason))
    }
}

/// Why a message was not taken.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The HTTP status, where the destination answered with one.
    pub status: Option<u16>,
    /// The destination's own code for the error, which [`Destination::classify`] reads:
    /// AWS's error code, an AMQP reply code, `http-503`, `connection`…
    pub code: String,
    /// The reason, as the delivery log shows it.
    pub reason: String,
    /// What the log keeps of the answer.
    pub body: Option<String>,
    /// How long the destination asked to be left alone (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(code: &str, reason: impl Into<String>) -> Self {
        Failure {
            status: None,
            code: code.to_owned(),
            reason: reason.into(),
            body: None,
            retry_after: None,
        }
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// At the next step of the retry schedule.
    Retry,
    /// Not before this long (the schedule's next step, if later, still holds).
    RetryAfter(Duration),
    /// It would fail the same way every time: FAILED now, with the reason; the
    /// subscription stays active.
    GiveUp,
    /// The destination says it is gone for good (a webhook's `410 Gone`): FAILED now,
    /// and the subscription is deactivated at once, as after its last retry.
    Deactivate,
}

/// The usual classification: a failure that named a `Retry-After` waits for it, the rest
/// follow the schedule.
pub fn retry(failure: &Failure) -> Action {
    match failure.retry_after {
        Some(after) => Action::RetryAfter(after),
        None => Action::Retry,
    }
}

/// What a request came to.
#[derive(Debug)]
pub struct Sent {
    /// What it tells the lane (its breakers and concurrency).
    pub verdict: Verdict,
    /// From sending to the answer, when the destination answered.
    pub rtt: Option<Duration>,
    /// One per message sent, in order.
    pub answers: Vec<Answer>,
}

impl Sent {
    /// Every message failed the same way.
    pub fn all_failed(verdict: Verdict, n: usize, failure: Failure) -> Self {
        Sent {
            verdict,
            rtt: None,
            answers: vec![Answer::Refused(failure); n],
        }
    }
}

/// Where a kind's deliveries are bounded, batched and judged together.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The lane: a webhook's `host:port`, `eventbridge:{region}:{call}`, `sqs:{queue}`…
    /// Keys of kinds other than webhooks start with the kind, so a lane holds one kind.
    pub key: String,
    /// The endpoint within the lane (a webhook's URL), the unit of the endpoint breaker;
    /// `None` where the lane is the endpoint.
    pub endpoint: Option<String>,
}

/// One message of a batch: the delivery, the subscription it goes to, and the
/// subscription's config of this kind.
pub struct Message<'a, C> {
    pub delivery: &'a ClaimedDelivery,
    pub target: &'a Target,
    pub config: &'a C,
}

impl<C> Message<'_, C> {
    /// The body in the subscription's style (docs/payloads.md).
    pub fn body(&self) -> Result<Vec<u8>, String> {
        self.target.payload(self.delivery)
    }
}

/// What a kind may use to resolve a subscription: the database (a webhook's auth
/// profile) and the opened secrets of the subscription.
pub struct Resolve<'a> {
    pub store: &'a dyn Store,
    pub cipher: &'a Cipher,
    pub sub: &'a SubscriptionRecord,
}

impl Resolve<'_> {
    /// Opens a secret sealed for this subscription's destination
    /// ([`hookrelay_core::secrets::destination_secret_context`]).
    pub fn open(&self, sealed: &Sealed) -> Result<String, String> {
        let context =
            hookrelay_core::secrets::destination_secret_context(&self.sub.store, &self.sub.id);
        let plain = self
            .cipher
            .open(&context, sealed)
            .map_err(|e| format!("destination secret: {e}"))?;
        String::from_utf8(plain).map_err(|e| format!("destination secret: {e}"))
    }
}

/// A destination kind.
#[async_trait]
pub trait Destination: Send + Sync + 'static {
    /// A subscription's destination, parsed, with its secrets opened: what `send` needs.
    type Config: Send + Sync + 'static;

    /// The kind's name in metrics and logs (`webhook`, `sqs`).
    fn kind(&self) -> &'static str;

    /// The config of `at.sub`, whose stored destination is of this kind. `Err`: it
    /// cannot be delivered to (every attempt fails with the reason).
    async fn config(&self, at: &Resolve<'_>) -> Result<Self::Config, String>;

    fn lane(&self, config: &Self::Config) -> Lane;

    /// Messages per request at most (1: one delivery per request).
    fn batch_limit(&self, _config: &Self::Config) -> usize {
        1
    }

    /// Sends `batch`: messages of one lane, at most the batch limit. Returns one answer
    /// per message, in order.
    async fn send(&self, batch: &[Message<'_, Self::Config>]) -> Sent;

    /// Whether a failure is worth trying again, or ends the delivery or the subscription.
    fn classify(&self, failure: &Failure) -> Action {
        retry(failure)
    }
}

/// A subscription's destination, ready: the kind that delivers it and its config.
pub struct Resolved {
    pub kind: Arc<dyn Kind>,
    pub config: Arc<dyn Any + Send + Sync>,
    pub lane: Lane,
    pub batch_limit: usize,
}

/// [`Destination`] with its config type erased, as the engine holds kinds.
#[async_trait]
pub trait Kind: Send + Sync {
    fn name(&self) -> &'static str;
    async fn resolve(self: Arc<Self>, at: &Resolve<'_>) -> Result<Resolved, String>;
    /// Sends works of one lane; each target's config must be this kind's.
    async fn send(&self, works: &[(&ClaimedDelivery, &Target)]) -> Sent;
    fn classify(&self, failure: &Failure) -> Action;
}

/// The erasure of a [`Destination`].
struct Plug<D>(D);

#[async_trait]
impl<D: Destination> Kind for Plug<D> {
    fn name(&self) -> &'static str {
        self.0.kind()
    }

    async fn resolve(self: Arc<Self>, at: &Resolve<'_>) -> Result<Resolved, String> {
        let config = self.0.config(at).await?;
        Ok(Resolved {
            lane: self.0.lane(&config),
            batch_limit: self.0.batch_limit(&config).max(1),
            config: Arc::new(config),
            kind: self,
        })
    }

    async fn send(&self, works: &[(&ClaimedDelivery, &Target)]) -> Sent {
        let mut batch = Vec::with_capacity(works.len());
        for (delivery, target) in works {
            match target.config.downcast_ref::<D::Config>() {
                Some(config) => batch.push(Message {
                    delivery,
                    target,
                    config,
                }),
                // The lane keys keep kinds apart; this would be a bug, and must not
                // send anything anywhere.
                None => {
                    return Sent::all_failed(
                        Verdict::NotSent,
                        works.len(),
                        Failure::new(
                            "internal",
                            format!(
                                "internal error: a {} lane was given another kind's delivery",
                                self.0.kind()
                            ),
                        ),
                    )
                }
            }
        }
        let mut sent = self.0.send(&batch).await;
        // A kind that answered for fewer messages than it was given leaves the rest to
        // be tried again.
        sent.answers.resize_with(works.len(), || {
            Answer::unsent(
                "unanswered",
                "the destination gave no answer for this message",
            )
        });
        sent
    }

    fn classify(&self, failure: &Failure) -> Action {
        self.0.classify(failure)
    }
}

/// A broker URL as it is stored: one of `schemes`, a host the address policy allows (as
/// far as can be told without a lookup; the address connected to is checked again), the
/// whole URL sealed with `seal` (credentials and all), and shown with its secret masked.
pub fn seal_url(
    policy: &AddressPolicy,
    raw: &str,
    schemes: &[&str],
    described: &'static str,
    seal: impl FnOnce(&[u8]) -> Result<Sealed, String>,
) -> Result<SecretUrl, String> {
    let url = policy
        .check_broker_url(raw, schemes, described)
        .map_err(|e| e.to_string())?;
    let mut shown = url.clone();
    // Neither fails on a URL with a host.
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    } else if !shown.username().is_empty() {
        // A username alone is a token (`nats://TOKEN@host`).
        let _ = shown.set_username("***");
    }
    Ok(SecretUrl {
        shown: shown.to_string(),
        sealed: seal(raw.as_bytes())?,
    })
}

/// A subscription whose destination cannot be used (its config could not be made: a
/// secret that does not open, a stored form that no longer parses): every attempt fails
/// with the reason, on the retry schedule, in a lane of its own, so that the log says why
/// and nothing else waits for it.
struct Unusable {
    kind: &'static str,
    why: String,
}

#[async_trait]
impl Kind for Unusable {
    fn name(&self) -> &'static str {
        self.kind
    }

    async fn resolve(self: Arc<Self>, _at: &Resolve<'_>) -> Result<Resolved, String> {
        Err(self.why.clone())
    }

    async fn send(&self, works: &[(&ClaimedDelivery, &Target)]) -> Sent {
        Sent::all_failed(
            Verdict::NotSent,
            works.len(),
            Failure::new("unusable", self.why.clone()),
        )
    }

    fn classify(&self, _failure: &Failure) -> Action {
        Action::Retry
    }
}

/// The destination of subscription `id`, of kind `kind`, that cannot be used, and why.
pub fn unusable(kind: &'static str, id: &str, why: String) -> Resolved {
    Resolved {
        kind: Arc::new(Unusable { kind, why }),
        config: Arc::new(()),
        lane: Lane {
            key: format!("unusable:{id}"),
            endpoint: None,
        },
        batch_limit: 1,
    }
}

/// What kinds share: the address policy, the request timeout, the AWS configuration.
pub struct Shared {
    pub policy: Arc<AddressPolicy>,
    pub request_timeout: Duration,
    pub aws: Arc<Aws>,
}

/// Every destination kind of the process.
pub struct Registry {
    webhook: Arc<dyn Kind>,
    eventbridge: Arc<dyn Kind>,
    sqs: Arc<dyn Kind>,
    sns: Arc<dyn Kind>,
    rabbitmq: Arc<dyn Kind>,
    nats: Arc<dyn Kind>,
}

impl Registry {
    pub fn new(
        shared: &Shared,
        webhook: webhook::Webhook,
        eventbridge: eventbridge::EventBridgeKind,
    ) -> Self {
        Registry {
            webhook: Arc::new(Plug(webhook)),
            eventbridge: Arc::new(Plug(eventbridge)),
            sqs: Arc::new(Plug(sqs::Sqs::new(shared))),
            sns: Arc::new(Plug(sns::Sns::new(shared))),
            rabbitmq: Arc::new(Plug(rabbitmq::RabbitMq::new(shared))),
            nats: Arc::new(Plug(nats::Nats::new(shared))),
        }
    }

    /// The kind that delivers `destination`: one line per kind.
    pub fn kind(&self, destination: &Stored) -> &Arc<dyn Kind> {
        match destination {
            Stored::Webhook { .. } => &self.webhook,
            Stored::EventBridge { .. } => &self.eventbridge,
            Stored::Sqs(_) => &self.sqs,
            Stored::Sns(_) => &self.sns,
            Stored::RabbitMq(_) => &self.rabbitmq,
            Stored::Nats(_) => &self.nats,
        }
    }
}
