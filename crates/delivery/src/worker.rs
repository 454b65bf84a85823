//! What the dispatcher's tasks share: making an attempt, turning its result into the
//! delivery's next state (retry with jitter and `Retry-After`, or FAILED), and handing the
//! outcome to the recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use hookrelay_core::retry::RetrySchedule;
use hookrelay_store::{Next, Outcome};
use tokio::sync::mpsc;

use crate::dispatcher::Work;
use crate::metrics;
use crate::sender::WebhookSender;

pub struct Worker {
    pub sender: WebhookSender,
    pub retry: RetrySchedule,
    pub outcomes: mpsc::UnboundedSender<Outcome>,
    /// Subscriptions whose host is paused or saturated, and when to try them again: the
    /// scheduler leaves them out and ingest writes their deliveries unclaimed.
    pub blocked: Mutex<Arc<HashMap<String, DateTime<Utc>>>>,
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
        *self.blocked.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(blocked);
    }

    pub fn blocked(&self) -> Arc<HashMap<String, DateTime<Utc>>> {
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes one attempt; returns whether it succeeded (for the breaker).
    pub async fn deliver(&self, work: Work) -> Option<bool> {
        let Work { delivery, target } = work;
        let result = self.sender.attempt(&target, &delivery).await;
        metrics::attempt(result.success, result.record.duration_ms);
        let attempt_no = delivery.round_attempts + 1;
        let next = if result.success {
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
        self.record(Outcome {
            seq: delivery.seq,
            subscription_id: delivery.subscription_id,
            store: delivery.event.store.clone(),
            attempt: Some(result.record),
            next,
        });
        Some(result.success)
    }
}
