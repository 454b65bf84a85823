//! Where a delivery goes, resolved once per subscription and cached: the parsed URL and
//! headers, the decrypted signing keys and auth config. The management API invalidates the
//! cache on every change it makes; a short time-to-live covers changes made by other
//! processes (the CLI, other nodes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hookrelay_core::payload::{self, PayloadInput};
use hookrelay_core::secrets::{auth_config_context, signing_secret_context, Cipher};
use hookrelay_core::signing::SigningKey;
use hookrelay_core::{AuthConfig, Destination, HttpMethod, OAuthConfig, Style, SubscriptionRecord};
use hookrelay_store::{ClaimedDelivery, Store, StoreError};
use reqwest::header::{HeaderName, HeaderValue};

use crate::eventbridge::{Api, EventBridgeTarget};

/// How long a resolved subscription is trusted without asking the database again.
const TTL: Duration = Duration::from_secs(5);

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

pub enum TargetKind {
    Webhook {
        url: reqwest::Url,
        method: reqwest::Method,
        headers: Vec<(HeaderName, HeaderValue)>,
        auth: Auth,
    },
    EventBridge(EventBridgeTarget),
}

/// A subscription ready to deliver to.
pub struct Target {
    pub id: String,
    pub store: String,
    pub style: Style,
    pub active: bool,
    pub kind: TargetKind,
    /// The lane (a webhook's `host:port`; an EventBridge region and call): the unit of the
    /// adaptive in-flight limit, batching and the host breaker.
    pub host: Arc<str>,
    /// The endpoint within the lane (a webhook's URL), the unit of the endpoint breaker;
    /// `None` where the lane has no endpoints of its own (EventBridge).
    pub endpoint: Option<Arc<str>>,
    pub key: SigningKey,
    /// The rotated-out key, and when it stops signing.
    pub previous: Option<(SigningKey, DateTime<Utc>)>,
}

impl Target {
    /// Deliveries per request at most when the destination takes batches (EventBridge);
    /// `None`: one delivery per request.
    pub fn batch_limit(&self) -> Option<usize> {
        match &self.kind {
            TargetKind::Webhook { .. } => None,
            TargetKind::EventBridge(eb) => Some(eb.api.batch_limit()),
        }
    }

    /// The body of `delivery` in this subscription's style (docs/payloads.md): a
    /// webhook's request body and an EventBridge entry's `Detail` alike. Fails only for
    /// event data that is not JSON (checked at ingest: a corrupt database).
    pub fn payload(&self, delivery: &ClaimedDelivery) -> Result<Vec<u8>, String> {
        let event = &delivery.event;
        payload::build(&PayloadInput {
            style: self.style,
            store: &event.store,
            event_id: &event.id,
            event_type: &event.event_type,
            data: &event.data,
            resources: &event.resources,
            time: event.time,
            delivery_id: &delivery.id,
            subscription_id: &self.id,
        })
        .map_err(|e| format!("event data is not JSON: {e}"))
    }

    /// The keys that sign a message sent now.
    pub fn signing_keys(&self, now: DateTime<Utc>) -> Vec<SigningKey> {
        let mut keys = vec![self.key.clone()];
        if let Some((key, until)) = &self.previous {
            if *until > now {
                keys.push(key.clone());
            }
        }
        keys
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("subscription {0}: {1}")]
    Invalid(String, String),
}

/// A resolved subscription (`None`: it does not exist) and when it was read.
type Entry = (Instant, Option<Arc<Target>>);

