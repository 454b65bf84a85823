//! Where a delivery goes, resolved once per subscription and cached: its destination
//! kind's config (parsed, secrets opened) and lane, and the decrypted signing keys. The management API invalidates the
//! cache on every change it makes; a short time-to-live covers changes made by other
//! processes (the CLI, other nodes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::any::Any;

use chrono::{DateTime, Utc};
use hookrelay_core::ids::{StoreHash, SubscriptionId};
use hookrelay_core::payload::{self, PayloadInput};
use hookrelay_core::secrets::{signing_secret_context, Cipher};
use hookrelay_core::signing::SigningKey;
use hookrelay_core::{Style, SubscriptionRecord};
use hookrelay_store::{ClaimedDelivery, Store, StoreError};

use crate::destinations::{self, Kind, Registry, Resolve};

/// How long a resolved subscription is trusted without asking the database again.
const TTL: Duration = Duration::from_secs(5);

/// A subscription ready to deliver to.
pub struct Target {
    pub id: String,
    pub store: String,
    pub style: Style,
    pub active: bool,
    /// The kind that delivers it, and its config of that kind.
    pub kind: Arc<dyn Kind>,
    pub config: Arc<dyn Any + Send + Sync>,
    /// The lane ([`crate::destinations::Lane`]): the unit of the adaptive in-flight
    /// limit, batching and the host breaker.
    pub lane: Arc<str>,
    /// The endpoint within the lane (a webhook's URL), the unit of the endpoint breaker;
    /// `None` where the lane has no endpoints of its own.
    pub endpoint: Option<Arc<str>>,
    /// Deliveries per request at most (1: one per request).
    pub batch_limit: usize,
    /// Requests per second at most, across the cluster (docs/delivery.md#rate-limits).
    pub rate_limit: Option<u32>,
    pub key: SigningKey,
    /// The rotated-out key, and when it stops signing.
    pub previous: Option<(SigningKey, DateTime<Utc>)>,
}

impl Target {
    /// The body of `delivery` in this subscription's style (docs/payloads.md): a
    /// webhook's request body, an EventBridge entry's `Detail` and a queued message alike. Fails only for
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
    kinds: Registry,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Targets {
    pub fn new(store: Arc<dyn Store>, cipher: Arc<Cipher>, kinds: Registry) -> Self {
        Targets {
            store,
            cipher,
            kinds,
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
        let target = match self
            .store
            .get_subscription(StoreHash(store), SubscriptionId(id))
            .await?
        {
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
        let key = self.open_key(&sub.store, &sub.id, &sub.signing_secret)?;
        let previous = match &sub.previous_secret {
            Some(p) => Some((self.open_key(&sub.store, &sub.id, &p.secret)?, p.until)),
            None => None,
        };
        let kind = self.kinds.kind(&sub.destination).clone();
        let name = kind.name();
        let resolved = kind
            .resolve(&Resolve {
                store: &*self.store,
                cipher: &self.cipher,
                sub: &sub,
            })
            .await
            .unwrap_or_else(|why| {
                tracing::warn!(subscription_id = %sub.id, kind = name, reason = %why, "the destination cannot be used; its attempts fail with the reason");
                destinations::unusable(name, &sub.id, why)
            });
        Ok(Target {
            active: sub.status.is_active(),
            id: sub.id,
            store: sub.store,
            style: sub.style,
            kind: resolved.kind,
            config: resolved.config,
            lane: resolved.lane.key.into(),
            endpoint: resolved.lane.endpoint.map(Arc::from),
            batch_limit: resolved.batch_limit,
            rate_limit: sub.rate_limit,
            key,
            previous,
        })
    }
}
