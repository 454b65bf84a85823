//! EventBridge's answers to `PutPartnerEvents` and `PutEvents`
//! (crates/delivery/src/destinations/eventbridge/): the fuzzed bytes are the HTTP answer
//! the AWS SDK client gets, from an HTTP client of this target's, so the SDK's
//! deserializer and our reading of it (result entries matched to the entries sent,
//! `FailedEntryCount`, errors of the whole call, the answer each delivery gets) see them.
//!
//! Input: a byte for the call (bit 0) and the HTTP status (bits 1-3), a byte for the
//! number of entries sent, then the response body.
#![no_main]

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_eventbridge::config::http::{HttpRequest, HttpResponse};
use aws_sdk_eventbridge::config::retry::RetryConfig;
use aws_sdk_eventbridge::config::{
    BehaviorVersion, Credentials, Region, RuntimeComponents, SharedHttpClient,
    StalledStreamProtectionConfig,
};
use aws_sdk_eventbridge::Client;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use chrono::{TimeZone, Utc};
use hookrelay_delivery::aws::Aws;
use hookrelay_delivery::destinations::eventbridge::client::put_with;
use hookrelay_delivery::destinations::eventbridge::{answer, Api, Entry, EntryResult};
use hookrelay_delivery::destinations::Answer;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const STATUSES: [u16; 8] = [200, 200, 200, 200, 400, 403, 500, 503];

/// The answer the next call gets: status and body.
static ANSWER: Mutex<(u16, Vec<u8>)> = Mutex::new((200, Vec::new()));

/// Answers every request with [`ANSWER`].
#[derive(Debug, Clone)]
struct Replay;

impl HttpConnector for Replay {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let (status, body) = ANSWER.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("a status"),
            SdkBody::from(body),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Replay {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    client: Client,
    aws: Aws,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDFUZZ", "secret", None, None, "fuzz"))
            .http_client(SharedHttpClient::new(Replay))
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .build();
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            client: Client::from_conf(config),
            aws: Aws::new(Duration::from_secs(5)),
        }
    })
}

fn entries(api: Api, n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            source: "aws.partner/hookrelay.test/s1".into(),
            detail_type: "bigCommerceWebhook".into(),
            detail: format!("{{\"n\":{i}}}"),
            time: Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap(),
            resources: vec![format!("r{i}")],
            event_bus: (api == Api::PutEvents)
                .then(|| "arn:aws:events:us-east-1:123456789012:event-bus/b".into()),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let [flags, count, body @ ..] = data else {
        return;
    };
    let api = if flags & 1 == 0 {
        Api::PutPartnerEvents
    } else {
        Api::PutEvents
    };
    let status = STATUSES[usize::from(flags >> 1 & 7)];
    let n = usize::from(*count) % api.batch_limit() + 1;
    *ANSWER.lock().unwrap_or_else(|e| e.into_inner()) = (status, body.to_vec());
    let fixture = fixture();
    let outcome = fixture.runtime.block_on(put_with(
        &fixture.client,
        &fixture.aws,
        api,
        entries(api, n),
    ));
    match outcome {
        Ok(results) => {
            assert_eq!(status, 200);
            // One result per entry sent, whatever AWS answered.
            assert_eq!(results.len(), n);
            // When AWS answered one result entry per entry, each result is its entry's.
            let sent: Option<Value> = serde_json::from_slice(body).ok();
            if let Some(answered) = sent.as_ref().and_then(|v| v["Entries"].as_array()) {
                if answered.len() == n && answered.iter().all(Value::is_object) {
                    for (result, entry) in results.iter().zip(answered) {
                        let code = entry["ErrorCode"].as_str().filter(|c| !c.is_empty());
                        match (result, code) {
                            (EntryResult::Failed { code: got, .. }, Some(code)) => {
                                assert_eq!(got, code)
                            }
                            (EntryResult::Accepted { .. }, None) => {}
                            other => panic!("{other:?} for {entry}"),
                        }
                    }
                }
            }
            for result in results {
                let failed_code = match &result {
                    EntryResult::Failed { code, .. } => {
                        assert!(!code.is_empty());
                        Some(code.clone())
                    }
                    EntryResult::Accepted { .. } => None,
                };
                // What the delivery log keeps of it: JSON, and the code AWS gave.
                match answer(api, result) {
                    Answer::Delivered { body, .. } => {
                        assert!(failed_code.is_none());
                        let body = body.expect("a body");
                        serde_json::from_str::<Value>(&body).expect("JSON");
                    }
                    Answer::Refused(failure) => {
                        assert_eq!(Some(&failure.code), failed_code.as_ref());
                        let body = failure.body.expect("a body");
                        serde_json::from_str::<Value>(&body).expect("JSON");
                    }
                }
            }
        }
        // A failure of the whole call carries the status AWS answered with.
        Err(e) => assert_eq!(e.status, Some(status), "{e:?}"),
    }
});
