//! Webhook destinations: one attempt per request (docs/payloads.md#webhook-requests,
//! docs/payloads.md#destination-authentication, docs/delivery.md#outcome-of-an-attempt):
//! the body in the subscription's style, Standard Webhooks headers, basic or OAuth
//! authentication (a 401 drops the cached token and tries once more at once), and the
//! response read up to 4 KiB.

pub mod http;
pub mod oauth;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use hookrelay_core::ids::{AuthProfileId, StoreHash};
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::retry::parse_retry_after;
use hookrelay_core::secrets::auth_config_context;
use hookrelay_core::signing::signature_header;
use hookrelay_core::{AuthConfig, Destination as Stored, HttpMethod, OAuthConfig};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use self::http::{describe_error, describe_error_with_timeout, verdict_of};
use self::oauth::TokenCache;
use super::{retry, Action, Answer, Destination, Failure, Lane, Message, Resolve, Sent, Verdict};
use crate::resolver::check_target;

/// How much of a response body the log keeps.
pub const MAX_LOGGED_BODY: usize = 4096;

/// How a webhook request authenticates.
#[derive(Clone)]
pub enum Auth {
    None,
    /// The whole `Authorization` header value.
    Basic(HeaderValue),
    OAuth {
        /// The token cache key (`store/profile`).
        key: String,
        /// The profile's version: a token fetched for an older config is not used.
        version: String,
        config: Arc<OAuthConfig>,
    },
    /// The profile cannot be used; every attempt fails with this reason.
    Broken(String),
}

/// A webhook subscription, ready to send to.
pub struct WebhookConfig {
    pub url: reqwest::Url,
    pub method: reqwest::Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub auth: Auth,
}

/// The webhook destination kind: one shared, pooled, address-checked client.
pub struct Webhook {
    pub client: reqwest::Client,
    pub tokens: Arc<TokenCache>,
    pub policy: Arc<AddressPolicy>,
    pub request_timeout: Duration,
}

