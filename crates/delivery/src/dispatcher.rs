//! The dispatcher: one task that owns every destination host's queue, its in-flight count
//! and its circuit breaker (SPEC §6 "Blocking a failing destination", "Isolation").
//!
//! Work arrives as claimed deliveries with their resolved target. Each host runs at most
//! `max_in_flight_per_host` requests; the rest wait in that host's queue, up to
//! `max_queued_per_host`, beyond which deliveries go back to the database (due shortly)
//! and the host's subscriptions are left out of claims until it drains. A host whose
//! breaker opens has its queue handed back, due when the pause ends. So a slow or failing
//! host holds a bounded share of memory and never delays the others.
//!
//! A host that takes batches (EventBridge: one "host" per region and call) sends up to
//! its batch limit per request. A full batch goes at once; a partial one waits up to
//! `batch_wait` for more, so a steady trickle of events still makes few calls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hookrelay_store::{ClaimedDelivery, Next, Outcome};
use tokio::sync::mpsc;

use crate::breaker::{Breaker, BreakerConfig};
use crate::metrics;
use crate::target::Target;
use crate::worker::Worker;

/// A claimed delivery and where it goes.
pub struct Work {
    pub delivery: ClaimedDelivery,
    pub target: Arc<Target>,
}

pub enum Msg {
    Work(Vec<Work>),
    /// A request to `host` finished; `success` is `None` when nothing was sent.
    Done {
        host: Arc<str>,
        success: Option<bool>,
    },
    /// Stop starting requests; hand back what waits.
    Stop,
}

#[derive(Debug, Clone, Copy)]
pub struct DispatchLimits {
    pub max_in_flight_per_host: usize,
    pub max_queued_per_host: usize,
    pub breaker: BreakerConfig,
    /// How long a partial batch waits for more deliveries.
    pub batch_wait: Duration,
}

struct Host {
    queue: VecDeque<Work>,
    /// Requests in flight (a batch is one request).
    in_flight: usize,
    breaker: Breaker,
    /// The subscriptions seen going to this host (to leave out of claims while blocked).
    subscriptions: HashSet<String>,
    saturated: bool,
    /// Deliveries per request at most when the host takes batches; `None`: one.
    batch: Option<usize>,
    /// When the oldest delivery of a partial batch started waiting.
    waiting_since: Option<Instant>,
}

pub struct Dispatcher {
    limits: DispatchLimits,
    hosts: HashMap<Arc<str>, Host>,
    /// The hosts that take batches (few: one per region and call), for the batch timer.
    batching: HashSet<Arc<str>>,
    worker: Arc<Worker>,
    inbox: mpsc::UnboundedReceiver<Msg>,
    me: mpsc::UnboundedSender<Msg>,
    stopping: bool,
}

impl Dispatcher {
    pub fn new(
        limits: DispatchLimits,
        worker: Arc<Worker>,
        inbox: mpsc::UnboundedReceiver<Msg>,
        me: mpsc::UnboundedSender<Msg>,
    ) -> Self {
        Dispatcher {
            limits,
            hosts: HashMap::new(),
            batching: HashSet::new(),
            worker,
            inbox,
            me,
            stopping: false,
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
            tokio::select! {
                msg = self.inbox.recv() => match msg {
                    Some(Msg::Work(batch)) => {
                        let mut touched = HashSet::new();
                        for work in batch {
                            if let Some(host) = self.accept(work) {
                                touched.insert(host);
                            }
                        }
                        let now = Instant::now();
                        for host in touched {
                            self.pump(&host, now);
                        }
                    }
                    Some(Msg::Done { host, success }) => self.done(host, success),
                    Some(Msg::Stop) => self.stop(),
                    None => return,
                },
                _ = flush => {
                    let now = Instant::now();
                    let hosts: Vec<Arc<str>> = self.batching.iter().cloned().collect();
                    for host in hosts {
                        self.pump(&host, now);
                    }
                }
                _ = tick.tick() => self.housekeeping(),
            }
        }
    }

    /// When the oldest partial batch that could go has waited long enough.
    fn next_flush(&self) -> Option<Instant> {
        self.batching
            .iter()
            .filter_map(|name| self.hosts.get(name))
            .filter(|h| h.in_flight < self.limits.max_in_flight_per_host)
            .filter_map(|h| h.waiting_since)
            .min()
            .map(|since| since + self.limits.batch_wait)
    }

    fn host(&mut self, name: &Arc<str>, batch: Option<usize>) -> &mut Host {
        let breaker = self.limits.breaker;
        if batch.is_some() {
            self.batching.insert(name.clone());
        }
        self.hosts.entry(name.clone()).or_insert_with(|| Host {
            queue: VecDeque::new(),
            in_flight: 0,
            breaker: Breaker::new(breaker),
            subscriptions: HashSet::new(),
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
            store: work.target.store.clone(),
            attempt: None,
            next: Next::Release { due_at },
        });
    }

