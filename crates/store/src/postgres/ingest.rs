//! Ingest on PostgreSQL: group commit, and a few statements per group.
//!
//! Concurrent ingests on one node share a transaction, as SQLite's single writer does
//! (docs/operations.md#writes-on-postgresql). A few committer tasks take whatever requests are
//! queued (up to [`MAX_GROUP_EVENTS`] events) and write them with three statements, whatever
//! their number: the events, the subscriptions they match, and the deliveries. While one
//! group is being written the next one gathers, so a lone publisher waits for no one and
//! many publishers share round trips and commits.
//!
//! A caller hears back only after the commit that holds its events. If a group's
//! transaction fails, each of its requests is written again in a transaction of its own, so
//! that an error reaches only the caller whose events caused it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use hookrelay_core::ids;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::codec::{json_list, millis};
use crate::delivery::{Claim, ClaimedDelivery, EventData, Ingested, NewEvent};
use crate::{Result, StoreError};

/// Groups written at once, each in its own transaction and connection.
const COMMITTERS: usize = 2;
/// Events one group takes at most (more wait for the next group).
const MAX_GROUP_EVENTS: usize = 1024;

/// One caller's ingest, waiting for its group.
struct Request {
    events: Vec<NewEvent>,
    claim: Claim,
    reply: oneshot::Sender<Result<Vec<Ingested>>>,
}

/// The queue of ingests in front of the committers. Dropping it ends them once the queue
/// is empty.
pub(super) struct GroupCommit {
    queue: mpsc::UnboundedSender<Request>,
}

impl GroupCommit {
    /// Starts the committers on `pool` (must be called inside the runtime).
    pub(super) fn start(pool: PgPool) -> Self {
        let (queue, inbox) = mpsc::unbounded_channel();
        let inbox = Arc::new(Mutex::new(inbox));
        for _ in 0..COMMITTERS {
            tokio::spawn(commit_loop(pool.clone(), inbox.clone()));
        }
        GroupCommit { queue }
    }

    /// Writes `events` in the next group; returns once that group committed.
    pub(super) async fn ingest(
        &self,
        events: Vec<NewEvent>,
        claim: Claim,
    ) -> Result<Vec<Ingested>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request {
                events,
                claim,
                reply,
            })
            .map_err(|_| StoreError::Database("the ingest committers have stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Database("the ingest committer went away".into()))?
    }
}

