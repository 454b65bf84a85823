//! EventBridge partner event sources in SQLite.

use async_trait::async_trait;
use hookrelay_core::ids::{EventSourceId, StoreHash};
use hookrelay_core::{Destination, EventSourceRecord};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::query::{by_id, Where};
use super::rows::{self, millis};
use super::SqliteStore;
use crate::{Conflict, EventSourceStore, Page, PageRequest, Result, Scope, StoreError};

use rows::{event_source as row, EVENT_SOURCE_COLUMNS as COLUMNS};

pub(crate) fn insert(c: &Connection, s: &EventSourceRecord) -> Result<()> {
    c.execute(
        "INSERT INTO event_sources (id, store_hash, owner_client_id, aws_account, name, \
         source_name, region, arn, subscription_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            s.id,
            s.store,
            s.owner_client_id,
            s.aws_account,
            s.name,
            s.source_name,
            s.region,
            s.arn,
            s.subscription_id,
            millis(s.created_at)
        ],
    )
    .map_err(rows::conflict_as(Conflict::EventSource))?;
    Ok(())
}

fn by_arn(c: &Connection, store: &str, arn: &str) -> Result<Option<EventSourceRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM event_sources WHERE store_hash = ?1 AND arn = ?2");
    let mut stmt = c.prepare_cached(&sql)?;
    let mut found = stmt.query(params![store, arn])?;
    found.next()?.map(|r| row(r).map(|(_, s)| s)).transpose()
}

/// A subscription may deliver to a partner event source only while the source exists (in
/// its store): checked in the transaction that writes the subscription.
pub(crate) fn check_destination(
    c: &Connection,
    store: &str,
    destination: &Destination,
) -> Result<()> {
    match destination {
        Destination::EventBridge {
            arn,
            partner_source: Some(_),
            ..
        } if by_arn(c, store, arn)?.is_none() => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

fn users(c: &Connection, store: &str, arn: &str) -> Result<Vec<String>> {
    let mut stmt = c.prepare_cached(
        "SELECT DISTINCT subscription_id FROM subscription_keys \
         WHERE store_hash = ?1 AND destination_key = ?2 ORDER BY subscription_id",
    )?;
    let key = crate::codec::eventbridge_key(arn);
    let ids = stmt
        .query_map(params![store, key], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Deletes the event source a subscription owns (with the subscription).
pub(crate) fn delete_owned_by(c: &Connection, store: &str, subscription_id: &str) -> Result<()> {
    c.execute(
        "DELETE FROM event_sources WHERE store_hash = ?1 AND subscription_id = ?2",
        params![store, subscription_id],
    )?;
    Ok(())
}

#[async_trait]
impl EventSourceStore for SqliteStore {
    async fn insert_event_source(&self, source: EventSourceRecord) -> Result<()> {
        self.writer.write(move |c| insert(c, &source)).await
    }

    async fn get_event_source(
        &self,
        store: StoreHash<'_>,
        id: EventSourceId<'_>,
    ) -> Result<Option<EventSourceRecord>> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.read(move |c| by_id(c, "event_sources", COLUMNS, &store, &id, row))
            .await
    }

    async fn event_source_by_arn(
        &self,
        store: StoreHash<'_>,
        arn: &str,
    ) -> Result<Option<EventSourceRecord>> {
        let store = store.as_str();
        let (store, arn) = (store.to_owned(), arn.to_owned());
        self.read(move |c| by_arn(c, &store, &arn)).await
    }

    async fn event_source_name_taken(&self, source_name: &str) -> Result<bool> {
        let name = source_name.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT 1 FROM event_sources WHERE source_name = ?1",
                [name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
        .await
    }

    async fn list_event_sources(
        &self,
        scope: Scope,
        page: PageRequest,
    ) -> Result<Page<EventSourceRecord>> {
        self.read(move |c| {
            let mut w = Where::new(
                "store_hash = ?N AND subscription_id IS NULL",
                Value::Text(scope.store),
            );
            if let Some(owner) = scope.owner {
                w.and("owner_client_id = ?N", Value::Text(owner));
            }
            w.page(c, "event_sources", COLUMNS, page, row)
        })
        .await
    }

    async fn event_source_users(
        &self,
        store: StoreHash<'_>,
        id: EventSourceId<'_>,
    ) -> Result<Vec<String>> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.read(
            move |c| match by_id(c, "event_sources", COLUMNS, &store, &id, row)? {
                Some(source) => users(c, &store, &source.arn),
                None => Err(StoreError::NotFound),
            },
        )
        .await
    }

    async fn delete_event_source(&self, store: StoreHash<'_>, id: EventSourceId<'_>) -> Result<()> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.writer
            .write(move |c| {
                let source = by_id(c, "event_sources", COLUMNS, &store, &id, row)?
                    .filter(|s| s.subscription_id.is_none())
                    .ok_or(StoreError::NotFound)?;
                let in_use = users(c, &store, &source.arn)?;
                if !in_use.is_empty() {
                    return Err(StoreError::InUse(in_use));
                }
                c.execute(
                    "DELETE FROM event_sources WHERE store_hash = ?1 AND id = ?2",
                    params![store, id],
                )?;
                Ok(())
            })
            .await
    }
}
