//! The EventBridge client of the process, shared by the API (event sources) and the
//! delivery engine (events), over the shared AWS configuration ([`crate::aws`]).

use std::sync::Arc;

use aws_sdk_eventbridge::config::Region;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, PutPartnerEventsRequestEntry};
use aws_sdk_eventbridge::Client;
use chrono::{DateTime, Utc};

pub use crate::aws::AwsError;
use crate::aws::{Aws, Clients};

/// One event for `PutPartnerEvents` or `PutEvents`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub source: String,
    pub detail_type: String,
    /// JSON.
    pub detail: String,
    pub time: DateTime<Utc>,
    pub resources: Vec<String>,
    /// `PutEvents` only: the event bus (its ARN).
    pub event_bus: Option<String>,
}

/// What AWS said of one entry of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Accepted; AWS's event id when it gave one.
    Accepted {
        event_id: Option<String>,
    },
    Failed {
        code: String,
        message: String,
    },
}

/// The call an entry goes out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// A partner event source (SaaS partner mode): up to 20 entries a call.
    PutPartnerEvents,
    /// An event bus: up to 10 entries a call.
    PutEvents,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::PutPartnerEvents => "PutPartnerEvents",
            Api::PutEvents => "PutEvents",
        }
    }

    /// Entries per call at most.
    pub fn batch_limit(self) -> usize {
        match self {
            Api::PutPartnerEvents => hookrelay_core::aws::MAX_PARTNER_BATCH,
            Api::PutEvents => hookrelay_core::aws::MAX_EVENT_BUS_BATCH,
        }
    }
}

/// Sends `$entries` with `$call` and reads the answer: `(FailedEntryCount, one result per
/// result entry)`. `PutPartnerEvents` and `PutEvents` differ only in their generated types,
/// which share no trait; `$extra` adds what one of them has beyond the common fields.
macro_rules! put_entries {
    ($call:expr, $entry_type:ident, $entries:expr, $aws:expr, |$builder:ident, $entry:ident| $extra:expr) => {{
        let entries = $entries
            .into_iter()
            .map(|$entry: Entry| {
                let $builder = $entry_type::builder()
                    .time(aws_time($entry.time))
                    .source($entry.source)
                    .set_resources(Some($entry.resources))
                    .detail_type($entry.detail_type)
                    .detail($entry.detail);
                $extra.build()
            })
            .collect();
        let out = $call
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| $aws.error(e))?;
        let results: Vec<EntryResult> = out
            .entries()
            .iter()
            .map(|r| entry_result((r.event_id(), r.error_code(), r.error_message())))
            .collect();
        (out.failed_entry_count(), results)
    }};
}

/// The shared EventBridge client.
pub struct EventBridge {
    clients: Clients<Client>,
}

impl EventBridge {
    pub fn new(aws: Arc<Aws>) -> Self {
        EventBridge {
            clients: Clients::new(aws, |config, region| {
                Client::from_conf(
                    aws_sdk_eventbridge::config::Builder::from(config)
                        .region(Region::new(region.to_owned()))
                        .build(),
                )
            }),
        }
    }

    /// The client for `region`.
    pub async fn client(&self, region: &str) -> Client {
        self.clients.get(region).await
    }

    /// `CreatePartnerEventSource`: returns the ARN AWS answered.
    pub async fn create_partner_event_source(
        &self,
        region: &str,
        name: &str,
        account: &str,
    ) -> Result<String, AwsError> {
        let output = self
            .client(region)
            .await
            .create_partner_event_source()
            .name(name)
            .account(account)
            .send()
            .await
            .map_err(|e| self.clients.aws().error(e))?;
        output
            .event_source_arn()
            .map(str::to_owned)
            .ok_or_else(|| AwsError {
                code: "InvalidResponse".into(),
                message: "CreatePartnerEventSource answered without an EventSourceArn".into(),
                status: None,
            })
    }

