//! What the dispatcher's tasks share: sending a request through its destination kind,
//! turning each answer into the delivery's next state (retry with jitter and
//! `Retry-After`, FAILED at once when the kind gives up, or FAILED when no retry is left),
//! and handing the outcome to the recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookrelay_core::retry::RetrySchedule;
use hookrelay_store::{AttemptRecord, ClaimedDelivery, FailedDelivery, NewEvent, Next, Outcome};
use tokio::sync::mpsc;

use crate::destinations::{Action, Answer, Verdict};
use crate::dispatcher::{Report, Work};
use crate::metrics;
use crate::target::Target;

pub struct Worker {
    pub retry: RetrySchedule,
    pub outcomes: mpsc::UnboundedSender<Outcome>,
    /// Subscriptions whose host is paused or saturated, and when to try them again: the
    /// scheduler leaves them out and ingest writes their deliveries unclaimed.
    pub blocked: Mutex<Arc<HashMap<String, DateTime<Utc>>>>,
    /// Woken when a subscription leaves `blocked`: the scheduler may claim its work.
    pub unblocked: Arc<tokio::sync::Notify>,
    /// Operational events to publish (docs/delivery.md#operational-events).
    pub notices: mpsc::UnboundedSender<NewEvent>,
}

impl Worker {
    pub fn record(&self, outcome: Outcome) {
        if self.outcomes.send(outcome).is_err() {
            // Only during shutdown: the delivery stays IN_FLIGHT in the database and is
            // handed back by the next heartbeat of a live node (or this one's restart).
            tracing::warn!("outcome recorder is gone; the delivery will be retried");
        }
    }

    /// Publishes an operational event, without waiting.
    pub fn notice(&self, event: NewEvent) {
        let _ = self.notices.send(event);
    }

    pub fn set_blocked(&self, blocked: HashMap<String, DateTime<Utc>>) {
        let now = Arc::new(blocked);
        let before = std::mem::replace(
            &mut *self.blocked.lock().unwrap_or_else(|e| e.into_inner()),
            now.clone(),
        );
        if before.keys().any(|id| !now.contains_key(id)) {
            self.unblocked.notify_one();
        }
    }

