//! Adaptive in-flight limits per lane (docs/delivery.md "Concurrency"): additive increase,
//! multiplicative decrease on round-trip time, after Vector's Adaptive Request
//! Concurrency.
//!
//! Time is cut into intervals about one smoothed round trip long. In each interval the
//! lane's response times are averaged. At its end:
//! - the limit grows when the lane was held back by it (its requests in flight reached
//!   the limit), nothing pushed back, and the interval's average round trip was no worse
//!   than the smoothed one: the host takes more without slowing down. It doubles until
//!   the first interval whose round trip is worse than the smoothed one, or the first cut
//!   (a slow start, as TCP's: a new lane finds a fast host's pace in a few round trips
//!   instead of hundreds), and grows by one after that;
//! - the limit is cut by a tenth (never under the floor) when the host pushed back (its
//!   own failures: refused or reset connections, connect and TLS errors) or the average
//!   rose past the smoothed mean by more than [`DEVIATION_SCALE`] standard deviations
//!   (and at least 5 %): more requests only queue up at the host.
//!
//! The smoothed round trip is an exponentially weighted mean and variance of the
//! intervals' averages, so one slow response does not move the limit. Answers that fail
//! at the endpoint (a 500 from one subscription's path) still time the host; responses
//! that never came (timeouts) give no sample. The dispatcher owns one limit per lane and
//! calls it from one task: `&mut self`, no locks, and the clock is passed in.

use std::time::{Duration, Instant};

/// Weight of a new interval in the smoothed round trip.
const ALPHA: f64 = 0.4;
/// How many standard deviations above the smoothed mean count as "response times rose".
pub const DEVIATION_SCALE: f64 = 2.5;
/// A rise must also clear this share of the mean: with steady round trips the deviation
/// is near zero, and noise alone would count as a rise.
const MIN_RISE: f64 = 0.05;
/// "No worse than the smoothed round trip" allows this much for rounding.
const SAME: f64 = 1e-6;
/// The cut on push-back or rising response times.
const DECREASE: f64 = 0.9;
/// Intervals are never shorter than this, so that sub-millisecond round trips on a local
/// network do not re-decide the limit on every response.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// The floor (`min_in_flight_per_host`): where a lane starts and what it is never cut
    /// below.
    pub min: usize,
    /// The ceiling (`max_in_flight_per_host`).
    pub max: usize,
}

/// One lane's in-flight limit.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    config: LimitConfig,
    limit: usize,
    /// `None` before the first answer.
    smoothed: Option<Smoothed>,
    /// The current interval: sum and count of round trips.
    sum: f64,
    samples: u32,
    reached_limit: bool,
    pushed_back: bool,
    /// The limit doubles instead of growing by one until the first interval whose round
    /// trip is worse than the smoothed one, or the first cut.
    slow_start: bool,
}

/// The smoothed round trip (seconds) and when the current interval ends.
#[derive(Debug, Clone, Copy)]
struct Smoothed {
    mean: f64,
    variance: f64,
    ends: Instant,
}

impl AdaptiveLimit {
    pub fn new(config: LimitConfig) -> Self {
        let min = config.min.clamp(1, config.max.max(1));
        let config = LimitConfig {
            min,
            max: config.max.max(min),
        };
        AdaptiveLimit {
            config,
            limit: min,
            smoothed: None,
            sum: 0.0,
            samples: 0,
            reached_limit: false,
            pushed_back: false,
            slow_start: true,
        }
    }

    /// Requests the lane may have in flight now.
    pub fn current(&self) -> usize {
        self.limit
    }

    /// The smoothed round trip, once there is one.
    pub fn rtt(&self) -> Option<Duration> {
        self.smoothed.map(|s| Duration::from_secs_f64(s.mean))
    }

    /// A request started; `in_flight` counts it.
    pub fn started(&mut self, in_flight: usize) {
        if in_flight >= self.limit {
            self.reached_limit = true;
        }
    }

