//! Events, deliveries, attempts and node leases in SQLite.
//!
//! Ingest and outcomes go through the single writer, so many requests share one fsync'd
//! transaction; every statement is cached. A delivery in flight belongs to a node; when that
//! node's heartbeat stops, [`DeliveryStore::heartbeat`] of a live node hands its deliveries back.

use crate::codec::SortKey;
use hookrelay_core::ids::{DeliveryId, StoreHash, SubscriptionId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookrelay_core::{ids, PreviousSecret, Sealed};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::query::Where;
use super::rows::{self, millis, time};
use super::SqliteStore;
use crate::codec::{self, json_list, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, DELIVERY_FROM};
use crate::delivery::*;
use crate::{DeliveryStore, Page, PageRequest, Result, StoreError};

/// Makes the parked deliveries of a subscription due now (it was made active again).
pub(crate) fn resume_parked(c: &Connection, subscription_id: &str) -> Result<usize> {
    Ok(c.prepare_cached(
        "UPDATE deliveries SET due_at = ?2, updated_at = ?2 \
         WHERE subscription_id = ?1 AND status = 'PENDING' AND due_at IS NULL",
    )?
    .execute(params![subscription_id, millis(Utc::now())])?)
}

fn ingest_one(c: &Connection, event: NewEvent, claim: &Claim, now: i64) -> Result<Ingested> {
    if let Some(key) = &event.idempotency_key {
        let first: Option<String> = c
            .prepare_cached("SELECT id FROM events WHERE store_hash = ?1 AND idempotency_key = ?2")?
            .query_row(params![event.store, key], |r| r.get(0))
            .optional()?;
        if let Some(event_id) = first {
            return Ok(Ingested::Duplicate { event_id });
        }
    }
    let known: Option<i64> = c
        .prepare_cached("SELECT 1 FROM stores WHERE store_hash = ?1")?
        .query_row([&event.store], |r| r.get(0))
        .optional()?;
    if known.is_none() {
        return Ok(Ingested::UnknownStore);
    }
    c.prepare_cached(
        "INSERT INTO events (id, store_hash, event_type, data, resources, idempotency_key, \
         event_time, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        event.id,
        event.store,
        event.event_type,
        event.data,
        json_list(&event.resources)?,
        event.idempotency_key,
        millis(event.time),
        now
    ])?;
    let event_seq = c.last_insert_rowid();

    let subscriptions: Vec<String> = match &event.only_subscription {
        Some(id) => vec![id.clone()],
        None => c
            .prepare_cached(
                "SELECT DISTINCT k.subscription_id FROM subscription_keys k \
                 JOIN subscriptions s ON s.id = k.subscription_id \
                 WHERE k.store_hash = ?1 AND k.event_type IN (SELECT value FROM json_each(?2)) \
                 AND s.status = 'ACTIVE'",
            )?
            .query_map(params![event.store, json_list(&event.patterns)?], |r| {
                r.get(0)
            })?
            .collect::<Result<_, _>>()?,
    };

    let data = Arc::new(EventData {
        seq: event_seq,
        id: event.id.clone(),
        store: event.store,
        event_type: event.event_type,
        data: event.data,
        resources: event.resources,
        time: event.time,
    });
    let mut insert = c.prepare_cached(
        "INSERT INTO deliveries (id, event_seq, store_hash, subscription_id, status, due_at, \
         lease_owner, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?;
    let mut deliveries = Vec::with_capacity(subscriptions.len());
    let mut claimed = Vec::with_capacity(subscriptions.len());
    for subscription_id in subscriptions {
        let id = ids::new_id("msg");
        let deferred = claim.deferred.get(&subscription_id).map(|t| millis(*t));
        let (status, due_at, owner) = match (&claim.node, deferred) {
            (_, Some(due_at)) => ("PENDING", due_at, None),
            (Some(node), None) => {
                claimed.push(deliveries.len());
                ("IN_FLIGHT", now, Some(node.as_str()))
            }
            (None, None) => ("PENDING", now, None),
        };
        insert.execute(params![
            id,
            event_seq,
            data.store,
            subscription_id,
            status,
            due_at,
            owner,
            now
        ])?;
        deliveries.push(ClaimedDelivery {
            seq: c.last_insert_rowid(),
            id,
            subscription_id,
            attempt_count: 0,
            round_attempts: 0,
            event: data.clone(),
        });
    }
    Ok(Ingested::Created {
        event_id: event.id,
        deliveries,
        claimed,
    })
}

fn claim(
    c: &Connection,
    node: &str,
    limit: usize,
    exclude: &[String],
) -> Result<Vec<ClaimedDelivery>> {
    let now = millis(Utc::now());
    let mut claimed = c.prepare_cached(
        "UPDATE deliveries SET status = 'IN_FLIGHT', lease_owner = ?1, updated_at = ?2 \
         WHERE seq IN (SELECT seq FROM deliveries WHERE status = 'PENDING' AND due_at <= ?2 \
           AND subscription_id NOT IN (SELECT value FROM json_each(?4)) ORDER BY due_at LIMIT ?3) \
         RETURNING seq, id, subscription_id, attempt_count, round_attempts, event_seq",
    )?;
    let rows = claimed
        .query_map(params![node, now, limit as i64, json_list(exclude)?], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut events: HashMap<i64, Arc<EventData>> = HashMap::new();
    let mut load = c.prepare_cached(
        "SELECT seq, id, store_hash, event_type, data, resources, event_time FROM events WHERE seq = ?1",
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for (seq, id, subscription_id, attempt_count, round_attempts, event_seq) in rows {
        let event = match events.get(&event_seq) {
            Some(e) => e.clone(),
            None => {
                let mut rows = load.query([event_seq])?;
                let row = rows
                    .next()?
                    .ok_or_else(|| StoreError::Corrupt(format!("delivery {id} has no event")))?;
                let e = Arc::new(codec::event_data(row)?);
                events.insert(event_seq, e.clone());
                e
            }
        };
        out.push(ClaimedDelivery {
            seq,
            id,
            subscription_id,
            attempt_count,
            round_attempts,
            event,
        });
    }
    Ok(out)
}

/// Writes outcomes of deliveries `node` holds. An outcome whose lease `node` lost (it was
/// silent too long and another node took the delivery over) is not written: the new
/// holder's word counts.
fn record(c: &Connection, node: &str, outcomes: &[Outcome]) -> Result<Vec<String>> {
    let now = millis(Utc::now());
    let mut deactivated = Vec::new();
    let mut attempt = c.prepare_cached(
        "INSERT INTO attempts (delivery_seq, n, started_at, duration_ms, status_code, error, response_body) \
         SELECT ?1, attempt_count, ?2, ?3, ?4, ?5, ?6 FROM deliveries WHERE seq = ?1",
    )?;
    let mut attempted = c.prepare_cached(
        "UPDATE deliveries SET status = ?2, due_at = ?3, lease_owner = NULL, updated_at = ?4, \
         attempt_count = attempt_count + 1, round_attempts = round_attempts + 1 \
         WHERE seq = ?1 AND status = 'IN_FLIGHT' AND lease_owner = ?5",
    )?;
    let mut released = c.prepare_cached(
        "UPDATE deliveries SET status = ?2, due_at = ?3, lease_owner = NULL, updated_at = ?4 \
         WHERE seq = ?1 AND status = 'IN_FLIGHT' AND lease_owner = ?5",
    )?;
    for outcome in outcomes {
        let (status, due_at) = match &outcome.next {
            Next::Succeeded => ("SUCCEEDED", None),
            Next::Retry { due_at } => ("PENDING", Some(millis(*due_at))),
            Next::Failed | Next::Drop { .. } => ("FAILED", None),
            Next::Release { due_at } => ("PENDING", due_at.map(millis)),
        };
        let logged = match (&outcome.attempt, &outcome.next) {
            (Some(a), _) => Some(a.clone()),
            (None, Next::Drop { reason }) => Some(AttemptRecord {
                started_at: Utc::now(),
                duration_ms: 0,
                status_code: None,
                error: Some(reason.clone()),
                response_body: None,
            }),
            _ => None,
        };
        let held = match logged {
            Some(a) => {
                let held = attempted.execute(params![outcome.seq, status, due_at, now, node])? > 0;
                if held {
                    attempt.execute(params![
                        outcome.seq,
                        millis(a.started_at),
                        a.duration_ms as i64,
                        a.status_code,
                        a.error,
                        a.response_body
                    ])?;
                }
                held
            }
            None => released.execute(params![outcome.seq, status, due_at, now, node])? > 0,
        };
        if !held {
            tracing::warn!(
                seq = outcome.seq,
                "outcome of a delivery whose lease was lost; not written"
            );
            continue;
        }
        if matches!(outcome.next, Next::Failed) {
            let n = c
                .prepare_cached(
                    "UPDATE subscriptions SET status = 'DEACTIVATED', updated_at = ?2 \
                     WHERE id = ?1 AND status = 'ACTIVE'",
                )?
                .execute(params![outcome.subscription_id, now])?;
            if n > 0 {
                // Its waiting deliveries stay, parked, to go out after reactivation.
                c.prepare_cached(
                    "UPDATE deliveries SET due_at = NULL, updated_at = ?2 \
                     WHERE subscription_id = ?1 AND status = 'PENDING'",
                )?
                .execute(params![outcome.subscription_id, now])?;
                deactivated.push(outcome.subscription_id.clone());
            }
        }
    }
    Ok(deactivated)
}

fn delivery_by_id(c: &Connection, store: &str, id: &str) -> Result<Option<(i64, DeliveryRecord)>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.store_hash = ?1 AND d.id = ?2"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![store, id])?;
    rows.next()?.map(rows::delivery).transpose()
}

fn attempts_of(c: &Connection, delivery_seq: i64) -> Result<Vec<AttemptRecord>> {
    let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_seq = ?1 ORDER BY n");
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query([delivery_seq])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(codec::attempt(r)?);
    }
    Ok(out)
}

fn count(c: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<u64> {
    let n: i64 = c.prepare_cached(sql)?.query_row(args, |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn ingest(&self, events: Vec<NewEvent>, claim: Claim) -> Result<Vec<Ingested>> {
        self.writer
            .write(move |c| {
                let now = millis(Utc::now());
                events
                    .into_iter()
                    .map(|e| ingest_one(c, e, &claim, now))
                    .collect()
            })
            .await
    }

    async fn heartbeat(&self, node: &str, lease_timeout: Duration) -> Result<u64> {
        let node = node.to_owned();
        self.writer
            .write(move |c| {
                let now = millis(Utc::now());
                c.prepare_cached(
                    "INSERT INTO nodes (id, heartbeat_at) VALUES (?1, ?2) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                )?
                .execute(params![node, now])?;
                let stale = now - lease_timeout.as_millis() as i64;
                c.prepare_cached("DELETE FROM nodes WHERE heartbeat_at < ?1 AND id != ?2")?
                    .execute(params![stale, node])?;
                // Deliveries held by a node that is gone (or never registered) go back.
                let n = c
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'PENDING', lease_owner = NULL, updated_at = ?1 \
                         WHERE status = 'IN_FLIGHT' AND lease_owner NOT IN (SELECT id FROM nodes)",
                    )?
                    .execute([now])?;
                Ok(n as u64)
            })
            .await
    }

    async fn leave(&self, node: &str) -> Result<u64> {
        let node = node.to_owned();
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE deliveries SET status = 'PENDING', lease_owner = NULL, updated_at = ?2 \
                     WHERE status = 'IN_FLIGHT' AND lease_owner = ?1",
                    params![node, millis(Utc::now())],
                )?;
                c.execute("DELETE FROM nodes WHERE id = ?1", [&node])?;
                Ok(n as u64)
            })
            .await
    }

    async fn claim_due(
        &self,
        node: &str,
        limit: usize,
        exclude: Vec<String>,
    ) -> Result<Vec<ClaimedDelivery>> {
        let node = node.to_owned();
        self.writer
            .write(move |c| claim(c, &node, limit, &exclude))
            .await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        self.read(|c| {
            let due: Option<i64> = c
                .prepare_cached(
                    "SELECT MIN(due_at) FROM deliveries WHERE status = 'PENDING' AND due_at IS NOT NULL",
                )?
                .query_row([], |r| r.get(0))?;
            due.map(time).transpose()
        })
        .await
    }

    async fn record_outcomes(&self, node: &str, outcomes: Vec<Outcome>) -> Result<Vec<String>> {
        let node = node.to_owned();
        self.writer
            .write(move |c| record(c, &node, &outcomes))
            .await
    }

    async fn backlog(&self) -> Result<Backlog> {
        self.read(|c| {
            let now = millis(Utc::now());
            Ok(Backlog {
                due: count(
                    c,
                    "SELECT COUNT(*) FROM deliveries WHERE status = 'PENDING' AND due_at IS NOT NULL AND due_at <= ?1",
                    [now],
                )?,
                scheduled: count(
                    c,
                    "SELECT COUNT(*) FROM deliveries WHERE status = 'PENDING' AND due_at IS NOT NULL AND due_at > ?1",
                    [now],
                )?,
                parked: count(
                    c,
                    "SELECT COUNT(*) FROM deliveries WHERE status = 'PENDING' AND due_at IS NULL",
                    [],
                )?,
                in_flight: count(
                    c,
                    "SELECT COUNT(*) FROM deliveries WHERE status = 'IN_FLIGHT'",
                    [],
                )?,
            })
        })
        .await
    }

    async fn list_deliveries(
        &self,
        store: StoreHash<'_>,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliveryRecord>> {
        let store = store.0.to_owned();
        self.read(move |c| {
            let mut w = Where::new("d.store_hash = ?N", Value::Text(store.clone()));
            if let Some(id) = filter.subscription_id {
                w.and("d.subscription_id = ?N", Value::Text(id));
            }
            if let Some(owner) = filter.owner {
                w.and(
                    "d.subscription_id IN (SELECT id FROM subscriptions WHERE owner_client_id = ?N)",
                    Value::Text(owner),
                );
            }
            if let Some(status) = filter.status {
                w.and("d.status = ?N", Value::Text(status.as_str().into()));
        }
        if let Some(since) = filter.since {
            w.and("d.created_at >= ?N", Value::Integer(millis(since)));
        }
        if let Some(until) = filter.until {
            w.and("d.created_at < ?N", Value::Integer(millis(until)));
            }
            w.page_with_key(
                c,
                DELIVERY_FROM,
                DELIVERY_COLUMNS,
                SortKey {
                    column: "d.seq",
                    descending: filter.newest_first,
                },
                page,
                rows::delivery,
            )
        })
        .await
    }

    async fn get_delivery(
        &self,
        store: StoreHash<'_>,
        id: DeliveryId<'_>,
    ) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>)>> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.read(move |c| {
            // One snapshot for the delivery and its attempts, so that they agree.
            let tx = c.unchecked_transaction()?;
            let Some((seq, record)) = delivery_by_id(&tx, &store, &id)? else {
                return Ok(None);
            };
            Ok(Some((record, attempts_of(&tx, seq)?)))
        })
        .await
    }

    async fn retry_delivery(
        &self,
        store: StoreHash<'_>,
        id: DeliveryId<'_>,
    ) -> Result<DeliveryRecord> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE deliveries SET status = 'PENDING', due_at = ?3, round_attempts = 0, \
                     updated_at = ?3 WHERE store_hash = ?1 AND id = ?2 \
                     AND status IN ('SUCCEEDED', 'FAILED', 'PENDING')",
                )?
                .execute(params![store, id, millis(Utc::now())])?;
                delivery_by_id(c, &store, &id)?
                    .map(|(_, record)| record)
                    .ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn replay_deliveries(&self, store: StoreHash<'_>, filter: ReplayFilter) -> Result<u64> {
        let store = store.0.to_owned();
        self.writer
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'PENDING', due_at = ?6, round_attempts = 0, updated_at = ?6 \
                         WHERE store_hash = ?1 AND subscription_id = ?2 AND status = ?3 \
                         AND created_at >= ?4 AND created_at <= ?5",
                    )?
                    .execute(params![
                        store,
                        filter.subscription_id,
                        filter.status.as_str(),
                        filter.since.map(millis).unwrap_or(i64::MIN),
                        filter.until.map(millis).unwrap_or(i64::MAX),
                        millis(Utc::now())
                    ])?;
                Ok(n as u64)
            })
            .await
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.writer
            .write(move |c| {
                // Cascades to deliveries and attempts.
                let n = c
                    .prepare_cached(
                        "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e \
                         WHERE e.created_at < ?1 AND NOT EXISTS (SELECT 1 FROM deliveries d \
                           WHERE d.event_seq = e.seq AND (d.status = 'IN_FLIGHT' \
                           OR (d.status = 'PENDING' AND d.due_at IS NOT NULL))) \
                         ORDER BY e.created_at LIMIT ?2)",
                    )?
                    .execute(params![millis(before), limit as i64])?;
                Ok(n as u64)
            })
            .await
    }

    async fn rotate_signing_secret(
        &self,
        store: StoreHash<'_>,
        id: SubscriptionId<'_>,
        secret: Sealed,
        previous: PreviousSecret,
    ) -> Result<()> {
        let (store, id) = (store.0.to_owned(), id.0.to_owned());
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE subscriptions SET signing_secret = ?3, previous_signing_secret = ?4, \
                     previous_secret_until = ?5, updated_at = ?6 WHERE store_hash = ?1 AND id = ?2",
                    params![
                        store,
                        id,
                        secret.0,
                        previous.secret.0,
                        millis(previous.until),
                        millis(Utc::now())
                    ],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }
}
