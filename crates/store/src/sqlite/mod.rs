//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through [`writer::Writer`] (one connection, group commit); reads use a small
//! pool of read-only connections on the blocking thread pool. Other processes (the CLI
//! while the server runs) open the same file; SQLite's locking and a busy timeout keep them
//! out of each other's way.

mod deliveries;
mod event_sources;
mod keys;
mod migrate;
mod portal;
mod query;
mod rows;
mod writer;
mod writes;

use hookrelay_core::ids::{AuthProfileId, StoreHash, SubscriptionId};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hookrelay_core::{
    ApiClient, AuthKind, AuthProfileRecord, Principal, Role, Sealed, StoreRecord,
    SubscriptionRecord,
};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{
    Conflict, NewClient, Owned, Page, PageRequest, Result, Scope, Store, StoreError,
    SubscriptionFilter, SubscriptionLimits,
};
use query::{by_id, Where};
use rows::{millis, time};
use writer::Writer;
use writes::{
    auth_profile_of, encode_subscription, ensure_store, insert_auth_profile_row,
    write_subscription_keys,
};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const READERS: u32 = 4;

pub struct SqliteStore {
    pub(crate) writer: Writer,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// Per rate-limited subscription, the time up to which send slots are taken: in
    /// memory, as a SQLite database has one node (docs/delivery.md#rate-limits).
    pub(crate) slots: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer. FULL: every commit is fsync'd, so an answer
    // given after commit survives a crash of the machine, not only of the process.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Statement journals (the undo of one statement inside a transaction: every
    // multi-row write of a batch has one) in memory, not in a temporary file written,
    // spilled and closed on every batch. They never need to survive a crash: the WAL does.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = open_connection(path)?;
        for version in migrate::migrate(&mut conn)? {
            tracing::info!(version, path = %path.display(), "applied migration");
        }
        let writer = Writer::start(conn).map_err(|e| StoreError::Database(e.to_string()))?;
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.pragma_update(None, "query_only", "ON")
        });
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(1))
            .build(manager)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(SqliteStore {
            writer,
            readers,
            slots: Default::default(),
        })
    }

    /// Applies pending migrations to the database at `path`; returns the versions applied.
    pub fn migrate(path: &Path) -> Result<Vec<i64>> {
        migrate::migrate(&mut open_connection(path)?)
    }

    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .get()
                .map_err(|e| StoreError::Database(e.to_string()))?;
            work(&conn)
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ready(&self) -> Result<()> {
        let version = self.read(migrate::version).await?;
        if version < migrate::LATEST {
            return Err(StoreError::Database(format!(
                "schema version {version}, expected {}",
                migrate::LATEST
            )));
        }
        Ok(())
    }

    async fn create_store(&self, store_hash: &str) -> Result<()> {
        let hash = store_hash.to_owned();
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "INSERT INTO stores (store_hash, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![hash, millis(Utc::now())],
                )?;
                if n == 0 {
                    return Err(StoreError::Conflict(Conflict::Store));
                }
                Ok(())
            })
            .await
    }

    async fn list_stores(&self) -> Result<Vec<StoreRecord>> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT store_hash, created_at FROM stores ORDER BY store_hash")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|row| {
                let (store_hash, created) = row?;
                Ok(StoreRecord {
                    store_hash,
                    created_at: time(created)?,
                })
            })
            .collect()
        })
        .await
    }

    async fn store_exists(&self, store_hash: &str) -> Result<bool> {
        let hash = store_hash.to_owned();
        self.read(move |c| {
            Ok(
                c.query_row("SELECT 1 FROM stores WHERE store_hash = ?1", [hash], |_| {
                    Ok(())
                })
                .optional()?
                .is_some(),
            )
        })
        .await
    }

    async fn create_client(&self, client: NewClient) -> Result<()> {
        self.writer
            .write(move |c| {
                if let Some(store) = &client.store {
                    ensure_store(c, store)?;
                }
                c.execute(
                    "INSERT INTO api_clients (client_id, token_hash, role, store_hash, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        client.client_id,
                        client.token_hash,
                        client.role.as_str(),
                        client.store,
                        millis(Utc::now())
                    ],
                )
                .map_err(rows::conflict_as(Conflict::Client))?;
                Ok(())
            })
            .await
    }

    async fn list_clients(&self) -> Result<Vec<ApiClient>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT client_id, role, store_hash, created_at, revoked_at FROM api_clients \
                 ORDER BY created_at, client_id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let role: String = r.get(1)?;
                out.push(ApiClient {
                    client_id: r.get(0)?,
                    role: role.parse().map_err(StoreError::Corrupt)?,
                    store: r.get(2)?,
                    created_at: time(r.get(3)?)?,
                    revoked_at: r.get::<_, Option<i64>>(4)?.map(time).transpose()?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_client(&self, client_id: &str) -> Result<()> {
        let id = client_id.to_owned();
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE api_clients SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL",
                    params![id, millis(Utc::now())],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn principal_by_token_hash(&self, token_hash: &str) -> Result<Option<Principal>> {
        let hash = token_hash.to_owned();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT client_id, role, store_hash FROM api_clients \
                     WHERE token_hash = ?1 AND revoked_at IS NULL",
                    [hash],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(client_id, role, store)| {
                Ok(Principal {
                    client_id,
                    role: role.parse::<Role>().map_err(StoreError::Corrupt)?,
                    store,
                })
            })
            .transpose()
        })
        .await
    }

    async fn insert_auth_profile(&self, profile: AuthProfileRecord) -> Result<()> {
        self.writer
            .write(move |c| insert_auth_profile_row(c, &profile))
            .await
    }

    async fn get_auth_profile(
        &self,
        store: StoreHash<'_>,
        id: AuthProfileId<'_>,
    ) -> Result<Option<AuthProfileRecord>> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.read(move |c| {
            by_id(
                c,
                "auth_profiles",
                rows::AUTH_PROFILE_COLUMNS,
                &store,
                &id,
                rows::auth_profile,
            )
        })
        .await
    }

    async fn update_auth_profile(
        &self,
        store: StoreHash<'_>,
        id: AuthProfileId<'_>,
        kind: AuthKind,
        config: Sealed,
    ) -> Result<()> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE auth_profiles SET kind = ?3, config = ?4, updated_at = ?5 \
                     WHERE store_hash = ?1 AND id = ?2",
                    params![store, id, kind.as_str(), config.0, millis(Utc::now())],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn delete_auth_profile(&self, store: StoreHash<'_>, id: AuthProfileId<'_>) -> Result<()> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.writer
            .write(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id FROM subscriptions WHERE store_hash = ?1 AND auth_profile_id = ?2 \
                     AND status = 'ACTIVE' ORDER BY seq",
                )?;
                let users = stmt
                    .query_map(params![store, id], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                if !users.is_empty() {
                    return Err(StoreError::InUse(users));
                }
                let n = c.execute(
                    "DELETE FROM auth_profiles WHERE store_hash = ?1 AND id = ?2 AND inline_for IS NULL",
                    params![store, id],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn list_auth_profiles(
        &self,
        scope: Scope,
        page: PageRequest,
    ) -> Result<Page<AuthProfileRecord>> {
        self.read(move |c| {
            let mut w = Where::new(
                "store_hash = ?N AND inline_for IS NULL",
                Value::Text(scope.store),
            );
            if let Some(owner) = scope.owner {
                w.and("owner_client_id = ?N", Value::Text(owner));
            }
            w.page(
                c,
                "auth_profiles",
                rows::AUTH_PROFILE_COLUMNS,
                page,
                rows::auth_profile,
            )
        })
        .await
    }

    async fn insert_subscription(
        &self,
        sub: SubscriptionRecord,
        owned: Owned,
        limits: SubscriptionLimits,
    ) -> Result<()> {
        self.writer
            .write(move |c| {
                write_subscription_keys(c, &sub, limits)?;
                if let Some(profile) = &owned.auth_profile {
                    insert_auth_profile_row(c, profile)?;
                }
                if let Some(source) = &owned.event_source {
                    event_sources::insert(c, source)?;
                }
                event_sources::check_destination(c, &sub.store, &sub.destination)?;
                let (types, destination) = encode_subscription(&sub)?;
                c.execute(
                    "INSERT INTO subscriptions (id, store_hash, owner_client_id, style, event_types, \
                     destination, auth_profile_id, status, signing_secret, created_at, updated_at, ordered, \
                     rate_limit) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        sub.id,
                        sub.store,
                        sub.owner_client_id,
                        sub.style.as_str(),
                        types,
                        destination,
                        auth_profile_of(&sub.destination),
                        sub.status.as_str(),
                        sub.signing_secret.0,
                        millis(sub.created_at),
                        millis(sub.updated_at),
                        sub.ordered,
                        sub.rate_limit
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn get_subscription(
        &self,
        store: StoreHash<'_>,
        id: SubscriptionId<'_>,
    ) -> Result<Option<SubscriptionRecord>> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.read(move |c| {
            by_id(
                c,
                "subscriptions",
                rows::SUBSCRIPTION_COLUMNS,
                &store,
                &id,
                rows::subscription,
            )
        })
        .await
    }

    async fn update_subscription(
        &self,
        sub: SubscriptionRecord,
        limits: SubscriptionLimits,
    ) -> Result<()> {
        self.writer
            .write(move |c| {
                write_subscription_keys(c, &sub, limits)?;
                event_sources::check_destination(c, &sub.store, &sub.destination)?;
                let (types, destination) = encode_subscription(&sub)?;
                let n = c.execute(
                    "UPDATE subscriptions SET event_types = ?3, destination = ?4, auth_profile_id = ?5, \
                     status = ?6, signing_secret = ?7, updated_at = ?8, ordered = ?9, \
                     rate_limit = ?10 \
                     WHERE store_hash = ?1 AND id = ?2",
                    params![
                        sub.store,
                        sub.id,
                        types,
                        destination,
                        auth_profile_of(&sub.destination),
                        sub.status.as_str(),
                        sub.signing_secret.0,
                        millis(sub.updated_at),
                        sub.ordered,
                        sub.rate_limit
                    ],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                if sub.status.is_active() {
                    deliveries::resume_parked(c, &sub.id)?;
                }
                Ok(())
            })
            .await
    }

    async fn delete_subscription(
        &self,
        store: StoreHash<'_>,
        id: SubscriptionId<'_>,
    ) -> Result<()> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "DELETE FROM subscriptions WHERE store_hash = ?1 AND id = ?2",
                    params![store, id],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                c.execute(
                    "DELETE FROM subscription_keys WHERE subscription_id = ?1",
                    [&id],
                )?;
                c.execute(
                    "DELETE FROM auth_profiles WHERE store_hash = ?1 AND inline_for = ?2",
                    params![store, id],
                )?;
                event_sources::delete_owned_by(c, &store, &id)?;
                Ok(())
            })
            .await
    }

    async fn list_subscriptions(
        &self,
        scope: Scope,
        filter: SubscriptionFilter,
        page: PageRequest,
    ) -> Result<Page<SubscriptionRecord>> {
        self.read(move |c| {
            let mut w = Where::new("store_hash = ?N", Value::Text(scope.store));
            if let Some(owner) = scope.owner {
                w.and("owner_client_id = ?N", Value::Text(owner));
            }
            if let Some(style) = filter.style {
                w.and("style = ?N", Value::Text(style.as_str().into()));
            }
            if let Some(active) = filter.is_active {
                w.and("(status = 'ACTIVE') = ?N", Value::Integer(active.into()));
            }
            if let Some(event_type) = filter.event_type {
                w.and(
                    "id IN (SELECT subscription_id FROM subscription_keys WHERE event_type = ?N)",
                    Value::Text(event_type),
                );
            }
            w.page(
                c,
                "subscriptions",
                rows::SUBSCRIPTION_COLUMNS,
                page,
                rows::subscription,
            )
        })
        .await
    }
}
