//! Domain records shared by the store, the API and (later) the delivery engine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The current time at the precision records keep (milliseconds), so that a record reads
/// back exactly as it was answered when made.
pub fn now() -> DateTime<Utc> {
    let ms = Utc::now().timestamp_millis();
    DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
}

/// What a token may do (docs/concepts.md#api-clients-and-roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// An app or integration of one store: sees what it made.
    Client,
    /// A store's administrator: sees everything of its store.
    StoreAdmin,
    /// The platform backend: publishes events for any store.
    Publisher,
    /// The operator: everything, in every store.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::StoreAdmin => "store-admin",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        }
    }

    /// Roles bound to one store.
    pub fn needs_store(self) -> bool {
        matches!(self, Role::Client | Role::StoreAdmin)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(Role::Client),
            "store-admin" => Ok(Role::StoreAdmin),
            "publisher" => Ok(Role::Publisher),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected client, store-admin, publisher or admin)"
            )),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub client_id: String,
    pub role: Role,
    /// The store a client or store-admin token is bound to.
    pub store: Option<String>,
}

/// An API client (a token's public half) as listed by `token list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiClient {
    pub client_id: String,
    pub role: Role,
    pub store: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreRecord {
    pub store_hash: String,
    pub created_at: DateTime<Utc>,
}

/// Which vendor's API made a subscription; it decides the payload format
/// (docs/payloads.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Style {
    /// `createEventSubscription`.
    BuyWithPrime,
    /// `webhook { createHttpsWebhook / createEventBridgeWebhook }`.
    BigCommerce,
}

impl Style {
    pub fn as_str(self) -> &'static str {
        match self {
            Style::BuyWithPrime => "bwp",
            Style::BigCommerce => "bc",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bwp" => Some(Style::BuyWithPrime),
            "bc" => Some(Style::BigCommerce),
            _ => None,
        }
    }
}

/// HTTP method of a webhook destination or token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Get,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Get => "GET",
        }
    }
    /// Accepts `POST`, `PUT`, `GET` in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "POST" => Some(HttpMethod::Post),
            "PUT" => Some(HttpMethod::Put),
            "GET" => Some(HttpMethod::Get),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// OAuth 2.0 client-credentials configuration of an auth profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    pub auth_endpoint: String,
    pub http_method: HttpMethod,
    pub body_parameters: Vec<KeyValue>,
    pub header_parameters: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicAuthConfig {
    pub username: String,
    pub password: String,
}

/// How hookrelay authenticates to a webhook destination. Stored sealed as a whole
/// (it holds secrets), so the store never sees it in plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthConfig {
    OAuth(OAuthConfig),
    Basic(BasicAuthConfig),
}

impl AuthConfig {
    pub fn kind(&self) -> AuthKind {
        match self {
            AuthConfig::OAuth(_) => AuthKind::OAuth,
            AuthConfig::Basic(_) => AuthKind::Basic,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    OAuth,
    Basic,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::OAuth => "oauth",
            AuthKind::Basic => "basic",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "oauth" => Some(AuthKind::OAuth),
            "basic" => Some(AuthKind::Basic),
            _ => None,
        }
    }
}

/// Bytes produced by [`crate::secrets::Cipher::seal`]. Only ciphertext crosses into storage;
/// in a JSON column it is base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Sealed)
            .map_err(serde::de::Error::custom)
    }
}

/// An auth profile as stored.
#[derive(Debug, Clone)]
pub struct AuthProfileRecord {
    pub store: String,
    pub id: String,
    pub owner_client_id: String,
    pub kind: AuthKind,
    /// The sealed JSON of an [`AuthConfig`].
    pub config: Sealed,
    /// Set when the profile was made from a subscription's inline `authConfig`: it is
    /// private to that subscription, not listed, and goes away with it.
    pub inline_for: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A subscription's state (docs/concepts.md#subscriptions: `ACTIVE`, `INACTIVE` by the
/// user, `DEACTIVATED` by hookrelay after the last retry failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionStatus {
    Active,
    Inactive,
    Deactivated,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "ACTIVE",
            SubscriptionStatus::Inactive => "INACTIVE",
            SubscriptionStatus::Deactivated => "DEACTIVATED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(SubscriptionStatus::Active),
            "INACTIVE" => Some(SubscriptionStatus::Inactive),
            "DEACTIVATED" => Some(SubscriptionStatus::Deactivated),
            _ => None,
        }
    }
    pub fn is_active(self) -> bool {
        self == SubscriptionStatus::Active
    }
}

