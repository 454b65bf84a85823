//! One webhook attempt (docs/payloads.md#webhook-requests,
//! docs/payloads.md#destination-authentication, docs/delivery.md#outcome-of-an-attempt):
//! the body in the subscription's style, Standard Webhooks headers, basic or OAuth
//! authentication (a 401 drops the cached token and tries once more at once), and the
//! response read up to 4 KiB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookrelay_core::retry::parse_retry_after;
use hookrelay_core::signing::signature_header;
use hookrelay_store::{AttemptRecord, ClaimedDelivery};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use crate::dispatcher::Report;
use crate::http::{describe_error, describe_error_with_timeout, verdict_of};
use crate::oauth::TokenCache;
use crate::resolver::check_target;
use crate::target::{Auth, Target, TargetKind};
use hookrelay_core::net::AddressPolicy;

/// How much of a response body the log keeps.
pub const MAX_LOGGED_BODY: usize = 4096;

/// Whose failure an attempt was (docs/delivery.md "Blocking a failing destination"): the
/// host's failures count for the host's breaker and push its concurrency down; failing
/// answers count for the endpoint (the subscription's URL) alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A success answer.
    Succeeded,
    /// The host answered, but not with success (any status outside 2xx: 5xx, 429, other
    /// 4xx, 3xx), or the answer did not come in time after the request was sent.
    EndpointFailed,
    /// The host itself failed: DNS, a refused or reset connection, a connect or TLS error
    /// or timeout.
    HostFailed,
    /// Nothing reached the host: the payload, the auth profile or its token endpoint
    /// failed first, or the address policy forbids where the host resolves to.
    NotSent,
}

/// What one attempt came to.
pub struct AttemptResult {
    pub record: AttemptRecord,
    /// The receiver's `Retry-After`, when it sent one with a failure.
    pub retry_after: Option<Duration>,
    pub verdict: Verdict,
    /// From sending the request to the answer's head, when the host answered.
    pub rtt: Option<Duration>,
}

impl AttemptResult {
    /// An attempt that started at `started_at` and took `duration_ms`; it failed when
    /// `error` says why (by default as one that never reached the host: see
    /// [`AttemptResult::judged`]).
    pub fn new(
        started_at: DateTime<Utc>,
        duration_ms: u64,
        status_code: Option<u16>,
        error: Option<String>,
        response_body: Option<String>,
    ) -> Self {
        let verdict = match error {
            None => Verdict::Succeeded,
            Some(_) => Verdict::NotSent,
        };
        AttemptResult {
            record: AttemptRecord {
                started_at,
                duration_ms,
                status_code,
                error,
                response_body,
            },
            retry_after: None,
            verdict,
            rtt: None,
        }
    }

    /// The same result, judged as `verdict` after a round trip of `rtt`.
    pub fn judged(mut self, verdict: Verdict, rtt: Option<Duration>) -> Self {
        self.verdict = verdict;
        self.rtt = rtt;
        self
    }

    /// What this attempt tells its lane.
    pub fn report(&self) -> Report {
        Report {
            verdict: self.verdict,
            rtt: self.rtt,
        }
    }

    pub fn success(&self) -> bool {
        self.record.error.is_none()
    }
}

/// Sends webhook attempts over one shared, pooled, address-checked client.
pub struct WebhookSender {
    pub client: reqwest::Client,
    pub tokens: Arc<TokenCache>,
    pub policy: Arc<AddressPolicy>,
    pub request_timeout: Duration,
}

impl WebhookSender {
    /// Makes one attempt of `delivery` to `target`.
    pub async fn attempt(&self, target: &Target, delivery: &ClaimedDelivery) -> AttemptResult {
        let started_at = Utc::now();
        let clock = Instant::now();
        let finish = |status_code: Option<u16>,
                      error: Option<String>,
                      body: Option<String>,
                      retry_after: Option<Duration>| AttemptResult {
            retry_after,
            ..AttemptResult::new(
                started_at,
                clock.elapsed().as_millis() as u64,
                status_code,
                error,
                body,
            )
        };
        let TargetKind::Webhook {
            url,
            method,
            headers,
            auth,
        } = &target.kind
        else {
            return finish(None, Some("not a webhook destination".into()), None, None);
        };
        if let Err(why) = check_target(&self.policy, url) {
            return finish(None, Some(why), None, None);
        }
        let body = match target.payload(delivery) {
            Ok(body) => bytes::Bytes::from(body),
            Err(why) => return finish(None, Some(why), None, None),
        };

        let mut refreshed = false;
        loop {
            let now = Utc::now();
            let timestamp = now.timestamp();
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request = request
                .header("webhook-id", &delivery.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signature_header(&target.signing_keys(now), &delivery.id, timestamp, &body),
                );
            let mut bearer = None;
            match auth {
                Auth::None => {}
                Auth::Basic(value) => request = request.header(AUTHORIZATION, value),
                Auth::Broken(why) => return finish(None, Some(why.clone()), None, None),
                Auth::OAuth {
                    key,
                    version,
                    config,
                } => match self.tokens.token(key, version, config).await {
                    Ok(token) => {
                        request = request.bearer_auth(&*token);
                        bearer = Some((key, token));
                    }
                    Err(e) => return finish(None, Some(e.to_string()), None, None),
                },
            }
            let sent_at = Instant::now();
            let response = match request.body(body.clone()).send().await {
                Ok(response) => response,
                Err(e) => {
                    let why = describe_error_with_timeout(&e, self.request_timeout);
                    return finish(None, Some(why), None, None).judged(verdict_of(&e), None);
                }
            };
            let rtt = Some(sent_at.elapsed());
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                if let Some((key, token)) = bearer {
                    // The token may have been revoked early: fetch a new one and try again, once.
                    self.tokens.invalidate(key, Some(&token));
                    refreshed = true;
                    continue;
                }
            }
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, Utc::now()));
            let (text, read_error) = read_body(response).await;
            let code = Some(status.as_u16());
            return if status.is_success() {
                finish(code, None, text, None).judged(Verdict::Succeeded, rtt)
            } else {
                let mut why = format!("endpoint answered {}", status.as_u16());
                if status.is_redirection() {
                    why.push_str(" (redirects are not followed)");
                }
                if let Some(e) = read_error {
                    why.push_str(&format!("; {e}"));
                }
                finish(code, Some(why), text, retry_after).judged(Verdict::EndpointFailed, rtt)
            };
        }
    }
}

/// Reads at most [`MAX_LOGGED_BODY`] bytes of the body (as text), and whether reading failed.
async fn read_body(mut response: reqwest::Response) -> (Option<String>, Option<String>) {
    let mut kept: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_LOGGED_BODY - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if kept.len() >= MAX_LOGGED_BODY {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let text = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned());
                return (
                    text,
                    Some(format!("reading the response: {}", describe_error(&e))),
                );
            }
        }
    }
    let text = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned());
    (text, None)
}
