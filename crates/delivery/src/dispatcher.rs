//! The dispatcher: one task that owns every lane's queue, in-flight count, adaptive limit
//! and circuit breakers (docs/delivery.md "Isolation", "Concurrency", "Blocking a failing
//! destination").
//!
//! A lane is what requests are bounded by, as its destination kind says
//! (docs/destinations.md): a webhook's `host:port`, an EventBridge region and call, a
//! queue, a topic, an exchange, a subject. Work arrives as claimed deliveries with their resolved
//! target.
//! - Each lane runs at most its adaptive limit of requests at once (between
//!   `min_in_flight_per_host` and `max_in_flight_per_host`, see [`AdaptiveLimit`]); the
//!   rest wait in the lane's queue, up to `max_queued_per_host`, beyond which deliveries
//!   go back to the database, due when half the queue should have drained (its length
//!   over the lane's limit and round trip, 50 ms to 60 s), and the lane's subscriptions
//!   are left out of claims until it has.
//! - Two breakers judge a lane. The host breaker counts the host's own failures (no
//!   answer: DNS, refused or reset connections, connect and TLS errors) and pauses the
//!   whole lane. Each endpoint (a webhook URL) has a breaker of its own that counts the
//!   answers it gave (5xx, 429, other 4xx, response timeouts) and pauses that endpoint's
//!   subscriptions alone, so one store's broken path on an integrator's host blocks
//!   nobody else on it. A paused lane or endpoint has its queued deliveries handed back,
//!   due when the pause ends.
//!
//! So a slow, failing or paused destination holds a bounded share of memory and never
//! delays the others.
//!
//! A subscription with a rate limit passes a gate of its own before its lane
//! ([`crate::rate`]): a delivery moves on to the lane when a slot reserved from the store
//! comes, so that the nodes together keep to the limit.
//!
//! A lane that takes batches (every kind but webhooks) sends up to its batch limit per
//! request. A full
//! batch goes at once; a partial one waits up to `batch_wait` for more, so a steady
//! trickle of events still makes few calls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookrelay_store::{ClaimedDelivery, Next, Outcome, Store};
use tokio::sync::{mpsc, oneshot};

use crate::breaker::{Breaker, BreakerConfig};
use crate::concurrency::{AdaptiveLimit, LimitConfig};
use crate::destinations::Verdict;
use crate::metrics;
use crate::operational;
use crate::rate::Gate;
use crate::target::Target;
use crate::worker::Worker;

/// A claimed delivery and where it goes.
pub struct Work {
    pub delivery: ClaimedDelivery,
    pub target: Arc<Target>,
}

/// What a finished request tells its lane.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub verdict: Verdict,
    /// The request's round trip, when the host answered.
    pub rtt: Option<Duration>,
}

pub enum Msg {
    Work(Vec<Work>),
    /// A request of `lane` (to `endpoint`, when the lane has endpoints) finished.
    Done {
        lane: Arc<str>,
        endpoint: Option<Arc<str>>,
        report: Report,
    },
    /// Answer what the lanes look like now.
    Snapshot(oneshot::Sender<Vec<LaneStatus>>),
    /// Send slots were reserved for a rate-limited subscription: `count`, the first
    /// `first_in` from now.
    Slots {
        subscription: String,
        first_in: Duration,
        count: u32,
    },
    /// Stop starting requests; hand back what waits.
    Stop,
    /// This node's leases were taken by another: hand back what waits, unsent.
    Forget,
}

#[derive(Debug, Clone, Copy)]
pub struct DispatchLimits {
    pub in_flight: LimitConfig,
    pub max_queued_per_host: usize,
    /// Judges a lane by its host's own failures.
    pub host_breaker: BreakerConfig,
    /// Judges an endpoint by its answers.
    pub endpoint_breaker: BreakerConfig,
    /// How long a partial batch waits for more deliveries.
    pub batch_wait: Duration,
    /// A node silent longer than this loses its deliveries to the others.
    pub lease_timeout: Duration,
}