#[async_trait]
impl Destination for Webhook {
    type Config = WebhookConfig;

    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn config(&self, at: &Resolve<'_>) -> Result<WebhookConfig, String> {
        let Stored::Webhook {
            url,
            method,
            auth_profile_id,
            headers,
            ..
        } = &at.sub.destination
        else {
            return Err("not a webhook destination".into());
        };
        let url = reqwest::Url::parse(url).map_err(|e| format!("url: {e}"))?;
        let headers = headers
            .iter()
            .map(|kv| {
                Ok((
                    HeaderName::from_bytes(kv.key.as_bytes())
                        .map_err(|e| format!("header {}: {e}", kv.key))?,
                    HeaderValue::from_str(&kv.value)
                        .map_err(|e| format!("header {}: {e}", kv.key))?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let auth = match auth_profile_id {
            None => Auth::None,
            Some(profile) => auth(at, profile).await?,
        };
        let method = match method {
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Get => reqwest::Method::GET,
        };
        Ok(WebhookConfig {
            url,
            method,
            headers,
            auth,
        })
    }

    fn lane(&self, config: &WebhookConfig) -> Lane {
        let url = &config.url;
        Lane {
            key: format!(
                "{}:{}",
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or(0)
            ),
            endpoint: Some(url.as_str().to_owned()),
        }
    }

    /// `410 Gone` deactivates the subscription at once, as the Standard Webhooks spec
    /// recommends (docs/delivery.md#outcome-of-an-attempt); every other failure follows
    /// the schedule.
    fn classify(&self, failure: &Failure) -> Action {
        if failure.status == Some(StatusCode::GONE.as_u16()) {
            Action::Deactivate
        } else {
            retry(failure)
        }
    }

    async fn send(&self, batch: &[Message<'_, WebhookConfig>]) -> Sent {
        let mut answers = Vec::with_capacity(batch.len());
        let (mut verdict, mut rtt) = (Verdict::NotSent, None);
        // One message per request (the batch limit is 1).
        for message in batch {
            let (answer, v, r) = self.attempt(message).await;
            answers.push(answer);
            (verdict, rtt) = (v, r);
        }
        Sent {
            verdict,
            rtt,
            answers,
        }
    }
}

/// The auth of a profile; a profile that cannot be used fails every attempt with why.
async fn auth(at: &Resolve<'_>, profile_id: &str) -> Result<Auth, String> {
    let store = &at.sub.store;
    let Some(profile) = at
        .store
        .get_auth_profile(StoreHash(store), AuthProfileId(profile_id))
        .await
        .map_err(|e| format!("auth profile {profile_id}: {e}"))?
    else {
        return Ok(Auth::Broken(format!(
            "auth profile {profile_id} no longer exists"
        )));
    };
    let plain = match at
        .cipher
        .open(&auth_config_context(store, profile_id), &profile.config)
    {
        Ok(plain) => plain,
        Err(e) => return Ok(Auth::Broken(format!("auth profile {profile_id}: {e}"))),
    };
    let config: AuthConfig = match serde_json::from_slice(&plain) {
        Ok(config) => config,
        Err(e) => return Ok(Auth::Broken(format!("auth profile {profile_id}: {e}"))),
    };
    Ok(match config {
        AuthConfig::Basic(basic) => {
            let encoded = STANDARD.encode(format!("{}:{}", basic.username, basic.password));
            match HeaderValue::from_str(&format!("Basic {encoded}")) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    Auth::Basic(value)
                }
                Err(e) => Auth::Broken(format!("auth profile {profile_id}: {e}")),
            }
        }
        AuthConfig::OAuth(oauth) => Auth::OAuth {
            key: format!("{store}/{profile_id}"),
            version: profile.updated_at.timestamp_millis().to_string(),
            config: Arc::new(oauth),
        },
    })
}

impl Webhook {
    /// Makes one attempt: what it came to, whose failure it was, and the round trip.
    async fn attempt(
        &self,
        message: &Message<'_, WebhookConfig>,
    ) -> (Answer, Verdict, Option<Duration>) {
        let unsent = |code: &str, why: String| (Answer::unsent(code, why), Verdict::NotSent, None);
        let (target, delivery) = (message.target, message.delivery);
        let WebhookConfig {
            url,
            method,
            headers,
            auth,
        } = message.config;
        if let Err(why) = check_target(&self.policy, url) {
            return unsent("forbidden", why);
        }
        let body = match message.body() {
            Ok(body) => bytes::Bytes::from(body),
            Err(why) => return unsent("payload", why),
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
                Auth::Broken(why) => return unsent("auth", why.clone()),
                Auth::OAuth {
                    key,
                    version,
                    config,
                } => match self.tokens.token(key, version, config).await {
                    Ok(token) => {
                        request = request.bearer_auth(&*token);
                        bearer = Some((key, token));
                    }
                    Err(e) => return unsent("auth", e.to_string()),
                },
            }
            let sent_at = Instant::now();
            let response = match request.body(body.clone()).send().await {
                Ok(response) => response,
                Err(e) => {
                    let why = describe_error_with_timeout(&e, self.request_timeout);
                    return (Answer::unsent("connection", why), verdict_of(&e), None);
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
            if status.is_success() {
                let answer = Answer::Delivered {
                    status: code,
                    body: text,
                };
                return (answer, Verdict::Succeeded, rtt);
            }
            let mut why = format!("endpoint answered {}", status.as_u16());
            if status.is_redirection() {
                why.push_str(" (redirects are not followed)");
            } else if status == StatusCode::GONE {
                why.push_str(" (Gone): the subscription is deactivated");
            }
            if let Some(e) = read_error {
                why.push_str(&format!("; {e}"));
            }
            let failure = Failure {
                status: code,
                code: format!("http-{}", status.as_u16()),
                reason: why,
                body: text,
                retry_after,
            };
            return (Answer::Refused(failure), Verdict::EndpointFailed, rtt);
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
