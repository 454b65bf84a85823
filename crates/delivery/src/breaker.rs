//! The per-host circuit breaker (docs/delivery.md#blocking-a-failing-destination): over a
//! sliding window, once at least `min_requests` requests were made and fewer than
//! `min_success_ratio` of them succeeded, requests to the host pause for `pause`.
//!
//! The window is a ring of [`BUCKETS`] time buckets, so recording is O(1) (at most one
//! pass over the ring to expire old buckets) and memory is constant however many requests
//! a host gets. The window therefore slides in steps of `window / BUCKETS`: a result
//! counts for between `window - window/BUCKETS` and `window`. The dispatcher owns one
//! breaker per host and calls it from one task, hence `&mut self` and no locks.

use std::time::{Duration, Instant};

/// Number of buckets the window is cut into.
pub const BUCKETS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Length of the sliding window.
    pub window: Duration,
    /// The breaker never opens on fewer requests than this in the window: a handful of
    /// failures says little about a host.
    pub min_requests: u32,
    /// It opens when successes / requests falls below this.
    pub min_success_ratio: f64,
    /// How long requests to the host wait once it opened.
    pub pause: Duration,
}

impl Default for BreakerConfig {
    /// BigCommerce's rule: 100 requests in 2 minutes under 90 % success pause 3 minutes.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(120),
            min_requests: 100,
            min_success_ratio: 0.9,
            pause: Duration::from_secs(180),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    requests: u64,
    successes: u64,
}