    /// A request ended at `now`: `rtt` is its round trip when the host answered, and
    /// `pushed_back` says the host itself failed it.
    pub fn finished(&mut self, now: Instant, rtt: Option<Duration>, pushed_back: bool) {
        self.pushed_back |= pushed_back;
        if let Some(rtt) = rtt {
            self.sum += rtt.as_secs_f64();
            self.samples += 1;
        }
        let Some(Smoothed {
            mean,
            variance,
            ends,
        }) = self.smoothed
        else {
            // The first answer sets the scale; nothing to compare with yet. A lane whose
            // host fails before it ever answered is cut at once.
            if self.samples > 0 {
                let first = self.sum / f64::from(self.samples);
                self.next_interval(now, first, 0.0);
            } else if self.pushed_back {
                self.decrease();
                self.pushed_back = false;
            }
            return;
        };
        if now < ends {
            return;
        }
        let current = (self.samples > 0).then(|| self.sum / f64::from(self.samples));
        let threshold = mean + (variance.sqrt() * DEVIATION_SCALE).max(mean * MIN_RISE);
        match current {
            Some(c) if self.reached_limit && !self.pushed_back && c <= mean * (1.0 + SAME) => {
                let grown = if self.slow_start {
                    self.limit * 2
                } else {
                    self.limit + 1
                };
                self.limit = grown.min(self.config.max);
            }
            _ if self.pushed_back || current.is_some_and(|c| c >= threshold) => self.decrease(),
            // Slow start ends at the first sign that the host slows down, before it
            // overshoots (as TCP's HyStart ends it on delay, not only on loss).
            Some(c) if c > mean * (1.0 + SAME) => self.slow_start = false,
            _ => {}
        }
        let (mean, variance) = match current {
            Some(c) => {
                // Exponentially weighted mean and variance.
                let delta = c - mean;
                (
                    mean + ALPHA * delta,
                    (1.0 - ALPHA) * (variance + ALPHA * delta * delta),
                )
            }
            None => (mean, variance),
        };
        self.next_interval(now, mean, variance);
    }

    fn decrease(&mut self) {
        self.slow_start = false;
        // Flooring makes the cut at least one below any limit of 10 or less.
        let cut = (self.limit as f64 * DECREASE) as usize;
        self.limit = cut.max(self.config.min);
    }