/// One lane as this node sees it (GraphQL `hosts`, `/metrics`).
#[derive(Debug, Clone)]
pub struct LaneStatus {
    /// `host:port`, or `eventbridge:{region}:{call}`.
    pub lane: String,
    pub in_flight: usize,
    pub queued: usize,
    pub limit: usize,
    pub rtt: Option<Duration>,
    /// While the host breaker is open: since and until when.
    pub paused: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The lane's endpoints whose breaker is open: the URL without its query (which may
    /// carry secrets), since and until when.
    pub paused_endpoints: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
}

/// An endpoint of a lane: its breaker and the subscriptions seen going to it.
struct Endpoint {
    breaker: Breaker,
    subscriptions: Seen,
    /// Its stores were told it is blocked, and not yet that it is unblocked.
    announced: bool,
}

/// Subscriptions seen going somewhere, each with its store.
type Seen = HashMap<String, String>;

struct Lane {
    queue: VecDeque<Work>,
    /// Requests in flight (a batch is one request).
    in_flight: usize,
    limit: AdaptiveLimit,
    /// The host breaker.
    breaker: Breaker,
    endpoints: HashMap<Arc<str>, Endpoint>,
    /// The subscriptions seen going to this lane (to leave out of claims while blocked).
    subscriptions: Seen,
    /// Its stores were told the host is blocked, and not yet that it is unblocked.
    announced: bool,
    saturated: bool,
    /// Deliveries per request at most when the lane takes batches; `None`: one.
    batch: Option<usize>,
    /// When the oldest delivery of a partial batch started waiting.
    waiting_since: Option<Instant>,
}

/// The shortest and the longest a saturated lane's overflow waits in the database.
const OVERFLOW_WAIT: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(60));

impl Lane {
    /// Deliveries the lane completes per second at its current limit and round trip.
    fn drain_rate(&self) -> Option<f64> {
        let rtt = self.limit.rtt()?.as_secs_f64();
        (rtt > 0.0).then(|| self.limit.current() as f64 / rtt)
    }

    /// How long overflow should wait: until half the queue has drained.
    fn overflow_wait(&self) -> Duration {
        let (least, most) = OVERFLOW_WAIT;
        match self.drain_rate() {
            Some(rate) => {
                Duration::from_secs_f64(self.queue.len() as f64 / 2.0 / rate).clamp(least, most)
            }
            // Before the first answer the rate is unknown: look again soon.
            None => Duration::from_millis(100),
        }
    }

    /// The endpoint `url` of this lane, made on first sight.
    fn endpoint(&mut self, url: &Arc<str>, breaker: BreakerConfig) -> &mut Endpoint {
        self.endpoints
            .entry(url.clone())
            .or_insert_with(|| Endpoint {
                breaker: Breaker::new(breaker),
                subscriptions: HashMap::new(),
                announced: false,
            })
    }

    fn has_room(&self) -> bool {
        self.in_flight < self.limit.current()
    }

    /// Counts a request that starts now.
    fn start_one(&mut self) {
        self.in_flight += 1;
        self.limit.started(self.in_flight);
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.in_flight == 0
            && self.queue.is_empty()
            && self.breaker.is_idle(now)
            && self.endpoints.is_empty()
    }
}

/// Notes subscription `id` of `store`, without allocating when it is there already (the
/// common case).
fn note(seen: &mut Seen, id: &str, store: &str) {
    if !seen.contains_key(id) {
        seen.insert(id.to_owned(), store.to_owned());
    }
}

/// Tells each store with subscriptions in `seen` that `destination` is blocked until
/// `until`, or (`None`) unblocked (docs/delivery.md#operational-events).
fn announce(
    worker: &Worker,
    scope: operational::Scope,
    destination: &str,
    until: Option<DateTime<Utc>>,
    seen: &Seen,
) {
    let mut by_store: HashMap<&str, Vec<String>> = HashMap::new();
    for (id, store) in seen {
        by_store.entry(store).or_default().push(id.clone());
    }
    for (store, mut ids) in by_store {
        ids.sort();
        worker.notice(operational::destination(
            store,
            scope,
            destination,
            until,
            ids,
        ));
    }
}