/// One destination host's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    bucket_len: Duration,
    buckets: [Bucket; BUCKETS],
    /// Time zero of the bucket numbering; set by the first result of a fresh window.
    epoch: Option<Instant>,
    /// Absolute number of the newest bucket; the window is `head - BUCKETS + 1 ..= head`.
    head: u64,
    requests: u64,
    successes: u64,
    paused_until: Option<Instant>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        // A zero window would divide by zero; one nanosecond per bucket means "no memory".
        let bucket_len = (config.window / BUCKETS as u32).max(Duration::from_nanos(1));
        Self {
            config,
            bucket_len,
            buckets: [Bucket::default(); BUCKETS],
            epoch: None,
            head: 0,
            requests: 0,
            successes: 0,
            paused_until: None,
        }
    }

    /// Records one finished request at `now`. Returns `Some(until)` if this record opened
    /// the breaker. Results that arrive while paused (requests that were already in
    /// flight when it opened) are ignored: the pause already says the host is failing,
    /// and the window after the pause should judge the host afresh.
    pub fn record(&mut self, now: Instant, success: bool) -> Option<Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return None;
            }
            self.paused_until = None;
        }

        let epoch = *self.epoch.get_or_insert(now);
        let index = self.bucket_index(epoch, now);
        if index > self.head {
            self.advance(index);
        } else if index + (BUCKETS as u64) <= self.head {
            // Older than the window (an out-of-order `now` from a slow task): it no
            // longer counts anyway.
            return None;
        }
        let bucket = &mut self.buckets[(index % BUCKETS as u64) as usize];
        bucket.requests += 1;
        self.requests += 1;
        if success {
            bucket.successes += 1;
            self.successes += 1;
        }

        if self.requests >= u64::from(self.config.min_requests)
            && (self.successes as f64 / self.requests as f64) < self.config.min_success_ratio
        {
            let until = now + self.config.pause;
            self.paused_until = Some(until);
            // The window after the pause starts empty: a fresh chance.
            self.clear();
            return Some(until);
        }
        None
    }

    /// `Some(until)` while paused.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| now < *until)
    }

    /// `Some((since, until))` while paused: a pause always lasts the configured time.
    pub fn pause(&self, now: Instant) -> Option<(Instant, Instant)> {
        let until = self.paused_until(now)?;
        Some((until.checked_sub(self.config.pause).unwrap_or(now), until))
    }

    /// True when the window holds nothing and the breaker is not paused, so the
    /// dispatcher can drop it without losing anything.
    pub fn is_idle(&self, now: Instant) -> bool {
        if let Some(until) = self.paused_until {
            // The window was cleared when the pause began.
            return now >= until;
        }
        match self.epoch {
            None => true,
            Some(epoch) => {
                self.requests == 0 || self.bucket_index(epoch, now) >= self.head + BUCKETS as u64
            }
        }
    }

    /// The absolute number of the bucket `now` falls in.
    fn bucket_index(&self, epoch: Instant, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(epoch);
        // u128 -> u64: 2^64 buckets of at least 1 ns is more than 500 years.
        (elapsed.as_nanos() / self.bucket_len.as_nanos()) as u64
    }

    /// Moves the window's head to `index`, emptying the buckets that slide out.
    fn advance(&mut self, index: u64) {
        if index - self.head >= BUCKETS as u64 {
            self.buckets = [Bucket::default(); BUCKETS];
            self.requests = 0;
            self.successes = 0;
        } else {
            for n in self.head + 1..=index {
                let bucket = &mut self.buckets[(n % BUCKETS as u64) as usize];
                self.requests -= bucket.requests;
                self.successes -= bucket.successes;
                *bucket = Bucket::default();
            }
        }
        self.head = index;
    }

    fn clear(&mut self) {
        self.buckets = [Bucket::default(); BUCKETS];
        self.epoch = None;
        self.head = 0;
        self.requests = 0;
        self.successes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Records `n` results at `at`; returns the first opening.
    fn record_n(b: &mut Breaker, at: Instant, n: usize, success: bool) -> Option<Instant> {
        let mut opened = None;
        for _ in 0..n {
            opened = opened.or(b.record(at, success));
        }
        opened
    }

    #[test]
    fn defaults_are_bigcommerce_rule() {
        let c = BreakerConfig::default();
        assert_eq!(
            (c.window, c.min_requests, c.pause),
            (secs(120), 100, secs(180))
        );
        assert_eq!(c.min_success_ratio, 0.9);
    }

    #[test]
    fn needs_min_requests() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        assert_eq!(record_n(&mut b, t0, 99, false), None);
        assert_eq!(b.paused_until(t0), None);
        // The 100th opens it.
        assert_eq!(b.record(t0 + secs(1), false), Some(t0 + secs(181)));
        assert_eq!(b.paused_until(t0 + secs(1)), Some(t0 + secs(181)));
    }

    #[test]
    fn hundredth_request_at_89_percent_opens() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        assert_eq!(record_n(&mut b, t0, 89, true), None);
        assert_eq!(record_n(&mut b, t0, 10, false), None);
        assert_eq!(b.record(t0, false), Some(t0 + secs(180)));
    }

    #[test]
    fn ninety_one_percent_stays_closed() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        // Every 11th of 200 requests fails: at least 90.9 % success at every point.
        for k in 1..=200u64 {
            let at = t0 + Duration::from_millis(k * 100);
            assert_eq!(b.record(at, k % 11 != 0), None, "request {k}");
        }
        // Exactly 90 % is not "fewer than 90 %" either.
        let mut b = Breaker::new(BreakerConfig::default());
        assert_eq!(record_n(&mut b, t0, 90, true), None);
        assert_eq!(record_n(&mut b, t0, 10, false), None);
    }

    #[test]
    fn old_buckets_slide_out() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        assert_eq!(record_n(&mut b, t0, 95, false), None);
        // Within the window the old failures still count...
        let mut within = b.clone();
        assert!(record_n(&mut within, t0 + secs(60), 5, false).is_some());
        // ...past it they are gone: 5 + 94 more is still under 100 requests.
        assert_eq!(record_n(&mut b, t0 + secs(125), 5, false), None);
        assert_eq!(record_n(&mut b, t0 + secs(126), 94, false), None);
        assert!(b.record(t0 + secs(127), false).is_some());

        // Partial slide: 60 failures at t0, 40 at t0+70s; at t0+125s the first 60 are out.
        let mut b = Breaker::new(BreakerConfig::default());
        record_n(&mut b, t0, 60, false);
        record_n(&mut b, t0 + secs(70), 39, false);
        assert_eq!(b.record(t0 + secs(125), false), None);
        assert_eq!(b.requests, 40);
    }

    #[test]
    fn after_the_pause_closed_and_empty() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        let until = record_n(&mut b, t0, 100, false).expect("opened");
        assert!(!b.is_idle(t0 + secs(10)));
        // In-flight results arriving while paused are ignored.
        assert_eq!(record_n(&mut b, t0 + secs(10), 200, false), None);
        assert_eq!(b.paused_until(until - secs(1)), Some(until));

        assert_eq!(b.paused_until(until), None);
        assert!(b.is_idle(until));
        // A fresh window: 99 more failures do not reopen it.
        assert_eq!(record_n(&mut b, until, 99, false), None);
        assert_eq!(b.requests, 99);
        assert!(b.record(until, false).is_some());
    }

    #[test]
    fn idle_when_window_expired() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        assert!(b.is_idle(t0));
        b.record(t0, true);
        assert!(!b.is_idle(t0 + secs(60)));
        assert!(b.is_idle(t0 + secs(121)));
    }

    #[test]
    fn out_of_order_instants() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        b.record(t0 + secs(50), true);
        // Slightly earlier but still in the window: counted.
        b.record(t0 + secs(45), false);
        assert_eq!((b.requests, b.successes), (2, 1));
        b.record(t0 + secs(200), true);
        // Far older than the window: ignored.
        b.record(t0 + secs(50), false);
        assert_eq!((b.requests, b.successes), (1, 1));
    }

    #[test]
    fn zero_window_does_not_panic() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig {
            window: Duration::ZERO,
            ..Default::default()
        });
        assert_eq!(
            record_n(&mut b, t0 + Duration::from_nanos(1), 10, false),
            None
        );
    }
}
