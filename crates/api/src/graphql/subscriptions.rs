//! Buy with Prime event subscriptions (`createEventSubscription` and friends).

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, Union};
use chrono::{DateTime, Utc};
use hookrelay_core::ids::{StoreHash, SubscriptionId};
use hookrelay_core::{
    ids, secrets, signing, AuthProfileRecord, Destination, HttpMethod, Style, SubscriptionRecord,
    SubscriptionStatus,
};
use hookrelay_store::{Conflict, Owned, StoreError, SubscriptionFilter, SubscriptionLimits};

use super::auth_profiles::{self, AuthConfigInput};
use super::context::{request_ctx, RequestCtx};
use super::event_sources;
use super::types::{
    connection, connection_type, page_request, KeyValueInput, KeyValueObject, Method,
};
use super::validate;
use crate::error::{ApiError, ApiResult};
use hookrelay_delivery::destinations::{nats, rabbitmq, sns, sqs};

#[derive(Debug, Clone, InputObject)]
pub struct WebhookDestinationInput {
    pub url: String,
    /// `method` and `httpMethod` are the same thing; the guides use both.
    pub method: Option<Method>,
    pub http_method: Option<Method>,
    pub auth_profile_id: Option<String>,
    pub auth_config: Option<AuthConfigInput>,
    pub headers: Option<Vec<KeyValueInput>>,
}

#[derive(Debug, Clone, InputObject)]
pub struct PartnerEventSourceInput {
    pub account: String,
    pub name: String,
}

/// A partner event source that hookrelay makes for the subscription
/// (`partnerEventSource` and `region`), or an existing event bus (`eventBusArn`).
#[derive(Debug, Clone, InputObject)]
pub struct EventBridgeDestinationInput {
    pub partner_event_source: Option<PartnerEventSourceInput>,
    /// An AWS region name (`us-east-1`).
    pub region: Option<String>,
    /// `arn:aws:events:REGION:ACCOUNT:event-bus/NAME`, delivered with `PutEvents`.
    pub event_bus_arn: Option<String>,
}

/// An Amazon SQS queue (docs/destinations.md#amazon-sqs).
#[derive(Debug, Clone, InputObject)]
pub struct SqsDestinationInput {
    /// `https://sqs.{region}.amazonaws.com/{account}/{name}`.
    pub queue_url: String,
    pub region: String,
}

/// An Amazon SNS topic (docs/destinations.md#amazon-sns).
#[derive(Debug, Clone, InputObject)]
pub struct SnsDestinationInput {
    /// `arn:aws:sns:{region}:{account}:{name}`.
    pub topic_arn: String,
}

/// A RabbitMQ exchange (docs/destinations.md#rabbitmq).
#[derive(Debug, Clone, InputObject)]
#[graphql(name = "RabbitMqDestinationInput")]
pub struct RabbitMqDestinationInput {
    /// `amqp://user:password@host:port/vhost` or `amqps://…`; stored sealed.
    pub url: String,
    /// The exchange; empty for the default exchange (the routing key is then a queue).
    pub exchange: String,
    #[graphql(default)]
    pub routing_key: String,
}

/// A NATS JetStream subject (docs/destinations.md#nats-jetstream).
#[derive(Debug, Clone, InputObject)]
pub struct NatsDestinationInput {
    /// `nats://[user:password@ | token@]host:port` or `tls://…`; stored sealed.
    pub url: String,
    pub subject: String,
}

/// Exactly one of `webhook`, `eventBridge`, `sqs`, `sns`, `rabbitmq` or `nats`.
#[derive(Debug, Clone, InputObject)]
pub struct DestinationInput {
    pub webhook: Option<WebhookDestinationInput>,
    pub event_bridge: Option<EventBridgeDestinationInput>,
    pub sqs: Option<SqsDestinationInput>,
    pub sns: Option<SnsDestinationInput>,
    #[graphql(name = "rabbitmq")]
    pub rabbitmq: Option<RabbitMqDestinationInput>,
    pub nats: Option<NatsDestinationInput>,
}

