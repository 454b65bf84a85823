//! BigCommerce-style webhooks, namespaced under `webhook { … }` (mutations) and
//! `store { webhooks }` (query). They are subscriptions of the same model as the Buy with
//! Prime ones; the style only decides the payload format.

use async_graphql::{Context, InputObject, Interface, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use hookrelay_core::ids::{StoreHash, SubscriptionId};
use hookrelay_core::{
    ids, signing, Destination, HttpMethod, Style, SubscriptionRecord, SubscriptionStatus,
};
use hookrelay_store::{Conflict, Owned, StoreError, SubscriptionFilter, SubscriptionLimits};

use super::context::{request_ctx, RequestCtx};
use super::event_sources::{
    self, CreateEventSourceInput, CreateEventSourceResult, DeleteEventSourceResult,
    EventSourceConnection,
};
use super::subscriptions::{
    new_signing_secret, requested_scheme, signing_for, SignatureScheme, StatusValue,
};
use super::types::{connection, connection_type, page_request, KeyValueInput, KeyValueObject};
use super::validate;
use crate::error::{ApiError, ApiResult};

/// BigCommerce: at most 10 webhooks per client and scope.
pub const MAX_WEBHOOKS_PER_SCOPE: usize = 10;

#[derive(SimpleObject)]
pub struct HttpsWebhook {
    pub id: ID,
    pub scope: String,
    pub destination: String,
    pub status: StatusValue,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub headers: Vec<KeyValueObject>,
    /// The Standard Webhooks secret (`whsec_…`); shown to the webhook's owner only, and
    /// never for `ED25519`, whose secret key stays sealed.
    pub signing_secret: Option<String>,
    /// `ED25519` only: the public key (`whpk_…`) receivers verify `v1a` with; shown to
    /// the webhook's owner.
    pub signing_public_key: Option<String>,
    pub signature_scheme: SignatureScheme,
    /// Events of one ordering key are delivered one at a time, in order
    /// (docs/delivery.md#ordered-delivery).
    pub ordered: bool,
    /// Requests per second at most; null: no limit (docs/delivery.md#rate-limits).
    pub rate_limit: Option<i32>,
}

#[derive(SimpleObject)]
pub struct EventBridgeWebhook {
    pub id: ID,
    pub scope: String,
    pub destination: String,
    pub status: StatusValue,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Always empty: EventBridge deliveries carry no HTTP headers.
    pub headers: Vec<KeyValueObject>,
    pub signing_secret: Option<String>,
    /// Events of one ordering key are delivered one at a time, in order
    /// (docs/delivery.md#ordered-delivery).
    pub ordered: bool,
    /// Requests per second at most; null: no limit (docs/delivery.md#rate-limits).
    pub rate_limit: Option<i32>,
}

// clippy reads the repeated `ty = …` of different fields as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(Interface)]
#[graphql(
    field(name = "id", ty = "&ID"),
    field(name = "scope", ty = "&String"),
    field(name = "destination", ty = "&String"),
    field(name = "status", ty = "&StatusValue"),
    field(name = "is_active", ty = "&bool"),
    field(name = "created_at", ty = "&DateTime<Utc>"),
    field(name = "updated_at", ty = "&DateTime<Utc>"),
    field(name = "headers", ty = "&Vec<KeyValueObject>"),
    field(name = "signing_secret", ty = "&Option<String>"),
    field(name = "ordered", ty = "&bool"),
    field(name = "rate_limit", ty = "&Option<i32>")
)]
pub enum Webhook {
    HttpsWebhook(HttpsWebhook),
    EventBridgeWebhook(EventBridgeWebhook),
}

connection_type!(WebhookConnection, WebhookEdge, Webhook);

fn view(rc: &RequestCtx, sub: SubscriptionRecord) -> ApiResult<Webhook> {
    let signing = signing_for(rc, &sub)?;
    let signing_secret = signing.secret;
    let scope = sub.event_types.first().cloned().unwrap_or_default();
    let status = StatusValue::from(sub.status);
    let rate_limit = sub.rate_limit.map(|n| n as i32);
    Ok(match sub.destination {
        Destination::Webhook { url, headers, .. } => Webhook::HttpsWebhook(HttpsWebhook {
            id: ID(sub.id),
            scope,
            destination: url,
            status,
            is_active: sub.status.is_active(),
            created_at: sub.created_at,
            updated_at: sub.updated_at,
            headers: headers.iter().map(KeyValueObject::from).collect(),
            signing_secret,
            signing_public_key: signing.public_key,
            signature_scheme: signing.scheme,
            ordered: sub.ordered,
            rate_limit,
        }),
        Destination::EventBridge { arn, .. } => Webhook::EventBridgeWebhook(EventBridgeWebhook {
            id: ID(sub.id),
            scope,
            destination: arn,
            status,
            is_active: sub.status.is_active(),
            created_at: sub.created_at,
            updated_at: sub.updated_at,
            headers: Vec::new(),
            signing_secret,
            ordered: sub.ordered,
            rate_limit,
        }),
        // Made with createEventSubscription only, which makes Buy with Prime subscriptions.
        other => {
            return Err(ApiError::internal(format!(
                "webhook {} has a {} destination, which BigCommerce webhooks cannot have",
                sub.id,
                other.kind()
            )))
        }
    })
}

