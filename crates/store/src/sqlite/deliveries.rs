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

/// Makes the parked deliveries of a subscription due now (it was made active again); those
/// waiting behind an earlier delivery of their ordering key keep waiting.
pub(crate) fn resume_parked(c: &Connection, subscription_id: &str) -> Result<usize> {
    Ok(c.prepare_cached(
        "UPDATE deliveries SET due_at = ?2, updated_at = ?2 \
         WHERE subscription_id = ?1 AND status = 'PENDING' AND due_at IS NULL AND waiting = 0",
    )?
    .execute(params![subscription_id, millis(Utc::now())])?)
}

/// The last position taken in the line of `key` on `subscription_id` (its open deliveries);
/// `None` when the line is empty (docs/delivery.md#ordered-delivery).
fn line_tail(c: &Connection, subscription_id: &str, key: &str) -> Result<Option<i64>> {
    Ok(c.prepare_cached(
        "SELECT MAX(position) FROM deliveries WHERE subscription_id = ?1 \
             AND ordering_key = ?2 AND status IN ('PENDING', 'IN_FLIGHT')",
    )?
    .query_row(params![subscription_id, key], |r| r.get(0))?)
}

/// Where a delivery entering the line of its key goes: its position, and whether it waits
/// (the line had someone in it already).
fn enter_line(c: &Connection, subscription_id: &str, key: &str) -> Result<(i64, bool)> {
    Ok(take_place(&mut line_tail(c, subscription_id, key)?))
}

