//! Amazon EventBridge destinations (docs/eventbridge.md): the shared AWS client, and the
//! entry each delivery becomes. The dispatcher batches deliveries per region and call (up to 20 per
//! `PutPartnerEvents`, 10 per `PutEvents`); the worker sends a batch and reads AWS's answer
//! entry by entry, so that only the entries that failed are sent again.

pub mod client;

use std::time::Duration;

use hookrelay_core::aws::{entry_size, MAX_ENTRY_BYTES};
use hookrelay_core::Style;
use hookrelay_store::ClaimedDelivery;

pub use client::{Api, AwsError, Entry, EntryResult, EventBridge};

use crate::target::Target;

/// The `DetailType` of BigCommerce-style events by default: what the BigCommerce guide's
/// rule `{"detail-type":["bigCommerceWebhook"]}` matches.
pub const DEFAULT_DETAIL_TYPE: &str = "bigCommerceWebhook";

/// How long a partial batch waits for more deliveries by default.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(50);

/// How EventBridge deliveries are made.
#[derive(Debug, Clone)]
pub struct EventBridgeSettings {
    /// `DetailType` of BigCommerce-style events (Buy with Prime style: the event type).
    pub detail_type: String,
    /// A batch that is not full waits this long for more deliveries before it goes.
    pub batch_wait: Duration,
}

impl Default for EventBridgeSettings {
    fn default() -> Self {
        EventBridgeSettings {
            detail_type: DEFAULT_DETAIL_TYPE.to_owned(),
            batch_wait: DEFAULT_BATCH_WAIT,
        }
    }
}

/// Where an EventBridge delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBridgeTarget {
    pub api: Api,
    pub region: String,
    /// The event source's or event bus's ARN.
    pub arn: String,
    /// `PutPartnerEvents`: the partner event source name; `PutEvents`: `None`.
    pub partner_source: Option<String>,
}

/// The entry `delivery` becomes, or why it cannot be sent (it would never be accepted).
///
/// - `Source`: the partner event source name, or `hookrelay.{store}` on an event bus.
/// - `DetailType`: `settings.detail_type` for BigCommerce-style subscriptions, the event
///   type for Buy with Prime ones.
/// - `Detail`: the same JSON a webhook receives.
/// - `Time` and `Resources`: the event's.
pub fn entry(
    target: &Target,
    eb: &EventBridgeTarget,
    delivery: &ClaimedDelivery,
    settings: &EventBridgeSettings,
) -> Result<Entry, String> {
    let event = &delivery.event;
    let detail =
        String::from_utf8(target.payload(delivery)?).map_err(|e| format!("event data: {e}"))?;
    let source = match &eb.partner_source {
        Some(name) => name.clone(),
        None => format!("hookrelay.{}", event.store),
    };
    let detail_type = match target.style {
        Style::BigCommerce => settings.detail_type.clone(),
        Style::BuyWithPrime => event.event_type.clone(),
    };
    let size = entry_size(&source, &detail_type, &detail, &event.resources);
    if size > MAX_ENTRY_BYTES {
        return Err(format!(
            "event too large for EventBridge: the entry is {size} bytes, the limit is {MAX_ENTRY_BYTES}"
        ));
    }
    Ok(Entry {
        source,
        detail_type,
        detail,
        time: event.time,
        resources: event.resources.clone(),
        event_bus: match eb.api {
            Api::PutEvents => Some(eb.arn.clone()),
            Api::PutPartnerEvents => None,
        },
    })
}
