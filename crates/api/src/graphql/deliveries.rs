//! The delivery log and its controls (docs/api.md#the-delivery-log-and-its-controls):
//! `deliveries`, `delivery`, `retryDelivery`, `replayDeliveries`, `rotateSigningSecret`,
//! `sendTestEvent`. They take subscription ids of either style.

use std::collections::HashMap;

use async_graphql::{ComplexObject, Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use hookrelay_core::ids::{DeliveryId, StoreHash, SubscriptionId};
use hookrelay_core::{ids, PreviousSecret, SubscriptionRecord};
use hookrelay_delivery::ingest::patterns_for;
use hookrelay_store::{
    AttemptRecord, DeliveryFilter, DeliveryRecord, DeliveryStatus, Ingested, NewEvent, ReplayFilter,
};

use super::context::{request_ctx, RequestCtx};
use super::subscriptions::{new_signing_secret, signing_for};
use super::types::{connection, connection_type, page_request};
use crate::error::{ApiError, ApiResult};

/// How long a rotated-out signing secret keeps signing.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "DeliveryStatus")]
pub enum StatusValue {
    Pending,
    InFlight,
    Succeeded,
    Failed,
}

impl From<DeliveryStatus> for StatusValue {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => StatusValue::Pending,
            DeliveryStatus::InFlight => StatusValue::InFlight,
            DeliveryStatus::Succeeded => StatusValue::Succeeded,
            DeliveryStatus::Failed => StatusValue::Failed,
        }
    }
}

impl From<StatusValue> for DeliveryStatus {
    fn from(s: StatusValue) -> Self {
        match s {
            StatusValue::Pending => DeliveryStatus::Pending,
            StatusValue::InFlight => DeliveryStatus::InFlight,
            StatusValue::Succeeded => DeliveryStatus::Succeeded,
            StatusValue::Failed => DeliveryStatus::Failed,
        }
    }
}

/// One attempt of a delivery.
#[derive(SimpleObject)]
#[graphql(name = "DeliveryAttempt")]
pub struct Attempt {
    started_at: DateTime<Utc>,
    duration_ms: u64,
    /// The HTTP status the endpoint answered, if it answered.
    status_code: Option<u16>,
    /// Why the attempt failed, in words; null on success.
    error: Option<String>,
    /// The first 4 KiB of the response body.
    response_body: Option<String>,
}

impl From<AttemptRecord> for Attempt {
    fn from(a: AttemptRecord) -> Self {
        Attempt {
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
            response_body: a.response_body,
        }
    }
}

/// One event on its way to one subscription.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Delivery {
    /// Also the `webhook-id` header and the Buy with Prime `idempotencyKey`.
    id: String,
    event_id: String,
    subscription_id: String,
    event_type: String,
    status: StatusValue,
    attempt_count: u32,
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The event's ordering key, when this delivery keeps its key's order (the
    /// subscription is ordered). A PENDING delivery with a key and no `nextAttemptAt`
    /// waits for the one before it (docs/delivery.md#ordered-delivery).
    ordering_key: Option<String>,
    /// Why a PENDING delivery with no `nextAttemptAt` waits: `ORDER` behind an earlier
    /// delivery of its ordering key, `REACTIVATION` for its subscription to be made active
    /// again. Null otherwise.
    waiting_for: Option<WaitReason>,
    #[graphql(skip)]
    store: String,
    #[graphql(skip)]
    loaded_attempts: Option<Vec<AttemptRecord>>,
}

#[ComplexObject]
impl Delivery {
    /// Every attempt, oldest first. A page of `deliveries` loads its deliveries' attempts
    /// in one round trip, which this field weighs.
    #[graphql(complexity = "super::ROUND_TRIP_COST + child_complexity")]
    async fn attempts(&self, ctx: &Context<'_>) -> ApiResult<Vec<Attempt>> {
        if let Some(loaded) = &self.loaded_attempts {
            return Ok(loaded.iter().cloned().map(Attempt::from).collect());
        }
        let rc = request_ctx(ctx)?;
        let found = rc
            .services
            .store
            .get_delivery(StoreHash(&self.store), DeliveryId(&self.id))
            .await?;
        Ok(found
            .map(|(_, attempts)| attempts.into_iter().map(Attempt::from).collect())
            .unwrap_or_default())
    }
}

