//! When to try a failed delivery again (docs/delivery.md#outcome-of-an-attempt): the next
//! interval of the schedule with up to ±10 % jitter, or longer when the receiver's
//! `Retry-After` asks for it (capped at 24 h). After the last interval the delivery has
//! failed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// BigCommerce's schedule: 11 retries over about 48 hours.
pub const DEFAULT_SCHEDULE: &[u64] = &[
    60, 180, 300, 600, 900, 1800, 3600, 7200, 21600, 50400, 86400,
];

/// The longest wait a `Retry-After` may impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(
            DEFAULT_SCHEDULE
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// Parses `60,180,300` (seconds; decimals allowed, e.g. `0.5`). An empty list means
    /// no retries at all.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let secs: f64 = part
                .parse()
                .map_err(|_| format!("retry schedule: {part:?} is not a number of seconds"))?;
            if !(0.0..=7.0 * 86400.0).contains(&secs) {
                return Err(format!(
                    "retry schedule: {part} must be between 0 and 604800 seconds"
                ));
            }
            steps.push(Duration::from_secs_f64(secs));
        }
        Ok(RetrySchedule(steps))
    }

    /// How many retries follow the first attempt.
    pub fn retries(&self) -> usize {
        self.0.len()
    }

    /// The wait after the `attempt`-th failed attempt of a round (1-based), or `None`
    /// when that was the last one.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.0.get((attempt as usize).checked_sub(1)?)?;
        let jitter = if base.is_zero() {
            1.0
        } else {
            rand::thread_rng().gen_range(0.9..=1.1)
        };
        let delay = base.mul_f64(jitter);
        Some(match retry_after {
            Some(asked) if asked > delay => asked.min(MAX_RETRY_AFTER),
            _ => delay,
        })
    }
}

/// A `Retry-After` header value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn default_schedule_is_bigcommerce() {
        let s = RetrySchedule::default();
        assert_eq!(s.retries(), 11);
        let total: u64 = DEFAULT_SCHEDULE.iter().sum();
        assert!(total > 47 * 3600 && total < 49 * 3600, "{total}");
    }

    #[test]
    fn delays_jitter_within_ten_percent_and_end() {
        let s = RetrySchedule::parse("10,20").unwrap();
        for _ in 0..100 {
            let d = s.delay_after(1, None).unwrap();
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
        assert!(s.delay_after(2, None).is_some());
        assert_eq!(s.delay_after(3, None), None);
        assert_eq!(s.delay_after(0, None), None);
    }

    #[test]
    fn retry_after_only_lengthens_and_is_capped() {
        let s = RetrySchedule::parse("1").unwrap();
        assert_eq!(
            s.delay_after(1, Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        assert!(s.delay_after(1, Some(Duration::ZERO)).unwrap() < Duration::from_secs(2));
        assert_eq!(
            s.delay_after(1, Some(Duration::from_secs(10 * 86400))),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn parses_schedules_and_retry_after() {
        assert!(RetrySchedule::parse("1,x").is_err());
        assert!(RetrySchedule::parse("-1").is_err());
        assert_eq!(RetrySchedule::parse("").unwrap().retries(), 0);
        assert_eq!(RetrySchedule::parse("0.5, 1").unwrap().retries(), 2);
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