    pub fn blocked(&self) -> Arc<HashMap<String, DateTime<Utc>>> {
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends works of one lane in one request (a batch of at most the lane's limit; one
    /// work for kinds that do not batch), through their destination kind. Each delivery
    /// gets its own outcome: taken, retried alone, or given up on at once when the kind
    /// says retrying cannot help. Returns what the request tells the lane.
    pub async fn deliver(&self, works: Vec<Work>) -> Report {
        let Some(kind) = works.first().map(|w| w.target.kind.clone()) else {
            return Report {
                verdict: Verdict::NotSent,
                rtt: None,
            };
        };
        let started_at = Utc::now();
        let clock = Instant::now();
        let batch: Vec<(&ClaimedDelivery, &Target)> =
            works.iter().map(|w| (&w.delivery, &*w.target)).collect();
        let sent = kind.send(&batch).await;
        drop(batch);
        let duration_ms = clock.elapsed().as_millis() as u64;
        let name = kind.name();
        metrics::destination_request(name, sent.verdict);
        for (work, answer) in works.into_iter().zip(sent.answers) {
            let delivery = work.delivery;
            let (record, action) = match answer {
                Answer::Delivered { status, body } => {
                    metrics::destination_messages(name, "accepted");
                    let record = AttemptRecord {
                        started_at,
                        duration_ms,
                        status_code: status,
                        error: None,
                        response_body: body,
                    };
                    (record, None)
                }
                Answer::Refused(failure) => {
                    let action = kind.classify(&failure);
                    let record = AttemptRecord {
                        started_at,
                        duration_ms,
                        status_code: failure.status,
                        error: Some(failure.reason),
                        response_body: failure.body,
                    };
                    (record, Some(action))
                }
            };
            match action {
                None => self.conclude(delivery, record, None),
                Some(Action::GiveUp) => {
                    metrics::destination_messages(name, "given_up");
                    let reason = record.error.clone().unwrap_or_default();
                    tracing::warn!(delivery_id = %delivery.id, subscription_id = %delivery.subscription_id, kind = name, reason, "delivery failed: the destination will not take it");
                    self.drop_delivery(delivery, record, reason);
                }
                Some(Action::Deactivate) => {
                    metrics::destination_messages(name, "gone");
                    metrics::delivered("failed");
                    tracing::warn!(delivery_id = %delivery.id, subscription_id = %delivery.subscription_id, kind = name, "delivery failed: the destination is gone; deactivating the subscription");
                    self.record_attempt(delivery, record, Next::Failed);
                }
                Some(retry) => {
                    metrics::destination_messages(name, "refused");
                    let after = match retry {
                        Action::RetryAfter(after) => Some(after),
                        _ => None,
                    };
                    self.conclude(delivery, record, after);
                }
            }
        }
        Report {
            verdict: sent.verdict,
            rtt: sent.rtt,
        }
    }

    /// FAILED at once with `reason`, without deactivating the subscription.
    fn drop_delivery(&self, delivery: ClaimedDelivery, record: AttemptRecord, reason: String) {
        metrics::delivered("dropped");
        self.record_attempt(delivery, record, Next::Drop { reason });
    }

    /// Records what an attempt came to: success, a retry at the next step of the schedule,
    /// or FAILED when none is left.
    fn conclude(
        &self,
        delivery: ClaimedDelivery,
        record: AttemptRecord,
        retry_after: Option<Duration>,
    ) {
        let attempt_no = delivery.round_attempts + 1;
        let next = if record.error.is_none() {
            metrics::delivered("succeeded");
            tracing::debug!(
                delivery_id = %delivery.id,
                event_id = %delivery.event.id,
                subscription_id = %delivery.subscription_id,
                status = record.status_code,
                "delivered"
            );
            Next::Succeeded
        } else {
            let error = record.error.as_deref().unwrap_or("failed");
            match self.retry.delay_after(attempt_no, retry_after) {
                Some(delay) => {
                    metrics::delivered("retry");
                    tracing::info!(
                        delivery_id = %delivery.id,
                        event_id = %delivery.event.id,
                        subscription_id = %delivery.subscription_id,
                        attempt = attempt_no,
                        retry_in_ms = delay.as_millis() as u64,
                        error,
                        "attempt failed; will retry"
                    );
                    Next::Retry {
                        due_at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
                    }
                }
                None => {
                    metrics::delivered("failed");
                    tracing::warn!(
                        delivery_id = %delivery.id,
                        event_id = %delivery.event.id,
                        subscription_id = %delivery.subscription_id,
                        attempt = attempt_no,
                        error,
                        "delivery failed: every retry used; deactivating the subscription"
                    );
                    Next::Failed
                }
            }
        };
        self.record_attempt(delivery, record, next);
    }

    /// Counts the attempt and hands it, with the delivery's next state, to the recorder.
    fn record_attempt(&self, delivery: ClaimedDelivery, record: AttemptRecord, next: Next) {
        metrics::attempt(record.error.is_none(), record.duration_ms);
        let failed = matches!(next, Next::Failed | Next::Drop { .. }).then(|| {
            Box::new(FailedDelivery {
                delivery_id: delivery.id.clone(),
                event_id: delivery.event.id.clone(),
                event_type: delivery.event.event_type.clone(),
                attempts: delivery.attempt_count + 1,
            })
        });
        self.record(Outcome {
            seq: delivery.seq,
            subscription_id: delivery.subscription_id,
            ordering_key: delivery.ordering_key,
            store: delivery.event.store.clone(),
            attempt: Some(record),
            next,
            failed,
        });
    }
}
