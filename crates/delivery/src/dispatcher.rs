//! The dispatcher: one task that owns every destination host's queue, its in-flight count
//! and its circuit breaker (SPEC §6 "Blocking a failing destination", "Isolation").
//!
//! Work arrives as claimed deliveries with their resolved target. Each host runs at most
//! `max_in_flight_per_host` requests; the rest wait in that host's queue, up to
//! `max_queued_per_host`, beyond which deliveries go back to the database (due shortly)
//! and the host's subscriptions are left out of claims until it drains. A host whose
//! breaker opens has its queue handed back, due when the pause ends. So a slow or failing
//! host holds a bounded share of memory and never delays the others.

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
}

struct Host {
    queue: VecDeque<Work>,
    in_flight: usize,
    breaker: Breaker,
    /// The subscriptions seen going to this host (to leave out of claims while blocked).
    subscriptions: HashSet<String>,
    saturated: bool,
}

pub struct Dispatcher {
    limits: DispatchLimits,
    hosts: HashMap<Arc<str>, Host>,
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
            tokio::select! {
                msg = self.inbox.recv() => match msg {
                    Some(Msg::Work(batch)) => {
                        for work in batch {
                            self.accept(work);
                        }
                    }
                    Some(Msg::Done { host, success }) => self.done(host, success),
                    Some(Msg::Stop) => self.stop(),
                    None => return,
                },
                _ = tick.tick() => self.housekeeping(),
            }
        }
    }

    fn host(&mut self, name: &Arc<str>) -> &mut Host {
        let breaker = self.limits.breaker;
        self.hosts.entry(name.clone()).or_insert_with(|| Host {
            queue: VecDeque::new(),
            in_flight: 0,
            breaker: Breaker::new(breaker),
            subscriptions: HashSet::new(),
            saturated: false,
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

    fn accept(&mut self, work: Work) {
        if self.stopping {
            return self.release(work, Some(Duration::ZERO));
        }
        if !work.target.active {
            // Parked until the subscription is made active again.
            return self.release(work, None);
        }
        let now = Instant::now();
        let limits = self.limits;
        let name = work.target.host.clone();
        let host = self.host(&name);
        host.subscriptions.insert(work.target.id.clone());
        if let Some(until) = host.breaker.paused_until(now) {
            return self.release(work, Some(until - now));
        }
        if host.in_flight < limits.max_in_flight_per_host {
            host.in_flight += 1;
            self.start(work);
        } else if host.queue.len() < limits.max_queued_per_host {
            host.queue.push_back(work);
        } else {
            if !host.saturated {
                host.saturated = true;
                self.publish_blocked();
            }
            self.release(work, Some(Duration::from_secs(1)));
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

    fn done(&mut self, name: Arc<str>, success: Option<bool>) {
        let now = Instant::now();
        let limits = self.limits;
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
            for work in waiting {
                self.release(work, Some(until - now));
            }
            self.publish_blocked();
            return;
        }
        if self.stopping {
            return;
        }
        let mut ready = Vec::new();
        while host.in_flight < limits.max_in_flight_per_host {
            let Some(work) = host.queue.pop_front() else {
                break;
            };
            host.in_flight += 1;
            ready.push(work);
        }
        let drained = host.saturated && host.queue.len() < limits.max_queued_per_host / 2;
        if drained {
            host.saturated = false;
        }
        for work in ready {
            self.start(work);
        }
        if drained {
            self.publish_blocked();
        }
    }

    fn stop(&mut self) {
        self.stopping = true;
        let waiting: Vec<Work> = self
            .hosts
            .values_mut()
            .flat_map(|h| h.queue.drain(..))
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
