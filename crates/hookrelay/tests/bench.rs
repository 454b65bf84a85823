//! `hookrelay bench` runs end to end (small workload, debug build): every delivery
//! arrives at the healthy receivers (or the EventBridge endpoint), none twice, and the
//! figures are reported.

mod common;

use std::process::Command;

use serde_json::Value;

/// Runs `hookrelay bench` with `args` (and `--no-progress --json`); returns its figures.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(common::BIN)
        .arg("bench")
        .args(args)
        .args(["--timeout", "60", "--no-progress", "--json"])
        .output()
        .expect("run hookrelay bench");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn bench_reports_every_delivery() {
    let figures = bench(&[
        "--subscriptions",
        "3",
        "--failing",
        "1",
        "--events",
        "200",
        "--publishers",
        "8",
    ]);
    assert_eq!(figures["deliveries"], 400, "{figures}");
    assert_eq!(figures["duplicates"], 0, "{figures}");
    assert!(
        figures["failing_requests"].as_u64().unwrap() >= 1,
        "{figures}"
    );
    for key in [
        "events_per_second",
        "deliveries_per_second",
        "latency_p50_ms",
        "latency_p99_ms",
        "peak_rss_mb",
    ] {
        assert!(figures[key].as_f64().unwrap() > 0.0, "{key}: {figures}");
    }
}

#[test]
fn bench_reports_eventbridge_batches() {
    let figures = bench(&[
        "--eventbridge",
        "--subscriptions",
        "4",
        "--events",
        "300",
        "--publishers",
        "8",
    ]);
    assert_eq!(figures["destination"], "eventbridge", "{figures}");
    assert_eq!(figures["deliveries"], 1200, "{figures}");
    assert_eq!(figures["duplicates"], 0, "{figures}");
    // 1200 entries, at most 20 a call: batching shows as several entries per call.
    let per_call = figures["eventbridge_entries_per_call"].as_f64().unwrap();
    assert!((2.0..=20.0).contains(&per_call), "{figures}");
}