/// A BigCommerce-style webhook the caller may see, or `AccessDenied`.
async fn visible_webhook(rc: &RequestCtx, id: &str) -> ApiResult<SubscriptionRecord> {
    let record = rc
        .services
        .store
        .get_subscription(StoreHash(&rc.store), SubscriptionId(id))
        .await?
        .filter(|s| s.style == Style::BigCommerce);
    rc.visible(record, |s| &s.owner_client_id, "webhook", id)
}

fn store_error(e: StoreError, path: &str) -> ApiError {
    match e {
        StoreError::Conflict(Conflict::Subscription(existing)) => ApiError::coded(
            "AlreadyExists",
            format!("{path}: a webhook for this scope and destination already exists: {existing}"),
        ),
        StoreError::LimitReached { scope, limit } => ApiError::validation(format!(
            "{path}/scope: at most {limit} webhooks per client and scope; {scope:?} has {limit} already"
        )),
        other => other.into(),
    }
}

fn limits() -> SubscriptionLimits {
    SubscriptionLimits {
        max_per_type: Some(MAX_WEBHOOKS_PER_SCOPE),
    }
}

#[derive(Debug, Clone, InputObject)]
pub struct CreateHttpsWebhookInput {
    pub scope: String,
    pub destination: String,
    #[graphql(default = true)]
    pub is_active: bool,
    pub headers: Option<Vec<KeyValueInput>>,
    /// How deliveries are signed (docs/payloads.md#signature). Default `HMAC_SHA256`.
    pub signature_scheme: Option<SignatureScheme>,
    /// Deliver the events of one ordering key one at a time, in the order they were
    /// accepted (docs/delivery.md#ordered-delivery). Default false.
    pub ordered: Option<bool>,
    /// At most this many requests per second, 1 to 10,000, across every node
    /// (docs/delivery.md#rate-limits). Default null: no limit.
    pub rate_limit: Option<i32>,
}

#[derive(Debug, Clone, InputObject)]
pub struct CreateEventBridgeWebhookInput {
    pub scope: String,
    pub destination: String,
    #[graphql(default = true)]
    pub is_active: bool,
    /// Deliver the events of one ordering key one at a time, in the order they were
    /// accepted (docs/delivery.md#ordered-delivery). Default false.
    pub ordered: Option<bool>,
    /// At most this many requests per second, 1 to 10,000, across every node
    /// (docs/delivery.md#rate-limits). Default null: no limit.
    pub rate_limit: Option<i32>,
}

#[derive(Debug, Clone, InputObject)]
pub struct UpdateWebhookDataInput {
    pub is_active: Option<bool>,
    pub scope: Option<String>,
    pub destination: Option<String>,
    pub headers: Option<Vec<KeyValueInput>>,
    /// Turns ordered delivery on or off for events accepted from now on
    /// (docs/delivery.md#ordered-delivery).
    pub ordered: Option<bool>,
    /// A new limit in requests per second (1 to 10,000), or null to remove it; left out,
    /// the limit stays (docs/delivery.md#rate-limits).
    pub rate_limit: MaybeUndefined<i32>,
}

#[derive(Debug, Clone, InputObject)]
pub struct UpdateWebhookInput {
    pub id: ID,
    pub data: UpdateWebhookDataInput,
}

#[derive(SimpleObject)]
pub struct WebhookResult {
    pub webhook: Webhook,
}

#[derive(SimpleObject)]
pub struct DeleteWebhookResult {
    pub id: ID,
}

/// `mutation { webhook { … } }`.
pub struct WebhookMutations;

