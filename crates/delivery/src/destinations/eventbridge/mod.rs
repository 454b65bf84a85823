//! Amazon EventBridge destinations (docs/eventbridge.md): the entry each delivery becomes,
//! sent in batches per region and call (up to 20 per `PutPartnerEvents`, 10 per
//! `PutEvents`). AWS answers entry by entry, so only the entries that failed are sent again.

pub mod client;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hookrelay_core::aws::{entry_size, MAX_ENTRY_BYTES};
use hookrelay_core::{Destination as Stored, Style};

pub use client::{Api, AwsError, Entry, EntryResult, EventBridge};

use super::{Action, Answer, Destination, Failure, Lane, Message, Resolve, Sent, Verdict};

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

/// The EventBridge destination kind.
pub struct EventBridgeKind {
    pub client: Arc<EventBridge>,
    pub settings: EventBridgeSettings,
}

/// Entry error codes that will be answered the same way every time.
const PERMANENT: &[&str] = &[
    super::UNSENDABLE,
    "AccessDeniedException",
    "ResourceNotFoundException",
    "ValidationException",
];

#[async_trait]
impl Destination for EventBridgeKind {
    type Config = EventBridgeTarget;

    fn kind(&self) -> &'static str {
        "eventbridge"
    }

    async fn config(&self, at: &Resolve<'_>) -> Result<EventBridgeTarget, String> {
        let Stored::EventBridge {
            arn,
            region,
            partner_source,
        } = &at.sub.destination
        else {
            return Err("not an EventBridge destination".into());
        };
        Ok(EventBridgeTarget {
            api: match partner_source {
                Some(_) => Api::PutPartnerEvents,
                None => Api::PutEvents,
            },
            region: region.clone(),
            arn: arn.clone(),
            partner_source: partner_source.clone(),
        })
    }

    /// One lane per region and call: entries for many sources (or buses) of a region
    /// share batches, in-flight bounds and the breaker.
    fn lane(&self, config: &EventBridgeTarget) -> Lane {
        Lane {
            key: format!("eventbridge:{}:{}", config.region, config.api.as_str()),
            endpoint: None,
        }
    }

    fn batch_limit(&self, config: &EventBridgeTarget) -> usize {
        config.api.batch_limit()
    }

    async fn send(&self, batch: &[Message<'_, EventBridgeTarget>]) -> Sent {
        let mut answers: Vec<Option<Answer>> = Vec::with_capacity(batch.len());
        let mut entries = Vec::with_capacity(batch.len());
        for message in batch {
            match entry(message, &self.settings) {
                Ok(entry) => {
                    entries.push(entry);
                    answers.push(None);
                }
                Err(reason) => answers.push(Some(Answer::unsent(super::UNSENDABLE, reason))),
            }
        }
        let Some(first) = batch.first().filter(|_| !entries.is_empty()) else {
            return Sent {
                verdict: Verdict::NotSent,
                rtt: None,
                answers: answers.into_iter().flatten().collect(),
            };
        };
        let (api, region) = (first.config.api, &first.config.region);
        let n = entries.len();
        let clock = Instant::now();
        let (verdict, results): (Verdict, Vec<Answer>) =
            match self.client.put(api, region, entries).await {
                Ok(results) => (
                    Verdict::Succeeded,
                    results.into_iter().map(|r| answer(api, r)).collect(),
                ),
                Err(e) => {
                    let mut failure =
                        Failure::new(&e.code, format!("{} failed: {e}", api.as_str()));
                    failure.status = e.status;
                    (Verdict::HostFailed, vec![Answer::Refused(failure); n])
                }
            };
        let rtt = (verdict == Verdict::Succeeded).then(|| clock.elapsed());
        // The entries sent, in order, fill the places of the messages that were sent.
        let mut results = results.into_iter();
        let answers = answers
            .into_iter()
            .map(|a| {
                a.or_else(|| results.next())
                    .unwrap_or_else(|| Answer::unsent("unanswered", "no answer from AWS"))
            })
            .collect();
        Sent {
            verdict,
            rtt,
            answers,
        }
    }

    fn classify(&self, failure: &Failure) -> Action {
        if PERMANENT.contains(&failure.code.as_str()) {
            Action::GiveUp
        } else {
            super::retry(failure)
        }
    }
}

/// What AWS said of one entry, as the log keeps it. Public for the fuzz targets (fuzz/).
pub fn answer(api: Api, result: EntryResult) -> Answer {
    match result {
        EntryResult::Accepted { event_id } => Answer::Delivered {
            status: Some(200),
            body: Some(serde_json::json!({ "EventId": event_id }).to_string()),
        },
        EntryResult::Failed { code, message } => Answer::Refused(Failure {
            status: Some(200),
            reason: format!("{} entry refused: {code}: {message}", api.as_str()),
            body: Some(
                serde_json::json!({ "ErrorCode": code, "ErrorMessage": message }).to_string(),
            ),
            code,
            retry_after: None,
        }),
    }
}

/// The entry `delivery` becomes, or why it cannot be sent (it would never be accepted).
///
/// - `Source`: the partner event source name, or `hookrelay.{store}` on an event bus.
/// - `DetailType`: `settings.detail_type` for BigCommerce-style subscriptions, the event
///   type for Buy with Prime ones.
/// - `Detail`: the same JSON a webhook receives.
/// - `Time` and `Resources`: the event's.
pub fn entry(
    message: &Message<'_, EventBridgeTarget>,
    settings: &EventBridgeSettings,
) -> Result<Entry, String> {
    let (eb, target) = (message.config, message.target);
    let event = &message.delivery.event;
    let detail = String::from_utf8(message.body()?).map_err(|e| format!("event data: {e}"))?;
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