/// What a PENDING delivery with no due time waits for.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "DeliveryWait")]
pub enum WaitReason {
    /// Its turn in its ordering key's line (docs/delivery.md#ordered-delivery).
    Order,
    /// Its subscription to be made active again.
    Reactivation,
}

/// A PENDING delivery with no due time: waiting in its key's line, or parked.
fn untimed(d: &DeliveryRecord) -> bool {
    d.status == DeliveryStatus::Pending && d.next_attempt_at.is_none()
}

/// Whether each subscription of `records` that has an [`untimed`] delivery is active:
/// what tells waiting in line from parked. `known` are subscriptions already read.
async fn activity(
    rc: &RequestCtx,
    records: impl Iterator<Item = &DeliveryRecord>,
    known: Option<&SubscriptionRecord>,
) -> ApiResult<HashMap<String, bool>> {
    let mut active: HashMap<String, bool> = known
        .map(|s| (s.id.clone(), s.status.is_active()))
        .into_iter()
        .collect();
    for d in records {
        if !untimed(d) || active.contains_key(&d.subscription_id) {
            continue;
        }
        let sub = rc
            .services
            .store
            .get_subscription(StoreHash(&rc.store), SubscriptionId(&d.subscription_id))
            .await?;
        active.insert(
            d.subscription_id.clone(),
            sub.is_some_and(|s| s.status.is_active()),
        );
    }
    Ok(active)
}

/// A PENDING delivery with no due time waits for its turn in line while its subscription
/// is active, and is parked while it is not (docs/delivery.md#ordered-delivery).
fn waiting_for(d: &DeliveryRecord, active: &HashMap<String, bool>) -> Option<WaitReason> {
    if !untimed(d) {
        return None;
    }
    match active.get(&d.subscription_id) {
        Some(false) => Some(WaitReason::Reactivation),
        Some(true) if d.ordering_key.is_some() => Some(WaitReason::Order),
        _ => None,
    }
}

fn view(
    store: &str,
    d: DeliveryRecord,
    attempts: Option<Vec<AttemptRecord>>,
    active: &HashMap<String, bool>,
) -> Delivery {
    Delivery {
        waiting_for: waiting_for(&d, active),
        id: d.id,
        event_id: d.event_id,
        subscription_id: d.subscription_id,
        event_type: d.event_type,
        status: d.status.into(),
        attempt_count: d.attempt_count,
        next_attempt_at: d.next_attempt_at,
        created_at: d.created_at,
        updated_at: d.updated_at,
        ordering_key: d.ordering_key,
        store: store.to_owned(),
        loaded_attempts: attempts,
    }
}

connection_type!(DeliveryConnection, DeliveryEdge, Delivery);

#[derive(SimpleObject)]
pub struct ReplayDeliveriesResponse {
    subscription_id: String,
    /// How many deliveries were started again.
    count: u64,
}

