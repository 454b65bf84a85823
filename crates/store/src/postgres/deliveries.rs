//! Events, deliveries, attempts and node leases in PostgreSQL.
//!
//! Statements work on whole batches (`UNNEST` of arrays) so that a batch of outcomes is one
//! round trip, not a few per delivery. Work outstanding lives in `delivery_queue` beside the
//! log rows (docs/operations.md#writes-on-postgresql): every state change writes both, the
//! queue row first, so that status changes of `deliveries` stay HOT updates. Claims take
//! queue rows with `FOR UPDATE SKIP LOCKED`: nodes claiming at once get different deliveries
//! and never wait for each other. Node heartbeats are in database time, so clocks that
//! disagree between machines do not end leases early.

use crate::codec::SortKey;
use hookrelay_core::ids::{DeliveryId, StoreHash, SubscriptionId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookrelay_core::{PreviousSecret, Sealed};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::query::{Arg, Where};
use super::PgStore;
use crate::codec::{
    self, count, millis, time, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, DELIVERY_FROM, EVENT_COLUMNS,
};
use crate::delivery::*;
use crate::{DeliveryStore, Page, PageRequest, Result, Signal, StoreError};

/// Every how many heartbeats of a node all leases are checked against the nodes alive
/// (see [`DeliveryStore::heartbeat`] below); with the default lease timeout, every 100 s.
const FULL_LEASE_SWEEP_EVERY: u64 = 10;

/// The database's clock in Unix milliseconds.
pub(crate) const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

fn delivery_row(r: &PgRow) -> Result<(i64, DeliveryRecord)> {
    codec::delivery(r)
}

/// Hands the deliveries leased to `owners` (to any node no longer registered, when `None`)
/// back to `PENDING`; returns how many.
async fn hand_back(c: &mut PgConnection, owners: Option<&[String]>) -> Result<u64> {
    let which = match owners {
        Some(_) => "lease_owner = ANY($2)",
        None => "lease_owner IS NOT NULL AND lease_owner NOT IN (SELECT id FROM nodes)",
    };
    let query = sqlx::query(AssertSqlSafe(format!(
        "WITH q AS (UPDATE delivery_queue SET lease_owner = NULL WHERE {which} \
           RETURNING delivery_seq) \
         UPDATE deliveries SET status = 'PENDING', lease_owner = NULL, updated_at = $1 \
         WHERE seq IN (SELECT delivery_seq FROM q)"
    )))
    .bind(millis(Utc::now()));
    let query = match owners {
        Some(owners) => query.bind(owners),
        None => query,
    };
    Ok(query.execute(c).await?.rows_affected())
}

/// Makes the parked deliveries of a subscription due now (it was made active again); those
/// waiting behind an earlier delivery of their ordering key keep waiting.
pub(crate) async fn resume_parked(c: &mut PgConnection, subscription_id: &str) -> Result<u64> {
    Ok(sqlx::query(
        "WITH q AS (UPDATE delivery_queue SET due_at = $2 \
           WHERE subscription_id = $1 AND due_at IS NULL AND lease_owner IS NULL \
             AND NOT waiting \
           RETURNING delivery_seq) \
         UPDATE deliveries SET due_at = $2, updated_at = $2 \
         WHERE seq IN (SELECT delivery_seq FROM q)",
    )
    .bind(subscription_id)
    .bind(millis(Utc::now()))
    .execute(c)
    .await?
    .rows_affected())
}

/// An ordered line: a subscription and an ordering key (docs/delivery.md#ordered-delivery).
type Line = (String, String);

/// Takes the advisory lock of each line until the transaction ends, in one order whoever
/// asks, so that writers of the same lines cannot deadlock. Every statement that adds to a
/// line or moves it on runs after this, so it sees the line as the last holder left it.
async fn lock_lines(c: &mut PgConnection, lines: &[Line]) -> Result<()> {
    let (subs, keys): (Vec<&str>, Vec<&str>) =
        lines.iter().map(|(s, k)| (s.as_str(), k.as_str())).unzip();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT \
           hashtextextended(l.s || '/' || l.k, 0) AS h \
           FROM UNNEST($1::text[], $2::text[]) AS l(s, k) ORDER BY h) x",
    )
    .bind(&subs)
    .bind(&keys)
    .execute(c)
    .await?;
    Ok(())
}

