//! `hosts`: this node's destination lanes as the dispatcher sees them, for operators
//! (admin tokens only; docs/delivery.md "Concurrency", "Blocking a failing destination").

use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};
use hookrelay_core::Role;
use hookrelay_delivery::LaneStatus;

use super::context::request_ctx;
use crate::error::{ApiError, ApiResult};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum BreakerState {
    /// Requests go out.
    Closed,
    /// The breaker opened: requests wait until `pausedUntil`.
    Open,
}

/// An endpoint (a webhook URL) whose own breaker is open.
#[derive(SimpleObject)]
pub struct PausedEndpoint {
    /// The URL without its query string.
    url: String,
    /// When its breaker opened.
    paused_since: DateTime<Utc>,
    paused_until: DateTime<Utc>,
}

/// A destination host (`host:port`, or `eventbridge:{region}:{call}`) on this node.
#[derive(SimpleObject)]
pub struct Host {
    host: String,
    /// Requests in flight now (an EventBridge batch is one).
    in_flight: u64,
    /// Deliveries waiting in memory for room under the limit.
    queued: u64,
    /// The adaptive in-flight limit now.
    limit: u64,
    /// The smoothed round trip, in milliseconds; null before the first answer.
    rtt_ms: Option<f64>,
    /// The host breaker.
    breaker: BreakerState,
    /// When the host breaker opened, while it is open.
    paused_since: Option<DateTime<Utc>>,
    paused_until: Option<DateTime<Utc>>,
    /// Its endpoints whose breaker is open.
    paused_endpoints: Vec<PausedEndpoint>,
}

impl From<LaneStatus> for Host {
    fn from(l: LaneStatus) -> Self {
        Host {
            host: l.lane,
            in_flight: l.in_flight as u64,
            queued: l.queued as u64,
            limit: l.limit as u64,
            rtt_ms: l.rtt.map(|d| d.as_secs_f64() * 1000.0),
            breaker: match l.paused {
                Some(_) => BreakerState::Open,
                None => BreakerState::Closed,
            },
            paused_since: l.paused.map(|(since, _)| since),
            paused_until: l.paused.map(|(_, until)| until),
            paused_endpoints: l
                .paused_endpoints
                .into_iter()
                .map(|(url, paused_since, paused_until)| PausedEndpoint {
                    url,
                    paused_since,
                    paused_until,
                })
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct HostQuery;

#[Object]
impl HostQuery {
    /// The destination hosts this node delivered to recently: in-flight requests, the
    /// adaptive limit, the round trip and the breakers. Admin tokens only. Each node
    /// answers for itself.
    async fn hosts(&self, ctx: &Context<'_>) -> ApiResult<Vec<Host>> {
        let rc = request_ctx(ctx)?;
        if rc.principal.role != Role::Admin {
            return Err(ApiError::AccessDenied(
                "hosts needs an admin token".to_owned(),
            ));
        }
        let lanes = rc.services.engine.lanes().await;
        Ok(lanes.into_iter().map(Host::from).collect())
    }
}
