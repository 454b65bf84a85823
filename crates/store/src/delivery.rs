//! The records of the delivery side: events, deliveries and their attempts, and what the
//! engine hands the store to write (new events, outcomes).

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A delivery's state (docs/concepts.md#deliveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt (or parked while its subscription is not active).
    Pending,
    /// Claimed by a node that is working on it.
    InFlight,
    Succeeded,
    /// Every retry used up.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::InFlight => "IN_FLIGHT",
            DeliveryStatus::Succeeded => "SUCCEEDED",
            DeliveryStatus::Failed => "FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(DeliveryStatus::Pending),
            "IN_FLIGHT" => Some(DeliveryStatus::InFlight),
            "SUCCEEDED" => Some(DeliveryStatus::Succeeded),
            "FAILED" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// An event to write at ingest.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub store: String,
    pub event_type: String,
    /// Compact JSON.
    pub data: String,
    pub resources: Vec<String>,
    pub idempotency_key: Option<String>,
    pub time: DateTime<Utc>,
    /// The event types a subscription may name to match this event: the type itself and
    /// every wildcard above it (`store/order/*`, `store/*`).
    pub patterns: Vec<String>,
    /// Deliver to this subscription only (a test event), whatever its types.
    pub only_subscription: Option<String>,
    /// The publisher's ordering key: ordered subscriptions deliver the events of one key
    /// one at a time, in the order they were accepted (docs/delivery.md#ordered-delivery).
    pub ordering_key: Option<String>,
    /// Subscriptions this event never goes to, whatever their types: an operational
    /// event is not sent to the subscriptions it is about
    /// (docs/delivery.md#operational-events).
    pub except_subscriptions: Vec<String>,
}

/// An event as the delivery path needs it.
#[derive(Debug, Clone)]
pub struct EventData {
    pub seq: i64,
    pub id: String,
    pub store: String,
    pub event_type: String,
    pub data: String,
    pub resources: Vec<String>,
    pub time: DateTime<Utc>,
    /// The publisher's ordering key, if it gave one.
    pub ordering_key: Option<String>,
}

/// A delivery that this node holds (claimed at ingest or by the scheduler).
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub seq: i64,
    pub id: String,
    pub subscription_id: String,
    /// Attempts made so far, in all rounds.
    pub attempt_count: u32,
    /// Attempts made in this round (indexes the retry schedule).
    pub round_attempts: u32,
    pub event: Arc<EventData>,
    /// Set when this delivery keeps its key's order (its subscription is ordered and the
    /// event has a key): it is the head of that key's line.
    pub ordering_key: Option<String>,
}

/// How ingest hands out the deliveries it writes.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Write them IN_FLIGHT, leased to this node, which delivers them at once.
    pub node: Option<String>,
    /// Subscriptions whose destination is paused or saturated: their deliveries are
    /// written PENDING, due at the given time, and not claimed.
    pub deferred: Arc<std::collections::HashMap<String, DateTime<Utc>>>,
}

/// What ingest did with one event.
#[derive(Debug, Clone)]
pub enum Ingested {
    /// Written; the deliveries that were created (claimed by the node that asked, if any).
    Created {
        event_id: String,
        /// Every delivery written.
        deliveries: Vec<ClaimedDelivery>,
        /// Which of them were claimed for the asking node (indexes into `deliveries`).
        claimed: Vec<usize>,
    },
    /// The idempotency key was used before: the first event's id; nothing delivered again.
    Duplicate { event_id: String },
    /// The store does not exist.
    UnknownStore,
}

/// One attempt, as logged.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    /// Why it failed, in words; `None` on success.
    pub error: Option<String>,
    /// The response body, cut at 4 KiB.
    pub response_body: Option<String>,
}

/// What happens to a delivery next.
#[derive(Debug, Clone)]
pub enum Next {
    Succeeded,
    /// Failed; try again at `due_at`.
    Retry {
        due_at: DateTime<Utc>,
    },
    /// Failed and no retry is left: FAILED, and the subscription is deactivated.
    Failed,
    /// Not attempted (a paused host, a subscription that is not active): back to
    /// PENDING, due at `due_at`, or parked until the subscription is reactivated (`None`).
    Release {
        due_at: Option<DateTime<Utc>>,
    },
    /// Not attempted and never will be (the subscription is gone): FAILED with a reason.
    Drop {
        reason: String,
    },
}