/// Locks `lines` and answers the last position taken in each (`None`: the line is empty).
/// Runs inside the caller's transaction.
pub(super) async fn line_tails(
    c: &mut PgConnection,
    lines: &[Line],
) -> Result<HashMap<Line, Option<i64>>> {
    if lines.is_empty() {
        return Ok(HashMap::new());
    }
    lock_lines(c, lines).await?;
    let (subs, keys): (Vec<&str>, Vec<&str>) =
        lines.iter().map(|(s, k)| (s.as_str(), k.as_str())).unzip();
    let rows = sqlx::query(
        "SELECT l.ord, (SELECT q.position FROM delivery_queue q \
           WHERE q.subscription_id = l.s AND q.ordering_key = l.k \
           ORDER BY q.position DESC LIMIT 1) \
         FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS l(s, k, ord)",
    )
    .bind(&subs)
    .bind(&keys)
    .fetch_all(&mut *c)
    .await?;
    let mut out = HashMap::with_capacity(lines.len());
    for r in &rows {
        let ord: i64 = r.try_get(0)?;
        let line = usize::try_from(ord - 1)
            .ok()
            .and_then(|i| lines.get(i))
            .ok_or_else(|| StoreError::Database(format!("no line {ord} was sent")))?;
        out.insert(line.clone(), r.try_get(1)?);
    }
    Ok(out)
}

/// Makes the first in line of each of `lines` (locked by the caller) the head where it is
/// waiting: claimed for the node of `claim`, due when its subscription's destination
/// unblocks, or parked when the subscription exists and is not active. Returns the rows
/// claimed (their events are loaded after commit).
async fn promote(
    c: &mut PgConnection,
    lines: &[Line],
    claim: &Claim,
    now: i64,
) -> Result<Vec<PgRow>> {
    let (subs, keys): (Vec<&str>, Vec<&str>) =
        lines.iter().map(|(s, k)| (s.as_str(), k.as_str())).unzip();
    let (deferred_subs, deferred_due): (Vec<&str>, Vec<i64>) = lines
        .iter()
        .filter_map(|(s, _)| Some((s.as_str(), millis(*claim.deferred.get(s)?))))
        .collect::<HashMap<_, _>>()
        .into_iter()
        .unzip();
    Ok(sqlx::query(
        "WITH f AS (SELECT f.* FROM UNNEST($1::text[], $2::text[]) AS l(s, k) \
           CROSS JOIN LATERAL (SELECT q.delivery_seq, q.subscription_id, q.waiting \
             FROM delivery_queue q WHERE q.subscription_id = l.s AND q.ordering_key = l.k \
             ORDER BY q.position LIMIT 1) f WHERE f.waiting), \
         h AS (SELECT f.delivery_seq, \
             CASE WHEN s.status IS NOT NULL AND s.status <> 'ACTIVE' THEN NULL \
               ELSE COALESCE(b.due, $4) END AS due_at, \
             CASE WHEN (s.status IS NULL OR s.status = 'ACTIVE') AND b.due IS NULL \
               THEN $3::text END AS owner \
           FROM f LEFT JOIN subscriptions s ON s.id = f.subscription_id \
           LEFT JOIN UNNEST($5::text[], $6::bigint[]) AS b(sub, due) ON b.sub = f.subscription_id), \
         q AS (UPDATE delivery_queue q SET waiting = false, due_at = h.due_at, \
             lease_owner = h.owner FROM h WHERE q.delivery_seq = h.delivery_seq) \
         UPDATE deliveries d SET \
           status = CASE WHEN h.owner IS NULL THEN 'PENDING' ELSE 'IN_FLIGHT' END, \
           due_at = h.due_at, lease_owner = h.owner, updated_at = $4 \
         FROM h WHERE d.seq = h.delivery_seq \
         RETURNING d.seq, d.id, d.subscription_id, d.attempt_count, d.round_attempts, \
           d.event_seq, d.ordering_key, h.owner IS NOT NULL",
    )
    .bind(&subs)
    .bind(&keys)
    .bind(claim.node.as_deref())
    .bind(now)
    .bind(&deferred_subs)
    .bind(&deferred_due)
    .fetch_all(&mut *c)
    .await?
    .into_iter()
    .filter(|r| r.try_get::<bool, _>(7).unwrap_or(false))
    .collect())
}

