//! The engine: wiring of ingest hand-off, scheduler, dispatcher, recorder and heartbeat.
//!
//! Durability comes from the database: a delivery is written (PENDING, or IN_FLIGHT leased
//! to this node) in the transaction that accepts its event, and only an outcome written
//! later changes that. Memory holds at most `max_held` deliveries; the rest wait in the
//! database until the scheduler claims them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::retry::RetrySchedule;
use hookrelay_core::secrets::Cipher;
use hookrelay_store::{
    Claim, ClaimedDelivery, Ingested, NewEvent, Next, Outcome, Signal, Store, StoreError,
};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::aws::Aws;
use crate::breaker::BreakerConfig;
use crate::concurrency::LimitConfig;
use crate::destinations::eventbridge::{EventBridge, EventBridgeKind, EventBridgeSettings};
use crate::destinations::webhook::oauth::TokenCache;
use crate::destinations::webhook::{http, Webhook};
use crate::destinations::{Registry, Shared};
use crate::dispatcher::{DispatchLimits, Dispatcher, LaneStatus, Msg, Work};
use crate::metrics;
use crate::operational;
use crate::target::Targets;
use crate::worker::Worker;

/// Outcomes written per transaction at most.
const OUTCOME_BATCH: usize = 2048;
/// Deliveries claimed per scheduler round at most.
const CLAIM_BATCH: usize = 1024;
/// Events pruned per transaction at most: small, so pruning never holds up delivery.
const PRUNE_BATCH: usize = 500;
/// "Work is waiting" is told to other nodes at most this often (milliseconds).
const WAKE_OTHERS_EVERY_MS: i64 = 50;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub retry: RetrySchedule,
    pub request_timeout: Duration,
    /// A node whose heartbeat is older than this loses its deliveries to the others.
    pub lease_timeout: Duration,
    /// Events, with their deliveries and attempts, are pruned this long after ingest.
    pub retention: Duration,
    /// How often the scheduler looks for due deliveries when nothing wakes it.
    pub poll_interval: Duration,
    /// The ceiling of each lane's adaptive in-flight limit.
    pub max_in_flight_per_host: usize,
    /// Its floor, and where a new lane starts.
    pub min_in_flight_per_host: usize,
    pub max_queued_per_host: usize,
    /// Deliveries held in memory at most (queued, in flight, outcome not yet written).
    pub max_held: usize,
    /// Pauses a host on its own failures (no answer).
    pub breaker: BreakerConfig,
    /// Pauses an endpoint (a webhook URL) on its failing answers.
    pub endpoint_breaker: BreakerConfig,
    pub policy: AddressPolicy,
    pub eventbridge: EventBridgeSettings,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry: RetrySchedule::default(),
            request_timeout: Duration::from_secs(10),
            lease_timeout: Duration::from_secs(30),
            retention: Duration::from_secs(30 * 86_400),
            poll_interval: Duration::from_secs(1),
            max_in_flight_per_host: 256,
            min_in_flight_per_host: 4,
            max_queued_per_host: 8192,
            max_held: 16384,
            breaker: BreakerConfig::default(),
            endpoint_breaker: BreakerConfig::default(),
            policy: AddressPolicy::default(),
            eventbridge: EventBridgeSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Engine {
    store: Arc<dyn Store>,
    node: String,
    config: EngineConfig,
    targets: Arc<Targets>,
    tokens: Arc<TokenCache>,
    worker: Arc<Worker>,
    dispatch: mpsc::UnboundedSender<Msg>,
    /// Deliveries in memory: claimed and not yet recorded.
    held: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    /// Ingest left deliveries unclaimed in the database (memory was full): the scheduler
    /// should look as soon as room frees up.
    spilled: AtomicBool,
    /// When other nodes were last told that work is waiting (Unix ms).
    woke_others: AtomicI64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Starts the engine's tasks on the current runtime. `aws` is the process's AWS
    /// configuration, and `eventbridge` its EventBridge client (shared with the API).
    pub async fn start(
        store: Arc<dyn Store>,
        cipher: Arc<Cipher>,
        config: EngineConfig,
        aws: Arc<Aws>,
        eventbridge: Arc<EventBridge>,
    ) -> Result<Arc<Engine>, EngineError> {
        let node = hookrelay_core::ids::new_id("node");
        store.heartbeat(&node, config.lease_timeout).await?;
        let policy = Arc::new(config.policy.clone());
        let client = http::build_client(
            policy.clone(),
            config.request_timeout,
            config.max_in_flight_per_host,
        )?;
        let tokens = Arc::new(TokenCache::new(client.clone(), policy.clone()));
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let shared = Shared {
            policy: policy.clone(),
            request_timeout: config.request_timeout,
            aws,
        };
        let kinds = Registry::new(
            &shared,
            Webhook {
                client,
                tokens: tokens.clone(),
                policy,
                request_timeout: config.request_timeout,
            },
            EventBridgeKind {
                client: eventbridge,
                settings: config.eventbridge.clone(),
            },
        );
        let (notices_tx, notices_rx) = mpsc::unbounded_channel();
        let worker = Arc::new(Worker {
            retry: config.retry.clone(),
            outcomes: outcomes_tx,
            blocked: Mutex::new(Arc::new(HashMap::new())),
            unblocked: wake.clone(),
            notices: notices_tx,
        });
        let (dispatch, inbox) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher::new(
            DispatchLimits {
                in_flight: LimitConfig {
                    min: config.min_in_flight_per_host,
                    max: config.max_in_flight_per_host,
                },
                max_queued_per_host: config.max_queued_per_host,
                host_breaker: config.breaker,
                endpoint_breaker: config.endpoint_breaker,
                batch_wait: config.eventbridge.batch_wait,
                lease_timeout: config.lease_timeout,
            },
            worker.clone(),
            store.clone(),
            inbox,
            dispatch.clone(),
        );
        let engine = Arc::new(Engine {
            targets: Arc::new(Targets::new(store.clone(), cipher, kinds)),
            store,
            node,
            config,
            tokens,
            worker,
            dispatch,
            held: Arc::new(AtomicUsize::new(0)),
            wake,
            spilled: AtomicBool::new(false),
            woke_others: AtomicI64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let mut tasks = vec![
            tokio::spawn(dispatcher.run()),
            tokio::spawn(engine.clone().record_loop(outcomes_rx)),
            tokio::spawn(engine.clone().schedule_loop()),
            tokio::spawn(engine.clone().heartbeat_loop()),
            tokio::spawn(engine.clone().prune_loop()),
            tokio::spawn(engine.clone().notice_loop(notices_rx)),
        ];
        if let Some(signals) = engine.store.listen(&engine.node).await? {
            tasks.push(tokio::spawn(engine.clone().signal_loop(signals)));
        }
        *engine.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        tracing::info!(node = %engine.node, "delivery engine started");
        Ok(engine)
    }

    /// Writes events with their deliveries (committed before this returns) and starts
    /// delivering them at once.
    pub async fn publish(
        self: &Arc<Self>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Ingested>, StoreError> {
        let claim = self.held.load(Ordering::Relaxed) < self.config.max_held;
        let results = self
            .store
            .ingest(
                events,
                Claim {
                    node: claim.then(|| self.node.clone()),
                    deferred: self.worker.blocked(),
                },
            )
            .await?;
        let mut claimed = Vec::new();
        let mut accepted = 0;
        for result in &results {
            if let Ingested::Created {
                deliveries,
                claimed: mine,
                ..
            } = result
            {
                accepted += 1;
                metrics::deliveries_created(deliveries.len());
                claimed.extend(mine.iter().filter_map(|&i| deliveries.get(i).cloned()));
            }
        }
        metrics::events_accepted(accepted);
        if claim {
            self.hand_over(claimed).await;
        } else {
            // Memory is full: the work waits in the database for whichever node has room.
            self.spilled.store(true, Ordering::Relaxed);
            self.wake.notify_one();
            self.wake_others();
        }
        Ok(results)
    }

    /// This node's id (its row in `nodes`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A subscription hookrelay had deactivated was made active again: its store hears
    /// of it (`hookrelay/subscription/reactivated`).
    pub fn reactivated(&self, store: &str, subscription_id: &str) {
        self.worker
            .notice(operational::reactivated(store, subscription_id));
    }

    /// Publishes operational events as they come (docs/delivery.md#operational-events),
    /// a batch at a time. Like outcomes they are facts: a failed write is tried again.
    async fn notice_loop(self: Arc<Self>, mut inbox: mpsc::UnboundedReceiver<NewEvent>) {
        let mut batch = Vec::with_capacity(64);
        while inbox.recv_many(&mut batch, 64).await > 0 {
            loop {
                match self.publish(batch.clone()).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, events = batch.len(), "cannot publish operational events; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            batch.clear();
        }
    }

    /// The operational events of a recorded batch: a delivery that ended FAILED (unless
    /// it was itself an operational event), and a subscription that was deactivated.
    fn notice_outcomes(&self, batch: &[Outcome], deactivated: &[String]) {
        let mut told = std::collections::HashSet::new();
        for outcome in batch {
            let Some(failed) = &outcome.failed else {
                continue;
            };
            let attempt = outcome.attempt.as_ref();
            let error = attempt.and_then(|a| a.error.as_deref());
            let status = attempt.and_then(|a| a.status_code);
            if !operational::is_operational(&failed.event_type) {
                self.worker.notice(operational::delivery_failed(
                    &outcome.store,
                    &outcome.subscription_id,
                    failed,
                    error,
                    status,
                ));
            }
            if deactivated.contains(&outcome.subscription_id)
                && told.insert(outcome.subscription_id.as_str())
            {
                self.worker.notice(operational::deactivated(
                    &outcome.store,
                    &outcome.subscription_id,
                    Some(failed),
                    error,
                ));
            }
        }
    }

    /// Something became due (a retry, a replay, a reactivation): look now, here and on
    /// every other node. Returns once the others have been told.
    pub async fn wake(&self) {
        self.announce(Signal::Wake).await;
    }

    /// A subscription changed or went away (here and on every other node). Returns once
    /// the others have been told, so that an API answer given after it is what every node
    /// delivers with next.
    pub async fn subscription_changed(&self, id: &str) {
        self.announce(Signal::Subscription(id.to_owned())).await;
    }

    /// An auth profile changed or went away: its cached token is dropped and every
    /// subscription resolves its auth again on its next attempt (on every node).
    pub async fn auth_profile_changed(&self, store: &str, id: &str) {
        self.announce(Signal::AuthProfile {
            store: store.to_owned(),
            id: id.to_owned(),
        })
        .await;
    }

    /// Applies `signal` here, then tells the other nodes.
    async fn announce(&self, signal: Signal) {
        self.apply(&signal);
        self.tell_others(signal).await;
    }

    /// What a signal means to this node, whichever node it comes from: forget what is
    /// cached of what changed, and look for due deliveries.
    fn apply(&self, signal: &Signal) {
        match signal {
            Signal::Wake => {}
            Signal::Subscription(id) => self.targets.invalidate(id),
            Signal::AuthProfile { store, id } => {
                self.tokens.invalidate(&format!("{store}/{id}"), None);
                self.targets.invalidate_all();
            }
            Signal::Resync => self.targets.invalidate_all(),
        }
        self.wake.notify_one();
    }

    /// Tells the other nodes that deliveries are due, at most every 50 ms, without
    /// waiting (this is on the ingest path).
    fn wake_others(self: &Arc<Self>) {
        let now = Utc::now().timestamp_millis();
        let last = self.woke_others.load(Ordering::Relaxed);
        if now - last >= WAKE_OTHERS_EVERY_MS
            && self
                .woke_others
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let engine = self.clone();
            tokio::spawn(async move { engine.tell_others(Signal::Wake).await });
        }
    }

    /// Broadcasts `signal` to the other nodes. A failure is only logged: the change is
    /// committed, and the others see it within their cache lifetime (5 s) and poll.
    async fn tell_others(&self, signal: Signal) {
        if let Err(e) = self.store.broadcast(&self.node, signal).await {
            tracing::warn!(error = %e, "cannot tell the other nodes");
        }
    }

    /// Applies what other nodes tell.
    async fn signal_loop(self: Arc<Self>, mut signals: mpsc::UnboundedReceiver<Signal>) {
        while let Some(signal) = signals.recv().await {
            self.apply(&signal);
        }
    }

    /// Deletes what is older than the retention period, a small batch at a time.
    async fn prune_loop(self: Arc<Self>) {
        let every =
            (self.config.retention / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
        loop {
            tokio::time::sleep(every).await;
            let Ok(retention) = chrono::Duration::from_std(self.config.retention) else {
                return;
            };
            // Portal links and sessions that have ended (docs/portal.md).
            if let Err(e) = self.store.prune_portal(Utc::now()).await {
                tracing::error!(error = %e, "cannot prune ended portal sessions");
            }
            let before = Utc::now() - retention;
            let mut pruned = 0;
            loop {
                match self.store.prune(before, PRUNE_BATCH).await {
                    Ok(n) => {
                        pruned += n;
                        if (n as usize) < PRUNE_BATCH {
                            break;
                        }
                        // Let ingest and outcomes have the database between batches.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot prune old events");
                        break;
                    }
                }
            }
            if pruned > 0 {
                metrics::pruned(pruned);
                tracing::debug!(
                    events = pruned,
                    "pruned events older than the retention period"
                );
            }
        }
    }

    /// This node's lanes now: in-flight counts, adaptive limits, round trips and open
    /// breakers (empty if the dispatcher has stopped).
    pub async fn lanes(&self) -> Vec<LaneStatus> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.dispatch.send(Msg::Snapshot(reply)).is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Refreshes the gauges that come from the database (before a scrape).
    pub async fn refresh_gauges(&self) {
        match self.store.backlog().await {
            Ok(b) => metrics::backlog(b),
            Err(e) => tracing::warn!(error = %e, "cannot read the delivery backlog"),
        }
        metrics::held(self.held.load(Ordering::Relaxed));
    }

    /// Resolves the targets of claimed deliveries and gives them to the dispatcher. A
    /// delivery whose target cannot be read now goes back to the database.
    async fn hand_over(&self, deliveries: Vec<ClaimedDelivery>) {
        if deliveries.is_empty() {
            return;
        }
        self.held.fetch_add(deliveries.len(), Ordering::Relaxed);
        let mut resolved = HashMap::new();
        let mut work = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let key = delivery.subscription_id.clone();
            let target = match resolved.get(&key) {
                Some(t) => Ok(Clone::clone(t)),
                None => {
                    let t = self.targets.get(&delivery.event.store, &key).await;
                    if let Ok(t) = &t {
                        resolved.insert(key, t.clone());
                    }
                    t
                }
            };
            match target {
                Ok(Some(target)) => work.push(Work { delivery, target }),
                Ok(None) => self.worker.record(Outcome {
                    seq: delivery.seq,
                    store: delivery.event.store.clone(),
                    subscription_id: delivery.subscription_id,
                    ordering_key: delivery.ordering_key,
                    attempt: None,
                    next: Next::Drop {
                        reason: "the subscription was deleted".into(),
                    },
                    failed: None,
                }),
                Err(e) => {
                    tracing::error!(error = %e, delivery_id = %delivery.id, "cannot resolve the subscription; retrying later");
                    self.worker.record(Outcome {
                        seq: delivery.seq,
                        store: delivery.event.store.clone(),
                        subscription_id: delivery.subscription_id,
                        ordering_key: delivery.ordering_key,
                        attempt: None,
                        next: Next::Release {
                            due_at: Some(Utc::now() + chrono::Duration::seconds(5)),
                        },
                        failed: None,
                    });
                }
            }
        }
        if !work.is_empty() && self.dispatch.send(Msg::Work(work)).is_err() {
            tracing::warn!("dispatcher is gone; deliveries stay leased until restart");
        }
    }

    async fn record_loop(self: Arc<Self>, mut inbox: mpsc::UnboundedReceiver<Outcome>) {
        let mut batch = Vec::with_capacity(OUTCOME_BATCH);
        while inbox.recv_many(&mut batch, OUTCOME_BATCH).await > 0 {
            let n = batch.len();
            let soonest = batch
                .iter()
                .filter_map(|o| match o.next {
                    Next::Retry { due_at } => Some(due_at),
                    Next::Release { due_at } => due_at,
                    _ => None,
                })
                .min();
            loop {
                // The next deliveries of ordered keys whose head ended are claimed here
                // while there is room, and delivered at once.
                let claim = Claim {
                    node: (self.held.load(Ordering::Relaxed) < self.config.max_held)
                        .then(|| self.node.clone()),
                    deferred: self.worker.blocked(),
                };
                match self
                    .store
                    .record_outcomes(&self.node, batch.clone(), claim)
                    .await
                {
                    Ok(recorded) => {
                        let deactivated = recorded.deactivated;
                        if batch.iter().any(|o| o.failed.is_some()) {
                            self.notice_outcomes(&batch, &deactivated);
                        }
                        if !deactivated.is_empty() {
                            metrics::deactivated(deactivated.len());
                            for id in &deactivated {
                                tracing::warn!(subscription_id = %id, "subscription deactivated");
                                self.announce(Signal::Subscription(id.clone())).await;
                            }
                        }
                        self.hand_over(recorded.next).await;
                        break;
                    }
                    Err(e) => {
                        // Outcomes are facts: never drop them; try again shortly.
                        tracing::error!(error = %e, outcomes = n, "cannot record outcomes; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            batch.clear();
            self.held.fetch_sub(n, Ordering::Relaxed);
            if let Some(due) = soonest {
                if due
                    <= Utc::now()
                        + chrono::Duration::from_std(self.config.poll_interval).unwrap_or_default()
                {
                    self.wake.notify_one();
                }
            } else if self.spilled.swap(false, Ordering::Relaxed) {
                // Room was freed: the scheduler may claim what ingest left in the database.
                self.wake.notify_one();
            }
        }
    }

    async fn schedule_loop(self: Arc<Self>) {
        loop {
            let room = self
                .config
                .max_held
                .saturating_sub(self.held.load(Ordering::Relaxed));
            let mut full_batch = false;
            let mut claimed_none = false;
            if room > 0 {
                let limit = room.min(CLAIM_BATCH);
                let blocked = self.worker.blocked().keys().cloned().collect();
                match self.store.claim_due(&self.node, limit, blocked).await {
                    Ok(claimed) => {
                        full_batch = claimed.len() == limit;
                        claimed_none = claimed.is_empty();
                        self.hand_over(claimed).await;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot claim due deliveries"),
                }
            }
            if room == 0 || (full_batch && room <= CLAIM_BATCH) {
                // Memory is full and more may be due: look again as soon as room frees up.
                self.spilled.store(true, Ordering::Relaxed);
            } else if full_batch {
                continue;
            }
            let mut wait = self.config.poll_interval;
            if room > 0 {
                if let Ok(Some(due)) = self.store.next_due().await {
                    match (due - Utc::now()).to_std() {
                        Ok(until) => wait = wait.min(until.max(Duration::from_millis(5))),
                        // Due already, yet nothing was claimed: what is due belongs to
                        // blocked subscriptions. Their unblocking wakes us; until then
                        // poll at the usual pace instead of every few milliseconds.
                        Err(_) if claimed_none => {}
                        Err(_) => wait = Duration::from_millis(5),
                    }
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let every = (self.config.lease_timeout / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            let beat = self
                .store
                .heartbeat(&self.node, self.config.lease_timeout)
                .await;
            if self.store.take_leases_lost() {
                // What this node holds now belongs to others: sending it would only send
                // it twice. Requests already in flight finish; their outcomes are skipped.
                tracing::warn!("another node took this node's deliveries after a silence longer than the lease; dropping what waits here");
                metrics::leases_lost();
                let _ = self.dispatch.send(Msg::Forget);
            }
            match beat {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(
                        deliveries = n,
                        "took back deliveries of a node that stopped"
                    );
                    self.wake.notify_one();
                    self.wake_others();
                }
                Err(e) => tracing::error!(error = %e, "heartbeat failed"),
            }
        }
    }

    /// Stops delivering: waits up to `grace` for requests in flight and their outcomes,
    /// then hands back what this node still holds.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.dispatch.send(Msg::Stop);
        let deadline = tokio::time::Instant::now() + grace;
        while self.held.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
        match self.store.leave(&self.node).await {
            Ok(n) => tracing::info!(handed_back = n, "delivery engine stopped"),
            Err(e) => {
                tracing::error!(error = %e, "cannot hand back deliveries; they return after the lease timeout")
            }
        }
    }
}