    /// Starts an interval one smoothed round trip long with the new smoothed values.
    fn next_interval(&mut self, now: Instant, mean: f64, variance: f64) {
        let length = Duration::from_secs_f64(mean.max(0.0)).max(MIN_INTERVAL);
        self.smoothed = Some(Smoothed {
            mean,
            variance,
            ends: now + length,
        });
        self.sum = 0.0;
        self.samples = 0;
        self.reached_limit = false;
        self.pushed_back = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives `limit` as a lane with unbounded demand against a host whose round trip is
    /// `rtt(in_flight)`, for `steps` round trips; returns the limits seen.
    fn drive(
        limit: &mut AdaptiveLimit,
        start: Instant,
        steps: usize,
        rtt: impl Fn(usize) -> Duration,
    ) -> (Instant, Vec<usize>) {
        let mut now = start;
        let mut seen = Vec::new();
        for _ in 0..steps {
            // A full window of requests, all answered after the same round trip.
            let n = limit.current();
            for i in 1..=n {
                limit.started(i);
            }
            let round_trip = rtt(n);
            now += round_trip;
            for _ in 0..n {
                limit.finished(now, Some(round_trip), false);
            }
            seen.push(limit.current());
        }
        (now, seen)
    }

    fn config(min: usize, max: usize) -> LimitConfig {
        LimitConfig { min, max }
    }

    #[test]
    fn starts_at_the_floor_and_grows_while_the_host_keeps_up() {
        let mut limit = AdaptiveLimit::new(config(4, 256));
        assert_eq!(limit.current(), 4);
        // A host that answers in 2 ms however much it is given: the limit climbs to the
        // ceiling and stays there.
        let (_, seen) = drive(&mut limit, Instant::now(), 400, |_| ms(2));
        assert!(seen.windows(2).all(|w| w[1] >= w[0]), "{seen:?}");
        assert_eq!(limit.current(), 256);
        assert_eq!(limit.rtt(), Some(ms(2)));
    }

    #[test]
    fn a_new_lane_doubles_until_the_first_cut() {
        let mut limit = AdaptiveLimit::new(config(4, 256));
        // The first answer sets the scale, then each full interval doubles: 4 → 256 in
        // a handful of round trips.
        let (now, seen) = drive(&mut limit, Instant::now(), 12, |_| ms(2));
        assert_eq!(limit.current(), 256, "{seen:?}");
        // After a cut it grows by one at a time.
        let mut limit = AdaptiveLimit::new(config(4, 256));
        let (now2, _) = drive(&mut limit, now, 5, |_| ms(2));
        limit.finished(now2 + ms(5), None, true);
        let cut = limit.current();
        let (_, seen) = drive(&mut limit, now2 + ms(5), 4, |_| ms(2));
        assert!(seen.iter().all(|&l| l <= cut + 4), "{cut} then {seen:?}");
    }

    #[test]
    fn settles_near_what_a_host_of_limited_capacity_serves() {
        // 16 workers, 50 ms each: beyond 16 in flight requests queue at the host and the
        // round trip grows with the queue.
        let workers = 16;
        let host = |in_flight: usize| {
            let rounds = in_flight.div_ceil(workers).max(1) as u64;
            ms(50 * rounds)
        };
        let mut limit = AdaptiveLimit::new(config(4, 256));
        let (_, seen) = drive(&mut limit, Instant::now(), 2000, host);
        let tail = &seen[1000..];
        let (lo, hi) = (*tail.iter().min().unwrap(), *tail.iter().max().unwrap());
        assert!(hi < 64, "the limit should stay near 16, got up to {hi}");
        assert!(lo >= 4, "{lo}");
        assert!(tail.iter().any(|&l| l >= workers), "{tail:?}");
    }

    #[test]
    fn grows_only_when_the_limit_held_the_lane_back() {
        let mut limit = AdaptiveLimit::new(config(4, 256));
        let mut now = Instant::now();
        // Two requests at a time against a limit of 4: there is no evidence for more.
        for _ in 0..100 {
            limit.started(1);
            limit.started(2);
            now += ms(2);
            limit.finished(now, Some(ms(2)), false);
            limit.finished(now, Some(ms(2)), false);
        }
        assert_eq!(limit.current(), 4);
    }

    #[test]
    fn host_failures_cut_it_down_to_the_floor() {
        let mut limit = AdaptiveLimit::new(config(4, 256));
        let (mut now, _) = drive(&mut limit, Instant::now(), 200, |_| ms(2));
        let grown = limit.current();
        assert!(grown > 100, "{grown}");
        // The host starts refusing connections: no round trips, only push-back.
        for _ in 0..200 {
            now += ms(2);
            limit.started(limit.current());
            limit.finished(now, None, true);
        }
        assert_eq!(limit.current(), 4);
        // Each interval cuts by a tenth, not all at once.
        let mut limit = AdaptiveLimit::new(config(4, 256));
        let (now, _) = drive(&mut limit, Instant::now(), 200, |_| ms(2));
        let before = limit.current();
        limit.finished(now + ms(10), None, true);
        assert_eq!(limit.current(), (before as f64 * 0.9) as usize);
    }

    #[test]
    fn a_rise_in_response_times_cuts_it() {
        let mut limit = AdaptiveLimit::new(config(4, 256));
        let (now, _) = drive(&mut limit, Instant::now(), 100, |_| ms(10));
        let before = limit.current();
        // The host slows down fivefold: cut within a couple of round trips (the first
        // interval still holds answers from before).
        let (_, seen) = drive(&mut limit, now, 3, |_| ms(50));
        assert!(
            seen[..2].iter().any(|&l| l < before),
            "{before} -> {seen:?}"
        );
    }

    #[test]
    fn min_equal_to_max_is_a_fixed_limit() {
        let mut limit = AdaptiveLimit::new(config(32, 32));
        let (_, seen) = drive(&mut limit, Instant::now(), 100, |_| ms(1));
        assert!(seen.iter().all(|&l| l == 32));
        limit.finished(Instant::now() + ms(1000), None, true);
        assert_eq!(limit.current(), 32);
    }

    #[test]
    fn floor_above_ceiling_is_clamped() {
        let limit = AdaptiveLimit::new(config(8, 2));
        assert_eq!(limit.current(), 2);
        let limit = AdaptiveLimit::new(config(0, 0));
        assert_eq!(limit.current(), 1);
    }

    #[test]
    fn timeouts_alone_do_not_move_it() {
        let mut limit = AdaptiveLimit::new(config(4, 256));
        let (mut now, _) = drive(&mut limit, Instant::now(), 50, |_| ms(2));
        let before = limit.current();
        for _ in 0..50 {
            now += ms(5);
            limit.started(limit.current());
            limit.finished(now, None, false);
        }
        assert_eq!(limit.current(), before);
    }
}
