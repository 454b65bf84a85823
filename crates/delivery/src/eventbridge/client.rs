//! The one AWS client of the process: the official SDK with the standard configuration chain
//! (`AWS_REGION`, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, profiles, SSO, web
//! identity, container and instance roles, `AWS_ENDPOINT_URL`), loaded once on first use
//! and shared by the API (event sources) and the delivery engine (events).
//!
//! Loading is lazy so that a node that never talks to AWS never looks for credentials or a
//! region (the instance metadata lookup can take seconds off EC2). Each region gets one SDK
//! client, built from the shared configuration and kept: clients pool their connections.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_eventbridge::config::timeout::TimeoutConfig;
use aws_sdk_eventbridge::config::Region;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, PutPartnerEventsRequestEntry};
use aws_sdk_eventbridge::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

/// Connecting to AWS never waits longer than this.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An AWS call that did not succeed, in the words and code AWS used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    /// AWS's error code (`ResourceAlreadyExistsException`, `ThrottlingException`…), or
    /// `RequestTimeout` / `ConnectionError` / `CredentialsError` / `InvalidResponse` /
    /// `RequestNotSent` when there was no answer from AWS to take one from.
    pub code: String,
    pub message: String,
    /// The HTTP status AWS answered with, when it answered.
    pub status: Option<u16>,
}

impl AwsError {
    fn from_sdk<E>(e: SdkError<E>, timeout: Duration) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (code, status) = match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("UnknownError").to_owned();
                let message = se
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| describe(se.err()));
                return AwsError {
                    code,
                    message,
                    status: Some(se.raw().status().as_u16()),
                };
            }
            SdkError::TimeoutError(_) => {
                return AwsError {
                    code: "RequestTimeout".into(),
                    message: format!("no answer from AWS within {}s", timeout.as_secs_f64()),
                    status: None,
                }
            }
            SdkError::DispatchFailure(_) => ("ConnectionError", None),
            SdkError::ResponseError(r) => ("InvalidResponse", Some(r.raw().status().as_u16())),
            _ => ("RequestNotSent", None),
        };
        let mut message = describe(&e);
        let code = if caused_by::<CredentialsError>(&e) {
            message.push_str(
                " (hookrelay finds AWS credentials through the standard chain: \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or a container or instance role)",
            );
            "CredentialsError"
        } else {
            code
        };
        AwsError {
            code: code.into(),
            message,
            status,
        }
    }
}

/// Whether an `E` is somewhere in the source chain of `e`.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |err| err.source()).any(|err| err.is::<E>())
}

/// The `Display` texts of an error and its sources, joined: readable, and without the
/// `Debug` dumps of raw responses that the SDK's own context display appends. A layer
/// whose text its parent already carries is left out.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

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
    ($call:expr, $entry_type:ident, $entries:expr, $timeout:expr, |$builder:ident, $entry:ident| $extra:expr) => {{
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
            .map_err(|e| AwsError::from_sdk(e, $timeout))?;
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
    timeout: Duration,
    config: OnceCell<aws_config::SdkConfig>,
    clients: Mutex<HashMap<String, Client>>,
}

impl EventBridge {
    /// `timeout` bounds each HTTP attempt to AWS (the SDK retries throttling and 5xx
    /// answers itself, a few times, with backoff).
    pub fn new(timeout: Duration) -> Self {
        EventBridge {
            timeout,
            config: OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn sdk_config(&self) -> &aws_config::SdkConfig {
        self.config
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(self.timeout.min(MAX_CONNECT_TIMEOUT))
                    .operation_attempt_timeout(self.timeout)
                    .operation_timeout(self.timeout * 4)
                    .build();
                aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http)
                    .timeout_config(timeouts)
                    .load()
                    .await
            })
            .await
    }

    /// The client for `region`.
    pub async fn client(&self, region: &str) -> Client {
        if let Some(client) = self.lock().get(region) {
            return client.clone();
        }
        let config = aws_sdk_eventbridge::config::Builder::from(self.sdk_config().await)
            .region(Region::new(region.to_owned()))
            .build();
        let client = Client::from_conf(config);
        self.lock()
            .entry(region.to_owned())
            .or_insert(client)
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
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
            .map_err(|e| AwsError::from_sdk(e, self.timeout))?;
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
            Err(e) => match AwsError::from_sdk(e, self.timeout) {
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
        let n = entries.len();
        let answered = match api {
            Api::PutPartnerEvents => put_entries!(
                client.put_partner_events(),
                PutPartnerEventsRequestEntry,
                entries,
                self.timeout,
                |builder, _entry| builder
            ),
            Api::PutEvents => put_entries!(
                client.put_events(),
                PutEventsRequestEntry,
                entries,
                self.timeout,
                |builder, entry| builder.set_event_bus_name(entry.event_bus)
            ),
        };
        Ok(match_results(n, answered))
    }
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