/// The destination kinds a `DestinationInput` can name, as its fields are called.
const DESTINATION_FIELDS: &str = "webhook, eventBridge, sqs, sns, rabbitmq or nats";

/// The one destination of a `DestinationInput`, with the name of its field.
enum Requested {
    Webhook(WebhookDestinationInput),
    EventBridge(EventBridgeDestinationInput),
    Sqs(SqsDestinationInput),
    Sns(SnsDestinationInput),
    RabbitMq(RabbitMqDestinationInput),
    Nats(NatsDestinationInput),
}

impl DestinationInput {
    fn one(self, path: &str) -> ApiResult<(&'static str, Requested)> {
        let mut given: Vec<(&'static str, Requested)> = Vec::new();
        given.extend(self.webhook.map(|d| ("webhook", Requested::Webhook(d))));
        given.extend(
            self.event_bridge
                .map(|d| ("eventBridge", Requested::EventBridge(d))),
        );
        given.extend(self.sqs.map(|d| ("sqs", Requested::Sqs(d))));
        given.extend(self.sns.map(|d| ("sns", Requested::Sns(d))));
        given.extend(self.rabbitmq.map(|d| ("rabbitmq", Requested::RabbitMq(d))));
        given.extend(self.nats.map(|d| ("nats", Requested::Nats(d))));
        match given.len() {
            1 => Ok(given.remove(0)),
            0 => Err(ApiError::validation(format!(
                "{path}/destination must have one of {DESTINATION_FIELDS}"
            ))),
            _ => Err(ApiError::validation(format!(
                "{path}/destination must have only one of {DESTINATION_FIELDS}, not {}",
                given
                    .iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))),
        }
    }
}

#[derive(Debug, Clone, InputObject)]
pub struct CreateEventSubscriptionInput {
    pub destination: DestinationInput,
    pub event_type: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// How webhook deliveries are signed (docs/payloads.md#signature); webhook
    /// destinations only. Default `HMAC_SHA256`.
    pub signature_scheme: Option<SignatureScheme>,
    /// Deliver the events of one ordering key one at a time, in the order they were
    /// accepted (docs/delivery.md#ordered-delivery). Default false.
    pub ordered: Option<bool>,
    /// At most this many requests per second, 1 to 10,000, across every node
    /// (docs/delivery.md#rate-limits). Default null: no limit.
    pub rate_limit: Option<i32>,
}

/// How a subscription's webhook deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum SignatureScheme {
    /// `v1`: HMAC-SHA256 with the shared `whsec_…` secret.
    #[graphql(name = "HMAC_SHA256")]
    HmacSha256,
    /// `v1a`: ed25519; receivers verify with the `whpk_…` public key.
    #[graphql(name = "ED25519")]
    Ed25519,
}

impl From<SignatureScheme> for signing::Scheme {
    fn from(s: SignatureScheme) -> Self {
        match s {
            SignatureScheme::HmacSha256 => signing::Scheme::HmacSha256,
            SignatureScheme::Ed25519 => signing::Scheme::Ed25519,
        }
    }
}

impl From<signing::Scheme> for SignatureScheme {
    fn from(s: signing::Scheme) -> Self {
        match s {
            signing::Scheme::HmacSha256 => SignatureScheme::HmacSha256,
            signing::Scheme::Ed25519 => SignatureScheme::Ed25519,
        }
    }
}

#[derive(SimpleObject)]
pub struct CreateEventSubscriptionResponse {
    pub subscription_id: String,
}

#[derive(SimpleObject)]
pub struct DeleteEventSubscriptionResponse {
    pub subscription_id: String,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "SubscriptionStatus")]
pub enum StatusValue {
    Active,
    Inactive,
    Deactivated,
}

impl From<SubscriptionStatus> for StatusValue {
    fn from(s: SubscriptionStatus) -> Self {
        match s {
            SubscriptionStatus::Active => StatusValue::Active,
            SubscriptionStatus::Inactive => StatusValue::Inactive,
            SubscriptionStatus::Deactivated => StatusValue::Deactivated,
        }
    }
}