/// Where a subscription's events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Destination {
    Webhook {
        url: String,
        method: HttpMethod,
        auth_profile_id: Option<String>,
        /// The profile was made from an inline `authConfig`: private to this subscription.
        #[serde(default)]
        inline_auth: bool,
        headers: Vec<KeyValue>,
    },
    /// Amazon EventBridge (docs/eventbridge.md#destinations): a partner event source
    /// (`PutPartnerEvents`) or an event bus (`PutEvents`).
    EventBridge {
        /// The event source's ARN as AWS answered it, or the event bus's ARN.
        arn: String,
        region: String,
        /// The partner event source name (`aws.partner/…`); `None` for an event bus.
        #[serde(default)]
        partner_source: Option<String>,
    },
    /// An Amazon SQS queue (docs/destinations.md#amazon-sqs).
    Sqs(SqsDestination),
    /// An Amazon SNS topic (docs/destinations.md#amazon-sns).
    Sns(SnsDestination),
    /// A RabbitMQ exchange (docs/destinations.md#rabbitmq).
    #[serde(rename = "rabbitmq")]
    RabbitMq(RabbitMqDestination),
    /// A NATS JetStream subject (docs/destinations.md#nats-jetstream).
    Nats(NatsDestination),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqsDestination {
    pub queue_url: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnsDestination {
    /// `arn:aws:sns:{region}:{account}:{name}`; the region is the ARN's.
    pub topic_arn: String,
}

/// A broker URL that may carry credentials: the whole URL sealed, and what is shown of it
/// (the password masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretUrl {
    pub shown: String,
    pub sealed: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RabbitMqDestination {
    /// `amqp://` or `amqps://`, sealed with its password.
    pub url: SecretUrl,
    pub exchange: String,
    pub routing_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsDestination {
    /// `nats://` or `tls://`, sealed with its credentials.
    pub url: SecretUrl,
    pub subject: String,
}

impl Destination {
    /// The sealed secret the destination carries, if its kind has one (a broker URL with
    /// credentials): what a master-key rotation re-seals.
    pub fn secret_mut(&mut self) -> Option<&mut SecretUrl> {
        match self {
            Destination::RabbitMq(d) => Some(&mut d.url),
            Destination::Nats(d) => Some(&mut d.url),
            Destination::Webhook { .. }
            | Destination::EventBridge { .. }
            | Destination::Sqs(_)
            | Destination::Sns(_) => None,
        }
    }

    /// The part of the destination that makes two subscriptions "the same destination"
    /// for the duplicate rules of both vendors.
    pub fn identity(&self) -> String {
        match self {
            Destination::Webhook { url, .. } => format!("webhook:{url}"),
            Destination::EventBridge { arn, .. } => format!("eventbridge:{arn}"),
            Destination::Sqs(d) => format!("sqs:{}", d.queue_url),
            Destination::Sns(d) => format!("sns:{}", d.topic_arn),
            Destination::RabbitMq(d) => {
                format!("rabbitmq:{} {} {}", d.url.shown, d.exchange, d.routing_key)
            }
            Destination::Nats(d) => format!("nats:{} {}", d.url.shown, d.subject),
        }
    }

    /// The kind's name: the `kind` of its stored form.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Webhook { .. } => "webhook",
            Destination::EventBridge { .. } => "eventbridge",
            Destination::Sqs(_) => "sqs",
            Destination::Sns(_) => "sns",
            Destination::RabbitMq(_) => "rabbitmq",
            Destination::Nats(_) => "nats",
        }
    }

    /// Where it goes, as people are shown it: a webhook's URL without its query (which
    /// may carry secrets), an ARN, a queue, a broker without its password.
    pub fn address(&self) -> String {
        match self {
            Destination::Webhook { url, .. } => {
                url.split('?').next().unwrap_or_default().to_owned()
            }
            Destination::EventBridge { arn, .. } => arn.clone(),
            Destination::Sqs(d) => d.queue_url.clone(),
            Destination::Sns(d) => d.topic_arn.clone(),
            Destination::RabbitMq(d) => format!("{} exchange {}", d.url.shown, d.exchange),
            Destination::Nats(d) => format!("{} subject {}", d.url.shown, d.subject),
        }
    }
}

/// A rotated-out signing secret and when it stops signing.
#[derive(Debug, Clone)]
pub struct PreviousSecret {
    pub secret: Sealed,
    pub until: DateTime<Utc>,
}

/// A subscription of either style.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord {
    pub store: String,
    pub id: String,
    pub owner_client_id: String,
    pub style: Style,
    pub event_types: Vec<String>,
    pub destination: Destination,
    pub status: SubscriptionStatus,
    /// Sealed `whsec_…` signing secret.
    pub signing_secret: Sealed,
    /// The secret replaced by the last rotation, which keeps signing until `until`.
    pub previous_secret: Option<PreviousSecret>,
    /// Deliveries of events with an ordering key go out one at a time per key, in the order
    /// the events were accepted (docs/delivery.md#ordered-delivery).
    pub ordered: bool,
    /// At most this many requests per second, across every node
    /// (docs/delivery.md#rate-limits); `None`: no limit.
    pub rate_limit: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An EventBridge partner event source made for a store (`createEventSource`, or by
/// `createEventSubscription` with an `eventBridge` destination;
/// docs/eventbridge.md#partner-event-sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSourceRecord {
    pub store: String,
    pub id: String,
    pub owner_client_id: String,
    /// The AWS account the source was made for (the customer's).
    pub aws_account: String,
    /// The name as the caller gave it, lower-cased (`final-test-1`).
    pub name: String,
    /// The full partner event source name (`aws.partner/{partner}/{store}/{name}`).
    pub source_name: String,
    pub region: String,
    /// The ARN AWS answered.
    pub arn: String,
    /// Set when the source was made by `createEventSubscription`: it belongs to that
    /// subscription, is not listed, and goes away with it.
    pub subscription_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl EventSourceRecord {
    /// The destination of a subscription that delivers to this source.
    pub fn destination(&self) -> Destination {
        Destination::EventBridge {
            arn: self.arn.clone(),
            region: self.region.clone(),
            partner_source: Some(self.source_name.clone()),
        }
    }
}