#[derive(SimpleObject)]
pub struct RotateSigningSecretResponse {
    subscription_id: String,
    /// The new secret (to its owner only; never for `ED25519`).
    signing_secret: Option<String>,
    /// `ED25519` only: the new public key (to its owner only).
    signing_public_key: Option<String>,
    /// Until when the previous secret signs alongside the new one.
    previous_secret_expires_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct SendTestEventResponse {
    event_id: String,
    delivery_id: String,
}

/// A subscription of either style that the caller may see, or `AccessDenied`.
pub(crate) async fn visible_subscription(
    rc: &RequestCtx,
    id: &str,
) -> ApiResult<SubscriptionRecord> {
    let record = rc
        .services
        .store
        .get_subscription(StoreHash(&rc.store), SubscriptionId(id))
        .await?;
    rc.visible(record, |s| &s.owner_client_id, "subscription", id)
}

/// A delivery whose subscription the caller may see, or `AccessDenied`.
async fn visible_delivery(
    rc: &RequestCtx,
    id: &str,
) -> ApiResult<(DeliveryRecord, Vec<AttemptRecord>)> {
    let found = rc
        .services
        .store
        .get_delivery(StoreHash(&rc.store), DeliveryId(id))
        .await?;
    let Some((delivery, attempts)) = found else {
        return Err(ApiError::no_such("delivery", id));
    };
    let sub = rc
        .services
        .store
        .get_subscription(
            StoreHash(&rc.store),
            SubscriptionId(&delivery.subscription_id),
        )
        .await?;
    match sub {
        Some(s) if rc.can_see(&s.owner_client_id) => Ok((delivery, attempts)),
        _ => Err(ApiError::no_such("delivery", id)),
    }
}

#[derive(Default)]
pub struct DeliveryQuery;

#[Object]
impl DeliveryQuery {
    /// The delivery log, oldest first (or with `newestFirst`, the latest first, `after`
    /// then paging towards older ones): of one subscription (of either style), or of
    /// every subscription the caller may see; `since` / `until` bound when deliveries
    /// were created (until excluded).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::ROUND_TRIP_COST + child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        subscription_id: Option<String>,
        status: Option<StatusValue>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        #[graphql(default)] newest_first: bool,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<DeliveryConnection> {
        let rc = request_ctx(ctx)?;
        if let (Some(s), Some(u)) = (since, until) {
            if s > u {
                return Err(ApiError::validation(
                    "/deliveries/since must not be after until",
                ));
            }
        }
        let with_attempts = ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("attempts")
            .exists();
        let page = page_request(ctx, "/deliveries", first, after)?;
        // Read once: it is checked here, and tells the log's waiting deliveries apart.
        let subscription = match &subscription_id {
            Some(id) => Some(visible_subscription(rc, id).await?),
            None => None,
        };
        let filter = DeliveryFilter {
            subscription_id,
            owner: rc.scope().owner,
            status: status.map(Into::into),
            since,
            until,
            newest_first,
        };
        let found = rc
            .services
            .store
            .list_deliveries(StoreHash(&rc.store), filter, page)
            .await?;
        let active = activity(
            rc,
            found.items.iter().map(|(_, d)| d),
            subscription.as_ref(),
        )
        .await?;
        // The page's attempts in one round trip, not one per delivery.
        let mut attempts = match with_attempts {
            true => Some(
                rc.services
                    .store
                    .attempts_of_many(found.items.iter().map(|(seq, _)| *seq).collect())
                    .await?,
            ),
            false => None,
        };
        let seqs: HashMap<String, i64> = found
            .items
            .iter()
            .map(|(seq, d)| (d.id.clone(), *seq))
            .collect();
        connection(found, &page, |d| {
            let loaded = attempts.as_mut().map(|all| {
                seqs.get(&d.id)
                    .and_then(|s| all.remove(s))
                    .unwrap_or_default()
            });
            Ok(view(&rc.store, d, loaded, &active))
        })
    }

    #[graphql(complexity = "2 * super::ROUND_TRIP_COST + child_complexity")]
    async fn delivery(&self, ctx: &Context<'_>, id: String) -> ApiResult<Option<Delivery>> {
        let rc = request_ctx(ctx)?;
        let (delivery, attempts) = visible_delivery(rc, &id).await?;
        let active = activity(rc, std::iter::once(&delivery), None).await?;
        Ok(Some(view(&rc.store, delivery, Some(attempts), &active)))
    }
}

#[derive(Default)]
pub struct DeliveryMutation;