#[derive(SimpleObject)]
pub struct WebhookData {
    pub url: String,
    pub method: Method,
    pub auth_profile_id: Option<String>,
    pub headers: Vec<KeyValueObject>,
}

#[derive(SimpleObject)]
pub struct EventBridgeData {
    /// The partner event source's ARN (as AWS answered it), or the event bus's.
    pub arn: String,
    pub region: String,
    /// The partner event source name (`aws.partner/…`); null for an event bus.
    pub partner_event_source_name: Option<String>,
}

#[derive(SimpleObject)]
pub struct SqsData {
    pub queue_url: String,
    pub region: String,
}

#[derive(SimpleObject)]
pub struct SnsData {
    pub topic_arn: String,
}

#[derive(SimpleObject)]
#[graphql(name = "RabbitMqData")]
pub struct RabbitMqData {
    /// The URL with its password masked.
    pub url: String,
    pub exchange: String,
    pub routing_key: String,
}

#[derive(SimpleObject)]
pub struct NatsData {
    /// The URL with its password or token masked.
    pub url: String,
    pub subject: String,
}

#[derive(Union)]
pub enum DestinationData {
    WebhookData(WebhookData),
    EventBridgeData(EventBridgeData),
    SqsData(SqsData),
    SnsData(SnsData),
    RabbitMqData(RabbitMqData),
    NatsData(NatsData),
}

#[derive(SimpleObject)]
pub struct EventSubscriptionDetails {
    pub destination: DestinationData,
    /// The first (usually only) event type.
    pub event_type: String,
    pub event_types: Vec<String>,
}

#[derive(SimpleObject)]
pub struct EventSubscription {
    pub subscription_id: String,
    pub event_subscription_details: EventSubscriptionDetails,
    pub status: StatusValue,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The Standard Webhooks secret (`whsec_…`); shown to the subscription's owner only,
    /// and never for `ED25519`, whose secret key stays sealed.
    pub signing_secret: Option<String>,
    /// `ED25519` only: the public key (`whpk_…`) receivers verify `v1a` with; shown to
    /// the subscription's owner.
    pub signing_public_key: Option<String>,
    pub signature_scheme: SignatureScheme,
    /// Events of one ordering key are delivered one at a time, in order
    /// (docs/delivery.md#ordered-delivery).
    pub ordered: bool,
    /// Requests per second at most; null: no limit (docs/delivery.md#rate-limits).
    pub rate_limit: Option<i32>,
}

connection_type!(
    EventSubscriptionConnection,
    EventSubscriptionEdge,
    EventSubscription
);

pub fn signing_context(store: &str, id: &str) -> String {
    secrets::signing_secret_context(store, id)
}

/// What a subscription's signing shows: the scheme to anyone who sees the subscription;
/// the HMAC secret or the ed25519 public key to its owner only.
pub struct Signing {
    pub secret: Option<String>,
    pub public_key: Option<String>,
    pub scheme: SignatureScheme,
}

/// The signing of `sub`, as `rc` may see it.
pub fn signing_for(rc: &RequestCtx, sub: &SubscriptionRecord) -> ApiResult<Signing> {
    let bytes = rc
        .services
        .cipher
        .open(&signing_context(&sub.store, &sub.id), &sub.signing_secret)
        .map_err(ApiError::internal)?;
    let secret = String::from_utf8(bytes).map_err(ApiError::internal)?;
    let scheme = signing::Scheme::of_secret(&secret).map_err(ApiError::internal)?;
    let (secret, public_key) = match scheme {
        _ if !rc.is_owner(&sub.owner_client_id) => (None, None),
        signing::Scheme::HmacSha256 => (Some(secret), None),
        signing::Scheme::Ed25519 => {
            let key = signing::SigningKey::from_secret(&secret).map_err(ApiError::internal)?;
            (None, key.public_key())
        }
    };
    Ok(Signing {
        secret,
        public_key,
        scheme: scheme.into(),
    })
}