#[Object]
impl WebhookMutations {
    /// Creates an EventBridge partner event source for the store
    /// (`aws.partner/{partner}/{store}/{name}`) with `CreatePartnerEventSource`, and
    /// answers the ARN AWS gave it.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn create_event_source(
        &self,
        ctx: &Context<'_>,
        input: CreateEventSourceInput,
    ) -> ApiResult<CreateEventSourceResult> {
        let rc = request_ctx(ctx)?;
        Ok(CreateEventSourceResult {
            event_source: event_sources::create(rc, input).await?,
        })
    }

    /// Deletes an event source (`DeletePartnerEventSource`); refused while a webhook
    /// delivers to it.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn delete_event_source(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<DeleteEventSourceResult> {
        let rc = request_ctx(ctx)?;
        event_sources::delete(rc, &id).await?;
        Ok(DeleteEventSourceResult { id })
    }

    /// Creates an EventBridge webhook for one scope. `destination` is the ARN of one of the
    /// store's event sources (`createEventSource`), delivered with `PutPartnerEvents`, or of
    /// an event bus (`arn:aws:events:REGION:ACCOUNT:event-bus/NAME`), delivered with
    /// `PutEvents`.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn create_event_bridge_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateEventBridgeWebhookInput,
    ) -> ApiResult<WebhookResult> {
        let rc = request_ctx(ctx)?;
        let path = "/webhook/createEventBridgeWebhook/input";
        let event_types = validate::event_types(
            &rc.services.catalog,
            path,
            vec![(format!("{path}/scope"), input.scope)],
        )?;
        let rate_limit = validate::rate_limit(&format!("{path}/rateLimit"), input.rate_limit)?;
        let destination_path = format!("{path}/destination");
        let destination =
            event_sources::destination_for_arn(rc, &destination_path, &input.destination).await?;
        let mut record = new_webhook(
            rc,
            event_types,
            destination,
            input.is_active,
            signing::Scheme::HmacSha256,
        )?;
        record.ordered = input.ordered.unwrap_or(false);
        record.rate_limit = rate_limit;
        rc.services
            .store
            .insert_subscription(record.clone(), Owned::default(), limits())
            .await
            .map_err(|e| match e {
                // The source was deleted meanwhile.
                StoreError::NotFound => ApiError::validation(format!(
                    "{destination_path} is not the ARN of an event source of this store"
                )),
                e => store_error(e, path),
            })?;
        Ok(WebhookResult {
            webhook: view(rc, record)?,
        })
    }

    /// Creates an HTTPS webhook for one scope (a wildcard scope such as `store/order/*`
    /// included).
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn create_https_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateHttpsWebhookInput,
    ) -> ApiResult<WebhookResult> {
        let rc = request_ctx(ctx)?;
        let path = "/webhook/createHttpsWebhook/input";
        let event_types = validate::event_types(
            &rc.services.catalog,
            path,
            vec![(format!("{path}/scope"), input.scope)],
        )?;
        let url = validate::url(
            &rc.services.policy,
            &format!("{path}/destination"),
            &input.destination,
        )?;
        let headers = validate::webhook_headers(&format!("{path}/headers"), input.headers)?;
        let rate_limit = validate::rate_limit(&format!("{path}/rateLimit"), input.rate_limit)?;
        let destination = Destination::Webhook {
            url,
            method: HttpMethod::Post,
            auth_profile_id: None,
            inline_auth: false,
            headers,
        };
        let scheme = requested_scheme(
            &format!("{path}/signatureScheme"),
            input.signature_scheme,
            true,
        )?;
        let mut record = new_webhook(rc, event_types, destination, input.is_active, scheme)?;
        record.ordered = input.ordered.unwrap_or(false);
        record.rate_limit = rate_limit;
        rc.services
            .store
            .insert_subscription(record.clone(), Owned::default(), limits())
            .await
            .map_err(|e| store_error(e, path))?;
        Ok(WebhookResult {
            webhook: view(rc, record)?,
        })
    }

    /// Changes a webhook's state, scope, destination or headers. `isActive: true` also
    /// reactivates a webhook hookrelay deactivated.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        input: UpdateWebhookInput,
    ) -> ApiResult<WebhookResult> {
        let rc = request_ctx(ctx)?;
        let path = "/webhook/updateWebhook/input/data";
        let mut sub = visible_webhook(rc, &input.id).await?;
        let was = sub.status;
        let data = input.data;
        let rate_limit = match data.rate_limit {
            MaybeUndefined::Undefined => sub.rate_limit,
            MaybeUndefined::Null => None,
            MaybeUndefined::Value(n) => {
                validate::rate_limit(&format!("{path}/rateLimit"), Some(n))?
            }
        };
        if let Some(scope) = data.scope {
            sub.event_types = validate::event_types(
                &rc.services.catalog,
                path,
                vec![(format!("{path}/scope"), scope)],
            )?;
        }
        match &mut sub.destination {
            Destination::Webhook { url, headers, .. } => {
                if let Some(destination) = data.destination {
                    *url = validate::url(
                        &rc.services.policy,
                        &format!("{path}/destination"),
                        &destination,
                    )?;
                }
                if data.headers.is_some() {
                    *headers = validate::webhook_headers(&format!("{path}/headers"), data.headers)?;
                }
            }
            Destination::EventBridge { .. } => {
                if data.headers.is_some() {
                    return Err(ApiError::validation(format!(
                        "{path}/headers: an EventBridge webhook has no HTTP headers"
                    )));
                }
                if let Some(arn) = data.destination {
                    sub.destination = event_sources::destination_for_arn(
                        rc,
                        &format!("{path}/destination"),
                        &arn,
                    )
                    .await?;
                }
            }
            other => {
                return Err(ApiError::validation(format!(
                    "{path}: a {} destination cannot be changed with updateWebhook",
                    other.kind()
                )))
            }
        }
        if let Some(ordered) = data.ordered {
            sub.ordered = ordered;
        }
        sub.rate_limit = rate_limit;
        if let Some(active) = data.is_active {
            sub.status = if active {
                SubscriptionStatus::Active
            } else {
                SubscriptionStatus::Inactive
            };
        }
        sub.updated_at = hookrelay_core::now();
        rc.services
            .store
            .update_subscription(sub.clone(), limits())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => match &sub.destination {
                    // The webhook is there (it was just read): the new event source is not.
                    Destination::EventBridge { .. } => ApiError::validation(format!(
                        "{path}/destination is not the ARN of an event source of this store"
                    )),
                    _ => ApiError::no_such("webhook", &sub.id),
                },
                e => store_error(e, path),
            })?;
        rc.services.engine.subscription_changed(&sub.id).await;
        if was == SubscriptionStatus::Deactivated && sub.status == SubscriptionStatus::Active {
            rc.services.engine.reactivated(&sub.store, &sub.id);
        }
        Ok(WebhookResult {
            webhook: view(rc, sub)?,
        })
    }

    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> ApiResult<DeleteWebhookResult> {
        let rc = request_ctx(ctx)?;
        visible_webhook(rc, &id).await?;
        match rc
            .services
            .store
            .delete_subscription(StoreHash(&rc.store), SubscriptionId(&id))
            .await
        {
            Ok(()) => {
                rc.services.engine.subscription_changed(&id).await;
                Ok(DeleteWebhookResult { id })
            }
            Err(StoreError::NotFound) => Err(ApiError::no_such("webhook", &id)),
            Err(e) => Err(e.into()),
        }
    }
}

