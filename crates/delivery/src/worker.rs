//! What the dispatcher's tasks share: making an attempt, turning its result into the
//! delivery's next state (retry with jitter and `Retry-After`, or FAILED), and handing the
//! outcome to the recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use hookrelay_core::retry::RetrySchedule;
use hookrelay_store::{ClaimedDelivery, Next, Outcome};
use tokio::sync::mpsc;

use crate::dispatcher::{Report, Work};
use crate::eventbridge::{self, EntryResult, EventBridge, EventBridgeSettings};
use crate::metrics;
use crate::sender::{AttemptResult, Verdict, WebhookSender};
use crate::target::TargetKind;

pub struct Worker {
    pub sender: WebhookSender,
    pub eventbridge: Arc<EventBridge>,
    pub eventbridge_settings: EventBridgeSettings,
    pub retry: RetrySchedule,
    pub outcomes: mpsc::UnboundedSender<Outcome>,
    /// Subscriptions whose host is paused or saturated, and when to try them again: the
    /// scheduler leaves them out and ingest writes their deliveries unclaimed.
    pub blocked: Mutex<Arc<HashMap<String, DateTime<Utc>>>>,
    /// Woken when a subscription leaves `blocked`: the scheduler may claim its work.
    pub unblocked: Arc<tokio::sync::Notify>,
}

impl Worker {
    pub fn record(&self, outcome: Outcome) {
        if self.outcomes.send(outcome).is_err() {
            // Only during shutdown: the delivery stays IN_FLIGHT in the database and is
            // handed back by the next heartbeat of a live node (or this one's restart).
            tracing::warn!("outcome recorder is gone; the delivery will be retried");
        }
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

    /// Makes one webhook attempt; returns what it tells the lane (the breakers and the
    /// concurrency limit).
    pub async fn deliver(&self, work: Work) -> Report {
        let Work { delivery, target } = work;
        let result = self.sender.attempt(&target, &delivery).await;
        let report = result.report();
        self.conclude(delivery, result);
        report
    }

    /// Sends deliveries to EventBridge in one call (all of one region and API, at most
    /// the API's batch limit). Each delivery gets its own outcome: the entries AWS accepted
    /// succeed, the ones it refused go on the retry schedule alone, and a failure of the
    /// whole call is a failed attempt of each. Returns what the call tells the lane:
    /// success when it went through (refused entries are the destination's matter, not the
    /// region's), the lane's own failure when it did not.
    pub async fn deliver_batch(&self, works: Vec<Work>) -> Report {
        let started_at = Utc::now();
        let clock = Instant::now();
        let mut sent = Vec::with_capacity(works.len());
        let mut entries = Vec::with_capacity(works.len());
        let mut call = None;
        for Work { delivery, target } in works {
            let TargetKind::EventBridge(eb) = &target.kind else {
                self.conclude(
                    delivery,
                    AttemptResult::new(
                        started_at,
                        0,
                        None,
                        Some("not an EventBridge destination".into()),
                        None,
                    ),
                );
                continue;
            };
            match eventbridge::entry(&target, eb, &delivery, &self.eventbridge_settings) {
                Ok(entry) => {
                    call.get_or_insert_with(|| (eb.api, eb.region.clone()));
                    entries.push(entry);
                    sent.push(delivery);
                }
                Err(reason) => {
                    // It would be refused every time: FAILED now, with the reason, and the
                    // subscription stays active.
                    metrics::eventbridge_entries(eb.api, "unsendable", 1);
                    tracing::warn!(delivery_id = %delivery.id, subscription_id = %delivery.subscription_id, reason, "cannot deliver to EventBridge");
                    let result =
                        AttemptResult::new(started_at, 0, None, Some(reason.clone()), None);
                    self.drop_delivery(delivery, result, reason);
                }
            }
        }
        let Some((api, region)) = call else {
            return Report {
                verdict: Verdict::NotSent,
                rtt: None,
            };
        };
        let answer = self.eventbridge.put(api, &region, entries).await;
        let rtt = clock.elapsed();
        let duration_ms = rtt.as_millis() as u64;
        let attempt = |status_code: Option<u16>, error: Option<String>, body: Option<String>| {
            AttemptResult::new(started_at, duration_ms, status_code, error, body)
        };
        match answer {
            Ok(results) => {
                metrics::eventbridge_request(api, true);
                for (delivery, result) in sent.into_iter().zip(results) {
                    let outcome = match result {
                        EntryResult::Accepted { event_id } => {
                            metrics::eventbridge_entries(api, "accepted", 1);
                            let body = serde_json::json!({ "EventId": event_id }).to_string();
                            attempt(Some(200), None, Some(body))
                        }
                        EntryResult::Failed { code, message } => {
                            metrics::eventbridge_entries(api, "failed", 1);
                            let why = format!("{} entry refused: {code}: {message}", api.as_str());
                            let body =
                                serde_json::json!({ "ErrorCode": code, "ErrorMessage": message });
                            attempt(Some(200), Some(why), Some(body.to_string()))
                        }
                    };
                    self.conclude(delivery, outcome);
                }
                Report {
                    verdict: Verdict::Succeeded,
                    rtt: Some(rtt),
                }
            }
            Err(e) => {
                metrics::eventbridge_request(api, false);
                metrics::eventbridge_entries(api, "failed", sent.len());
                let why = format!("{} failed: {e}", api.as_str());
                for delivery in sent {
                    self.conclude(delivery, attempt(e.status, Some(why.clone()), None));
                }
                Report {
                    verdict: Verdict::HostFailed,
                    rtt: None,
                }
            }
        }
    }

    /// FAILED at once with `reason`, without deactivating the subscription.
    fn drop_delivery(&self, delivery: ClaimedDelivery, result: AttemptResult, reason: String) {
        metrics::delivered("dropped");
        self.record_attempt(delivery, result, Next::Drop { reason });
    }

    /// Records what an attempt came to: success, a retry at the next step of the schedule,
    /// or FAILED when none is left.
    fn conclude(&self, delivery: ClaimedDelivery, result: AttemptResult) {
        let attempt_no = delivery.round_attempts + 1;
        let next = if result.success() {
            metrics::delivered("succeeded");
            tracing::debug!(
                delivery_id = %delivery.id,
                event_id = %delivery.event.id,
                subscription_id = %delivery.subscription_id,
                status = result.record.status_code,
                "delivered"
            );
            Next::Succeeded
        } else {
            let error = result.record.error.as_deref().unwrap_or("failed");
            match self.retry.delay_after(attempt_no, result.retry_after) {
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
        self.record_attempt(delivery, result, next);
    }

    /// Counts the attempt and hands it, with the delivery's next state, to the recorder.
    fn record_attempt(&self, delivery: ClaimedDelivery, result: AttemptResult, next: Next) {
        metrics::attempt(result.success(), result.record.duration_ms);
        self.record(Outcome {
            seq: delivery.seq,
            subscription_id: delivery.subscription_id,
            store: delivery.event.store.clone(),
            attempt: Some(result.record),
            next,
        });
    }
}
