//! Storage. The [`Store`] trait is everything the API and the delivery engine ask of a
//! database; `sqlite` implements it for the embedded mode (one node), `postgres` for the
//! shared mode (any number of nodes on one database).

use async_trait::async_trait;
use hookrelay_core::ids::{AuthProfileId, DeliveryId, EventSourceId, StoreHash, SubscriptionId};
use hookrelay_core::{
    ApiClient, AuthKind, AuthProfileRecord, EventSourceRecord, PreviousSecret, Principal, Sealed,
    StoreRecord, Style, SubscriptionRecord,
};

mod codec;
pub mod delivery;
pub mod keys;
mod keys_sql;
pub mod portal;
pub mod postgres;
pub mod sqlite;

pub use delivery::*;
pub use keys::{KeyStore, NodeKeys, Resealed, SecretColumn, StoredSecret};
pub use portal::PortalStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken; the string says which.
    #[error("{0} already exists")]
    Conflict(Conflict),
    /// The BigCommerce limit of webhooks per client and scope.
    #[error("at most {limit} webhooks per client and scope {scope:?}")]
    LimitReached { scope: String, limit: usize },
    /// The row to change is not there (or not in this store).
    #[error("not found")]
    NotFound,
    /// An auth profile that active subscriptions use.
    #[error("in use by {0:?}")]
    InUse(Vec<String>),
    #[error("database error: {0}")]
    Database(String),
    /// The database has no room left to write (a full disk); it takes writes again once
    /// there is room, without a restart.
    #[error("the database is out of disk space ({0})")]
    Full(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("the store is shut down")]
    Closed,
}

/// Which unique key a write ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    Store,
    Client,
    AuthProfile,
    /// Same owner, style, event type and destination; the id of the existing subscription.
    Subscription(String),
    /// An event source of the same partner event source name.
    EventSource,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conflict::Store => f.write_str("store"),
            Conflict::Client => f.write_str("client"),
            Conflict::AuthProfile => f.write_str("auth profile"),
            Conflict::Subscription(id) => write!(f, "subscription {id}"),
            Conflict::EventSource => f.write_str("event source"),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A new API client and the hash of its token.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: String,
    pub token_hash: String,
    pub role: hookrelay_core::Role,
    pub store: Option<String>,
}

/// Whose records a listing covers: one client's, or (`owner: None`) the whole store's.
#[derive(Debug, Clone)]
pub struct Scope {
    pub store: String,
    pub owner: Option<String>,
}

/// `first` items after the cursor position `after` (an opaque sequence number).
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub first: usize,
    pub after: Option<i64>,
    /// Count every matching record too (a scan: only when the caller asked for it).
    pub count_total: bool,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Each item with its cursor position.
    pub items: Vec<(i64, T)>,
    pub has_next: bool,
    /// Set when `count_total` was asked for.
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter {
    pub style: Option<Style>,
    pub is_active: Option<bool>,
    /// Exact event type (a scope, or a wildcard scope as written).
    pub event_type: Option<String>,
}

/// The duplicate and count rules a subscription write must keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriptionLimits {
    /// At most this many subscriptions per owner, style and event type (BigCommerce: 10).
    pub max_per_type: Option<usize>,
}