    /// `DeletePartnerEventSource`. A source AWS no longer knows counts as deleted.
    pub async fn delete_partner_event_source(
        &self,
        region: &str,
        name: &str,
        account: &str,
    ) -> Result<(), AwsError> {
        let result = self
            .client(region)
            .await
            .delete_partner_event_source()
            .name(name)
            .account(account)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match self.clients.aws().error(e) {
                e if e.code == "ResourceNotFoundException" => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Sends `entries` (at most [`Api::batch_limit`]) in one call. `Ok` holds one result
    /// per entry, in order; `Err` is a failure of the whole call.
    pub async fn put(
        &self,
        api: Api,
        region: &str,
        entries: Vec<Entry>,
    ) -> Result<Vec<EntryResult>, AwsError> {
        let client = self.client(region).await;
        put_with(&client, self.clients.aws(), api, entries).await
    }
}

/// [`EventBridge::put`] with a given SDK client. Public for the fuzz targets (fuzz/), which
/// hand the SDK a replayed HTTP answer, so that its deserializer and our reading of the
/// result entries both see it.
pub async fn put_with(
    client: &Client,
    aws: &Aws,
    api: Api,
    entries: Vec<Entry>,
) -> Result<Vec<EntryResult>, AwsError> {
    let n = entries.len();
    let answered = match api {
        Api::PutPartnerEvents => put_entries!(
            client.put_partner_events(),
            PutPartnerEventsRequestEntry,
            entries,
            aws,
            |builder, _entry| builder
        ),
        Api::PutEvents => put_entries!(
            client.put_events(),
            PutEventsRequestEntry,
            entries,
            aws,
            |builder, entry| builder.set_event_bus_name(entry.event_bus)
        ),
    };
    Ok(match_results(n, answered))
}

fn aws_time(t: DateTime<Utc>) -> AwsDateTime {
    AwsDateTime::from_millis(t.timestamp_millis())
}

fn entry_result(
    (event_id, code, message): (Option<&str>, Option<&str>, Option<&str>),
) -> EntryResult {
    match code {
        Some(code) if !code.is_empty() => EntryResult::Failed {
            code: code.to_owned(),
            message: message.unwrap_or_default().to_owned(),
        },
        _ => EntryResult::Accepted {
            event_id: event_id.map(str::to_owned),
        },
    }
}

/// One result per entry sent. AWS answers one result entry per request entry, in order;
/// an answer that does not (some emulators answer an empty list) is read by its
/// `FailedEntryCount`: none failed means all were accepted, otherwise none can be told
/// apart and every entry counts as failed, to be sent again.
fn match_results(sent: usize, (failed, results): (i32, Vec<EntryResult>)) -> Vec<EntryResult> {
    if results.len() == sent {
        return results;
    }
    let each = if failed == 0 {
        EntryResult::Accepted { event_id: None }
    } else {
        EntryResult::Failed {
            code: "UnmatchedEntryResults".into(),
            message: format!(
                "AWS reported {failed} failed entries of {sent} but answered {} results",
                results.len()
            ),
        }
    };
    vec![each; sent]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_order_or_by_failed_count() {
        let ok = EntryResult::Accepted {
            event_id: Some("e1".into()),
        };
        let bad = EntryResult::Failed {
            code: "InternalFailure".into(),
            message: "x".into(),
        };
        assert_eq!(
            match_results(2, (1, vec![ok.clone(), bad.clone()])),
            vec![ok, bad]
        );
        assert_eq!(
            match_results(3, (0, Vec::new())),
            vec![EntryResult::Accepted { event_id: None }; 3]
        );
        let all_failed = match_results(2, (1, Vec::new()));
        assert!(all_failed.iter().all(
            |r| matches!(r, EntryResult::Failed { code, .. } if code == "UnmatchedEntryResults")
        ));
    }

    #[test]
    fn entry_results_read_error_codes() {
        assert_eq!(
            entry_result((None, Some("ThrottlingException"), Some("slow down"))),
            EntryResult::Failed {
                code: "ThrottlingException".into(),
                message: "slow down".into()
            }
        );
        assert_eq!(
            entry_result((Some("id"), None, None)),
            EntryResult::Accepted {
                event_id: Some("id".into())
            }
        );
    }
}
