//! The shared store: PostgreSQL, for any number of nodes on one database.
//!
//! Every node serves the API and delivers. Deliveries are leased to one node at a time
//! (`lease_owner`, alive while the node's heartbeat is); due deliveries are claimed with
//! `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other's claims. Nodes tell each
//! other about due work and changed subscriptions with `LISTEN`/`NOTIFY`
//! ([`DeliveryStore::broadcast`]). Writes that must see a consistent picture (the
//! duplicate rule of subscriptions) take a transaction-scoped advisory lock.

mod deliveries;
mod event_sources;
mod ingest;
mod keys;
mod migrate;
mod portal;
mod query;
mod signals;

use hookrelay_core::ids::{AuthProfileId, StoreHash, SubscriptionId};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hookrelay_core::{
    ApiClient, AuthKind, AuthProfileRecord, Principal, Role, Sealed, StoreRecord,
    SubscriptionRecord,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::codec::{
    self, auth_profile_of, encode_subscription, millis, time, AUTH_PROFILE_COLUMNS,
    SUBSCRIPTION_COLUMNS,
};
use crate::{
    Conflict, NewClient, Owned, Page, PageRequest, Result, Scope, Store, StoreError,
    SubscriptionFilter, SubscriptionLimits,
};
use query::{by_id, conflict_as, Arg, Where};

/// Connections per node at most (one more is the listener's).
const DEFAULT_MAX_CONNECTIONS: u32 = 24;

pub struct PgStore {
    pool: PgPool,
    ingest: ingest::GroupCommit,
    /// Heartbeats made, for the occasional full check of leases.
    heartbeats: std::sync::atomic::AtomicU64,
    /// A heartbeat found this node's row gone: another node took its leases.
    leases_lost: std::sync::atomic::AtomicBool,
}

fn auth_profile_row(r: &PgRow) -> Result<(i64, AuthProfileRecord)> {
    codec::auth_profile(r)
}

fn subscription_row(r: &PgRow) -> Result<(i64, SubscriptionRecord)> {
    codec::subscription(r)
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?sslmode=...`) and
    /// brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = pool(url, DEFAULT_MAX_CONNECTIONS).await?;
        for version in migrate::migrate(&pool).await? {
            tracing::info!(version, "applied PostgreSQL migration");
        }
        let ingest = ingest::GroupCommit::start(pool.clone());
        Ok(PgStore {
            pool,
            ingest,
            heartbeats: std::sync::atomic::AtomicU64::new(0),
            leases_lost: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(url: &str) -> Result<Vec<i64>> {
        let pool = pool(url, 1).await?;
        let applied = migrate::migrate(&pool).await;
        pool.close().await;
        applied
    }

    /// `url` without its password, for logs and output.
    pub fn describe(url: &str) -> String {
        match url.parse::<PgConnectOptions>() {
            Ok(o) => format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default()
            ),
            Err(_) => "postgres://(invalid URL)".to_owned(),
        }
    }
}

/// How long a statement waits for a connection. While the server is down the pool keeps
/// trying to connect for this long, so it bounds how long an API request waits before it
/// is answered 503 (docs/operations.md#faults); a busy pool hands connections over in
/// milliseconds.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A pool of at most `max` connections to `url`. One connection is made first, so that a
/// server that is not there or refuses us is reported as such at once (the pool itself
/// would retry until its timeout and only say that it timed out).
async fn pool(url: &str, max: u32) -> Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?;
    let first = PgConnection::connect_with(&options).await?;
    first.close().await?;
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?)
}

/// Serialises the subscription writes of one owner, so that the duplicate and count
/// rules read a picture no concurrent write changes (released at commit).
async fn lock_owner(c: &mut PgConnection, store: &str, owner: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("subscriptions/{store}/{owner}"))
        .execute(c)
        .await?;
    Ok(())
}

async fn ensure_store(c: &mut PgConnection, store_hash: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO stores (store_hash, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(store_hash)
    .bind(millis(Utc::now()))
    .execute(c)
    .await?;
    Ok(())
}

/// Keeps the duplicate and count rules for `sub` (which may already exist: its own rows
/// do not count against it), then writes its key rows. Runs under [`lock_owner`].
async fn write_subscription_keys(
    c: &mut PgConnection,
    sub: &SubscriptionRecord,
    limits: SubscriptionLimits,
) -> Result<()> {
    let style = sub.style.as_str();
    let destination_key = sub.destination.identity();
    sqlx::query("DELETE FROM subscription_keys WHERE subscription_id = $1")
        .bind(&sub.id)
        .execute(&mut *c)
        .await?;
    for event_type in &sub.event_types {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT subscription_id FROM subscription_keys WHERE store_hash = $1 \
             AND owner_client_id = $2 AND style = $3 AND event_type = $4 AND destination_key = $5",
        )
        .bind(&sub.store)
        .bind(&sub.owner_client_id)
        .bind(style)
        .bind(event_type)
        .bind(&destination_key)
        .fetch_optional(&mut *c)
        .await?;
        if let Some(id) = existing {
            return Err(StoreError::Conflict(Conflict::Subscription(id)));
        }
        if let Some(limit) = limits.max_per_type {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM subscription_keys WHERE store_hash = $1 \
                 AND owner_client_id = $2 AND style = $3 AND event_type = $4",
            )
            .bind(&sub.store)
            .bind(&sub.owner_client_id)
            .bind(style)
            .bind(event_type)
            .fetch_one(&mut *c)
            .await?;
            if count as usize >= limit {
                return Err(StoreError::LimitReached {
                    scope: event_type.clone(),
                    limit,
                });
            }
        }
        sqlx::query(
            "INSERT INTO subscription_keys (store_hash, owner_client_id, style, event_type, \
             destination_key, subscription_id) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&sub.store)
        .bind(&sub.owner_client_id)
        .bind(style)
        .bind(event_type)
        .bind(&destination_key)
        .bind(&sub.id)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

async fn insert_auth_profile_row(c: &mut PgConnection, p: &AuthProfileRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_profiles (store_hash, id, owner_client_id, kind, config, inline_for, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&p.store)
    .bind(&p.id)
    .bind(&p.owner_client_id)
    .bind(p.kind.as_str())
    .bind(&p.config.0)
    .bind(&p.inline_for)
    .bind(millis(p.created_at))
    .bind(millis(p.updated_at))
    .execute(c)
    .await
    .map_err(conflict_as(Conflict::AuthProfile))?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn ready(&self) -> Result<()> {
        let version = migrate::version(&self.pool).await?;
        if version < migrate::LATEST {
            return Err(StoreError::Database(format!(
                "schema version {version}, expected {}",
                migrate::LATEST
            )));
        }
        Ok(())
    }

    async fn create_store(&self, store_hash: &str) -> Result<()> {
        let n = sqlx::query(
            "INSERT INTO stores (store_hash, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(store_hash)
        .bind(millis(Utc::now()))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(Conflict::Store));
        }
        Ok(())
    }

    async fn list_stores(&self) -> Result<Vec<StoreRecord>> {
        let rows = sqlx::query("SELECT store_hash, created_at FROM stores ORDER BY store_hash")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoreRecord {
                    store_hash: r.try_get(0)?,
                    created_at: time(r.try_get(1)?)?,
                })
            })
            .collect()
    }

    async fn store_exists(&self, store_hash: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM stores WHERE store_hash = $1")
            .bind(store_hash)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    async fn create_client(&self, client: NewClient) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(store) = &client.store {
            ensure_store(&mut tx, store).await?;
        }
        sqlx::query(
            "INSERT INTO api_clients (client_id, token_hash, role, store_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&client.client_id)
        .bind(&client.token_hash)
        .bind(client.role.as_str())
        .bind(&client.store)
        .bind(millis(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(conflict_as(Conflict::Client))?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_clients(&self) -> Result<Vec<ApiClient>> {
        let rows = sqlx::query(
            "SELECT client_id, role, store_hash, created_at, revoked_at FROM api_clients \
             ORDER BY created_at, client_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(1)?;
                Ok(ApiClient {
                    client_id: r.try_get(0)?,
                    role: role.parse().map_err(StoreError::Corrupt)?,
                    store: r.try_get(2)?,
                    created_at: time(r.try_get(3)?)?,
                    revoked_at: r.try_get::<Option<i64>, _>(4)?.map(time).transpose()?,
                })
            })
            .collect()
    }

    async fn revoke_client(&self, client_id: &str) -> Result<()> {
        let n = sqlx::query(
            "UPDATE api_clients SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
        )
        .bind(client_id)
        .bind(millis(Utc::now()))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn principal_by_token_hash(&self, token_hash: &str) -> Result<Option<Principal>> {
        let row = sqlx::query(
            "SELECT client_id, role, store_hash FROM api_clients \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let role: String = r.try_get(1)?;
            Ok(Principal {
                client_id: r.try_get(0)?,
                role: role.parse::<Role>().map_err(StoreError::Corrupt)?,
                store: r.try_get(2)?,
            })
        })
        .transpose()
    }

    async fn insert_auth_profile(&self, profile: AuthProfileRecord) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        insert_auth_profile_row(&mut c, &profile).await
    }

    async fn get_auth_profile(
        &self,
        store: StoreHash<'_>,
        id: AuthProfileId<'_>,
    ) -> Result<Option<AuthProfileRecord>> {
        let (store, id) = (store.as_str(), id.as_str());
        by_id(
            &self.pool,
            "auth_profiles",
            AUTH_PROFILE_COLUMNS,
            store,
            id,
            auth_profile_row,
        )
        .await
    }

    async fn update_auth_profile(
        &self,
        store: StoreHash<'_>,
        id: AuthProfileId<'_>,
        kind: AuthKind,
        config: Sealed,
    ) -> Result<()> {
        let (store, id) = (store.as_str(), id.as_str());
        let n = sqlx::query(
            "UPDATE auth_profiles SET kind = $3, config = $4, updated_at = $5 \
             WHERE store_hash = $1 AND id = $2",
        )
        .bind(store)
        .bind(id)
        .bind(kind.as_str())
        .bind(config.0)
        .bind(millis(Utc::now()))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_auth_profile(&self, store: StoreHash<'_>, id: AuthProfileId<'_>) -> Result<()> {
        let (store, id) = (store.as_str(), id.as_str());
        let mut tx = self.pool.begin().await?;
        // Holds off subscription writes naming it until this commits.
        sqlx::query("SELECT 1 FROM auth_profiles WHERE store_hash = $1 AND id = $2 FOR UPDATE")
            .bind(store)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM subscriptions WHERE store_hash = $1 AND auth_profile_id = $2 \
             AND status = 'ACTIVE' ORDER BY seq",
        )
        .bind(store)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        if !users.is_empty() {
            return Err(StoreError::InUse(users));
        }
        let n = sqlx::query(
            "DELETE FROM auth_profiles WHERE store_hash = $1 AND id = $2 AND inline_for IS NULL",
        )
        .bind(store)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_auth_profiles(
        &self,
        scope: Scope,
        page: PageRequest,
    ) -> Result<Page<AuthProfileRecord>> {
        let mut w = Where::new(
            "store_hash = $N AND inline_for IS NULL",
            Arg::Text(scope.store),
        );
        if let Some(owner) = scope.owner {
            w.and("owner_client_id = $N", Arg::Text(owner));
        }
        w.page(
            &self.pool,
            "auth_profiles",
            AUTH_PROFILE_COLUMNS,
            page,
            auth_profile_row,
        )
        .await
    }

    async fn insert_subscription(
        &self,
        sub: SubscriptionRecord,
        owned: Owned,
        limits: SubscriptionLimits,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_owner(&mut tx, &sub.store, &sub.owner_client_id).await?;
        write_subscription_keys(&mut tx, &sub, limits).await?;
        if let Some(profile) = &owned.auth_profile {
            insert_auth_profile_row(&mut tx, profile).await?;
        }
        if let Some(source) = &owned.event_source {
            event_sources::insert(&mut tx, source).await?;
        }
        event_sources::check_destination(&mut tx, &sub.store, &sub.destination).await?;
        let (types, destination) = encode_subscription(&sub)?;
        sqlx::query(
            "INSERT INTO subscriptions (id, store_hash, owner_client_id, style, event_types, \
             destination, auth_profile_id, status, signing_secret, created_at, updated_at, ordered, \
             rate_limit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&sub.id)
        .bind(&sub.store)
        .bind(&sub.owner_client_id)
        .bind(sub.style.as_str())
        .bind(types)
        .bind(destination)
        .bind(auth_profile_of(&sub.destination))
        .bind(sub.status.as_str())
        .bind(&sub.signing_secret.0)
        .bind(millis(sub.created_at))
        .bind(millis(sub.updated_at))
        .bind(sub.ordered)
        .bind(sub.rate_limit.map(i64::from))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_subscription(
        &self,
        store: StoreHash<'_>,
        id: SubscriptionId<'_>,
    ) -> Result<Option<SubscriptionRecord>> {
        let (store, id) = (store.as_str(), id.as_str());
        by_id(
            &self.pool,
            "subscriptions",
            SUBSCRIPTION_COLUMNS,
            store,
            id,
            subscription_row,
        )
        .await
    }

    async fn update_subscription(
        &self,
        sub: SubscriptionRecord,
        limits: SubscriptionLimits,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_owner(&mut tx, &sub.store, &sub.owner_client_id).await?;
        write_subscription_keys(&mut tx, &sub, limits).await?;
        event_sources::check_destination(&mut tx, &sub.store, &sub.destination).await?;
        let (types, destination) = encode_subscription(&sub)?;
        let n = sqlx::query(
            "UPDATE subscriptions SET event_types = $3, destination = $4, auth_profile_id = $5, \
             status = $6, signing_secret = $7, updated_at = $8, ordered = $9, \
             rate_limit = $10 \
             WHERE store_hash = $1 AND id = $2",
        )
        .bind(&sub.store)
        .bind(&sub.id)
        .bind(types)
        .bind(destination)
        .bind(auth_profile_of(&sub.destination))
        .bind(sub.status.as_str())
        .bind(&sub.signing_secret.0)
        .bind(millis(sub.updated_at))
        .bind(sub.ordered)
        .bind(sub.rate_limit.map(i64::from))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        if sub.status.is_active() {
            deliveries::resume_parked(&mut tx, &sub.id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_subscription(
        &self,
        store: StoreHash<'_>,
        id: SubscriptionId<'_>,
    ) -> Result<()> {
        let (store, id) = (store.as_str(), id.as_str());
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM subscriptions WHERE store_hash = $1 AND id = $2")
            .bind(store)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM subscription_keys WHERE subscription_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM rate_slots WHERE subscription_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM auth_profiles WHERE store_hash = $1 AND inline_for = $2")
            .bind(store)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        event_sources::delete_owned_by(&mut tx, store, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_subscriptions(
        &self,
        scope: Scope,
        filter: SubscriptionFilter,
        page: PageRequest,
    ) -> Result<Page<SubscriptionRecord>> {
        let mut w = Where::new("store_hash = $N", Arg::Text(scope.store));
        if let Some(owner) = scope.owner {
            w.and("owner_client_id = $N", Arg::Text(owner));
        }
        if let Some(style) = filter.style {
            w.and("style = $N", Arg::Text(style.as_str().into()));
        }
        if let Some(active) = filter.is_active {
            w.and("(status = 'ACTIVE') = $N", Arg::Bool(active));
        }
        if let Some(event_type) = filter.event_type {
            w.and(
                "id IN (SELECT subscription_id FROM subscription_keys WHERE event_type = $N)",
                Arg::Text(event_type),
            );
        }
        w.page(
            &self.pool,
            "subscriptions",
            SUBSCRIPTION_COLUMNS,
            page,
            subscription_row,
        )
        .await
    }
}
