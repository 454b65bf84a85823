//! Durations and the retry schedule as operators write them (crates/core/src/duration.rs
//! `parse`, crates/core/src/retry.rs `RetrySchedule::parse` and `delay_after`).
//!
//! The same text is read as a duration and as a schedule.
#![no_main]

use std::time::Duration;

use hookrelay_core::duration;
use hookrelay_core::retry::{RetrySchedule, MAX_RETRY_AFTER};
use libfuzzer_sys::fuzz_target;

/// The longest step a schedule may have: 7 days.
const MAX_STEP: Duration = Duration::from_secs(7 * 86400);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    durations(text);
    schedule(text);
});

fn durations(text: &str) {
    let parsed = duration::parse(text);
    // Surrounding blanks do not matter.
    assert_eq!(duration::parse(&format!(" {text}\t")), parsed);
    let trimmed = text.trim();
    if parsed.is_ok() && !trimmed.contains(|c: char| c.is_ascii_alphabetic()) {
        // A bare number is seconds.
        assert_eq!(duration::parse(&format!("{trimmed}s")), parsed);
    }
    // Each unit is longer than the one before: the same number never comes out shorter.
    let number = trimmed.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let mut previous = Duration::ZERO;
    for unit in ["ms", "s", "m", "h", "d"] {
        if let Ok(d) = duration::parse(&format!("{number}{unit}")) {
            assert!(d >= previous, "{number}{unit}: {d:?} < {previous:?}");
            previous = d;
        }
    }
}

fn schedule(text: &str) {
    let Ok(schedule) = RetrySchedule::parse(text) else {
        return;
    };
    let parts: Vec<f64> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("accepted but not a number"))
        .collect();
    assert_eq!(schedule.retries(), parts.len());
    // Written back as seconds, the schedule reads the same.
    let written: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        RetrySchedule::parse(&written.join(", ")),
        Ok(schedule.clone())
    );
    assert_eq!(schedule.delay_after(0, None), None);
    assert_eq!(schedule.delay_after(parts.len() as u32 + 1, None), None);
    assert_eq!(schedule.delay_after(u32::MAX, None), None);
    for (i, secs) in parts.iter().enumerate() {
        let attempt = i as u32 + 1;
        // Up to ±10 % jitter around the step, which is at most 7 days.
        let step = Duration::from_secs_f64(*secs);
        assert!(step <= MAX_STEP);
        let wait = schedule.delay_after(attempt, None).expect("a step");
        let slack = Duration::from_nanos(2);
        assert!(
            wait + slack >= step.mul_f64(0.9) && wait <= step.mul_f64(1.1) + slack,
            "{wait:?} for {step:?}"
        );
        // A Retry-After only lengthens it, to a day at most.
        let asked = schedule
            .delay_after(attempt, Some(Duration::MAX))
            .expect("a step");
        assert!(asked >= MAX_RETRY_AFTER.min(step.mul_f64(0.9)));
        assert!(asked <= MAX_RETRY_AFTER.max(step.mul_f64(1.1) + slack));
    }
}