/// A new BigCommerce-style webhook of the caller.
fn new_webhook(
    rc: &RequestCtx,
    event_types: Vec<String>,
    destination: Destination,
    is_active: bool,
    scheme: signing::Scheme,
) -> ApiResult<SubscriptionRecord> {
    let id = ids::new_id("wh");
    let now = hookrelay_core::now();
    Ok(SubscriptionRecord {
        store: rc.store.clone(),
        signing_secret: new_signing_secret(rc, &id, scheme)?,
        id,
        owner_client_id: rc.principal.client_id.clone(),
        style: Style::BigCommerce,
        event_types,
        destination,
        status: if is_active {
            SubscriptionStatus::Active
        } else {
            SubscriptionStatus::Inactive
        },
        previous_secret: None,
        ordered: false,
        rate_limit: None,
        created_at: now,
        updated_at: now,
    })
}

/// `query { store { … } }`.
pub struct StoreQuery;

#[Object(name = "Store")]
impl StoreQuery {
    async fn store_hash(&self, ctx: &Context<'_>) -> ApiResult<String> {
        Ok(request_ctx(ctx)?.store.clone())
    }

    /// The webhooks made with `webhook { … }` that the caller may see, optionally only
    /// active (or inactive) ones, or one scope's.
    #[graphql(complexity = "super::ROUND_TRIP_COST + child_complexity")]
    async fn webhooks(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        is_active: Option<bool>,
        scope: Option<String>,
    ) -> ApiResult<WebhookConnection> {
        let rc = request_ctx(ctx)?;
        let page = page_request(ctx, "/store/webhooks", first, after)?;
        let filter = SubscriptionFilter {
            style: Some(Style::BigCommerce),
            is_active,
            event_type: scope,
        };
        let found = rc
            .services
            .store
            .list_subscriptions(rc.scope(), filter, page)
            .await?;
        connection(found, &page, |s| view(rc, s))
    }

    /// The EventBridge partner event sources made with `createEventSource` that the
    /// caller may see.
    #[graphql(complexity = "super::ROUND_TRIP_COST + child_complexity")]
    async fn event_sources(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<EventSourceConnection> {
        let rc = request_ctx(ctx)?;
        let page = page_request(ctx, "/store/eventSources", first, after)?;
        let found = rc
            .services
            .store
            .list_event_sources(rc.scope(), page)
            .await?;
        connection(found, &page, |s| Ok(s.into()))
    }
}

#[derive(Default)]
pub struct WebhookQueryRoot;

#[Object]
impl WebhookQueryRoot {
    /// The store the request acts on (BigCommerce style).
    async fn store(&self) -> StoreQuery {
        StoreQuery
    }
}

#[derive(Default)]
pub struct WebhookMutationRoot;

#[Object]
impl WebhookMutationRoot {
    /// BigCommerce-style webhook mutations.
    async fn webhook(&self) -> WebhookMutations {
        WebhookMutations
    }
}