/// Makes the first in line of `key` on `subscription_id` the head if it is waiting: claimed
/// for the node of `claim` (and returned), due when its subscription's destination unblocks,
/// or parked when the subscription exists and is not active.
fn promote(
    c: &Connection,
    subscription_id: &str,
    key: &str,
    claim: &Claim,
    now: i64,
) -> Result<Option<ClaimedDelivery>> {
    let first: Option<(i64, bool)> = c
        .prepare_cached(
            "SELECT seq, waiting FROM deliveries WHERE subscription_id = ?1 \
             AND ordering_key = ?2 AND status IN ('PENDING', 'IN_FLIGHT') \
             ORDER BY position LIMIT 1",
        )?
        .query_row(params![subscription_id, key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((seq, true)) = first else {
        return Ok(None);
    };
    let inactive: bool = c
        .prepare_cached("SELECT status <> 'ACTIVE' FROM subscriptions WHERE id = ?1")?
        .query_row([subscription_id], |r| r.get(0))
        .optional()?
        .unwrap_or(false);
    let deferred = claim.deferred.get(subscription_id).map(|t| millis(*t));
    let mut head = c.prepare_cached(
        "UPDATE deliveries SET waiting = 0, due_at = ?2, updated_at = ?3 WHERE seq = ?1",
    )?;
    match (&claim.node, deferred) {
        _ if inactive => head.execute(params![seq, Option::<i64>::None, now])?,
        (Some(node), None) => {
            let row = c
                .prepare_cached(
                    "UPDATE deliveries SET waiting = 0, due_at = ?2, status = 'IN_FLIGHT', \
                     lease_owner = ?3, updated_at = ?2 WHERE seq = ?1 \
                     RETURNING seq, id, subscription_id, attempt_count, round_attempts, \
                       event_seq, ordering_key",
                )?
                .query_row(params![seq, now, node], claimed_row)?;
            return Ok(with_events(c, vec![row])?.pop());
        }
        (_, due) => head.execute(params![seq, due.unwrap_or(now), now])?,
    };
    Ok(None)
}

/// Makes the first in line the head of every line whose head went missing (its parked
/// head was pruned). Returns how many lines moved on.
fn repair_lines(c: &Connection) -> Result<usize> {
    let lines: Vec<(String, String)> = c
        .prepare_cached(
            "SELECT subscription_id, ordering_key FROM deliveries \
             WHERE ordering_key IS NOT NULL AND status IN ('PENDING', 'IN_FLIGHT') \
             GROUP BY subscription_id, ordering_key HAVING MIN(position) = MIN(CASE WHEN waiting = 1 THEN position END)",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let now = millis(Utc::now());
    for (subscription_id, key) in &lines {
        promote(c, subscription_id, key, &Claim::default(), now)?;
    }
    Ok(lines.len())
}

/// Starts a final delivery again with a fresh round of retries: due now, or, when it keeps
/// the order of `line` (subscription, key), at the back of that line.
fn restart(c: &Connection, seq: i64, line: Option<(&str, &str)>, now: i64) -> Result<()> {
    let (position, waiting) = match line {
        Some((subscription_id, key)) => {
            let (position, waiting) = enter_line(c, subscription_id, key)?;
            (Some(position), waiting)
        }
        None => (None, false),
    };
    c.prepare_cached(
        "UPDATE deliveries SET status = 'PENDING', due_at = ?2, round_attempts = 0, \
         updated_at = ?3, position = ?4, waiting = ?5 WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        (!waiting).then_some(now),
        now,
        position,
        waiting
    ])?;
    Ok(())
}

/// A claimed delivery's row, before its event is loaded: seq, id, subscription, attempt
/// counts, event seq and ordering key.
type ClaimedRow = (i64, String, String, u32, u32, i64, Option<String>);

fn claimed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimedRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

/// Claimed rows with their events loaded (each event once).
fn with_events(c: &Connection, rows: Vec<ClaimedRow>) -> Result<Vec<ClaimedDelivery>> {
    let mut events: HashMap<i64, Arc<EventData>> = HashMap::new();
    let mut load = c.prepare_cached(&format!(
        "SELECT {} FROM events WHERE seq = ?1",
        codec::EVENT_COLUMNS
    ))?;
    let mut out = Vec::with_capacity(rows.len());
    for (seq, id, subscription_id, attempt_count, round_attempts, event_seq, ordering_key) in rows {
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
            ordering_key,
        });
    }
    Ok(out)
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
         event_time, created_at, ordering_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        event.id,
        event.store,
        event.event_type,
        event.data,
        json_list(&event.resources)?,
        event.idempotency_key,
        millis(event.time),
        now,
        event.ordering_key
    ])?;
    let event_seq = c.last_insert_rowid();

    // Each matching subscription, and whether it is ordered (a test event keeps no order).
    let subscriptions: Vec<(String, bool)> = match &event.only_subscription {
        Some(id) => vec![(id.clone(), false)],
        None => c
            .prepare_cached(
                "SELECT DISTINCT k.subscription_id, s.ordered FROM subscription_keys k \
                 JOIN subscriptions s ON s.id = k.subscription_id \
                 WHERE k.store_hash = ?1 AND k.event_type IN (SELECT value FROM json_each(?2)) \
                 AND s.status = 'ACTIVE'",
            )?
            .query_map(params![event.store, json_list(&event.patterns)?], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .filter(|r| {
                r.as_ref()
                    .map_or(true, |(id, _)| !event.except_subscriptions.contains(id))
            })
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
        ordering_key: event.ordering_key,
    });
    let mut insert = c.prepare_cached(
        "INSERT INTO deliveries (id, event_seq, store_hash, subscription_id, status, due_at, \
         lease_owner, created_at, updated_at, ordering_key, position, waiting) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11)",
    )?;
    let mut deliveries = Vec::with_capacity(subscriptions.len());
    let mut claimed = Vec::with_capacity(subscriptions.len());
    for (subscription_id, ordered) in subscriptions {
        let id = ids::new_id("msg");
        let key = data.ordering_key.as_deref().filter(|_| ordered);
        let (position, waiting) = match key {
            Some(key) => {
                let (position, waiting) = enter_line(c, &subscription_id, key)?;
                (Some(position), waiting)
            }
            None => (None, false),
        };
        let deferred = claim.deferred.get(&subscription_id).map(|t| millis(*t));
        let (status, due_at, owner) = match (&claim.node, deferred) {
            _ if waiting => ("PENDING", None, None),
            (_, Some(due_at)) => ("PENDING", Some(due_at), None),
            (Some(node), None) => {
                claimed.push(deliveries.len());
                ("IN_FLIGHT", Some(now), Some(node.as_str()))
            }
            (None, None) => ("PENDING", Some(now), None),
        };
        insert.execute(params![
            id,
            event_seq,
            data.store,
            subscription_id,
            status,
            due_at,
            owner,
            now,
            key,
            position,
            waiting
        ])?;
        deliveries.push(ClaimedDelivery {
            seq: c.last_insert_rowid(),
            id,
            subscription_id,
            attempt_count: 0,
            round_attempts: 0,
            event: data.clone(),
            ordering_key: key.map(str::to_owned),
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
         RETURNING seq, id, subscription_id, attempt_count, round_attempts, event_seq, ordering_key",
    )?;
    let rows = claimed
        .query_map(
            params![node, now, limit as i64, json_list(exclude)?],
            claimed_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    with_events(c, rows)
}

/// Writes outcomes of deliveries `node` holds. An outcome whose lease `node` lost (it was
/// silent too long and another node took the delivery over) is not written: the new
/// holder's word counts.
fn record(c: &Connection, node: &str, outcomes: &[Outcome], claim: &Claim) -> Result<Recorded> {
    let now = millis(Utc::now());
    let mut deactivated = Vec::new();
    // The ordered lines whose head this batch ended, in the order of their outcomes.
    let mut ended: Vec<(&str, &str)> = Vec::new();
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
        if let (Some(key), "SUCCEEDED" | "FAILED") = (&outcome.ordering_key, status) {
            ended.push((&outcome.subscription_id, key));
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
    // After the deactivations, so that the next of a line whose head failed is parked.
    let mut next = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (subscription_id, key) in ended {
        if seen.insert((subscription_id, key)) {
            next.extend(promote(c, subscription_id, key, claim, now)?);
        }
    }
    Ok(Recorded { deactivated, next })
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
    async fn reserve_slots(
        &self,
        subscription_id: &str,
        per_second: u32,
        count: u32,
    ) -> Result<std::time::Duration> {
        let now = std::time::Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Forget subscriptions idle for a while, so that the map stays small.
        if slots.len() > 1024 {
            slots.retain(|_, until| *until + std::time::Duration::from_secs(60) > now);
        }
        let taken = slots.get(subscription_id).copied();
        let (until, first) = crate::delivery::take_slots(taken, now, count, per_second);
        slots.insert(subscription_id.to_owned(), until);
        Ok(first - now)
    }

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

    async fn record_outcomes(
        &self,
        node: &str,
        outcomes: Vec<Outcome>,
        claim: Claim,
    ) -> Result<Recorded> {
        let node = node.to_owned();
        self.writer
            .write(move |c| record(c, &node, &outcomes, &claim))
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
                    "SELECT COUNT(*) FROM deliveries WHERE status = 'PENDING' AND due_at IS NULL AND waiting = 0",
                    [],
                )?,
                waiting: count(
                    c,
                    "SELECT COUNT(*) FROM deliveries WHERE status = 'PENDING' AND waiting = 1",
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

    async fn attempts_of_many(
        &self,
        delivery_seqs: Vec<i64>,
    ) -> Result<std::collections::HashMap<i64, Vec<AttemptRecord>>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {ATTEMPT_COLUMNS}, delivery_seq FROM attempts \
                 WHERE delivery_seq IN (SELECT value FROM json_each(?1)) ORDER BY delivery_seq, n"
            );
            let seqs = serde_json::to_string(&delivery_seqs)
                .map_err(|e| StoreError::Database(e.to_string()))?;
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query([seqs])?;
            let mut out: std::collections::HashMap<i64, Vec<AttemptRecord>> =
                delivery_seqs.iter().map(|s| (*s, Vec::new())).collect();
            while let Some(r) = rows.next()? {
                let seq: i64 = r.get(5)?;
                out.entry(seq).or_default().push(codec::attempt(r)?);
            }
            Ok(out)
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
                let now = millis(Utc::now());
                let row: Option<(i64, String, String, Option<String>)> = c
                    .prepare_cached(
                        "SELECT seq, subscription_id, status, ordering_key FROM deliveries \
                         WHERE store_hash = ?1 AND id = ?2",
                    )?
                    .query_row(params![store, id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()?;
                match row {
                    // A final delivery of an ordered key goes to the back of its line.
                    Some((seq, sub, status, Some(key))) if status != "PENDING" && status != "IN_FLIGHT" => {
                        restart(c, seq, Some((&sub, &key)), now)?;
                    }
                    // Due now, unless it is in flight or waits behind its key's head.
                    Some(_) => {
                        c.prepare_cached(
                            "UPDATE deliveries SET status = 'PENDING', due_at = ?3, round_attempts = 0, \
                             updated_at = ?3 WHERE store_hash = ?1 AND id = ?2 \
                             AND status IN ('SUCCEEDED', 'FAILED', 'PENDING') AND waiting = 0",
                        )?
                        .execute(params![store, id, now])?;
                    }
                    None => {}
                }
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
                let now = millis(Utc::now());
                // Oldest first: replayed deliveries of an ordered key re-enter its line in
                // the order of their events.
                let rows: Vec<(i64, Option<String>)> = c
                    .prepare_cached(
                        "SELECT seq, ordering_key FROM deliveries \
                         WHERE store_hash = ?1 AND subscription_id = ?2 AND status = ?3 \
                         AND created_at >= ?4 AND created_at <= ?5 ORDER BY seq",
                    )?
                    .query_map(
                        params![
                            store,
                            filter.subscription_id,
                            filter.status.as_str(),
                            filter.since.map(millis).unwrap_or(i64::MIN),
                            filter.until.map(millis).unwrap_or(i64::MAX),
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?
                    .collect::<Result<_, _>>()?;
                for (seq, key) in &rows {
                    let line = key.as_deref().map(|k| (filter.subscription_id.as_str(), k));
                    restart(c, *seq, line, now)?;
                }
                Ok(rows.len() as u64)
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
                if n > 0 {
                    // A parked head may have gone with its event: its line moves on.
                    repair_lines(c)?;
                }
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
