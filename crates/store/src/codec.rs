//! What both backends share: times as Unix milliseconds, JSON columns, and the mapping of
//! a result row to a record, written once over [`Cols`] (implemented for SQLite's and
//! PostgreSQL's rows). Both schemas keep the same columns in the same order.

use chrono::{DateTime, TimeZone, Utc};
use hookrelay_core::{
    AuthKind, AuthProfileRecord, Destination, EventSourceRecord, PreviousSecret, Sealed, Style,
    SubscriptionRecord, SubscriptionStatus,
};

use crate::delivery::{AttemptRecord, DeliveryRecord, DeliveryStatus, EventData};
use crate::{Result, StoreError};

/// The column a listing is paged by, and its direction. A cursor (`after`) is a position
/// in the listing's order: the next page is above it ascending, below it descending.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SortKey<'a> {
    pub column: &'a str,
    pub descending: bool,
}

impl<'a> SortKey<'a> {
    pub(crate) fn ascending(column: &'a str) -> Self {
        SortKey {
            column,
            descending: false,
        }
    }

    /// The cursor of the first page, the comparison with a cursor, and the `ORDER BY`
    /// direction.
    pub(crate) fn parts(self) -> (i64, &'static str, &'static str) {
        if self.descending {
            (i64::MAX, "<", "DESC")
        } else {
            (0, ">", "ASC")
        }
    }
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {ms}")))
}

pub(crate) fn json_list(items: &[String]) -> Result<String> {
    serde_json::to_string(items).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The auth profile a destination names (kept in its own column for the in-use check).
pub(crate) fn auth_profile_of(destination: &Destination) -> Option<&str> {
    match destination {
        Destination::Webhook {
            auth_profile_id, ..
        } => auth_profile_id.as_deref(),
        _ => None,
    }
}

/// A subscription's event types and destination as stored (JSON).
pub(crate) fn encode_subscription(sub: &SubscriptionRecord) -> Result<(String, String)> {
    let types =
        serde_json::to_string(&sub.event_types).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let destination =
        serde_json::to_string(&sub.destination).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((types, destination))
}

/// The destination key that deliveries to an event source (by ARN) are indexed under.
pub(crate) fn eventbridge_key(arn: &str) -> String {
    format!("eventbridge:{arn}")
}

/// Typed access to the columns of one result row.
pub(crate) trait Cols {
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>>;
    fn flag(&self, i: usize) -> Result<bool>;
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?}"))
}

pub(crate) const AUTH_PROFILE_COLUMNS: &str =
    "seq, store_hash, id, owner_client_id, kind, config, inline_for, created_at, updated_at";

pub(crate) fn auth_profile(r: &impl Cols) -> Result<(i64, AuthProfileRecord)> {
    let kind = r.text(4)?;
    Ok((
        r.int(0)?,
        AuthProfileRecord {
            store: r.text(1)?,
            id: r.text(2)?,
            owner_client_id: r.text(3)?,
            kind: AuthKind::parse(&kind).ok_or_else(|| corrupt("auth profile kind", &kind))?,
            config: Sealed(r.bytes(5)?),
            inline_for: r.opt_text(6)?,
            created_at: time(r.int(7)?)?,
            updated_at: time(r.int(8)?)?,
        },
    ))
}

pub(crate) const SUBSCRIPTION_COLUMNS: &str = "seq, store_hash, id, owner_client_id, style, \
     event_types, destination, status, signing_secret, created_at, updated_at, \
     previous_signing_secret, previous_secret_until, ordered, rate_limit";

