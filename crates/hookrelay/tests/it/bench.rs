//! `hookrelay bench` runs end to end (small workload, debug build): every delivery
//! arrives at the healthy receivers (or the EventBridge endpoint), none twice, and the
//! figures are reported; on SQLite, and with two nodes on PostgreSQL
//! (`HOOKRELAY_TEST_POSTGRES_URL`).

use std::process::Command;

use serde_json::Value;

/// Runs `hookrelay bench` with `args` (and `--no-progress --json`); returns its figures.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(crate::common::BIN)
        .arg("bench")
        .args(args)
        .args(["--timeout", "120", "--no-progress", "--json"])
        .output()
        .expect("run hookrelay bench");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// The PostgreSQL server the tests may create and drop databases on.
fn postgres_url() -> String {
    std::env::var("HOOKRELAY_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "HOOKRELAY_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server on \
             which it may create and drop databases, e.g. \
             HOOKRELAY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
        )
    })
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
        "cpu_seconds",
        "cpu_seconds_per_100k_deliveries",
    ] {
        assert!(figures[key].as_f64().unwrap() > 0.0, "{key}: {figures}");
    }
}

/// `--same-host`: every subscription on one receiver host:port, the failing ones told
/// apart by path. The healthy ones get every delivery (the failing endpoints' breaker
/// must not pause them). `--slow-host-ms` adds a slow host whose deliveries are counted
/// apart, with its in-flight limit under the ceiling.
#[test]
fn bench_same_host_with_failing_endpoints_and_a_slow_host() {
    let figures = bench(&[
        "--same-host",
        "--subscriptions",
        "4",
        "--failing",
        "2",
        "--events",
        "300",
        "--publishers",
        "8",
        "--slow-host-ms",
        "100",
        "--slow-host-workers",
        "2",
        // A breaker that trips within this small run.
        "--server-arg=--breaker-min-requests=20",
    ]);
    assert_eq!(figures["same_host"], true, "{figures}");
    assert_eq!(figures["deliveries"], 600, "{figures}");
    assert_eq!(figures["lost"], 0, "{figures}");
    assert_eq!(figures["duplicates"], 0, "{figures}");
    let failing = figures["failing_requests"].as_u64().unwrap();
    // Each failing path gets about min_requests (plus what was in flight), not 300.
    assert!((20..300).contains(&failing), "{figures}");
    assert_eq!(figures["slow_host_ms"], 100, "{figures}");
    let peak = figures["slow_host_peak_in_flight"].as_u64().unwrap();
    assert!(peak >= 1, "{figures}");
    let limit = figures["slow_host_limit"]
        .as_u64()
        .expect("slow host limit");
    assert!((1..256).contains(&limit), "{figures}");
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
    let per_call = figures["aws_entries_per_call"].as_f64().unwrap();
    assert!((2.0..=20.0).contains(&per_call), "{figures}");
}

/// `--destination`: the other kinds, each through what it talks to: the local endpoint
/// speaking SQS's and SNS's protocols, and the real RabbitMQ and NATS brokers
/// (`HOOKRELAY_TEST_AMQP_URL`, `HOOKRELAY_TEST_NATS_URL`). Every delivery is counted once.
#[test]
fn bench_reports_every_destination_kind() {
    let amqp = std::env::var("HOOKRELAY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let nats =
        std::env::var("HOOKRELAY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    for (kind, per_call_at_most) in [
        ("sqs", 10.0),
        ("sns", 10.0),
        ("rabbitmq", 0.0),
        ("nats", 0.0),
    ] {
        let figures = bench(&[
            "--destination",
            kind,
            "--amqp-url",
            &amqp,
            "--nats-url",
            &nats,
            "--subscriptions",
            "2",
            "--events",
            "200",
            "--publishers",
            "8",
        ]);
        assert_eq!(figures["destination"], kind, "{figures}");
        assert_eq!(figures["deliveries"], 400, "{kind}: {figures}");
        assert_eq!(figures["lost"], 0, "{kind}: {figures}");
        assert_eq!(figures["duplicates"], 0, "{kind}: {figures}");
        assert!(
            figures["deliveries_per_second"].as_f64().unwrap() > 0.0,
            "{kind}: {figures}"
        );
        if per_call_at_most > 0.0 {
            let per_call = figures["aws_entries_per_call"].as_f64().unwrap();
            assert!(
                (1.5..=per_call_at_most).contains(&per_call),
                "{kind}: {figures}"
            );
        }
    }
}

#[test]
fn bench_runs_two_nodes_on_postgres() {
    let url = postgres_url();
    let figures = bench(&[
        "--database-url",
        &url,
        "--nodes",
        "2",
        "--subscriptions",
        "3",
        "--events",
        "300",
        "--publishers",
        "8",
    ]);
    assert_eq!(figures["backend"], "postgres", "{figures}");
    assert_eq!(figures["nodes"], 2, "{figures}");
    assert_eq!(figures["deliveries"], 900, "{figures}");
    assert_eq!(figures["duplicates"], 0, "{figures}");
    assert_eq!(figures["lost"], 0, "{figures}");
    let rss = figures["node_peak_rss_mb"]
        .as_array()
        .expect("per-node RSS");
    assert_eq!(rss.len(), 2, "{figures}");
    assert!(rss.iter().all(|mb| mb.as_f64().unwrap() > 0.0), "{figures}");
    // What PostgreSQL spent: WAL always; CPU when the server runs on this machine (the
    // tests' does: 127.0.0.1).
    let wal = figures["wal_bytes_per_delivery"]
        .as_f64()
        .expect("WAL bytes");
    assert!(wal > 100.0, "a delivery writes WAL: {figures}");
    let updates = figures["delivery_updates"].as_i64().expect("updates");
    assert!(
        updates >= 900,
        "each delivery is updated at least once: {figures}"
    );
    let hot = figures["delivery_hot_updates"]
        .as_i64()
        .expect("HOT updates");
    assert!((0..=updates).contains(&hot), "{figures}");
    if url.contains("127.0.0.1") || url.contains("localhost") {
        let db_cpu = figures["database_cpu_seconds"]
            .as_f64()
            .expect("database CPU");
        assert!(db_cpu > 0.0, "{figures}");
    }
    for key in [
        "events_per_second",
        "deliveries_per_second",
        "latency_p50_ms",
        "latency_p99_ms",
    ] {
        assert!(figures[key].as_f64().unwrap() > 0.0, "{key}: {figures}");
    }

    // The run's database is gone afterwards.
    let name = figures["database"]
        .as_str()
        .expect("database name")
        .to_owned();
    assert!(name.starts_with("hookrelay_bench_"), "{figures}");
    let left = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_database WHERE datname = $1")
                .bind(&name)
                .fetch_one(&mut conn)
                .await
        })
        .expect("query pg_database");
    assert_eq!(left, 0, "database {name} was not dropped");
}