async fn commit_loop(pool: PgPool, inbox: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>) {
    loop {
        let group = {
            let mut inbox = inbox.lock().await;
            let Some(first) = inbox.recv().await else {
                return;
            };
            let mut events = first.events.len();
            let mut group = vec![first];
            while events < MAX_GROUP_EVENTS {
                match inbox.try_recv() {
                    Ok(next) => {
                        events += next.events.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        commit_group(&pool, group).await;
    }
}

/// Writes a group in one transaction; if that fails, each request in one of its own.
async fn commit_group(pool: &PgPool, group: Vec<Request>) {
    if group.len() > 1 {
        let parts: Vec<(&Vec<NewEvent>, &Claim)> =
            group.iter().map(|r| (&r.events, &r.claim)).collect();
        match write_in_transaction(pool, &parts).await {
            Ok(results) => {
                for (request, result) in group.into_iter().zip(results) {
                    // The caller may have gone away (request cancelled); its events stand.
                    let _ = request.reply.send(Ok(result));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, requests = group.len(), "group ingest failed; writing its requests one by one");
            }
        }
    }
    for request in group {
        let result = write_in_transaction(pool, &[(&request.events, &request.claim)]).await;
        let _ = request
            .reply
            .send(result.map(|mut r| r.pop().unwrap_or_default()));
    }
}

async fn write_in_transaction(
    pool: &PgPool,
    parts: &[(&Vec<NewEvent>, &Claim)],
) -> Result<Vec<Vec<Ingested>>> {
    let mut tx = pool.begin().await?;
    let results = write(&mut tx, parts).await?;
    tx.commit().await?;
    Ok(results)
}

/// The columns of the events of a group, in the order they were accepted.
#[derive(Default)]
struct EventColumns {
    id: Vec<String>,
    store: Vec<String>,
    event_type: Vec<String>,
    data: Vec<String>,
    resources: Vec<String>,
    idempotency_key: Vec<Option<String>>,
    time: Vec<i64>,
    ordering_key: Vec<Option<String>>,
}

/// Writes the events of every part (one part per caller, with its claim) and their
/// deliveries; returns one result per event, per part.
async fn write(
    c: &mut PgConnection,
    parts: &[(&Vec<NewEvent>, &Claim)],
) -> Result<Vec<Vec<Ingested>>> {
    let now = millis(Utc::now());
    let events: Vec<(&NewEvent, &Claim)> = parts
        .iter()
        .flat_map(|(events, claim)| events.iter().map(move |e| (e, *claim)))
        .collect();
    let mut cols = EventColumns::default();
    for (e, _) in &events {
        cols.id.push(e.id.clone());
        cols.store.push(e.store.clone());
        cols.event_type.push(e.event_type.clone());
        cols.data.push(e.data.clone());
        cols.resources.push(json_list(&e.resources)?);
        cols.idempotency_key.push(e.idempotency_key.clone());
        cols.time.push(millis(e.time));
        cols.ordering_key.push(e.ordering_key.clone());
    }
    // The events (but not those of unknown stores, nor a second use of an idempotency key),
    // in the order given, so that their sequence numbers are the order of acceptance.
    let written: HashMap<String, i64> = sqlx::query(
        "INSERT INTO events (id, store_hash, event_type, data, resources, idempotency_key, \
           event_time, created_at, ordering_key) \
         SELECT i.id, i.store_hash, i.event_type, i.data, i.resources, i.idempotency_key, \
           i.event_time, $8, i.ordering_key \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
           $7::bigint[], $9::text[]) WITH ORDINALITY \
           AS i(id, store_hash, event_type, data, resources, idempotency_key, event_time, \
             ordering_key, ord) \
         WHERE EXISTS (SELECT 1 FROM stores s WHERE s.store_hash = i.store_hash) \
         ORDER BY i.ord \
         ON CONFLICT (store_hash, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id, seq",
    )
    .bind(&cols.id)
    .bind(&cols.store)
    .bind(&cols.event_type)
    .bind(&cols.data)
    .bind(&cols.resources)
    .bind(&cols.idempotency_key)
    .bind(&cols.time)
    .bind(now)
    .bind(&cols.ordering_key)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<Result<_>>()?;

    let subscribers = matching(c, &events, &written).await?;
    let duplicates = first_uses(c, &events, &written).await?;

    // The deliveries of every written event, with their claims; each matching
    // subscription with whether it is ordered (a test event keeps no order).
    let mut planned: Vec<(usize, i64, Matched)> = Vec::new();
    for (i, (event, _)) in events.iter().enumerate() {
        let Some(&seq) = written.get(&event.id) else {
            continue;
        };
        let targets: Matched = match &event.only_subscription {
            Some(id) => vec![(id.clone(), false)],
            None => event
                .patterns
                .iter()
                .filter_map(|p| subscribers.get(&(event.store.as_str(), p.as_str())))
                .flatten()
                .filter(|(id, _)| !event.except_subscriptions.contains(id))
                .cloned()
                .collect::<HashSet<(String, bool)>>()
                .into_iter()
                .collect(),
        };
        planned.push((i, seq, targets));
    }
    // The ordered lines these deliveries enter, locked, with the last position taken in
    // each (docs/delivery.md#ordered-delivery).
    let lines: Vec<(String, String)> = planned
        .iter()
        .flat_map(|(i, _, targets)| {
            let key = events[*i].0.ordering_key.as_deref();
            targets
                .iter()
                .filter(|(_, ordered)| *ordered)
                .filter_map(move |(sub, _)| Some((sub.clone(), key?.to_owned())))
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut tails = super::deliveries::line_tails(c, &lines).await?;
    let mut d = DeliveryColumns::default();
    for (i, seq, targets) in planned {
        let (event, claim) = events[i];
        for (subscription_id, ordered) in targets {
            let line = match (&event.ordering_key, ordered) {
                (Some(key), true) => {
                    let tail = tails
                        .entry((subscription_id.clone(), key.clone()))
                        .or_insert(None);
                    let (position, waiting) = crate::delivery::take_place(tail);
                    Some((key.clone(), position, waiting))
                }
                _ => None,
            };
            d.push((i, seq), &event.store, subscription_id, claim, now, line);
        }
    }
    let delivery_seqs: HashMap<String, i64> = if d.id.is_empty() {
        HashMap::new()
    } else {
        sqlx::query(
            // Each with its row in the queue (the 0003 migration says why).
            "WITH i AS (SELECT * FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], \
                 $6::text[], $7::bigint[], $8::text[], $9::text[], $10::bigint[], $11::bool[]) \
                 AS d(id, event_seq, store_hash, subscription_id, status, due_at, lease_owner, \
                   ordering_key, position, waiting)), \
             d AS (INSERT INTO deliveries (id, event_seq, store_hash, subscription_id, \
               status, due_at, lease_owner, created_at, updated_at, ordering_key) \
               SELECT id, event_seq, store_hash, subscription_id, status, due_at, \
                 lease_owner, $1, $1, ordering_key FROM i \
               RETURNING id, seq), \
             q AS (INSERT INTO delivery_queue (delivery_seq, subscription_id, due_at, lease_owner, \
                 ordering_key, position, waiting) \
               SELECT d.seq, i.subscription_id, i.due_at, i.lease_owner, i.ordering_key, \
                 i.position, i.waiting FROM d JOIN i ON i.id = d.id) \
             SELECT id, seq FROM d",
        )
        .bind(now)
        .bind(&d.id)
        .bind(&d.event_seq)
        .bind(&d.store)
        .bind(&d.subscription_id)
        .bind(&d.status)
        .bind(&d.due_at)
        .bind(&d.owner)
        .bind(&d.ordering_key)
        .bind(&d.position)
        .bind(&d.waiting)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?
    };

    // One result per event, in the order given.
    let mut made: Vec<Vec<ClaimedDelivery>> = vec![Vec::new(); events.len()];
    let mut claimed: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    let mut data: Vec<Option<Arc<EventData>>> = vec![None; events.len()];
    for (k, id) in d.id.into_iter().enumerate() {
        let i = d.event[k];
        let seq = *delivery_seqs
            .get(&id)
            .ok_or_else(|| StoreError::Database(format!("delivery {id} was not written")))?;
        let event = data[i]
            .get_or_insert_with(|| Arc::new(event_data(events[i].0, d.event_seq[k])))
            .clone();
        if d.owner[k].is_some() {
            claimed[i].push(made[i].len());
        }
        made[i].push(ClaimedDelivery {
            seq,
            id,
            subscription_id: std::mem::take(&mut d.subscription_id[k]),
            attempt_count: 0,
            round_attempts: 0,
            event,
            ordering_key: d.ordering_key[k].take(),
        });
    }
    let mut results = events.iter().enumerate().map(|(i, (event, _))| {
        if written.contains_key(&event.id) {
            Ingested::Created {
                event_id: event.id.clone(),
                deliveries: std::mem::take(&mut made[i]),
                claimed: std::mem::take(&mut claimed[i]),
            }
        } else {
            match event
                .idempotency_key
                .as_ref()
                .and_then(|key| duplicates.get(&(event.store.as_str(), key.as_str())))
            {
                Some(first) => Ingested::Duplicate {
                    event_id: first.clone(),
                },
                None => Ingested::UnknownStore,
            }
        }
    });
    Ok(parts
        .iter()
        .map(|(events, _)| results.by_ref().take(events.len()).collect())
        .collect())
}

fn event_data(event: &NewEvent, seq: i64) -> EventData {
    EventData {
        seq,
        id: event.id.clone(),
        store: event.store.clone(),
        event_type: event.event_type.clone(),
        data: event.data.clone(),
        resources: event.resources.clone(),
        time: event.time,
        ordering_key: event.ordering_key.clone(),
    }
}

/// The active subscriptions of each (store, event type pattern) that a written event can
/// match, in one statement for the whole group.
async fn matching<'a>(
    c: &mut PgConnection,
    events: &[(&'a NewEvent, &Claim)],
    written: &HashMap<String, i64>,
) -> Result<HashMap<(&'a str, &'a str), Vec<(String, bool)>>> {
    let pairs: HashSet<(&str, &str)> = events
        .iter()
        .filter(|(e, _)| e.only_subscription.is_none() && written.contains_key(&e.id))
        .flat_map(|(e, _)| e.patterns.iter().map(|p| (e.store.as_str(), p.as_str())))
        .collect();
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    let (stores, patterns): (Vec<&str>, Vec<&str>) = pairs.iter().copied().unzip();
    let rows = sqlx::query(
        "SELECT p.ord, k.subscription_id, s.ordered \
         FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS p(store_hash, event_type, ord) \
         JOIN subscription_keys k ON k.store_hash = p.store_hash AND k.event_type = p.event_type \
         JOIN subscriptions s ON s.id = k.subscription_id AND s.status = 'ACTIVE'",
    )
    .bind(&stores)
    .bind(&patterns)
    .fetch_all(&mut *c)
    .await?;
    let mut out: HashMap<(&str, &str), Vec<(String, bool)>> = HashMap::new();
    for r in &rows {
        let pair = nth(&pairs, r.try_get(0)?)?;
        out.entry(pair)
            .or_default()
            .push((r.try_get(1)?, r.try_get(2)?));
    }
    Ok(out)
}

/// The `ord`th (from 1, as `WITH ORDINALITY` counts) of `items`.
fn nth<T: Copy>(items: &[T], ord: i64) -> Result<T> {
    usize::try_from(ord - 1)
        .ok()
        .and_then(|i| items.get(i).copied())
        .ok_or_else(|| StoreError::Database(format!("no row {ord} was sent")))
}

/// For events that were not written and carry an idempotency key: the id of the event
/// that used the key first (none: the store is unknown).
async fn first_uses<'a>(
    c: &mut PgConnection,
    events: &[(&'a NewEvent, &Claim)],
    written: &HashMap<String, i64>,
) -> Result<HashMap<(&'a str, &'a str), String>> {
    let keys: HashSet<(&str, &str)> = events
        .iter()
        .filter(|(e, _)| !written.contains_key(&e.id))
        .filter_map(|(e, _)| Some((e.store.as_str(), e.idempotency_key.as_deref()?)))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<(&str, &str)> = keys.into_iter().collect();
    let (stores, keys_only): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
    let rows = sqlx::query(
        "SELECT k.ord, e.id \
         FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(store_hash, idempotency_key, ord) \
         JOIN events e ON e.store_hash = k.store_hash AND e.idempotency_key = k.idempotency_key",
    )
    .bind(&stores)
    .bind(&keys_only)
    .fetch_all(&mut *c)
    .await?;
    let mut out = HashMap::new();
    for r in &rows {
        out.insert(nth(&keys, r.try_get(0)?)?, r.try_get(1)?);
    }
    Ok(out)
}

/// The subscriptions an event goes to, each with whether it is ordered.
type Matched = Vec<(String, bool)>;

/// The deliveries of a group, as the columns of their insert.
#[derive(Default)]
struct DeliveryColumns {
    /// Which event of the group each is for.
    event: Vec<usize>,
    id: Vec<String>,
    event_seq: Vec<i64>,
    store: Vec<String>,
    subscription_id: Vec<String>,
    status: Vec<&'static str>,
    due_at: Vec<Option<i64>>,
    owner: Vec<Option<String>>,
    ordering_key: Vec<Option<String>>,
    position: Vec<Option<i64>>,
    waiting: Vec<bool>,
}

impl DeliveryColumns {
    /// A delivery of the `event`th event of the group (whose seq is `event_seq`); `line`
    /// is its ordering key, place in line and whether it waits, when it keeps an order.
    fn push(
        &mut self,
        (event, event_seq): (usize, i64),
        store: &str,
        subscription_id: String,
        claim: &Claim,
        now: i64,
        line: Option<(String, i64, bool)>,
    ) {
        let waiting = line.as_ref().is_some_and(|(_, _, waiting)| *waiting);
        let deferred = claim.deferred.get(&subscription_id).map(|t| millis(*t));
        let (status, due_at, owner) = match (&claim.node, deferred) {
            _ if waiting => ("PENDING", None, None),
            (_, Some(due_at)) => ("PENDING", Some(due_at), None),
            (Some(node), None) => ("IN_FLIGHT", Some(now), Some(node.clone())),
            (None, None) => ("PENDING", Some(now), None),
        };
        let (key, position) = match line {
            Some((key, position, _)) => (Some(key), Some(position)),
            None => (None, None),
        };
        self.ordering_key.push(key);
        self.position.push(position);
        self.waiting.push(waiting);
        self.event.push(event);
        self.id.push(ids::new_id("msg"));
        self.event_seq.push(event_seq);
        self.store.push(store.to_owned());
        self.subscription_id.push(subscription_id);
        self.status.push(status);
        self.due_at.push(due_at);
        self.owner.push(owner);
    }
}
