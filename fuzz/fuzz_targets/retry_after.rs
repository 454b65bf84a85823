//! `Retry-After` (crates/core/src/retry.rs `parse_retry_after`): delay-seconds or an HTTP
//! date, and the wait it comes to once the retry schedule caps it.
#![no_main]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hookrelay_core::retry::{parse_retry_after, RetrySchedule, MAX_RETRY_AFTER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let now = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    for now in [now, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        let Some(asked) = parse_retry_after(value, now) else {
            continue;
        };
        match value.trim().parse::<u64>() {
            Ok(secs) => assert_eq!(asked, Duration::from_secs(secs)),
            Err(_) => {
                // An HTTP date: the time from now until then, never negative, and never
                // more than the span of dates there are.
                let at = DateTime::parse_from_rfc2822(value.trim()).expect("a date");
                let ahead = (at.with_timezone(&Utc) - now).to_std().unwrap_or_default();
                assert_eq!(asked, ahead);
                let span = (DateTime::<Utc>::MAX_UTC - DateTime::<Utc>::MIN_UTC).to_std();
                assert!(asked <= span.expect("a span"));
            }
        }
        // Whatever is asked, the wait is the schedule's or at most a day, and it can be
        // added to the clock.
        let schedule = RetrySchedule::default();
        for attempt in 1..=schedule.retries() as u32 {
            let wait = schedule
                .delay_after(attempt, Some(asked))
                .expect("a retry left");
            let own = schedule.delay_after(attempt, None).expect("a retry left");
            assert!(
                wait <= MAX_RETRY_AFTER.max(own.mul_f64(1.1 / 0.9)),
                "{wait:?}"
            );
            let wait = chrono::Duration::from_std(wait).expect("a chrono duration");
            assert!(Utc::now().checked_add_signed(wait).is_some());
        }
        assert_eq!(
            schedule.delay_after(schedule.retries() as u32 + 1, Some(asked)),
            None
        );
    }
});
