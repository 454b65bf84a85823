//! Rate limits per subscription (docs/delivery.md#rate-limits).
//!
//! A subscription with a `rateLimit` of R requests per second has a gate in the
//! dispatcher. Its deliveries queue there and move on to their lane one per *slot*, a
//! slot every 1/R seconds. Slots are reserved from the store a few at a time (about a
//! tenth of a second's worth), so that the nodes of a cluster share one rate: the store
//! keeps, per subscription, the time up to which slots are taken, and each reservation
//! moves it on by n/R seconds from that time or from now, whichever is later (GCRA's
//! theoretical arrival time). Slots a node cannot use because its queue ran dry are given
//! up, never saved for a burst.
//!
//! Waiting at the gate uses no attempt. A gate holds about two seconds of its rate; what
//! comes beyond that goes back to the database, due when half the queue should have gone,
//! and the subscription is left out of claims until then.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The shortest and the longest overflow waits in the database.
const OVERFLOW_WAIT: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(60));

/// One subscription's gate.
pub struct Gate<W> {
    per_second: u32,
    queue: VecDeque<W>,
    /// The next reserved slot, and how many are reserved from it on.
    next_slot: Instant,
    slots: u32,
    /// A reservation is under way.
    reserving: bool,
    /// The queue is full: overflow goes back to the database and the subscription is left
    /// out of claims until it has half drained.
    pub saturated: bool,
}

impl<W> Gate<W> {
    pub fn new(per_second: u32, now: Instant) -> Self {
        Gate {
            per_second: per_second.max(1),
            queue: VecDeque::new(),
            next_slot: now,
            slots: 0,
            reserving: false,
            saturated: false,
        }
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// The subscription's limit changed.
    pub fn set_rate(&mut self, per_second: u32) {
        self.per_second = per_second.max(1);
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.per_second))
    }

    /// Deliveries the gate holds at most: two seconds of its rate, at least 16.
    pub fn capacity(&self) -> usize {
        (self.per_second as usize).saturating_mul(2).clamp(16, 8192)
    }

    /// Slots asked for at once: a tenth of a second's worth, at least one.
    fn chunk(&self) -> u32 {
        (self.per_second / 10).max(1)
    }

    /// Deliveries waiting at the gate.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues `work`; hands it back when the gate is full.
    pub fn push(&mut self, work: W) -> Result<(), W> {
        if self.queue.len() >= self.capacity() {
            return Err(work);
        }
        self.queue.push_back(work);
        Ok(())
    }

    /// The works whose slot has come, oldest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<W> {
        let mut due = Vec::new();
        let interval = self.interval();
        while self.slots > 0 && self.next_slot <= now {
            let Some(work) = self.queue.pop_front() else {
                break;
            };
            due.push(work);
            self.slots -= 1;
            self.next_slot += interval;
        }
        if self.queue.is_empty() {
            // Unused slots are given up: saved, they would make a burst later.
            self.slots = 0;
        }
        due
    }

    /// How many slots to reserve now, if any; the reservation is then under way until
    /// [`Gate::reserved`].
    pub fn wants(&mut self) -> Option<u32> {
        if self.reserving || self.slots > 0 || self.queue.is_empty() {
            return None;
        }
        self.reserving = true;
        Some(self.chunk().min(self.queue.len() as u32))
    }

    /// `count` slots were reserved, the first at `first`, then one every interval.
    pub fn reserved(&mut self, first: Instant, count: u32) {
        self.reserving = false;
        self.next_slot = first;
        self.slots = count;
    }

    /// When the next work may go, if one waits with a slot reserved for it.
    pub fn next_due(&self) -> Option<Instant> {
        (self.slots > 0 && !self.queue.is_empty()).then_some(self.next_slot)
    }

    /// How long overflow should wait in the database: until half the queue has gone.
    pub fn overflow_wait(&self) -> Duration {
        let (least, most) = OVERFLOW_WAIT;
        Duration::from_secs_f64(self.queue.len() as f64 / 2.0 / f64::from(self.per_second))
            .clamp(least, most)
    }

    /// Empties the gate (a breaker opened, or the node is stopping).
    pub fn drain(&mut self) -> Vec<W> {
        self.slots = 0;
        self.queue.drain(..).collect()
    }

    /// Nothing waits and no reservation is under way: the gate can go.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && !self.reserving
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_lets_one_through_per_slot_and_gives_up_unused_slots() {
        let start = Instant::now();
        let mut gate = Gate::new(20, start);
        assert_eq!(gate.capacity(), 40);
        for i in 0..5 {
            gate.push(i).unwrap();
        }
        // Nothing goes before slots are reserved; 20/s asks for 2 at a time.
        assert!(gate.take_due(start).is_empty());
        assert_eq!(gate.wants(), Some(2));
        assert_eq!(gate.wants(), None, "one reservation at a time");
        gate.reserved(start, 2);
        assert_eq!(gate.take_due(start), vec![0]);
        assert_eq!(gate.next_due(), Some(start + Duration::from_millis(50)));
        assert!(gate.take_due(start + Duration::from_millis(49)).is_empty());
        assert_eq!(gate.take_due(start + Duration::from_millis(50)), vec![1]);
        assert_eq!(gate.next_due(), None, "the reserved slots are used up");
        assert_eq!(gate.wants(), Some(2));
        gate.reserved(start + Duration::from_millis(100), 2);
        // A late pump takes every slot that has come, no more.
        assert_eq!(gate.take_due(start + Duration::from_secs(1)), vec![2, 3]);
        gate.reserved(start + Duration::from_secs(1), 5);
        assert_eq!(gate.take_due(start + Duration::from_secs(2)), vec![4]);
        // The queue ran dry: the three slots left are given up.
        gate.push(5).unwrap();
        assert!(gate.take_due(start + Duration::from_secs(2)).is_empty());
        assert_eq!(gate.wants(), Some(1));
    }

    #[test]
    fn a_full_gate_hands_work_back_and_says_how_long_to_wait() {
        let now = Instant::now();
        // Two seconds of 5/s is 10: the floor of 16 holds.
        let mut gate = Gate::new(5, now);
        assert_eq!(gate.capacity(), 16);
        for i in 0..16 {
            gate.push(i).unwrap();
        }
        assert_eq!(gate.push(16), Err(16));
        assert_eq!(gate.overflow_wait().as_millis(), 1600);
        assert_eq!(gate.drain().len(), 16);
        assert!(gate.is_idle());
    }
}
