//! EventBridge partner event sources in PostgreSQL.

use async_trait::async_trait;
use hookrelay_core::ids::{EventSourceId, StoreHash};
use hookrelay_core::{Destination, EventSourceRecord};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection};

use super::query::{by_id, conflict_as, Arg, Where};
use super::PgStore;
use crate::codec::{self, eventbridge_key, millis, EVENT_SOURCE_COLUMNS as COLUMNS};
use crate::{Conflict, EventSourceStore, Page, PageRequest, Result, Scope, StoreError};

fn row(r: &PgRow) -> Result<(i64, EventSourceRecord)> {
    codec::event_source(r)
}

pub(crate) async fn insert(c: &mut PgConnection, s: &EventSourceRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO event_sources (id, store_hash, owner_client_id, aws_account, name, \
         source_name, region, arn, subscription_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&s.id)
    .bind(&s.store)
    .bind(&s.owner_client_id)
    .bind(&s.aws_account)
    .bind(&s.name)
    .bind(&s.source_name)
    .bind(&s.region)
    .bind(&s.arn)
    .bind(&s.subscription_id)
    .bind(millis(s.created_at))
    .execute(c)
    .await
    .map_err(conflict_as(Conflict::EventSource))?;
    Ok(())
}

/// The event source of `store` with ARN `arn`; `lock` holds it (shared) until commit, so
/// that it cannot be deleted under a subscription being written.
async fn by_arn(
    c: &mut PgConnection,
    store: &str,
    arn: &str,
    lock: bool,
) -> Result<Option<EventSourceRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM event_sources WHERE store_hash = $1 AND arn = $2{}",
        if lock { " FOR SHARE" } else { "" }
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(store)
        .bind(arn)
        .fetch_optional(c)
        .await?
        .map(|r| row(&r).map(|(_, s)| s))
        .transpose()
}

/// A subscription may deliver to a partner event source only while the source exists (in
/// its store): checked in the transaction that writes the subscription.
pub(crate) async fn check_destination(
    c: &mut PgConnection,
    store: &str,
    destination: &Destination,
) -> Result<()> {
    match destination {
        Destination::EventBridge {
            arn,
            partner_source: Some(_),
            ..
        } if by_arn(c, store, arn, true).await?.is_none() => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

async fn users(c: &mut PgConnection, store: &str, arn: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT subscription_id FROM subscription_keys \
         WHERE store_hash = $1 AND destination_key = $2 ORDER BY subscription_id",
    )
    .bind(store)
    .bind(eventbridge_key(arn))
    .fetch_all(c)
    .await?)
}

/// Deletes the event source a subscription owns (with the subscription).
pub(crate) async fn delete_owned_by(
    c: &mut PgConnection,
    store: &str,
    subscription_id: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM event_sources WHERE store_hash = $1 AND subscription_id = $2")
        .bind(store)
        .bind(subscription_id)
        .execute(c)
        .await?;
    Ok(())
}

#[async_trait]
impl EventSourceStore for PgStore {
    async fn insert_event_source(&self, source: EventSourceRecord) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        insert(&mut c, &source).await
    }

    async fn get_event_source(
        &self,
        store: StoreHash<'_>,
        id: EventSourceId<'_>,
    ) -> Result<Option<EventSourceRecord>> {
        let (store, id) = (store.as_str(), id.as_str());
        by_id(&self.pool, "event_sources", COLUMNS, store, id, row).await
    }

    async fn event_source_by_arn(
        &self,
        store: StoreHash<'_>,
        arn: &str,
    ) -> Result<Option<EventSourceRecord>> {
        let store = store.as_str();
        let mut c = self.pool.acquire().await?;
        by_arn(&mut c, store, arn, false).await
    }

    async fn event_source_name_taken(&self, source_name: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM event_sources WHERE source_name = $1")
                .bind(source_name)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    async fn list_event_sources(
        &self,
        scope: Scope,
        page: PageRequest,
    ) -> Result<Page<EventSourceRecord>> {
        let mut w = Where::new(
            "store_hash = $N AND subscription_id IS NULL",
            Arg::Text(scope.store),
        );
        if let Some(owner) = scope.owner {
            w.and("owner_client_id = $N", Arg::Text(owner));
        }
        w.page(&self.pool, "event_sources", COLUMNS, page, row)
            .await
    }

    async fn event_source_users(
        &self,
        store: StoreHash<'_>,
        id: EventSourceId<'_>,
    ) -> Result<Vec<String>> {
        let (store, id) = (store.as_str(), id.as_str());
        let mut c = self.pool.acquire().await?;
        match by_id(&mut *c, "event_sources", COLUMNS, store, id, row).await? {
            Some(source) => users(&mut c, store, &source.arn).await,
            None => Err(StoreError::NotFound),
        }
    }

    async fn delete_event_source(&self, store: StoreHash<'_>, id: EventSourceId<'_>) -> Result<()> {
        let (store, id) = (store.as_str(), id.as_str());
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM event_sources WHERE store_hash = $1 AND id = $2 FOR UPDATE"
        );
        let source = sqlx::query(AssertSqlSafe(sql))
            .bind(store)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| row(&r).map(|(_, s)| s))
            .transpose()?
            .filter(|s| s.subscription_id.is_none())
            .ok_or(StoreError::NotFound)?;
        let in_use = users(&mut tx, store, &source.arn).await?;
        if !in_use.is_empty() {
            return Err(StoreError::InUse(in_use));
        }
        sqlx::query("DELETE FROM event_sources WHERE store_hash = $1 AND id = $2")
            .bind(store)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