#[test]
fn bench_refuses_several_nodes_on_sqlite() {
    let out = Command::new(crate::common::BIN)
        .args(["bench", "--nodes", "2", "--no-progress"])
        .output()
        .expect("run hookrelay bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bench --nodes 2 ran on SQLite");
    assert!(
        stderr.contains("--nodes 2 needs --database-url"),
        "unclear error: {stderr}"
    );
}

/// The soak's short form (the long one is `HOOKRELAY_SOAK=1 ./scripts/test`): the servers'
/// memory is sampled as deliveries arrive and judged against `--max-rss-growth`, and a
/// run whose memory grew past it fails.
#[test]
fn bench_samples_memory_and_judges_a_soak() {
    let figures = bench(&[
        "--subscriptions",
        "2",
        "--events",
        "3000",
        "--publishers",
        "8",
        "--rss-every",
        "1000",
        "--max-rss-growth",
        "1.5",
    ]);
    assert_eq!(figures["duplicates"], 0, "{figures}");
    let curve = figures["rss_curve"].as_array().expect("rss_curve");
    assert!(
        curve.len() >= 6,
        "a sample per 1,000 deliveries and one at the end: {figures}"
    );
    assert_eq!(curve.last().unwrap()["deliveries"], 6000, "{figures}");
    assert!(
        curve.iter().all(|s| s["rss_mb"].as_f64().unwrap() > 1.0),
        "{figures}"
    );
    let growth = figures["rss_growth"].as_f64().unwrap();
    assert!(growth > 0.0 && growth <= 1.5, "{figures}");

    // The same verdict fails a run held to an impossible bound.
    let out = Command::new(crate::common::BIN)
        .args([
            "bench",
            "--subscriptions",
            "1",
            "--events",
            "500",
            "--publishers",
            "4",
        ])
        .args([
            "--rss-every",
            "100",
            "--max-rss-growth",
            "0.01",
            "--no-progress",
        ])
        .output()
        .expect("run hookrelay bench");
    assert!(!out.status.success(), "a soak over its bound fails");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("soak failed: memory grew"), "{err}");
}

/// `--ordered --keys N`: the same workload unordered then ordered; the receivers count
/// order violations, and the ordered run has none.
#[test]
fn bench_compares_ordered_with_unordered() {
    let figures = bench(&[
        "--subscriptions",
        "2",
        "--events",
        "600",
        "--publishers",
        "8",
        "--keys",
        "10",
        "--ordered",
    ]);
    for run in ["unordered", "ordered"] {
        assert_eq!(figures[run]["deliveries"], 1200, "{figures}");
        assert_eq!(figures[run]["duplicates"], 0, "{figures}");
        assert_eq!(figures[run]["keys"], 10, "{figures}");
        assert!(figures[run]["order_violations"].is_u64(), "{figures}");
    }
    assert_eq!(figures["unordered"]["ordered"], false, "{figures}");
    assert_eq!(figures["ordered"]["ordered"], true, "{figures}");
    assert_eq!(figures["ordered"]["order_violations"], 0, "{figures}");
}