/// A new sealed signing secret of `scheme` for subscription `id`.
pub fn new_signing_secret(
    rc: &RequestCtx,
    id: &str,
    scheme: signing::Scheme,
) -> ApiResult<hookrelay_core::Sealed> {
    rc.services
        .cipher
        .seal(
            &signing_context(&rc.store, id),
            scheme.new_secret().as_bytes(),
        )
        .map_err(ApiError::internal)
}

/// The scheme asked for at `at`, which only webhook destinations take.
pub fn requested_scheme(
    at: &str,
    scheme: Option<SignatureScheme>,
    is_webhook: bool,
) -> ApiResult<signing::Scheme> {
    match scheme {
        None => Ok(signing::Scheme::HmacSha256),
        Some(s) if is_webhook || s == SignatureScheme::HmacSha256 => Ok(s.into()),
        Some(_) => Err(ApiError::validation(format!(
            "{at}: ED25519 signs webhook deliveries only; this destination is not a webhook"
        ))),
    }
}

fn view(rc: &RequestCtx, sub: SubscriptionRecord) -> ApiResult<EventSubscription> {
    let signing = signing_for(rc, &sub)?;
    let destination = match &sub.destination {
        Destination::Webhook {
            url,
            method,
            auth_profile_id,
            inline_auth,
            headers,
        } => DestinationData::WebhookData(WebhookData {
            url: url.clone(),
            method: Method(*method),
            auth_profile_id: auth_profile_id.clone().filter(|_| !inline_auth),
            headers: headers.iter().map(KeyValueObject::from).collect(),
        }),
        Destination::EventBridge {
            arn,
            region,
            partner_source,
        } => DestinationData::EventBridgeData(EventBridgeData {
            arn: arn.clone(),
            region: region.clone(),
            partner_event_source_name: partner_source.clone(),
        }),
        Destination::Sqs(d) => DestinationData::SqsData(SqsData {
            queue_url: d.queue_url.clone(),
            region: d.region.clone(),
        }),
        Destination::Sns(d) => DestinationData::SnsData(SnsData {
            topic_arn: d.topic_arn.clone(),
        }),
        Destination::RabbitMq(d) => DestinationData::RabbitMqData(RabbitMqData {
            url: d.url.shown.clone(),
            exchange: d.exchange.clone(),
            routing_key: d.routing_key.clone(),
        }),
        Destination::Nats(d) => DestinationData::NatsData(NatsData {
            url: d.url.shown.clone(),
            subject: d.subject.clone(),
        }),
    };
    Ok(EventSubscription {
        subscription_id: sub.id,
        event_subscription_details: EventSubscriptionDetails {
            destination,
            event_type: sub.event_types.first().cloned().unwrap_or_default(),
            event_types: sub.event_types,
        },
        status: sub.status.into(),
        is_active: sub.status.is_active(),
        ordered: sub.ordered,
        rate_limit: sub.rate_limit.map(|n| n as i32),
        created_at: sub.created_at,
        updated_at: sub.updated_at,
        signing_secret: signing.secret,
        signing_public_key: signing.public_key,
        signature_scheme: signing.scheme,
    })
}

/// A Buy with Prime subscription the caller may see, or `AccessDenied`.
async fn visible_subscription(rc: &RequestCtx, id: &str) -> ApiResult<SubscriptionRecord> {
    let record = rc
        .services
        .store
        .get_subscription(StoreHash(&rc.store), SubscriptionId(id))
        .await?
        .filter(|s| s.style == Style::BuyWithPrime);
    rc.visible(record, |s| &s.owner_client_id, "event subscription", id)
}

fn requested_types(
    path: &str,
    input: &CreateEventSubscriptionInput,
) -> ApiResult<Vec<(String, String)>> {
    match (&input.event_type, &input.event_types) {
        (Some(t), None) => Ok(vec![(format!("{path}/eventType"), t.clone())]),
        (None, Some(ts)) => Ok(ts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("{path}/eventTypes/{i}"), t.clone()))
            .collect()),
        (Some(_), Some(_)) => Err(ApiError::validation(format!(
            "{path} must have one of eventType or eventTypes, not both"
        ))),
        (None, None) => Err(ApiError::validation(format!(
            "{path} must have eventType or eventTypes"
        ))),
    }
}

