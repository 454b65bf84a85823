//! What the portal adds to the API (docs/portal.md): links that open it, and the health
//! figures its pages draw. Both are public API, so what the portal shows can be had with
//! a token too.

use std::time::Duration;

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, DurationRound, Utc};

use super::context::{request_ctx, RequestCtx};
use crate::error::{ApiError, ApiResult};
use crate::portal::links::{self, LinkError, LinkFor};

#[derive(InputObject, Default)]
pub struct CreatePortalLinkInput {
    /// Open the portal as this API client of the store (it sees what the client's token
    /// sees); without it, as the store's administrator.
    client_id: Option<String>,
    /// How long the link may wait to be opened: `15m` (the default) up to `24h`.
    ttl: Option<String>,
}

/// A single-use link to the portal.
#[derive(SimpleObject)]
pub struct PortalLink {
    url: String,
    expires_at: DateTime<Utc>,
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Store(e) => ApiError::from(e),
            LinkError::BadTtl => ApiError::validation(format!("/createPortalLink/ttl {e}")),
            LinkError::UnknownClient(_) | LinkError::ClientRole(..) => {
                ApiError::validation(format!("/createPortalLink/clientId: {e}"))
            }
            LinkError::UnknownStore(_) => ApiError::validation(e.to_string()),
        }
    }
}

#[derive(Default)]
pub struct PortalMutation;

#[Object]
impl PortalMutation {
    /// A single-use link that opens the portal for this store, or for one of its API
    /// clients. Store-admin and admin tokens only (admins through
    /// `/stores/{store_hash}/graphql`).
    #[graphql(complexity = "super::MUTATION_COST + child_complexity")]
    async fn create_portal_link(
        &self,
        ctx: &Context<'_>,
        input: Option<CreatePortalLinkInput>,
    ) -> ApiResult<PortalLink> {
        let rc = request_ctx(ctx)?;
        let input = input.unwrap_or_default();
        if !rc.sees_all() {
            return Err(ApiError::AccessDenied(
                "Access denied: createPortalLink needs a store-admin or admin token".into(),
            ));
        }
        let ttl = input
            .ttl
            .as_deref()
            .map(hookrelay_core::duration::parse)
            .transpose()
            .map_err(|e| ApiError::validation(format!("/createPortalLink/ttl {e}")))?;
        let link = links::create_link(
            rc.services.store.as_ref(),
            &rc.services.portal.public_url,
            LinkFor::Store {
                store: rc.store.clone(),
                client_id: input.client_id,
            },
            ttl,
        )
        .await?;
        Ok(PortalLink {
            url: link.url,
            expires_at: link.expires_at,
        })
    }
}

/// Attempts in one hour.
#[derive(SimpleObject)]
pub struct StatBucket {
    start: DateTime<Utc>,
    succeeded: u64,
    failed: u64,
}

#[derive(SimpleObject)]
pub struct LastError {
    at: DateTime<Utc>,
    status_code: Option<u16>,
    error: Option<String>,
}

/// A subscription's attempts over the last hours.
#[derive(SimpleObject)]
pub struct DeliveryStats {
    /// One bucket per hour, the oldest first; the last is the current hour.
    buckets: Vec<StatBucket>,
    succeeded: u64,
    failed: u64,
    /// Succeeded / all attempts; null when there were none.
    success_rate: Option<f64>,
    /// The latest failed attempt, however old.
    last_error: Option<LastError>,
}

#[derive(Default)]
pub struct PortalQuery;

/// The start of the hour `hours - 1` hours before the current one.
fn window_start(now: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
    let hour = now
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap_or(now);
    hour - chrono::Duration::hours(i64::from(hours) - 1)
}

async fn stats(rc: &RequestCtx, id: &str, hours: u32) -> ApiResult<DeliveryStats> {
    let store = rc.services.store.as_ref();
    let since = window_start(Utc::now(), hours);
    let buckets = store
        .attempt_buckets(
            &rc.store,
            id,
            since,
            Duration::from_secs(3600),
            hours as usize,
        )
        .await?;
    let last = store.last_error(&rc.store, id).await?;
    let succeeded: u64 = buckets.iter().map(|b| b.succeeded).sum();
    let failed: u64 = buckets.iter().map(|b| b.failed).sum();
    let total = succeeded + failed;
    Ok(DeliveryStats {
        buckets: buckets
            .into_iter()
            .map(|b| StatBucket {
                start: b.start,
                succeeded: b.succeeded,
                failed: b.failed,
            })
            .collect(),
        succeeded,
        failed,
        success_rate: (total > 0).then(|| succeeded as f64 / total as f64),
        last_error: last.map(|l| LastError {
            at: l.at,
            status_code: l.status_code,
            error: l.error,
        }),
    })
}

#[Object]
impl PortalQuery {
    /// Attempts of one subscription (of either style) per hour over the last `hours`
    /// (1-168, default 24), with its success rate and latest error.
    #[graphql(complexity = "3 * super::ROUND_TRIP_COST + child_complexity")]
    async fn delivery_stats(
        &self,
        ctx: &Context<'_>,
        subscription_id: ID,
        #[graphql(default = 24)] hours: i32,
    ) -> ApiResult<DeliveryStats> {
        let rc = request_ctx(ctx)?;
        let hours = u32::try_from(hours)
            .ok()
            .filter(|h| (1..=168).contains(h))
            .ok_or_else(|| ApiError::validation("/deliveryStats/hours must be 1-168"))?;
        super::deliveries::visible_subscription(rc, &subscription_id).await?;
        stats(rc, &subscription_id, hours).await
    }
}