/// Deliveries claimed by a statement that returned, in order: seq, id, subscription,
/// attempt count, round attempts, event seq and ordering key. Their events are loaded
/// after the claim committed: an event with a delivery in flight is never pruned.
async fn with_events(pool: &sqlx::PgPool, rows: &[PgRow]) -> Result<Vec<ClaimedDelivery>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let event_seqs: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get(5))
        .collect::<Result<HashSet<i64>, _>>()?
        .into_iter()
        .collect();
    let events: HashMap<i64, Arc<EventData>> = sqlx::query(AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE seq = ANY($1)"
    )))
    .bind(&event_seqs)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| codec::event_data(r).map(|e| (e.seq, Arc::new(e))))
    .collect::<Result<_>>()?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(1)?;
            let event_seq: i64 = r.try_get(5)?;
            let event = events
                .get(&event_seq)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("delivery {id} has no event")))?;
            Ok(ClaimedDelivery {
                seq: r.try_get(0)?,
                id,
                subscription_id: r.try_get(2)?,
                attempt_count: count(r.try_get(3)?),
                round_attempts: count(r.try_get(4)?),
                event,
                ordering_key: r.try_get(6)?,
            })
        })
        .collect()
}

/// Starts final deliveries again with a fresh round of retries, due now; those that keep
/// the order of a line go to the back of it, in the order given. `rows` are (seq,
/// subscription, ordering key). Runs inside the caller's transaction.
async fn restart(
    c: &mut PgConnection,
    rows: &[(i64, String, Option<String>)],
    now: i64,
) -> Result<u64> {
    let lines: Vec<Line> = rows
        .iter()
        .filter_map(|(_, s, k)| Some((s.clone(), k.clone()?)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut tails = line_tails(c, &lines).await?;
    let (mut seqs, mut subs, mut keys, mut positions, mut waiting, mut due) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (seq, sub, key) in rows {
        let (position, waits) = match key {
            Some(key) => {
                let tail = tails.entry((sub.clone(), key.clone())).or_insert(None);
                let (position, waits) = take_place(tail);
                (Some(position), waits)
            }
            None => (None, false),
        };
        seqs.push(*seq);
        subs.push(sub.as_str());
        keys.push(key.as_deref());
        positions.push(position);
        waiting.push(waits);
        due.push((!waits).then_some(now));
    }
    Ok(sqlx::query(
        "WITH r AS (SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], \
             $5::bool[], $6::bigint[]) AS r(seq, sub, key, position, waiting, due_at)), \
         q AS (INSERT INTO delivery_queue (delivery_seq, subscription_id, due_at, ordering_key, \
             position, waiting) \
           SELECT seq, sub, due_at, key, position, waiting FROM r \
           ON CONFLICT (delivery_seq) DO NOTHING RETURNING delivery_seq, due_at) \
         UPDATE deliveries d SET status = 'PENDING', due_at = q.due_at, round_attempts = 0, \
           updated_at = $7 FROM q WHERE d.seq = q.delivery_seq",
    )
    .bind(&seqs)
    .bind(&subs)
    .bind(&keys)
    .bind(&positions)
    .bind(&waiting)
    .bind(&due)
    .bind(now)
    .execute(c)
    .await?
    .rows_affected())
}

/// What one outcome writes, as the columns of the batch statement.
#[derive(Default)]
struct OutcomeColumns {
    seq: Vec<i64>,
    status: Vec<String>,
    due_at: Vec<Option<i64>>,
    /// The attempt logged with each outcome, if any (numbered by the statement, from the
    /// delivery's count).
    attempts: AttemptColumns,
    /// Deliveries whose outcome deactivates their subscription, by delivery seq.
    failed: HashMap<i64, String>,
    /// The ordered lines whose head these outcomes end.
    ended: Vec<Line>,
}

impl OutcomeColumns {
    fn new(outcomes: Vec<Outcome>) -> Self {
        let mut cols = OutcomeColumns::default();
        let mut seen = HashSet::new();
        for outcome in outcomes {
            // One outcome per delivery and batch: a second could only fail its lease check.
            if !seen.insert(outcome.seq) {
                continue;
            }
            let (status, due_at) = match &outcome.next {
                Next::Succeeded => ("SUCCEEDED", None),
                Next::Retry { due_at } => ("PENDING", Some(millis(*due_at))),
                Next::Failed | Next::Drop { .. } => ("FAILED", None),
                Next::Release { due_at } => ("PENDING", due_at.map(millis)),
            };
            let logged = match (outcome.attempt, &outcome.next) {
                (Some(a), _) => Some(a),
                (None, Next::Drop { reason }) => Some(AttemptRecord {
                    started_at: Utc::now(),
                    duration_ms: 0,
                    status_code: None,
                    error: Some(reason.clone()),
                    response_body: None,
                }),
                _ => None,
            };
            cols.seq.push(outcome.seq);
            cols.status.push(status.to_owned());
            cols.due_at.push(due_at);
            cols.attempts.push(logged);
            let ends = status != "PENDING";
            if matches!(outcome.next, Next::Failed) {
                cols.failed
                    .insert(outcome.seq, outcome.subscription_id.clone());
            }
            if let (Some(key), true) = (outcome.ordering_key, ends) {
                cols.ended.push((outcome.subscription_id, key));
            }
        }
        cols
    }
}

/// Writes outcomes of deliveries `node` holds, with their attempts, in one statement;
/// returns the seqs of those written. An outcome whose lease `node` lost (it was silent too
/// long and another node took the delivery over) is not written: the new holder's word
/// counts.
async fn record(
    c: &mut PgConnection,
    node: &str,
    cols: &OutcomeColumns,
    now: i64,
) -> Result<Vec<i64>> {
    let a = &cols.attempts;
    // Each step joins the outcomes to a table by its key, never two intermediate results to
    // each other: the planner cannot know how many rows an array holds, and a nested loop
    // over two of them would be quadratic. The queue rows go first (the lock order of every
    // state change) and are the lease check: only rows `node` holds come back.
    let held: Vec<i64> = sqlx::query_scalar(
        // An outcome carries an attempt exactly when its `started_at` is set.
        "WITH o AS (SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], \
           $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[]) \
           AS o(seq, status, due_at, started_at, duration_ms, status_code, error, \
             response_body)), \
         done AS (DELETE FROM delivery_queue q USING o \
           WHERE q.delivery_seq = o.seq AND q.lease_owner = $5 AND o.status <> 'PENDING' \
           RETURNING o.*), \
         back AS (UPDATE delivery_queue q SET due_at = o.due_at, lease_owner = NULL FROM o \
           WHERE q.delivery_seq = o.seq AND q.lease_owner = $5 AND o.status = 'PENDING' \
           RETURNING o.*), \
         u AS (UPDATE deliveries d SET status = h.status, due_at = h.due_at, lease_owner = NULL, \
           updated_at = $4, \
           attempt_count = d.attempt_count + CASE WHEN h.started_at IS NULL THEN 0 ELSE 1 END, \
           round_attempts = d.round_attempts + CASE WHEN h.started_at IS NULL THEN 0 ELSE 1 END \
           FROM (SELECT * FROM done UNION ALL SELECT * FROM back) h WHERE d.seq = h.seq \
           RETURNING d.seq, d.attempt_count, h.started_at, h.duration_ms, \
             h.status_code, h.error, h.response_body), \
         logged AS (INSERT INTO attempts (delivery_seq, n, started_at, duration_ms, \
           status_code, error, response_body) \
           SELECT seq, attempt_count, started_at, duration_ms, status_code, error, response_body \
           FROM u WHERE started_at IS NOT NULL) \
         SELECT seq FROM u",
    )
    .bind(&cols.seq)
    .bind(&cols.status)
    .bind(&cols.due_at)
    .bind(now)
    .bind(node)
    .bind(&a.started_at)
    .bind(&a.duration_ms)
    .bind(&a.status_code)
    .bind(&a.error)
    .bind(&a.response_body)
    .fetch_all(&mut *c)
    .await?;
    if held.len() < cols.seq.len() {
        tracing::warn!(
            lost = cols.seq.len() - held.len(),
            "outcomes of deliveries whose lease was lost; not written"
        );
    }
    Ok(held)
}

/// Deactivates `subscriptions` (their last retry was used up); returns those that were
/// active. Their waiting deliveries stay, parked, to go out after reactivation.
async fn deactivate(
    c: &mut PgConnection,
    subscriptions: &[String],
    now: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "WITH s AS (UPDATE subscriptions SET status = 'DEACTIVATED', updated_at = $2 \
           WHERE id = ANY($1) AND status = 'ACTIVE' RETURNING id), \
         q AS (UPDATE delivery_queue SET due_at = NULL \
           WHERE subscription_id IN (SELECT id FROM s) AND lease_owner IS NULL \
           RETURNING delivery_seq), \
         parked AS (UPDATE deliveries SET due_at = NULL, updated_at = $2 \
           WHERE seq IN (SELECT delivery_seq FROM q)) \
         SELECT id FROM s",
    )
    .bind(subscriptions)
    .bind(now)
    .fetch_all(&mut *c)
    .await?)
}