/// The result of working on one claimed delivery.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seq: i64,
    pub subscription_id: String,
    pub store: String,
    /// The delivery's ordering key ([`ClaimedDelivery::ordering_key`]): when the outcome
    /// ends the delivery, the next in its key's line becomes the head.
    pub ordering_key: Option<String>,
    pub attempt: Option<AttemptRecord>,
    pub next: Next,
    /// Set when the outcome ends the delivery FAILED: what hookrelay's operational events
    /// tell about it (docs/delivery.md#operational-events).
    pub failed: Option<Box<FailedDelivery>>,
}

/// A delivery that ended FAILED, as an operational event describes it.
#[derive(Debug, Clone)]
pub struct FailedDelivery {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub attempts: u32,
}

/// A delivery as the log shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: String,
    pub event_id: String,
    pub subscription_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    /// When a PENDING delivery is next tried (`None` while parked, or not pending).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The event's ordering key, when the delivery keeps its order.
    pub ordering_key: Option<String>,
}

/// Which deliveries a log listing covers (always within one store).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub subscription_id: Option<String>,
    /// Only deliveries of subscriptions this client owns.
    pub owner: Option<String>,
    pub status: Option<DeliveryStatus>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// The latest first (cursors then page towards older deliveries).
    pub newest_first: bool,
}

/// Which deliveries `replay_deliveries` starts again.
#[derive(Debug, Clone)]
pub struct ReplayFilter {
    pub subscription_id: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub status: DeliveryStatus,
}

/// The place a delivery takes on entering an ordered line whose last position taken is
/// `tail` (`None`: the line is empty), and whether it waits; `tail` moves on to it
/// (docs/delivery.md#ordered-delivery).
pub(crate) fn take_place(tail: &mut Option<i64>) -> (i64, bool) {
    let waits = tail.is_some();
    let position = tail.map_or(1, |t| t + 1);
    *tail = Some(position);
    (position, waits)
}

/// What recording a batch of outcomes did beyond writing them.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The subscriptions that a last retry deactivated.
    pub deactivated: Vec<String>,
    /// The next deliveries of ordered keys whose head ended, claimed for the recording
    /// node (per the [`Claim`] it gave): it delivers them at once.
    pub next: Vec<ClaimedDelivery>,
}

/// How much waits in the database.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backlog {
    /// PENDING and due now.
    pub due: u64,
    /// PENDING and due later.
    pub scheduled: u64,
    /// PENDING and parked (subscription not active).
    pub parked: u64,
    /// PENDING behind an earlier delivery of the same ordering key.
    pub waiting: u64,
    pub in_flight: u64,
}

/// A reservation of `count` send slots at `per_second` (docs/delivery.md#rate-limits),
/// from the time up to which slots were taken before it (`taken_until`; `None`: never)
/// and now: the new time up to which they are taken, and when the first reserved slot
/// is. Slots start no earlier than now, so idle time is never saved up for a burst.
/// PostgreSQL computes the same in its statement.
pub fn take_slots<T>(taken_until: Option<T>, now: T, count: u32, per_second: u32) -> (T, T)
where
    T: Copy + Ord + std::ops::Add<std::time::Duration, Output = T>,
{
    let from = taken_until.map_or(now, |t| t.max(now));
    let span = std::time::Duration::from_secs_f64(f64::from(count) / f64::from(per_second.max(1)));
    (from + span, from)
}

#[cfg(test)]
mod slot_tests {
    use std::time::{Duration, Instant};

    use super::take_slots;

    #[test]
    fn reservations_follow_each_other_and_never_bank_idle_time() {
        let t0 = Instant::now();
        // The first reservation starts now.
        let (until, first) = take_slots(None, t0, 2, 20);
        assert_eq!((until, first), (t0 + Duration::from_millis(100), t0));
        // Another node asks at once: its slots follow.
        let (until2, first2) = take_slots(Some(until), t0, 2, 20);
        assert_eq!(first2, until);
        assert_eq!(until2, t0 + Duration::from_millis(200));
        // After an idle second, slots start at the time asked, not in the past.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(take_slots(Some(until2), later, 1, 20).1, later);
    }
}