pub(crate) fn subscription(r: &impl Cols) -> Result<(i64, SubscriptionRecord)> {
    let style = r.text(4)?;
    let status = r.text(7)?;
    Ok((
        r.int(0)?,
        SubscriptionRecord {
            store: r.text(1)?,
            id: r.text(2)?,
            owner_client_id: r.text(3)?,
            style: Style::parse(&style).ok_or_else(|| corrupt("subscription style", &style))?,
            event_types: serde_json::from_str(&r.text(5)?)
                .map_err(|e| StoreError::Corrupt(format!("event types: {e}")))?,
            destination: serde_json::from_str::<Destination>(&r.text(6)?)
                .map_err(|e| StoreError::Corrupt(format!("destination: {e}")))?,
            status: SubscriptionStatus::parse(&status)
                .ok_or_else(|| corrupt("subscription status", &status))?,
            signing_secret: Sealed(r.bytes(8)?),
            created_at: time(r.int(9)?)?,
            updated_at: time(r.int(10)?)?,
            previous_secret: match (r.opt_bytes(11)?, r.opt_int(12)?) {
                (Some(secret), Some(until)) => Some(PreviousSecret {
                    secret: Sealed(secret),
                    until: time(until)?,
                }),
                _ => None,
            },
            ordered: r.flag(13)?,
            rate_limit: r
                .opt_int(14)?
                .map(|n| u32::try_from(n).map_err(|_| corrupt("rate limit", &n.to_string())))
                .transpose()?,
        },
    ))
}

pub(crate) const EVENT_SOURCE_COLUMNS: &str = "seq, store_hash, id, owner_client_id, \
     aws_account, name, source_name, region, arn, subscription_id, created_at";

pub(crate) fn event_source(r: &impl Cols) -> Result<(i64, EventSourceRecord)> {
    Ok((
        r.int(0)?,
        EventSourceRecord {
            store: r.text(1)?,
            id: r.text(2)?,
            owner_client_id: r.text(3)?,
            aws_account: r.text(4)?,
            name: r.text(5)?,
            source_name: r.text(6)?,
            region: r.text(7)?,
            arn: r.text(8)?,
            subscription_id: r.opt_text(9)?,
            created_at: time(r.int(10)?)?,
        },
    ))
}

pub(crate) const EVENT_COLUMNS: &str =
    "seq, id, store_hash, event_type, data, resources, event_time, ordering_key";

pub(crate) fn event_data(r: &impl Cols) -> Result<EventData> {
    Ok(EventData {
        seq: r.int(0)?,
        id: r.text(1)?,
        store: r.text(2)?,
        event_type: r.text(3)?,
        data: r.text(4)?,
        resources: serde_json::from_str(&r.text(5)?)
            .map_err(|e| StoreError::Corrupt(format!("event resources: {e}")))?,
        time: time(r.int(6)?)?,
        ordering_key: r.opt_text(7)?,
    })
}

pub(crate) const DELIVERY_COLUMNS: &str = "d.seq, d.id, e.id, d.subscription_id, e.event_type, \
     d.status, d.attempt_count, d.due_at, d.created_at, d.updated_at, d.ordering_key";
pub(crate) const DELIVERY_FROM: &str = "deliveries d JOIN events e ON e.seq = d.event_seq";

pub(crate) fn delivery(r: &impl Cols) -> Result<(i64, DeliveryRecord)> {
    let status = r.text(5)?;
    let status =
        DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?;
    let due = r.opt_int(7)?;
    Ok((
        r.int(0)?,
        DeliveryRecord {
            id: r.text(1)?,
            event_id: r.text(2)?,
            subscription_id: r.text(3)?,
            event_type: r.text(4)?,
            status,
            attempt_count: count(r.int(6)?),
            next_attempt_at: match status {
                DeliveryStatus::Pending => due.map(time).transpose()?,
                _ => None,
            },
            created_at: time(r.int(8)?)?,
            updated_at: time(r.int(9)?)?,
            ordering_key: r.opt_text(10)?,
        },
    ))
}

pub(crate) const ATTEMPT_COLUMNS: &str =
    "started_at, duration_ms, status_code, error, response_body";

pub(crate) fn attempt(r: &impl Cols) -> Result<AttemptRecord> {
    Ok(AttemptRecord {
        started_at: time(r.int(0)?)?,
        duration_ms: r.int(1)?.max(0) as u64,
        status_code: r.opt_int(2)?.and_then(|c| u16::try_from(c).ok()),
        error: r.opt_text(3)?,
        response_body: r.opt_text(4)?,
    })
}

/// A stored counter as the records carry it.
pub(crate) fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}