/// The attempt columns of a batch of outcomes, one row per outcome (NULL where none is
/// logged).
#[derive(Default)]
struct AttemptColumns {
    started_at: Vec<Option<i64>>,
    duration_ms: Vec<Option<i64>>,
    status_code: Vec<Option<i64>>,
    error: Vec<Option<String>>,
    response_body: Vec<Option<String>>,
}

impl AttemptColumns {
    fn push(&mut self, a: Option<AttemptRecord>) {
        let (started_at, duration_ms, status_code, error, response_body) = match a {
            Some(a) => (
                Some(millis(a.started_at)),
                Some(i64::try_from(a.duration_ms).unwrap_or(i64::MAX)),
                a.status_code.map(i64::from),
                a.error,
                a.response_body,
            ),
            None => (None, None, None, None, None),
        };
        self.started_at.push(started_at);
        self.duration_ms.push(duration_ms);
        self.status_code.push(status_code);
        self.error.push(error);
        self.response_body.push(response_body);
    }
}

async fn delivery_by_id(
    c: &mut PgConnection,
    store: &str,
    id: &str,
) -> Result<Option<(i64, DeliveryRecord)>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.store_hash = $1 AND d.id = $2"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(store)
        .bind(id)
        .fetch_optional(c)
        .await?
        .map(|r| delivery_row(&r))
        .transpose()
}