    /// Queues `work` on its host (or hands it back); returns the host to pump.
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
        let now = Instant::now();
        let limits = self.limits;
        let name = work.target.host.clone();
        let host = self.host(&name, work.target.batch_limit());
        host.subscriptions.insert(work.target.id.clone());
        if let Some(until) = host.breaker.paused_until(now) {
            self.release(work, Some(until - now));
            return None;
        }
        if host.queue.len() < limits.max_queued_per_host {
            host.queue.push_back(work);
            if host.batch.is_some() {
                host.waiting_since.get_or_insert(now);
            }
            return Some(name);
        }
        if !host.saturated {
            host.saturated = true;
            self.publish_blocked();
        }
        self.release(work, Some(Duration::from_secs(1)));
        None
    }

    /// Starts what `name` may start now: single deliveries while there is room in flight;
    /// for a batching host, full batches, and a partial one once it has waited
    /// `batch_wait`.
    fn pump(&mut self, name: &Arc<str>, now: Instant) {
        let limits = self.limits;
        let Some(host) = self.hosts.get_mut(name) else {
            return;
        };
        let mut singles = Vec::new();
        let mut batches = Vec::new();
        match host.batch {
            None => {
                while host.in_flight < limits.max_in_flight_per_host {
                    let Some(work) = host.queue.pop_front() else {
                        break;
                    };
                    host.in_flight += 1;
                    singles.push(work);
                }
            }
            Some(size) => {
                let waited = host
                    .waiting_since
                    .is_some_and(|since| now >= since + limits.batch_wait);
                while host.in_flight < limits.max_in_flight_per_host
                    && (host.queue.len() >= size || (waited && !host.queue.is_empty()))
                {
                    let n = size.min(host.queue.len());
                    batches.push(host.queue.drain(..n).collect::<Vec<_>>());
                    host.in_flight += 1;
                }
            }
        }
        if host.queue.is_empty() {
            host.waiting_since = None;
        }
        let drained = host.saturated && host.queue.len() < limits.max_queued_per_host / 2;
        if drained {
            host.saturated = false;
        }
        for work in singles {
            self.start(work);
        }
        for works in batches {
            self.start_batch(works);
        }
        if drained {
            self.publish_blocked();
        }
    }

    fn start(&self, work: Work) {
        let worker = self.worker.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            let host = work.target.host.clone();
            let success = worker.deliver(work).await;
            let _ = me.send(Msg::Done { host, success });
        });
    }

    fn start_batch(&self, works: Vec<Work>) {
        let Some(host) = works.first().map(|w| w.target.host.clone()) else {
            return;
        };
        let worker = self.worker.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            let success = worker.deliver_batch(works).await;
            let _ = me.send(Msg::Done { host, success });
        });
    }

    fn done(&mut self, name: Arc<str>, success: Option<bool>) {
        let now = Instant::now();
        let Some(host) = self.hosts.get_mut(&name) else {
            return;
        };
        host.in_flight = host.in_flight.saturating_sub(1);
        let opened = match success {
            Some(ok) if host.breaker.paused_until(now).is_none() => host.breaker.record(now, ok),
            _ => None,
        };
        if let Some(until) = opened {
            tracing::warn!(host = %name, pause_secs = (until - now).as_secs(), "circuit breaker opened: too many failures");
            metrics::breaker_opened();
            let waiting: Vec<Work> = host.queue.drain(..).collect();
            host.waiting_since = None;
            for work in waiting {
                self.release(work, Some(until - now));
            }
            self.publish_blocked();
            return;
        }
        if self.stopping {
            return;
        }
        self.pump(&name, now);
    }

    fn stop(&mut self) {
        self.stopping = true;
        let waiting: Vec<Work> = self
            .hosts
            .values_mut()
            .flat_map(|h| {
                h.waiting_since = None;
                h.queue.drain(..)
            })
            .collect();
        for work in waiting {
            self.release(work, Some(Duration::ZERO));
        }
    }

    /// Drops idle hosts and lifts ended pauses (once a second).
    fn housekeeping(&mut self) {
        let now = Instant::now();
        self.hosts
            .retain(|_, h| h.in_flight > 0 || !h.queue.is_empty() || !h.breaker.is_idle(now));
        let hosts = &self.hosts;
        self.batching.retain(|name| hosts.contains_key(name));
        let open = self
            .hosts
            .values()
            .filter(|h| h.breaker.paused_until(now).is_some())
            .count();
        metrics::breakers_open(open);
        // Cheap (one pass over the hosts), and it is how an ended pause is lifted.
        self.publish_blocked();
    }

    /// Tells the scheduler and ingest which subscriptions to leave alone, and until when.
    fn publish_blocked(&self) {
        let now = Instant::now();
        let wall = Utc::now();
        let mut blocked = HashMap::new();
        for h in self.hosts.values() {
            let wait = match h.breaker.paused_until(now) {
                Some(until) => until - now,
                None if h.saturated => Duration::from_secs(1),
                None => continue,
            };
            let due = wall + chrono::Duration::from_std(wait).unwrap_or_default();
            for id in &h.subscriptions {
                blocked.insert(id.clone(), due);
            }
        }
        self.worker.set_blocked(blocked);
    }
}