#[derive(Default)]
pub struct SubscriptionQuery;

#[Object]
impl SubscriptionQuery {
    #[graphql(complexity = "super::ROUND_TRIP_COST + child_complexity")]
    async fn event_subscription(
        &self,
        ctx: &Context<'_>,
        subscription_id: String,
    ) -> ApiResult<Option<EventSubscription>> {
        let rc = request_ctx(ctx)?;
        let sub = visible_subscription(rc, &subscription_id).await?;
        view(rc, sub).map(Some)
    }

    /// The subscriptions made with `createEventSubscription` that the caller may see.
    #[graphql(complexity = "super::ROUND_TRIP_COST + child_complexity")]
    async fn event_subscriptions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<EventSubscriptionConnection> {
        let rc = request_ctx(ctx)?;
        let page = page_request(ctx, "/eventSubscriptions", first, after)?;
        let filter = SubscriptionFilter {
            style: Some(Style::BuyWithPrime),
            ..Default::default()
        };
        let found = rc
            .services
            .store
            .list_subscriptions(rc.scope(), filter, page)
            .await?;
        connection(found, &page, |s| view(rc, s))
    }
}

#[derive(Default)]
pub struct SubscriptionMutation;

#[Object]
impl SubscriptionMutation {
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn create_event_subscription(
        &self,
        ctx: &Context<'_>,
        input: CreateEventSubscriptionInput,
    ) -> ApiResult<CreateEventSubscriptionResponse> {
        let rc = request_ctx(ctx)?;
        let path = "/createEventSubscription/input";
        let types = requested_types(path, &input)?;
        let event_types = validate::event_types(&rc.services.catalog, path, types)?;
        let id = ids::new_id("sub");
        let now = hookrelay_core::now();
        let (field, requested) = input.destination.one(path)?;
        let scheme = requested_scheme(
            &format!("{path}/signatureScheme"),
            input.signature_scheme,
            matches!(requested, Requested::Webhook(_)),
        )?;
        let rate_limit = validate::rate_limit(&format!("{path}/rateLimit"), input.rate_limit)?;
        let at = format!("{path}/destination/{field}");
        let seal = |plain: &[u8]| {
            rc.services
                .cipher
                .seal(&secrets::destination_secret_context(&rc.store, &id), plain)
                .map_err(|e| e.to_string())
        };
        let policy = &rc.services.policy;
        let (destination, owned) = match requested {
            Requested::Webhook(webhook) => webhook_destination(rc, &id, &at, webhook).await?,
            Requested::EventBridge(eb) => eventbridge_destination(rc, &id, &at, eb).await?,
            Requested::Sqs(d) => (
                Destination::Sqs(
                    sqs::stored(&d.queue_url, &d.region)
                        .map_err(|e| ApiError::validation(format!("{at}/{e}")))?,
                ),
                Owned::default(),
            ),
            Requested::Sns(d) => (
                Destination::Sns(
                    sns::stored(&d.topic_arn)
                        .map_err(|e| ApiError::validation(format!("{at}/{e}")))?,
                ),
                Owned::default(),
            ),
            Requested::RabbitMq(d) => (
                Destination::RabbitMq(
                    rabbitmq::stored(policy, &d.url, &d.exchange, &d.routing_key, seal)
                        .map_err(|e| ApiError::validation(format!("{at}/{e}")))?,
                ),
                Owned::default(),
            ),
            Requested::Nats(d) => (
                Destination::Nats(
                    nats::stored(policy, &d.url, &d.subject, seal)
                        .map_err(|e| ApiError::validation(format!("{at}/{e}")))?,
                ),
                Owned::default(),
            ),
        };

        let record = SubscriptionRecord {
            store: rc.store.clone(),
            id: id.clone(),
            owner_client_id: rc.principal.client_id.clone(),
            style: Style::BuyWithPrime,
            event_types,
            destination,
            status: SubscriptionStatus::Active,
            signing_secret: new_signing_secret(rc, &id, scheme)?,
            previous_secret: None,
            ordered: input.ordered.unwrap_or(false),
            rate_limit,
            created_at: now,
            updated_at: now,
        };
        let made_source = owned.event_source.clone();
        let inserted = rc
            .services
            .store
            .insert_subscription(record, owned, SubscriptionLimits::default())
            .await;
        if let (Err(_), Some(source)) = (&inserted, &made_source) {
            event_sources::forget_at_aws(rc, source).await;
        }
        match inserted {
            Ok(()) => Ok(CreateEventSubscriptionResponse {
                subscription_id: id,
            }),
            Err(StoreError::Conflict(Conflict::EventSource)) => Err(event_sources::source_taken(
                "DestinationNameAlreadyExists",
                &format!("{path}/destination/eventBridge/partnerEventSource/name"),
                made_source.as_ref().map_or("", |s| s.source_name.as_str()),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Pauses (`INACTIVE`) or resumes (`ACTIVE`) a subscription made with
    /// `createEventSubscription`; made ACTIVE again after it was DEACTIVATED, it sends the
    /// deliveries that waited for it. (hookrelay's addition: the Buy with Prime API has
    /// no update, so without it a deactivated subscription could only be deleted.)
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn set_event_subscription_status(
        &self,
        ctx: &Context<'_>,
        subscription_id: String,
        status: StatusValue,
    ) -> ApiResult<EventSubscription> {
        let rc = request_ctx(ctx)?;
        let mut sub = visible_subscription(rc, &subscription_id).await?;
        let was = sub.status;
        sub.status = match status {
            StatusValue::Active => SubscriptionStatus::Active,
            StatusValue::Inactive => SubscriptionStatus::Inactive,
            StatusValue::Deactivated => {
                return Err(ApiError::validation(
                    "/setEventSubscriptionStatus/status must be ACTIVE or INACTIVE \
                     (DEACTIVATED is what delivery sets when the last retry fails)",
                ))
            }
        };
        sub.updated_at = hookrelay_core::now();
        rc.services
            .store
            .update_subscription(sub.clone(), SubscriptionLimits::default())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::no_such("event subscription", &sub.id),
                e => e.into(),
            })?;
        rc.services.engine.subscription_changed(&sub.id).await;
        if was == SubscriptionStatus::Deactivated && sub.status == SubscriptionStatus::Active {
            rc.services.engine.reactivated(&sub.store, &sub.id);
        }
        view(rc, sub)
    }

    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn delete_event_subscription(
        &self,
        ctx: &Context<'_>,
        subscription_id: String,
    ) -> ApiResult<DeleteEventSubscriptionResponse> {
        let rc = request_ctx(ctx)?;
        let sub = visible_subscription(rc, &subscription_id).await?;
        if let Destination::EventBridge { arn, .. } = &sub.destination {
            // The partner event source made for this subscription goes with it, at AWS first.
            let source = rc
                .services
                .store
                .event_source_by_arn(StoreHash(&rc.store), arn)
                .await?;
            if let Some(source) = source.filter(|s| s.subscription_id.as_deref() == Some(&sub.id)) {
                event_sources::delete_at_aws(rc, "/deleteEventSubscription", &source).await?;
            }
        }
        match rc
            .services
            .store
            .delete_subscription(StoreHash(&rc.store), SubscriptionId(&subscription_id))
            .await
        {
            Ok(()) => {
                rc.services
                    .engine
                    .subscription_changed(&subscription_id)
                    .await;
                Ok(DeleteEventSubscriptionResponse { subscription_id })
            }
            Err(StoreError::NotFound) => {
                Err(ApiError::no_such("event subscription", &subscription_id))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// An `eventBridge` destination: a partner event source made now (at AWS, stored with the
/// subscription), or an event bus.
async fn eventbridge_destination(
    rc: &RequestCtx,
    subscription_id: &str,
    path: &str,
    input: EventBridgeDestinationInput,
) -> ApiResult<(Destination, Owned)> {
    match (input.partner_event_source, input.event_bus_arn) {
        (Some(partner), None) => {
            let region = input.region.ok_or_else(|| {
                ApiError::validation(format!("{path}/region is required with partnerEventSource"))
            })?;
            if !hookrelay_core::aws::is_region(&region) {
                return Err(ApiError::validation(format!(
                    "{path}/region must be an AWS region name such as us-east-1, got {region:?}"
                )));
            }
            let source = event_sources::make_at_aws(
                rc,
                event_sources::SourceRequest {
                    path,
                    account_field: "partnerEventSource/account",
                    name_field: "partnerEventSource/name",
                    account: &partner.account,
                    name: &partner.name,
                    region,
                    owner: rc.principal.client_id.clone(),
                    subscription_id: Some(subscription_id.to_owned()),
                    taken_code: "DestinationNameAlreadyExists",
                },
            )
            .await?;
            Ok((
                source.destination(),
                Owned {
                    event_source: Some(source),
                    ..Owned::default()
                },
            ))
        }
        (None, Some(arn)) => {
            let bus_path = format!("{path}/eventBusArn");
            let bus = hookrelay_core::aws::EventBusArn::parse(&arn)
                .map_err(|e| ApiError::validation(format!("{bus_path} {e}")))?;
            if let Some(region) = input.region.filter(|r| *r != bus.region) {
                return Err(ApiError::validation(format!(
                    "{path}/region {region:?} is not the event bus's region {:?}",
                    bus.region
                )));
            }
            Ok((bus.destination(), Owned::default()))
        }
        (Some(_), Some(_)) => Err(ApiError::validation(format!(
            "{path} must have one of partnerEventSource or eventBusArn, not both"
        ))),
        (None, None) => Err(ApiError::validation(format!(
            "{path} must have partnerEventSource (with region) or eventBusArn"
        ))),
    }
}

/// Checks a webhook destination; an inline `authConfig` becomes a private auth profile.
async fn webhook_destination(
    rc: &RequestCtx,
    subscription_id: &str,
    path: &str,
    input: WebhookDestinationInput,
) -> ApiResult<(Destination, Owned)> {
    let url = validate::url(&rc.services.policy, &format!("{path}/url"), &input.url)?;
    let method = match (input.method, input.http_method) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::validation(format!(
                "{path}/method and {path}/httpMethod disagree; give one of them"
            )))
        }
        (m, h) => m.or(h).map(|m| m.0).unwrap_or(HttpMethod::Post),
    };
    let headers = validate::webhook_headers(&format!("{path}/headers"), input.headers)?;
    let (auth_profile_id, inline) = match (input.auth_profile_id, input.auth_config) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(format!(
                "{path} must have at most one of authProfileId or authConfig"
            )))
        }
        (Some(id), None) => {
            auth_profiles::visible_profile(rc, &id).await?;
            (Some(id), None)
        }
        (None, Some(config)) => {
            let config =
                validate::auth_config(&rc.services.policy, &format!("{path}/authConfig"), config)?;
            let id = ids::new_id("ap");
            let now = hookrelay_core::now();
            let profile = AuthProfileRecord {
                store: rc.store.clone(),
                id: id.clone(),
                owner_client_id: rc.principal.client_id.clone(),
                kind: config.kind(),
                config: auth_profiles::seal(rc, &id, &config)?,
                inline_for: Some(subscription_id.to_owned()),
                created_at: now,
                updated_at: now,
            };
            (Some(id), Some(profile))
        }
        (None, None) => (None, None),
    };
    Ok((
        Destination::Webhook {
            url,
            method,
            auth_profile_id,
            inline_auth: inline.is_some(),
            headers,
        },
        Owned {
            auth_profile: inline,
            ..Owned::default()
        },
    ))
}