impl PgStore {
    /// Makes the first in line the head of every line whose head went missing (its parked
    /// head was pruned). Returns how many lines moved on.
    async fn repair_lines(&self) -> Result<usize> {
        let lines: Vec<Line> = sqlx::query_as(
            "SELECT subscription_id, ordering_key FROM (SELECT DISTINCT ON \
               (subscription_id, ordering_key) subscription_id, ordering_key, waiting \
               FROM delivery_queue WHERE ordering_key IS NOT NULL \
               ORDER BY subscription_id, ordering_key, position) f WHERE waiting",
        )
        .fetch_all(&self.pool)
        .await?;
        if lines.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        lock_lines(&mut tx, &lines).await?;
        promote(&mut tx, &lines, &Claim::default(), millis(Utc::now())).await?;
        tx.commit().await?;
        Ok(lines.len())
    }
}

#[async_trait]
impl DeliveryStore for PgStore {
    async fn reserve_slots(
        &self,
        subscription_id: &str,
        per_second: u32,
        count: u32,
    ) -> Result<std::time::Duration> {
        // take_slots in one statement, on the database's clock, so that every node's
        // reservations follow each other; answered as an offset from now, so that the
        // nodes' own clocks do not matter.
        let span = f64::from(count) / f64::from(per_second.max(1));
        let first: f64 = sqlx::query_scalar(
            "INSERT INTO rate_slots AS r (subscription_id, taken_until) \
             VALUES ($1, clock_timestamp() + $2 * interval '1 second') \
             ON CONFLICT (subscription_id) DO UPDATE \
               SET taken_until = GREATEST(r.taken_until, clock_timestamp()) + $2 * interval '1 second' \
             RETURNING EXTRACT(EPOCH FROM (taken_until - clock_timestamp()))::float8 - $2",
        )
        .bind(subscription_id)
        .bind(span)
        .fetch_one(&self.pool)
        .await?;
        Ok(std::time::Duration::from_secs_f64(first.max(0.0)))
    }

    async fn ingest(&self, events: Vec<NewEvent>, claim: Claim) -> Result<Vec<Ingested>> {
        self.ingest.ingest(events, claim).await
    }

