//! What the portal asks of a database (docs/portal.md): single-use links, the sessions
//! they open, and the figures its pages draw. Only hashes of link and session secrets are
//! stored, so a copy of the database opens no session.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookrelay_core::{Role, SubscriptionRecord};

use crate::Result;

/// Whom a link (and the session it opens) acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `Client` with `client_id` set: that API client, for as long as it is not revoked;
    /// `StoreAdmin`: the store's administrator; `Admin`: the operator (no store).
    pub role: Role,
    pub store: Option<String>,
    pub client_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewPortalLink {
    pub link_hash: String,
    pub grant: Grant,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a link is worth now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Valid,
    Used,
    Expired,
    Unknown,
}

#[derive(Debug, Clone)]
pub struct NewPortalSession {
    pub session_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A session that is still good.
#[derive(Debug, Clone)]
pub struct PortalSession {
    /// For a client session, the role is the client's own (as its token has it).
    pub grant: Grant,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// A redeemed link's answer.
#[derive(Debug, Clone)]
pub enum Redeemed {
    Session(Grant),
    /// Refused, and why.
    Refused(LinkState),
}

/// Attempts counted in one time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub succeeded: u64,
    pub failed: u64,
}

/// The last failed attempt of a subscription.
#[derive(Debug, Clone)]
pub struct LastError {
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub id: String,
    pub heartbeat_at: DateTime<Utc>,
}

/// An attempt succeeded when it had no error and, if it has an HTTP status, a 2xx one (an
/// EventBridge entry refused in a 200 answer has an error). Both backends count with this
/// condition; `COALESCE` keeps it from being NULL (counted as neither).
macro_rules! succeeded {
    () => {
        "(a.error IS NULL AND COALESCE(a.status_code, 200) BETWEEN 200 AND 299)"
    };
}

pub(crate) const ATTEMPT_SUCCEEDED: &str = succeeded!();

/// `succeeded, failed` counts of the attempts `a` of a group (BIGINT on both backends).
pub(crate) const ATTEMPT_COUNTS: &str = concat!(
    "COUNT(CASE WHEN ",
    succeeded!(),
    " THEN 1 END), COUNT(CASE WHEN NOT ",
    succeeded!(),
    " THEN 1 END)"
);

/// A link's state from its `(expires_at, used_at)` row at `now` (milliseconds).
pub(crate) fn link_state_of(row: Option<(i64, Option<i64>)>, now: i64) -> LinkState {
    match row {
        None => LinkState::Unknown,
        Some((_, Some(_))) => LinkState::Used,
        Some((expires, None)) if expires <= now => LinkState::Expired,
        Some(_) => LinkState::Valid,
    }
}

/// The condition, on a session `s`, that its client (if it acts for one) is not revoked.
/// A session keeps the role its client had when it opened; roles never change.
pub(crate) const CLIENT_NOT_REVOKED: &str = "(s.client_id IS NULL OR EXISTS (SELECT 1 FROM \
     api_clients c WHERE c.client_id = s.client_id AND c.revoked_at IS NULL))";

/// A grant from its stored columns.
pub(crate) fn grant_of(
    role: &str,
    store: Option<String>,
    client_id: Option<String>,
) -> Result<Grant> {
    Ok(Grant {
        role: role.parse().map_err(crate::StoreError::Corrupt)?,
        store,
        client_id,
    })
}

/// Spreads counted `(bucket index, succeeded, failed)` rows over every bucket of the
/// window, empty ones included, oldest first.
pub(crate) fn fill_buckets(
    since: DateTime<Utc>,
    width: std::time::Duration,
    count: usize,
    rows: impl IntoIterator<Item = (i64, i64, i64)>,
) -> Vec<Bucket> {
    let width_ms = width.as_millis().max(1) as i64;
    let mut buckets: Vec<Bucket> = (0..count)
        .map(|i| Bucket {
            start: since + chrono::Duration::milliseconds(width_ms * i as i64),
            succeeded: 0,
            failed: 0,
        })
        .collect();
    for (index, succeeded, failed) in rows {
        if let Some(b) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
            b.succeeded += succeeded.max(0) as u64;
            b.failed += failed.max(0) as u64;
        }
    }
    buckets
}

#[async_trait]
pub trait PortalStore: Send + Sync + 'static {
    async fn insert_portal_link(&self, link: NewPortalLink) -> Result<()>;
    /// A link's state at `now`, without using it.
    async fn portal_link_state(&self, link_hash: &str, now: DateTime<Utc>) -> Result<LinkState>;
    /// Uses the link (once: of two redeeming at once, one gets the session) and opens
    /// `session` for its grant, in one transaction. A client link whose client was revoked
    /// meanwhile is `Refused(Unknown)`.
    async fn redeem_portal_link(
        &self,
        link_hash: &str,
        session: NewPortalSession,
    ) -> Result<Redeemed>;
    /// The session if it is still good at `now`: before its end, seen since `idle_since`,
    /// and (a client's) with its client not revoked.
    async fn portal_session(
        &self,
        session_hash: &str,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<Option<PortalSession>>;
    /// Marks the session seen at `now`.
    async fn touch_portal_session(&self, session_hash: &str, now: DateTime<Utc>) -> Result<()>;
    async fn end_portal_session(&self, session_hash: &str) -> Result<()>;
    /// Drops links and sessions that ended before `before`.
    async fn prune_portal(&self, before: DateTime<Utc>) -> Result<u64>;

    /// A subscription's attempts from `since` in `count` buckets of `width`.
    async fn attempt_buckets(
        &self,
        store: &str,
        subscription_id: &str,
        since: DateTime<Utc>,
        width: std::time::Duration,
        count: usize,
    ) -> Result<Vec<Bucket>>;
    /// Every store's attempts from `since`, in `count` buckets of `width`.
    async fn all_attempt_buckets(
        &self,
        since: DateTime<Utc>,
        width: std::time::Duration,
        count: usize,
    ) -> Result<Vec<Bucket>>;
    /// A subscription's latest failed attempt.
    async fn last_error(&self, store: &str, subscription_id: &str) -> Result<Option<LastError>>;
    /// DEACTIVATED subscriptions of every store, the latest changed first.
    async fn deactivated_subscriptions(&self, limit: usize) -> Result<Vec<SubscriptionRecord>>;
    /// Delivery nodes and their last heartbeats.
    async fn nodes(&self) -> Result<Vec<NodeRecord>>;
    /// How many subscriptions each store has.
    async fn subscription_counts(&self) -> Result<Vec<(String, u64)>>;
}