/// Events, deliveries and leases: what ingest, the delivery engine and the delivery log
/// ask of a database.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Writes each event and one delivery per matching active subscription, all in one
    /// transaction, answering only after commit. `claim` says which deliveries are
    /// written IN_FLIGHT, leased to the asking node (which delivers them straight away).
    async fn ingest(&self, events: Vec<NewEvent>, claim: Claim) -> Result<Vec<Ingested>>;
    /// Records that `node` is alive, and hands the IN_FLIGHT deliveries of nodes silent for
    /// longer than `lease_timeout` back to PENDING. Returns how many it took back.
    async fn heartbeat(&self, node: &str, lease_timeout: std::time::Duration) -> Result<u64>;
    /// Whether a heartbeat since the last call found that another node had taken this
    /// node's deliveries (it was silent past the lease: frozen, or cut off); it should
    /// then drop what it holds unsent. Always false with one node.
    fn take_leases_lost(&self) -> bool {
        false
    }
    /// Hands every delivery `node` holds back to PENDING and forgets the node (clean stop).
    async fn leave(&self, node: &str) -> Result<u64>;
    /// Claims up to `limit` due PENDING deliveries for `node`, oldest due first, skipping
    /// the subscriptions in `exclude` (their host is paused or saturated).
    async fn claim_due(
        &self,
        node: &str,
        limit: usize,
        exclude: Vec<String>,
    ) -> Result<Vec<ClaimedDelivery>>;
    /// When the earliest PENDING delivery is due.
    async fn next_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>>;
    /// Writes attempts and state changes of deliveries `node` holds (others are skipped:
    /// their lease was lost). An outcome that ends the head of an ordered key makes the next
    /// in line the head, claimed as `claim` says (docs/delivery.md#ordered-delivery).
    async fn record_outcomes(
        &self,
        node: &str,
        outcomes: Vec<Outcome>,
        claim: Claim,
    ) -> Result<Recorded>;
    async fn backlog(&self) -> Result<Backlog>;
    /// Reserves `count` send slots of a subscription limited to `per_second` requests per
    /// second, one rate shared by every node (docs/delivery.md#rate-limits). Answers how
    /// long from now until the first of them; the others follow one every 1/`per_second`.
    async fn reserve_slots(
        &self,
        subscription_id: &str,
        per_second: u32,
        count: u32,
    ) -> Result<std::time::Duration>;

    // --- the delivery log ---
    async fn list_deliveries(
        &self,
        store: StoreHash<'_>,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliveryRecord>>;
    /// The attempts of several deliveries (by seq, as a page of the log gives them),
    /// oldest first each, in one round trip.
    async fn attempts_of_many(
        &self,
        delivery_seqs: Vec<i64>,
    ) -> Result<std::collections::HashMap<i64, Vec<AttemptRecord>>>;
    async fn get_delivery(
        &self,
        store: StoreHash<'_>,
        id: DeliveryId<'_>,
    ) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>)>>;
    /// Makes a delivery PENDING and due now, with a fresh round of retries (`NotFound` if
    /// there is none): a final one, or one waiting for its next retry (the receiver was
    /// fixed: no need to wait). A delivery in flight is left as it is.
    async fn retry_delivery(
        &self,
        store: StoreHash<'_>,
        id: DeliveryId<'_>,
    ) -> Result<DeliveryRecord>;
    /// Starts again every delivery that matches; returns how many.
    async fn replay_deliveries(&self, store: StoreHash<'_>, filter: ReplayFilter) -> Result<u64>;
    /// Replaces a subscription's signing secret, keeping `previous` signing until its end.
    async fn rotate_signing_secret(
        &self,
        store: StoreHash<'_>,
        id: SubscriptionId<'_>,
        secret: Sealed,
        previous: PreviousSecret,
    ) -> Result<()>;

    // --- retention ---
    /// Deletes up to `limit` events created before `before`, with their deliveries and
    /// attempts, oldest first. An event that still has a delivery in flight or scheduled
    /// is kept until that is final (parked deliveries do not keep it). Returns how many
    /// events went.
    async fn prune(&self, before: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<u64>;

    // --- between nodes ---
    /// Tells every other node on this database (a no-op where there is only one).
    async fn broadcast(&self, _from: &str, _signal: Signal) -> Result<()> {
        Ok(())
    }
    /// What other nodes broadcast, from now on; `None` where there is only one node.
    async fn listen(
        &self,
        _node: &str,
    ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>> {
        Ok(None)
    }
}

/// A message from one node to the others on the same database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Deliveries became due (a retry, a replay, a reactivation, work left unclaimed).
    Wake,
    /// A subscription changed or went away: forget what is cached of it.
    Subscription(String),
    /// An auth profile of a store changed or went away: drop its token.
    AuthProfile { store: String, id: String },
    /// Messages may have been missed (the connection was lost): forget every cache and
    /// look for due deliveries.
    Resync,
}

/// EventBridge partner event sources (`createEventSource`, or made by
/// `createEventSubscription` for its own destination;
/// docs/eventbridge.md#partner-event-sources).
#[async_trait]
pub trait EventSourceStore: Send + Sync + 'static {
    /// Inserts an event source; `Conflict::EventSource` when its name is taken.
    async fn insert_event_source(&self, source: EventSourceRecord) -> Result<()>;
    async fn get_event_source(
        &self,
        store: StoreHash<'_>,
        id: EventSourceId<'_>,
    ) -> Result<Option<EventSourceRecord>>;
    /// The event source of `store` whose ARN is `arn`.
    async fn event_source_by_arn(
        &self,
        store: StoreHash<'_>,
        arn: &str,
    ) -> Result<Option<EventSourceRecord>>;
    /// Whether any store has an event source of this partner event source name.
    async fn event_source_name_taken(&self, source_name: &str) -> Result<bool>;
    /// Listable event sources in scope (not those a subscription made for itself).
    async fn list_event_sources(
        &self,
        scope: Scope,
        page: PageRequest,
    ) -> Result<Page<EventSourceRecord>>;
    /// The subscriptions of `store` that deliver to the event source `id`.
    async fn event_source_users(
        &self,
        store: StoreHash<'_>,
        id: EventSourceId<'_>,
    ) -> Result<Vec<String>>;
    /// Deletes a listable event source unless a subscription delivers to it (`InUse` with
    /// their ids).
    async fn delete_event_source(&self, store: StoreHash<'_>, id: EventSourceId<'_>) -> Result<()>;
}