    async fn heartbeat(&self, node: &str, lease_timeout: Duration) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // Whether the row was made anew (xmax = 0): after the node's first heartbeat, that
        // means another node found it silent past the lease and took its deliveries.
        let inserted: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "INSERT INTO nodes (id, heartbeat_at) VALUES ($1, {DB_NOW}) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at \
             RETURNING xmax = 0"
        )))
        .bind(node)
        .fetch_one(&mut *tx)
        .await?;
        let gone: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "DELETE FROM nodes WHERE heartbeat_at < {DB_NOW} - $1 AND id <> $2 RETURNING id"
        )))
        .bind(i64::try_from(lease_timeout.as_millis()).unwrap_or(i64::MAX))
        .bind(node)
        .fetch_all(&mut *tx)
        .await?;
        // The deliveries of the nodes just found gone go back, found through the lease index
        // by owner. Now and then (and at a node's first heartbeat) every lease is checked
        // against the nodes registered, for leases of a node that never registered or whose
        // last ingest committed after it was found gone: scanning every lease at every
        // heartbeat of every node would grow with nodes × work in flight.
        let made = self.heartbeats.fetch_add(1, Ordering::Relaxed);
        if inserted && made > 0 {
            self.leases_lost.store(true, Ordering::Relaxed);
        }
        let sweep = made.is_multiple_of(FULL_LEASE_SWEEP_EVERY);
        let n = if sweep {
            hand_back(&mut tx, None).await?
        } else if gone.is_empty() {
            0
        } else {
            hand_back(&mut tx, Some(&gone)).await?
        };
        tx.commit().await?;
        Ok(n)
    }

    fn take_leases_lost(&self) -> bool {
        self.leases_lost.swap(false, Ordering::Relaxed)
    }

    async fn leave(&self, node: &str) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let n = hand_back(&mut tx, Some(&[node.to_owned()])).await?;
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn claim_due(
        &self,
        node: &str,
        limit: usize,
        exclude: Vec<String>,
    ) -> Result<Vec<ClaimedDelivery>> {
        let now = millis(Utc::now());
        let rows = sqlx::query(
            "WITH c AS (SELECT delivery_seq FROM delivery_queue \
               WHERE lease_owner IS NULL AND due_at <= $2 AND NOT (subscription_id = ANY($4)) \
               ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
             q AS (UPDATE delivery_queue q SET lease_owner = $1 FROM c \
               WHERE q.delivery_seq = c.delivery_seq) \
             UPDATE deliveries d SET status = 'IN_FLIGHT', lease_owner = $1, updated_at = $2 \
             FROM c WHERE d.seq = c.delivery_seq \
             RETURNING d.seq, d.id, d.subscription_id, d.attempt_count, d.round_attempts, \
               d.event_seq, d.ordering_key",
        )
        .bind(node)
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(&exclude)
        .fetch_all(&self.pool)
        .await?;
        with_events(&self.pool, &rows).await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(due_at) FROM delivery_queue WHERE lease_owner IS NULL AND due_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        due.map(time).transpose()
    }

    async fn record_outcomes(
        &self,
        node: &str,
        outcomes: Vec<Outcome>,
        claim: Claim,
    ) -> Result<Recorded> {
        let now = millis(Utc::now());
        let cols = OutcomeColumns::new(outcomes);
        if cols.seq.is_empty() {
            return Ok(Recorded::default());
        }
        if cols.failed.is_empty() && cols.ended.is_empty() {
            // One statement: atomic without a transaction of its own.
            let mut c = self.pool.acquire().await?;
            record(&mut c, node, &cols, now).await?;
            return Ok(Recorded::default());
        }
        let mut tx = self.pool.begin().await?;
        // The lines first: ingest of the same keys then either committed before (and its
        // waiting deliveries are seen below) or waits, and sees their heads gone.
        let mut lines = cols.ended.clone();
        lines.sort();
        lines.dedup();
        if !lines.is_empty() {
            lock_lines(&mut tx, &lines).await?;
        }
        let held = record(&mut tx, node, &cols, now).await?;
        let failed: Vec<String> = held
            .iter()
            .filter_map(|seq| cols.failed.get(seq).cloned())
            .collect();
        let deactivated = if failed.is_empty() {
            Vec::new()
        } else {
            deactivate(&mut tx, &failed, now).await?
        };
        // After the deactivations, so that the next of a line whose head failed is parked.
        let claimed = if lines.is_empty() {
            Vec::new()
        } else {
            promote(&mut tx, &lines, &claim, now).await?
        };
        tx.commit().await?;
        Ok(Recorded {
            deactivated,
            next: with_events(&self.pool, &claimed).await?,
        })
    }

    async fn backlog(&self) -> Result<Backlog> {
        let row = sqlx::query(
            "SELECT \
               COUNT(*) FILTER (WHERE lease_owner IS NULL AND due_at <= $1), \
               COUNT(*) FILTER (WHERE lease_owner IS NULL AND due_at > $1), \
               COUNT(*) FILTER (WHERE lease_owner IS NULL AND due_at IS NULL AND NOT waiting), \
               COUNT(*) FILTER (WHERE lease_owner IS NOT NULL), \
               COUNT(*) FILTER (WHERE waiting) \
             FROM delivery_queue",
        )
        .bind(millis(Utc::now()))
        .fetch_one(&self.pool)
        .await?;
        let n = |i: usize| -> Result<u64> { Ok(row.try_get::<i64, _>(i)?.max(0) as u64) };
        Ok(Backlog {
            due: n(0)?,
            scheduled: n(1)?,
            parked: n(2)?,
            in_flight: n(3)?,
            waiting: n(4)?,
        })
    }

    async fn list_deliveries(
        &self,
        store: StoreHash<'_>,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliveryRecord>> {
        let store = store.as_str();
        let mut w = Where::new("d.store_hash = $N", Arg::Text(store.to_owned()));
        if let Some(id) = filter.subscription_id {
            w.and("d.subscription_id = $N", Arg::Text(id));
        }
        if let Some(owner) = filter.owner {
            w.and(
                "d.subscription_id IN (SELECT id FROM subscriptions WHERE owner_client_id = $N)",
                Arg::Text(owner),
            );
        }
        if let Some(status) = filter.status {
            w.and("d.status = $N", Arg::Text(status.as_str().into()));
        }
        if let Some(since) = filter.since {
            w.and("d.created_at >= $N", Arg::Int(millis(since)));
        }
        if let Some(until) = filter.until {
            w.and("d.created_at < $N", Arg::Int(millis(until)));
        }
        w.page_with_key(
            &self.pool,
            DELIVERY_FROM,
            DELIVERY_COLUMNS,
            SortKey {
                column: "d.seq",
                descending: filter.newest_first,
            },
            page,
            delivery_row,
        )
        .await
    }

    async fn attempts_of_many(
        &self,
        delivery_seqs: Vec<i64>,
    ) -> Result<std::collections::HashMap<i64, Vec<AttemptRecord>>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ATTEMPT_COLUMNS}, delivery_seq FROM attempts \
             WHERE delivery_seq = ANY($1::bigint[]) ORDER BY delivery_seq, n"
        )))
        .bind(&delivery_seqs)
        .fetch_all(&self.pool)
        .await?;
        let mut out: std::collections::HashMap<i64, Vec<AttemptRecord>> =
            delivery_seqs.iter().map(|s| (*s, Vec::new())).collect();
        for r in &rows {
            let seq: i64 = r.try_get(5)?;
            out.entry(seq).or_default().push(codec::attempt(r)?);
        }
        Ok(out)
    }

    async fn get_delivery(
        &self,
        store: StoreHash<'_>,
        id: DeliveryId<'_>,
    ) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>)>> {
        let (store, id) = (store.as_str(), id.as_str());
        // One snapshot for the delivery and its attempts, so that they agree.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let Some((seq, record)) = delivery_by_id(&mut tx, store, id).await? else {
            return Ok(None);
        };
        let attempts = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_seq = $1 ORDER BY n"
        )))
        .bind(seq)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(codec::attempt)
        .collect::<Result<Vec<_>>>()?;
        Ok(Some((record, attempts)))
    }

    async fn retry_delivery(
        &self,
        store: StoreHash<'_>,
        id: DeliveryId<'_>,
    ) -> Result<DeliveryRecord> {
        let (store, id) = (store.as_str(), id.as_str());
        let mut c = self.pool.acquire().await?;
        let row: Option<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT seq, subscription_id, status, ordering_key FROM deliveries \
             WHERE store_hash = $1 AND id = $2",
        )
        .bind(store)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
        if let Some((seq, sub, status, Some(key))) = row {
            if status == "SUCCEEDED" || status == "FAILED" {
                // A final delivery of an ordered key goes to the back of its line.
                let mut tx = sqlx::Acquire::begin(&mut *c).await?;
                restart(&mut tx, &[(seq, sub, Some(key))], millis(Utc::now())).await?;
                tx.commit().await?;
                return delivery_by_id(&mut c, store, id)
                    .await?
                    .map(|(_, record)| record)
                    .ok_or(StoreError::NotFound);
            }
        }
        // Due now, unless it is in flight or waits behind its key's head.
        sqlx::query(
            "WITH q AS (INSERT INTO delivery_queue (delivery_seq, subscription_id, due_at) \
               SELECT seq, subscription_id, $3 FROM deliveries WHERE store_hash = $1 AND id = $2 \
                 AND status IN ('SUCCEEDED', 'FAILED', 'PENDING') \
               ON CONFLICT (delivery_seq) DO UPDATE SET due_at = excluded.due_at \
                 WHERE delivery_queue.lease_owner IS NULL AND NOT delivery_queue.waiting \
               RETURNING delivery_seq) \
             UPDATE deliveries SET status = 'PENDING', due_at = $3, round_attempts = 0, \
             updated_at = $3 WHERE seq IN (SELECT delivery_seq FROM q)",
        )
        .bind(store)
        .bind(id)
        .bind(millis(Utc::now()))
        .execute(&mut *c)
        .await?;
        delivery_by_id(&mut c, store, id)
            .await?
            .map(|(_, record)| record)
            .ok_or(StoreError::NotFound)
    }

    async fn replay_deliveries(&self, store: StoreHash<'_>, filter: ReplayFilter) -> Result<u64> {
        let store = store.as_str();
        let mut tx = self.pool.begin().await?;
        // Oldest first: replayed deliveries of an ordered key re-enter its line in the order
        // of their events. Locked, so that a replay running twice at once starts each once.
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT seq, subscription_id, ordering_key FROM deliveries \
             WHERE store_hash = $1 AND subscription_id = $2 AND status = $3 \
               AND created_at >= $4 AND created_at <= $5 ORDER BY seq FOR UPDATE",
        )
        .bind(store)
        .bind(&filter.subscription_id)
        .bind(filter.status.as_str())
        .bind(filter.since.map(millis).unwrap_or(i64::MIN))
        .bind(filter.until.map(millis).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let n = if rows.is_empty() {
            0
        } else {
            restart(&mut tx, &rows, millis(Utc::now())).await?
        };
        tx.commit().await?;
        Ok(n)
    }

    async fn rotate_signing_secret(
        &self,
        store: StoreHash<'_>,
        id: SubscriptionId<'_>,
        secret: Sealed,
        previous: PreviousSecret,
    ) -> Result<()> {
        let (store, id) = (store.as_str(), id.as_str());
        let n = sqlx::query(
            "UPDATE subscriptions SET signing_secret = $3, previous_signing_secret = $4, \
             previous_secret_until = $5, updated_at = $6 WHERE store_hash = $1 AND id = $2",
        )
        .bind(store)
        .bind(id)
        .bind(secret.0)
        .bind(previous.secret.0)
        .bind(millis(previous.until))
        .bind(millis(Utc::now()))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        // With their deliveries, attempts and the queue rows of parked deliveries, in one
        // statement (there are no foreign keys to cascade: migration 0003 says why). SKIP
        // LOCKED: nodes pruning at once take different events.
        let n = sqlx::query(
            "WITH e AS (SELECT e.seq FROM events e \
               WHERE e.created_at < $1 AND NOT EXISTS (SELECT 1 FROM deliveries d \
                 JOIN delivery_queue q ON q.delivery_seq = d.seq \
                 WHERE d.event_seq = e.seq AND (q.lease_owner IS NOT NULL OR q.due_at IS NOT NULL)) \
               ORDER BY e.created_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
             d AS (DELETE FROM deliveries WHERE event_seq IN (SELECT seq FROM e) RETURNING seq), \
             a AS (DELETE FROM attempts WHERE delivery_seq IN (SELECT seq FROM d)), \
             q AS (DELETE FROM delivery_queue WHERE delivery_seq IN (SELECT seq FROM d)) \
             DELETE FROM events WHERE seq IN (SELECT seq FROM e)",
        )
        .bind(millis(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n > 0 {
            // A parked head may have gone with its event: its line moves on.
            self.repair_lines().await?;
        }
        Ok(n)
    }

    async fn broadcast(&self, from: &str, signal: Signal) -> Result<()> {
        self.notify(from, &signal).await
    }

    async fn listen(
        &self,
        node: &str,
    ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>> {
        self.subscribe(node).await.map(Some)
    }
}