/// The cache of resolved subscriptions.
pub struct Targets {
    store: Arc<dyn Store>,
    cipher: Arc<Cipher>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Targets {
    pub fn new(store: Arc<dyn Store>, cipher: Arc<Cipher>) -> Self {
        Targets {
            store,
            cipher,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets everything (a subscription or auth profile changed).
    pub fn invalidate_all(&self) {
        self.entries().clear();
    }

    pub fn invalidate(&self, id: &str) {
        self.entries().remove(id);
    }

    /// The subscription `id` of `store`; `None` when it no longer exists.
    pub async fn get(&self, store: &str, id: &str) -> Result<Option<Arc<Target>>, TargetError> {
        if let Some((at, target)) = self.entries().get(id) {
            if at.elapsed() < TTL {
                return Ok(target.clone());
            }
        }
        let target = match self.store.get_subscription(store, id).await? {
            None => None,
            Some(sub) => Some(Arc::new(self.resolve(sub).await?)),
        };
        self.entries()
            .insert(id.to_owned(), (Instant::now(), target.clone()));
        Ok(target)
    }

    fn open_key(
        &self,
        store: &str,
        id: &str,
        sealed: &hookrelay_core::Sealed,
    ) -> Result<SigningKey, TargetError> {
        let invalid = |why: String| TargetError::Invalid(id.to_owned(), why);
        let secret = self
            .cipher
            .open(&signing_secret_context(store, id), sealed)
            .map_err(|e| invalid(format!("signing secret: {e}")))?;
        let secret = String::from_utf8(secret).map_err(|e| invalid(e.to_string()))?;
        SigningKey::from_secret(&secret).map_err(|e| invalid(e.to_string()))
    }

    async fn resolve(&self, sub: SubscriptionRecord) -> Result<Target, TargetError> {
        let invalid = |why: String| TargetError::Invalid(sub.id.clone(), why);
        let key = self.open_key(&sub.store, &sub.id, &sub.signing_secret)?;
        let previous = match &sub.previous_secret {
            Some(p) => Some((self.open_key(&sub.store, &sub.id, &p.secret)?, p.until)),
            None => None,
        };
        let (kind, host, endpoint) = match &sub.destination {
            Destination::Webhook {
                url,
                method,
                auth_profile_id,
                headers,
                ..
            } => {
                let url = reqwest::Url::parse(url).map_err(|e| invalid(format!("url: {e}")))?;
                let endpoint: Arc<str> = url.as_str().into();
                let host = format!(
                    "{}:{}",
                    url.host_str().unwrap_or_default(),
                    url.port_or_known_default().unwrap_or(0)
                );
                let headers = headers
                    .iter()
                    .map(|kv| {
                        Ok((
                            HeaderName::from_bytes(kv.key.as_bytes())
                                .map_err(|e| invalid(format!("header {}: {e}", kv.key)))?,
                            HeaderValue::from_str(&kv.value)
                                .map_err(|e| invalid(format!("header {}: {e}", kv.key)))?,
                        ))
                    })
                    .collect::<Result<Vec<_>, TargetError>>()?;
                let auth = match auth_profile_id {
                    None => Auth::None,
                    Some(profile) => self.auth(&sub.store, profile).await?,
                };
                let method = match method {
                    HttpMethod::Post => reqwest::Method::POST,
                    HttpMethod::Put => reqwest::Method::PUT,
                    HttpMethod::Get => reqwest::Method::GET,
                };
                (
                    TargetKind::Webhook {
                        url,
                        method,
                        headers,
                        auth,
                    },
                    host,
                    Some(endpoint),
                )
            }
            Destination::EventBridge {
                arn,
                region,
                partner_source,
            } => {
                let api = match partner_source {
                    Some(_) => Api::PutPartnerEvents,
                    None => Api::PutEvents,
                };
                // One "host" per region and call: entries for many sources (or buses) of a
                // region share batches, in-flight bounds and the breaker.
                let host = format!("eventbridge:{region}:{}", api.as_str());
                (
                    TargetKind::EventBridge(EventBridgeTarget {
                        api,
                        region: region.clone(),
                        arn: arn.clone(),
                        partner_source: partner_source.clone(),
                    }),
                    host,
                    None,
                )
            }
        };
        Ok(Target {
            active: sub.status.is_active(),
            id: sub.id,
            store: sub.store,
            style: sub.style,
            kind,
            host: host.into(),
            endpoint,
            key,
            previous,
        })
    }

    async fn auth(&self, store: &str, profile_id: &str) -> Result<Auth, TargetError> {
        let Some(profile) = self.store.get_auth_profile(store, profile_id).await? else {
            return Ok(Auth::Broken(format!(
                "auth profile {profile_id} no longer exists"
            )));
        };
        let plain = match self
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
}