/// The wall-clock time of `at`.
fn wall(now: Instant, at: Instant) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(at.saturating_duration_since(now)).unwrap_or_default()
}

/// An endpoint URL as operators see it: without its query string.
fn shown(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

pub struct Dispatcher {
    limits: DispatchLimits,
    lanes: HashMap<Arc<str>, Lane>,
    /// The gates of rate-limited subscriptions, by subscription id.
    gates: HashMap<String, Gate<Work>>,
    /// Where send slots are reserved.
    store: Arc<dyn Store>,
    /// The lanes that take batches (few: one per region and call), for the batch timer.
    batching: HashSet<Arc<str>>,
    worker: Arc<Worker>,
    inbox: mpsc::UnboundedReceiver<Msg>,
    me: mpsc::UnboundedSender<Msg>,
    stopping: bool,
    /// When the loop last woke (it wakes at least once a second).
    awake: Instant,
}

impl Dispatcher {
    pub fn new(
        limits: DispatchLimits,
        worker: Arc<Worker>,
        store: Arc<dyn Store>,
        inbox: mpsc::UnboundedReceiver<Msg>,
        me: mpsc::UnboundedSender<Msg>,
    ) -> Self {
        Dispatcher {
            limits,
            lanes: HashMap::new(),
            gates: HashMap::new(),
            store,
            batching: HashSet::new(),
            worker,
            inbox,
            me,
            stopping: false,
            awake: Instant::now(),
        }
    }

    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let flush_at = self.next_flush();
            let flush = async {
                match flush_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let slot_at = self.next_slot();
            let slot = async {
                match slot_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = self.inbox.recv() => {
                    self.woke();
                    match msg {
                        Some(Msg::Work(batch)) => {
                            let mut touched = HashSet::new();
                            for work in batch {
                                if let Some(lane) = self.accept(work) {
                                    touched.insert(lane);
                                }
                            }
                            let now = Instant::now();
                            for lane in touched {
                                self.pump(&lane, now);
                            }
                        }
                        Some(Msg::Done { lane, endpoint, report }) => self.done(lane, endpoint, report),
                        Some(Msg::Snapshot(reply)) => {
                            let _ = reply.send(self.snapshot());
                        }
                        Some(Msg::Slots { subscription, first_in, count }) => {
                            let now = Instant::now();
                            if let Some(gate) = self.gates.get_mut(&subscription) {
                                gate.reserved(now + first_in, count);
                            }
                            self.pump_gate(&subscription, now);
                        }
                        Some(Msg::Stop) => self.stop(),
                        Some(Msg::Forget) => self.forget(),
                        None => return,
                    }
                }
                _ = flush => {
                    self.woke();
                    let now = Instant::now();
                    let lanes: Vec<Arc<str>> = self.batching.iter().cloned().collect();
                    for lane in lanes {
                        self.pump(&lane, now);
                    }
                }
                _ = slot => {
                    self.woke();
                    let now = Instant::now();
                    let due: Vec<String> = self
                        .gates
                        .iter()
                        .filter(|(_, g)| g.next_due().is_some_and(|at| at <= now))
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in due {
                        self.pump_gate(&id, now);
                    }
                }
                _ = tick.tick() => {
                    self.woke();
                    self.housekeeping();
                }
            }
        }
    }

    /// When the oldest partial batch that could go has waited long enough.
    fn next_flush(&self) -> Option<Instant> {
        self.batching
            .iter()
            .filter_map(|name| self.lanes.get(name))
            .filter(|l| l.has_room())
            .filter_map(|l| l.waiting_since)
            .min()
            .map(|since| since + self.limits.batch_wait)
    }

    /// When the next rate-limited delivery may move on to its lane.
    fn next_slot(&self) -> Option<Instant> {
        self.gates.values().filter_map(|g| g.next_due()).min()
    }

    fn lane(&mut self, name: &Arc<str>, batch: Option<usize>) -> &mut Lane {
        let limits = self.limits;
        if batch.is_some() && !self.batching.contains(name) {
            self.batching.insert(name.clone());
        }
        self.lanes.entry(name.clone()).or_insert_with(|| Lane {
            queue: VecDeque::new(),
            in_flight: 0,
            limit: AdaptiveLimit::new(limits.in_flight),
            breaker: Breaker::new(limits.host_breaker),
            endpoints: HashMap::new(),
            subscriptions: HashMap::new(),
            announced: false,
            saturated: false,
            batch,
            waiting_since: None,
        })
    }

    fn release(&self, work: Work, due_in: Option<Duration>) {
        let due_at = due_in.map(|d| Utc::now() + chrono::Duration::from_std(d).unwrap_or_default());
        metrics::released();
        self.worker.record(Outcome {
            seq: work.delivery.seq,
            subscription_id: work.delivery.subscription_id,
            ordering_key: work.delivery.ordering_key,
            store: work.target.store.clone(),
            attempt: None,
            next: Next::Release { due_at },
            failed: None,
        });
    }

    /// Queues `work` in its lane (or hands it back); returns the lane to pump.
    fn accept(&mut self, work: Work) -> Option<Arc<str>> {
        if self.stopping {
            self.release(work, Some(Duration::ZERO));
            return None;
        }
        if !work.target.active {
            // Parked until the subscription is made active again.
            self.release(work, None);
            return None;
        }
        if let Some(rate) = work.target.rate_limit {
            self.gate(work, rate);
            return None;
        }
        self.enqueue(work)
    }

    /// Queues `work` at its subscription's gate (or hands it back when the gate is
    /// full), and lets through what may go.
    fn gate(&mut self, work: Work, rate: u32) {
        let now = Instant::now();
        let id = work.target.id.clone();
        let gate = self
            .gates
            .entry(id.clone())
            .or_insert_with(|| Gate::new(rate, now));
        if gate.per_second() != rate {
            gate.set_rate(rate);
        }
        if let Err(work) = gate.push(work) {
            let wait = gate.overflow_wait();
            let newly = !gate.saturated;
            gate.saturated = true;
            if newly {
                self.publish_blocked();
            }
            self.release(work, Some(wait));
            return;
        }
        self.pump_gate(&id, now);
    }

    /// Moves the works of `id`'s gate whose slot has come on to their lanes, and reserves
    /// more slots when the gate needs them.
    fn pump_gate(&mut self, id: &str, now: Instant) {
        let Some(gate) = self.gates.get_mut(id) else {
            return;
        };
        let due = gate.take_due(now);
        let wants = gate.wants().map(|n| (n, gate.per_second()));
        let drained = gate.saturated && gate.queued() < gate.capacity() / 2;
        if drained {
            gate.saturated = false;
        }
        if let Some((count, per_second)) = wants {
            let (store, me, subscription) = (self.store.clone(), self.me.clone(), id.to_owned());
            tokio::spawn(async move {
                let first_in = match store.reserve_slots(&subscription, per_second, count).await {
                    Ok(first_in) => first_in,
                    Err(e) => {
                        // The database will be back; until then this node alone paces the
                        // subscription, more slowly than its limit.
                        tracing::warn!(subscription_id = %subscription, error = %e, "cannot reserve rate-limit slots; trying again in a second");
                        Duration::from_secs(1)
                    }
                };
                let _ = me.send(Msg::Slots {
                    subscription,
                    first_in,
                    count,
                });
            });
        }
        for work in due {
            if let Some(lane) = self.enqueue(work) {
                self.pump(&lane, now);
            }
        }
        if drained {
            self.publish_blocked();
        }
    }

    /// Queues `work` in its lane (or hands it back); returns the lane to pump.
    fn enqueue(&mut self, work: Work) -> Option<Arc<str>> {
        let now = Instant::now();
        let limits = self.limits;
        let name = work.target.lane.clone();
        let batch = (work.target.batch_limit > 1).then_some(work.target.batch_limit);
        let lane = self.lane(&name, batch);
        note(&mut lane.subscriptions, &work.target.id, &work.target.store);
        if let Some(until) = lane.breaker.paused_until(now) {
            self.release(work, Some(until - now));
            return None;
        }
        if let Some(url) = &work.target.endpoint {
            let endpoint = lane.endpoint(url, limits.endpoint_breaker);
            note(
                &mut endpoint.subscriptions,
                &work.target.id,
                &work.target.store,
            );
            if let Some(until) = endpoint.breaker.paused_until(now) {
                self.release(work, Some(until - now));
                return None;
            }
        }
        if lane.queue.len() < limits.max_queued_per_host {
            lane.queue.push_back(work);
            if lane.batch.is_some() {
                lane.waiting_since.get_or_insert(now);
            }
            return Some(name);
        }
        let wait = lane.overflow_wait();
        if !lane.saturated {
            lane.saturated = true;
            self.publish_blocked();
        }
        self.release(work, Some(wait));
        None
    }

    /// Starts what `name` may start now: single deliveries while the lane is under its
    /// limit; for a batching lane, full batches, and a partial one once it has waited
    /// `batch_wait`.
    fn pump(&mut self, name: &Arc<str>, now: Instant) {
        let limits = self.limits;
        let Some(lane) = self.lanes.get_mut(name) else {
            return;
        };
        let mut singles = Vec::new();
        let mut batches = Vec::new();
        match lane.batch {
            None => {
                while lane.has_room() {
                    let Some(work) = lane.queue.pop_front() else {
                        break;
                    };
                    lane.start_one();
                    singles.push(work);
                }
            }
            Some(size) => {
                let waited = lane
                    .waiting_since
                    .is_some_and(|since| now >= since + limits.batch_wait);
                while lane.has_room()
                    && (lane.queue.len() >= size || (waited && !lane.queue.is_empty()))
                {
                    let n = size.min(lane.queue.len());
                    batches.push(lane.queue.drain(..n).collect::<Vec<_>>());
                    lane.start_one();
                }
            }
        }
        if lane.queue.is_empty() {
            lane.waiting_since = None;
        }
        let drained = lane.saturated && lane.queue.len() < limits.max_queued_per_host / 2;
        if drained {
            lane.saturated = false;
        }
        for work in singles {
            self.start(work);
        }
        for works in batches {
            self.start_batch(name.clone(), works);
        }
        if drained {
            self.publish_blocked();
        }
    }

    fn start(&self, work: Work) {
        let worker = self.worker.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            let lane = work.target.lane.clone();
            let endpoint = work.target.endpoint.clone();
            let report = worker.deliver(vec![work]).await;
            let _ = me.send(Msg::Done {
                lane,
                endpoint,
                report,
            });
        });
    }

    fn start_batch(&self, lane: Arc<str>, works: Vec<Work>) {
        let worker = self.worker.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            let report = worker.deliver(works).await;
            let _ = me.send(Msg::Done {
                lane,
                endpoint: None,
                report,
            });
        });
    }

    fn done(&mut self, name: Arc<str>, endpoint: Option<Arc<str>>, report: Report) {
        let now = Instant::now();
        let limits = self.limits;
        let Some(lane) = self.lanes.get_mut(&name) else {
            return;
        };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        // What the host and the endpoint are judged on: an answer, whatever it says, is
        // the host's success; only its status is the endpoint's matter.
        let (host_ok, endpoint_ok) = match report.verdict {
            Verdict::Succeeded => (Some(true), Some(true)),
            Verdict::EndpointFailed => (Some(true), Some(false)),
            Verdict::HostFailed => (Some(false), None),
            Verdict::NotSent => (None, None),
        };
        if host_ok.is_some() {
            lane.limit
                .finished(now, report.rtt, report.verdict == Verdict::HostFailed);
        }
        let host_opened = host_ok.and_then(|ok| lane.breaker.record(now, ok));
        if host_opened.is_none() && host_ok == Some(true) && lane.announced {
            lane.announced = false;
            tracing::info!(host = %name, "circuit breaker closed: the host answers again");
            announce(
                &self.worker,
                operational::Scope::Host,
                &name,
                None,
                &lane.subscriptions,
            );
        }
        if let Some(until) = host_opened {
            tracing::warn!(host = %name, pause_secs = (until - now).as_secs(), "circuit breaker opened: the host is failing");
            metrics::breaker_opened(metrics::HOST);
            lane.announced = true;
            announce(
                &self.worker,
                operational::Scope::Host,
                &name,
                Some(wall(now, until)),
                &lane.subscriptions,
            );
            let waiting: Vec<Work> = lane.queue.drain(..).collect();
            lane.waiting_since = None;
            self.pause(waiting, until - now);
            return;
        }
        let endpoint_opened = match (&endpoint, endpoint_ok) {
            (Some(url), Some(ok)) => {
                let e = lane.endpoint(url, limits.endpoint_breaker);
                let opened = e.breaker.record(now, ok);
                if let Some(until) = opened {
                    e.announced = true;
                    announce(
                        &self.worker,
                        operational::Scope::Endpoint,
                        &shown(url),
                        Some(wall(now, until)),
                        &e.subscriptions,
                    );
                } else if ok && e.announced {
                    e.announced = false;
                    tracing::info!(host = %name, endpoint = %shown(url), "circuit breaker closed: the endpoint answers again");
                    announce(
                        &self.worker,
                        operational::Scope::Endpoint,
                        &shown(url),
                        None,
                        &e.subscriptions,
                    );
                }
                opened
            }
            _ => None,
        };
        if let (Some(until), Some(url)) = (endpoint_opened, &endpoint) {
            tracing::warn!(host = %name, endpoint = %shown(url), pause_secs = (until - now).as_secs(), "circuit breaker opened: the endpoint is failing");
            metrics::breaker_opened(metrics::ENDPOINT);
            let (out, keep): (VecDeque<Work>, VecDeque<Work>) = lane
                .queue
                .drain(..)
                .partition(|w| w.target.endpoint.as_ref() == Some(url));
            lane.queue = keep;
            if lane.queue.is_empty() {
                lane.waiting_since = None;
            }
            self.pause(out.into(), until - now);
        }
        if self.stopping {
            return;
        }
        self.pump(&name, now);
    }

    /// Hands back what waited for a lane or endpoint whose breaker just opened, due when
    /// its pause ends, and leaves its subscriptions out of claims.
    fn pause(&self, waiting: Vec<Work>, pause: Duration) {
        for work in waiting {
            self.release(work, Some(pause));
        }
        self.publish_blocked();
    }

    /// Notes that the loop runs. It wakes at least once a second; a gap longer than the
    /// lease timeout means the process did not run (frozen, stopped, starved), so the
    /// other nodes may have taken its deliveries: what waits here is handed back before
    /// anything is sent, and comes back only if this node still holds it.
    fn woke(&mut self) {
        let now = Instant::now();
        let gap = now.saturating_duration_since(self.awake);
        self.awake = now;
        if gap > self.limits.lease_timeout {
            tracing::warn!(
                silent_ms = gap.as_millis() as u64,
                "this node did not run for longer than the lease; handing back what waits here unsent"
            );
            self.forget();
        }
    }

    /// Hands back every delivery waiting in a lane or gate, unsent and due at once
    /// (recording a release of a delivery whose lease was taken changes nothing).
    fn forget(&mut self) {
        let mut waiting: Vec<Work> = self
            .lanes
            .values_mut()
            .flat_map(|l| {
                l.waiting_since = None;
                l.queue.drain(..)
            })
            .collect();
        waiting.extend(self.gates.values_mut().flat_map(|g| g.drain()));
        for work in waiting {
            self.release(work, Some(Duration::ZERO));
        }
    }

    /// Starts nothing more, and hands back what waits.
    fn stop(&mut self) {
        self.stopping = true;
        self.forget();
    }

    /// Drops idle lanes and endpoints, refreshes the lanes' gauges and lifts ended
    /// pauses (once a second).
    fn housekeeping(&mut self) {
        let now = Instant::now();
        let (mut hosts_open, mut endpoints_open) = (0, 0);
        let worker = &self.worker;
        for (name, lane) in &mut self.lanes {
            lane.endpoints.retain(|url, e| {
                let idle = e.breaker.is_idle(now);
                if idle && e.announced {
                    // The pause ended and nothing has been sent there since: no longer
                    // blocked.
                    announce(
                        worker,
                        operational::Scope::Endpoint,
                        &shown(url),
                        None,
                        &e.subscriptions,
                    );
                }
                !idle
            });
            let open = lane.breaker.paused_until(now).is_some();
            hosts_open += usize::from(open);
            endpoints_open += lane
                .endpoints
                .values()
                .filter(|e| e.breaker.paused_until(now).is_some())
                .count();
            metrics::lane(
                name,
                lane.in_flight,
                lane.limit.current(),
                lane.limit.rtt(),
                open,
            );
        }
        self.lanes.retain(|name, l| {
            let idle = l.is_idle(now);
            if idle && l.announced {
                announce(
                    worker,
                    operational::Scope::Host,
                    name,
                    None,
                    &l.subscriptions,
                );
            }
            !idle
        });
        self.gates.retain(|_, g| !g.is_idle());
        let lanes = &self.lanes;
        self.batching.retain(|name| lanes.contains_key(name));
        metrics::breakers_open(hosts_open, endpoints_open);
        // Cheap (one pass over the lanes), and it is how an ended pause is lifted.
        self.publish_blocked();
    }

    fn snapshot(&self) -> Vec<LaneStatus> {
        let now = Instant::now();
        let mut lanes: Vec<LaneStatus> = self
            .lanes
            .iter()
            .map(|(name, lane)| {
                let mut paused_endpoints: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = lane
                    .endpoints
                    .iter()
                    .filter_map(|(url, e)| {
                        let (since, until) = e.breaker.pause(now)?;
                        Some((shown(url), wall(now, since), wall(now, until)))
                    })
                    .collect();
                paused_endpoints.sort();
                LaneStatus {
                    lane: name.to_string(),
                    in_flight: lane.in_flight,
                    queued: lane.queue.len(),
                    limit: lane.limit.current(),
                    rtt: lane.limit.rtt(),
                    paused: lane
                        .breaker
                        .pause(now)
                        .map(|(since, until)| (wall(now, since), wall(now, until))),
                    paused_endpoints,
                }
            })
            .collect();
        lanes.sort_by(|a, b| a.lane.cmp(&b.lane));
        lanes
    }

    /// Tells the scheduler and ingest which subscriptions to leave alone, and until when.
    fn publish_blocked(&self) {
        let now = Instant::now();
        let mut blocked: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut block = |ids: &Seen, due: DateTime<Utc>| {
            for id in ids.keys() {
                let at = blocked.entry(id.clone()).or_insert(due);
                *at = (*at).max(due);
            }
        };
        for lane in self.lanes.values() {
            match lane.breaker.paused_until(now) {
                Some(until) => block(&lane.subscriptions, wall(now, until)),
                None if lane.saturated => {
                    block(&lane.subscriptions, wall(now, now + lane.overflow_wait()))
                }
                None => {}
            }
            for endpoint in lane.endpoints.values() {
                if let Some(until) = endpoint.breaker.paused_until(now) {
                    block(&endpoint.subscriptions, wall(now, until));
                }
            }
        }
        for (id, gate) in &self.gates {
            if gate.saturated {
                let due = wall(now, now + gate.overflow_wait());
                let at = blocked.entry(id.clone()).or_insert(due);
                *at = (*at).max(due);
            }
        }
        self.worker.set_blocked(blocked);
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn endpoints_are_shown_without_their_query() {
        assert_eq!(
            shown("https://hooks.example.com/catch/1?token=s3cr3t"),
            "https://hooks.example.com/catch/1?…"
        );
        assert_eq!(
            shown("https://hooks.example.com/in"),
            "https://hooks.example.com/in"
        );
    }
}