#[Object]
impl DeliveryMutation {
    /// Sends a delivery again now, with a fresh round of retries.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn retry_delivery(&self, ctx: &Context<'_>, id: String) -> ApiResult<Delivery> {
        let rc = request_ctx(ctx)?;
        visible_delivery(rc, &id).await?;
        let delivery = rc
            .services
            .store
            .retry_delivery(StoreHash(&rc.store), DeliveryId(&id))
            .await?;
        rc.services.engine.wake().await;
        let active = activity(rc, std::iter::once(&delivery), None).await?;
        Ok(view(&rc.store, delivery, None, &active))
    }

    /// Sends again every delivery of a subscription in `status` (default FAILED) created
    /// between `since` and `until`.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn replay_deliveries(
        &self,
        ctx: &Context<'_>,
        subscription_id: String,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        #[graphql(default_with = "StatusValue::Failed")] status: StatusValue,
    ) -> ApiResult<ReplayDeliveriesResponse> {
        let rc = request_ctx(ctx)?;
        visible_subscription(rc, &subscription_id).await?;
        if !matches!(status, StatusValue::Failed | StatusValue::Succeeded) {
            return Err(ApiError::validation(
                "/replayDeliveries/status must be FAILED or SUCCEEDED",
            ));
        }
        if let (Some(s), Some(u)) = (since, until) {
            if s > u {
                return Err(ApiError::validation(
                    "/replayDeliveries/since must not be after until",
                ));
            }
        }
        let count = rc
            .services
            .store
            .replay_deliveries(
                StoreHash(&rc.store),
                ReplayFilter {
                    subscription_id: subscription_id.clone(),
                    since,
                    until,
                    status: status.into(),
                },
            )
            .await?;
        rc.services.engine.wake().await;
        Ok(ReplayDeliveriesResponse {
            subscription_id,
            count,
        })
    }

    /// A new signing secret; the old one keeps signing alongside it for 24 hours.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn rotate_signing_secret(
        &self,
        ctx: &Context<'_>,
        subscription_id: String,
    ) -> ApiResult<RotateSigningSecretResponse> {
        let rc = request_ctx(ctx)?;
        let mut sub = visible_subscription(rc, &subscription_id).await?;
        let until = hookrelay_core::now() + ROTATION_OVERLAP;
        let previous = PreviousSecret {
            secret: sub.signing_secret.clone(),
            until,
        };
        // The new secret is of the scheme the subscription signs with.
        let scheme = signing_for(rc, &sub)?.scheme.into();
        let secret = new_signing_secret(rc, &sub.id, scheme)?;
        rc.services
            .store
            .rotate_signing_secret(
                StoreHash(&rc.store),
                SubscriptionId(&sub.id),
                secret.clone(),
                previous,
            )
            .await?;
        rc.services.engine.subscription_changed(&sub.id).await;
        sub.signing_secret = secret;
        let signing = signing_for(rc, &sub)?;
        Ok(RotateSigningSecretResponse {
            signing_secret: signing.secret,
            signing_public_key: signing.public_key,
            subscription_id,
            previous_secret_expires_at: until,
        })
    }

    /// Delivers a test event to this subscription only.
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn send_test_event(
        &self,
        ctx: &Context<'_>,
        subscription_id: String,
    ) -> ApiResult<SendTestEventResponse> {
        let rc = request_ctx(ctx)?;
        let sub = visible_subscription(rc, &subscription_id).await?;
        let event_type = sub
            .event_types
            .first()
            .map(|t| t.replace('*', "test"))
            .unwrap_or_else(|| "hookrelay/test".into());
        let event = NewEvent {
            id: ids::new_id("evt"),
            store: rc.store.clone(),
            patterns: patterns_for(&event_type),
            event_type,
            data: serde_json::json!({"test": true, "message": "a test event from hookrelay"})
                .to_string(),
            resources: Vec::new(),
            idempotency_key: None,
            time: hookrelay_core::now(),
            only_subscription: Some(sub.id.clone()),
            ordering_key: None,
            except_subscriptions: Vec::new(),
        };
        let written = rc.services.engine.publish(vec![event]).await?;
        match written.into_iter().next() {
            Some(Ingested::Created {
                event_id,
                deliveries,
                ..
            }) => match deliveries.first() {
                Some(d) => Ok(SendTestEventResponse {
                    event_id,
                    delivery_id: d.id.clone(),
                }),
                None => Err(ApiError::internal("test event created no delivery")),
            },
            _ => Err(ApiError::internal("test event was not written")),
        }
    }
}
