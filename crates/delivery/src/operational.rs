//! Operational events (docs/delivery.md#operational-events): hookrelay's own events,
//! published into the store they concern through the same ingest and delivery as any
//! other, so that a store's apps (or its operator) can subscribe to `hookrelay/*` by
//! webhook or EventBridge.
//!
//! An operational event never goes to the subscriptions it is about, and a delivery of an
//! operational event that fails raises no `hookrelay/delivery/failed`: so a failing
//! subscriber cannot feed a loop.

use hookrelay_core::ids;
use hookrelay_store::{FailedDelivery, NewEvent};
use serde_json::{json, Value};

use crate::ingest::patterns_for;

pub const DELIVERY_FAILED: &str = "hookrelay/delivery/failed";
pub const DESTINATION_BLOCKED: &str = "hookrelay/destination/blocked";
pub const DESTINATION_UNBLOCKED: &str = "hookrelay/destination/unblocked";
pub const SUBSCRIPTION_DEACTIVATED: &str = "hookrelay/subscription/deactivated";
pub const SUBSCRIPTION_REACTIVATED: &str = "hookrelay/subscription/reactivated";

/// Whether an event type is one of hookrelay's own.
pub fn is_operational(event_type: &str) -> bool {
    event_type.starts_with(hookrelay_core::event_types::OPERATIONAL_PREFIX)
}

/// An operational event of `store`, sent to none of `about` (the subscriptions it
/// concerns). Events about one subscription carry its id as their ordering key, so that
/// an ordered subscriber gets them in the order they happened.
pub fn event(store: &str, event_type: &str, data: Value, about: Vec<String>) -> NewEvent {
    NewEvent {
        id: ids::new_id("evt"),
        store: store.to_owned(),
        patterns: patterns_for(event_type),
        event_type: event_type.to_owned(),
        data: data.to_string(),
        resources: Vec::new(),
        idempotency_key: None,
        time: hookrelay_core::now(),
        only_subscription: None,
        ordering_key: match about.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        },
        except_subscriptions: about,
    }
}

/// `hookrelay/delivery/failed`: a delivery used its last retry (or was given up at once).
pub fn delivery_failed(
    store: &str,
    subscription_id: &str,
    failed: &FailedDelivery,
    last_error: Option<&str>,
    status_code: Option<u16>,
) -> NewEvent {
    event(
        store,
        DELIVERY_FAILED,
        json!({
            "subscriptionId": subscription_id,
            "deliveryId": failed.delivery_id,
            "eventId": failed.event_id,
            "eventType": failed.event_type,
            "attempts": failed.attempts,
            "lastError": last_error,
            "statusCode": status_code,
        }),
        vec![subscription_id.to_owned()],
    )
}

/// `hookrelay/subscription/deactivated`, with the delivery whose failure did it.
pub fn deactivated(
    store: &str,
    subscription_id: &str,
    failed: Option<&FailedDelivery>,
    last_error: Option<&str>,
) -> NewEvent {
    event(
        store,
        SUBSCRIPTION_DEACTIVATED,
        json!({
            "subscriptionId": subscription_id,
            "status": "DEACTIVATED",
            "failedDeliveryId": failed.map(|f| &f.delivery_id),
            "lastError": last_error,
        }),
        vec![subscription_id.to_owned()],
    )
}

/// `hookrelay/subscription/reactivated`: a deactivated subscription was made active.
pub fn reactivated(store: &str, subscription_id: &str) -> NewEvent {
    event(
        store,
        SUBSCRIPTION_REACTIVATED,
        json!({ "subscriptionId": subscription_id, "status": "ACTIVE" }),
        vec![subscription_id.to_owned()],
    )
}

/// What a breaker judged: a whole host (its own failures) or one endpoint (its answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Host,
    Endpoint,
}

/// `hookrelay/destination/blocked` or `…/unblocked` for one store: the breaker of
/// `destination` (a `host:port` or lane, or an endpoint URL without its query) opened
/// (`paused_until` is when it tries again) or closed. `subscriptions` are the store's
/// subscriptions seen going there.
pub fn destination(
    store: &str,
    scope: Scope,
    destination: &str,
    paused_until: Option<chrono::DateTime<chrono::Utc>>,
    subscriptions: Vec<String>,
) -> NewEvent {
    let blocked = paused_until.is_some();
    event(
        store,
        if blocked {
            DESTINATION_BLOCKED
        } else {
            DESTINATION_UNBLOCKED
        },
        json!({
            "destination": destination,
            "scope": match scope { Scope::Host => "HOST", Scope::Endpoint => "ENDPOINT" },
            "pausedUntil": paused_until,
            "subscriptionIds": subscriptions,
        }),
        subscriptions,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_about_subscriptions_goes_to_none_of_them() {
        let e = reactivated("s1", "wh_1");
        assert_eq!(e.event_type, SUBSCRIPTION_REACTIVATED);
        assert_eq!(e.except_subscriptions, vec!["wh_1"]);
        assert_eq!(e.ordering_key.as_deref(), Some("wh_1"));
        assert!(e.patterns.contains(&"hookrelay/*".to_owned()));
        let e = destination(
            "s1",
            Scope::Endpoint,
            "https://h/x",
            None,
            vec!["a".into(), "b".into()],
        );
        assert_eq!(e.event_type, DESTINATION_UNBLOCKED);
        assert_eq!(e.except_subscriptions.len(), 2);
        assert_eq!(e.ordering_key, None);
        assert!(is_operational(&e.event_type) && !is_operational("store/order/created"));
    }
}