#[async_trait]
pub trait Store: DeliveryStore + EventSourceStore + PortalStore + KeyStore {
    /// Readiness: the database answers and the schema is current.
    async fn ready(&self) -> Result<()>;

    // --- tenancy ---
    async fn create_store(&self, store_hash: &str) -> Result<()>;
    async fn list_stores(&self) -> Result<Vec<StoreRecord>>;
    async fn store_exists(&self, store_hash: &str) -> Result<bool>;
    /// Creates the client, and its store if it does not exist yet.
    async fn create_client(&self, client: NewClient) -> Result<()>;
    async fn list_clients(&self) -> Result<Vec<ApiClient>>;
    /// Revokes a client's token; `NotFound` if there is no such (unrevoked) client.
    async fn revoke_client(&self, client_id: &str) -> Result<()>;
    /// The principal of an unrevoked token, by the token's hash.
    async fn principal_by_token_hash(&self, token_hash: &str) -> Result<Option<Principal>>;

    // --- auth profiles ---
    async fn insert_auth_profile(&self, profile: AuthProfileRecord) -> Result<()>;
    async fn get_auth_profile(
        &self,
        store: StoreHash<'_>,
        id: AuthProfileId<'_>,
    ) -> Result<Option<AuthProfileRecord>>;
    async fn update_auth_profile(
        &self,
        store: StoreHash<'_>,
        id: AuthProfileId<'_>,
        kind: AuthKind,
        config: Sealed,
    ) -> Result<()>;
    /// Deletes a profile unless an active subscription uses it (`InUse` with their ids).
    /// Inactive subscriptions that used it keep naming it: an attempt for one of them
    /// (after reactivation) fails with "auth profile … no longer exists".
    async fn delete_auth_profile(&self, store: StoreHash<'_>, id: AuthProfileId<'_>) -> Result<()>;
    /// Listable (not inline) profiles in scope.
    async fn list_auth_profiles(
        &self,
        scope: Scope,
        page: PageRequest,
    ) -> Result<Page<AuthProfileRecord>>;

    // --- subscriptions ---
    /// Inserts a subscription, with what was made for it alone (an auth profile from an
    /// inline `authConfig`, an event source made by `createEventSubscription`), keeping the
    /// duplicate rule (`Conflict::Subscription`) and `limits`. A destination that is an
    /// event source must exist in the store (`NotFound`).
    async fn insert_subscription(
        &self,
        subscription: SubscriptionRecord,
        owned: Owned,
        limits: SubscriptionLimits,
    ) -> Result<()>;
    async fn get_subscription(
        &self,
        store: StoreHash<'_>,
        id: SubscriptionId<'_>,
    ) -> Result<Option<SubscriptionRecord>>;
    /// Replaces a subscription's mutable fields (types, destination, status), keeping the
    /// same rules as insert. Made ACTIVE, its parked deliveries become due.
    async fn update_subscription(
        &self,
        subscription: SubscriptionRecord,
        limits: SubscriptionLimits,
    ) -> Result<()>;
    /// Deletes a subscription and what it owns (inline auth profile, event source).
    async fn delete_subscription(&self, store: StoreHash<'_>, id: SubscriptionId<'_>)
        -> Result<()>;
    async fn list_subscriptions(
        &self,
        scope: Scope,
        filter: SubscriptionFilter,
        page: PageRequest,
    ) -> Result<Page<SubscriptionRecord>>;
}

/// What a new subscription brings along and owns.
#[derive(Debug, Clone, Default)]
pub struct Owned {
    /// The auth profile made from an inline `authConfig`.
    pub auth_profile: Option<AuthProfileRecord>,
    /// The event source `createEventSubscription` made for an `eventBridge` destination.
    pub event_source: Option<EventSourceRecord>,
}
