//! `hookrelay bench`: the end-to-end delivery benchmark. It starts `hookrelay serve` (this
//! same binary) on a fresh data dir (or, with `--database-url`, one or more nodes on a
//! fresh PostgreSQL database), local receivers (or, with `--eventbridge`, a local
//! EventBridge endpoint), creates subscriptions, publishes events one per request from
//! concurrent publishers spread over the nodes, waits until every delivery has arrived,
//! and prints publish rate, delivery throughput, end-to-end latency, duplicates, each
//! server's peak RSS and the servers' CPU-seconds per 100,000 deliveries. `--same-host`
//! puts every subscription on one receiver `host:port`; `--slow-host-ms` adds a slow host
//! beside the others. Build with `--release` to measure anything meaningful.

mod brokers;
mod postgres;
mod receiver;
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hookrelay_core::secrets::Cipher;
use serde_json::json;

use postgres::BenchDatabase;
use receiver::{now_micros, AwsTally, SlowTally, Tally};
use server::{Backend, ServerProcess};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Subscriptions, each to its own receiver (its own host:port) unless --same-host.
    #[arg(long, default_value_t = 10)]
    subscriptions: usize,
    /// Point every subscription at one receiver host:port, each at its own path
    /// (/hook/0, /hook/1, …): an integrator's endpoint that many stores share. --failing
    /// picks the failing paths on it.
    #[arg(long)]
    same_host: bool,
    /// Add one slow host beside the others, with a subscription of its own: it serves
    /// --slow-host-workers requests at a time and answers each after this many
    /// milliseconds (more wait their turn). Its deliveries are reported apart and not
    /// waited for.
    #[arg(long, value_name = "MS")]
    slow_host_ms: Option<u64>,
    /// Requests the slow host serves at once.
    #[arg(long, default_value_t = 16, requires = "slow_host_ms")]
    slow_host_workers: usize,
    /// Run this `hookrelay` executable as the server(s) instead of this one, so that two
    /// builds are measured by the same load driver.
    #[arg(long, value_name = "PATH")]
    server_exe: Option<std::path::PathBuf>,
    /// Events to publish, one per request.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 64)]
    publishers: usize,
    /// How many of the receivers answer 500 to everything.
    #[arg(long, default_value_t = 0)]
    failing: usize,
    /// Give each event one of N ordering keys (`orderingKey`), in turn by publish order.
    /// Each key's events are published one after the other and numbered, and the
    /// receivers count every first arrival that is not the next of its key: the order
    /// violations a subscriber would see. Webhook receivers only.
    #[arg(long, value_name = "N")]
    keys: Option<u32>,
    /// Make the subscriptions ordered (docs/delivery.md#ordered-delivery). The same
    /// workload runs twice, unordered and then ordered, each on fresh servers and a fresh
    /// database, and the two runs' figures are printed side by side.
    #[arg(long, requires = "keys")]
    ordered: bool,
    /// The receivers answer 500 to every event of the first K keys (with --keys). The
    /// figures are then those of the other keys: what a key that keeps failing costs the
    /// healthy ones.
    #[arg(long, value_name = "K", default_value_t = 0, requires = "keys")]
    failing_keys: u32,
    /// Run the servers on PostgreSQL: a fresh database `hookrelay_bench_<time>_<pid>` is
    /// created on the server this URL names (connecting to the database in it) and dropped
    /// afterwards. Without it, one server on SQLite in a temporary data dir.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Keep the PostgreSQL database of the run (its name is printed).
    #[arg(long, requires = "database_url")]
    keep_database: bool,
    /// `hookrelay serve` processes sharing the database (needs --database-url when more
    /// than 1); the publishers are spread over them round-robin.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Copy each server's log (its stderr; RUST_LOG sets the level) to DIR/node-N.log
    /// after the run, also when it fails.
    #[arg(long, value_name = "DIR")]
    server_logs: Option<std::path::PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// An extra argument for `hookrelay serve` (repeatable), e.g. --server-arg=--max-in-flight-per-host=64.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Where the events go (docs/destinations.md). eventbridge, sqs, sns: Buy with Prime
    /// subscriptions to a partner event source, a queue or a topic each, and a local
    /// endpoint speaking AWS's protocol accepts every message and counts the calls.
    /// rabbitmq, nats: the real broker at --amqp-url / --nats-url, a subscription each to
    /// a queue or subject of the run's own, read back by a consumer.
    #[arg(long, value_enum, default_value_t = Kind::Webhook)]
    destination: Kind,
    /// The same as --destination eventbridge.
    #[arg(long, conflicts_with = "destination")]
    eventbridge: bool,
    /// The RabbitMQ broker of --destination rabbitmq.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// The NATS server (with JetStream) of --destination nats.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Sample the servers' resident memory each time this many more deliveries have
    /// arrived (default: a tenth of the run), and report the curve: a soak
    /// (`--events 100000`) shows whether memory stays flat.
    #[arg(long, value_name = "N")]
    rss_every: Option<u64>,
    /// Fail (exit 1, after the report) when the servers' memory at the end is more than
    /// this many times what it was at the first sample, or when a delivery arrived twice:
    /// the soak's pass mark, e.g. 1.2.
    #[arg(long, value_name = "RATIO")]
    max_rss_growth: Option<f64>,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Webhook,
    Eventbridge,
    Sqs,
    Sns,
    Rabbitmq,
    Nats,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Eventbridge => "eventbridge",
            Kind::Sqs => "sqs",
            Kind::Sns => "sns",
            Kind::Rabbitmq => "rabbitmq",
            Kind::Nats => "nats",
        }
    }

    /// Whether the local AWS endpoint takes its messages.
    fn aws(self) -> bool {
        matches!(self, Kind::Eventbridge | Kind::Sqs | Kind::Sns)
    }
}

impl BenchArgs {
    fn kind(&self) -> Kind {
        if self.eventbridge {
            Kind::Eventbridge
        } else {
            self.destination
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// How long the bench keeps listening after the last expected delivery, for duplicates
/// still on their way. Not part of any figure.
const LATE_DUPLICATES_WAIT: Duration = Duration::from_millis(250);

pub async fn run(args: BenchArgs) -> Result<()> {
    if args.subscriptions == 0 || args.events == 0 || args.publishers == 0 || args.nodes == 0 {
        bail!("--subscriptions, --events, --publishers and --nodes must be at least 1");
    }
    if args.failing >= args.subscriptions {
        bail!("--failing must leave at least one healthy receiver");
    }
    if args.nodes > 1 && args.database_url.is_none() {
        bail!(
            "--nodes {} needs --database-url: several `hookrelay serve` processes share one \
             PostgreSQL database (the SQLite database belongs to one process)",
            args.nodes
        );
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    if args.kind() != Kind::Webhook
        && (args.failing > 0 || args.same_host || args.slow_host_ms.is_some())
    {
        bail!(
            "--failing, --same-host and --slow-host-ms apply to webhook receivers, not to --destination {}",
            args.kind().name()
        );
    }
    if let Some(keys) = args.keys {
        if keys == 0 || args.failing_keys >= keys {
            bail!(
                "--keys must be at least 1, and --failing-keys must leave at least one healthy key"
            );
        }
        if args.kind() != Kind::Webhook || args.slow_host_ms.is_some() {
            bail!("--keys applies to webhook receivers, without --slow-host-ms");
        }
    }
    if !args.ordered {
        let figures = run_once(&args).await?;
        if args.json {
            println!("{figures}");
        }
        return soak_verdict(&args, &figures);
    }
    // The same workload unordered, then ordered: the cost of the order, measured by the
    // same driver on the same machine a minute apart.
    let mut unordered_args = args.clone();
    unordered_args.ordered = false;
    let mut runs = Vec::new();
    for (i, args) in [unordered_args, args.clone()].iter().enumerate() {
        if !args.json {
            println!(
                "--- run {} of 2: {}",
                i + 1,
                if args.ordered { "ordered" } else { "unordered" }
            );
        }
        runs.push(run_once(args).await?);
        if !args.json && i == 0 {
            println!();
        }
    }
    let ordered = runs.pop().unwrap_or_default();
    let unordered = runs.pop().unwrap_or_default();
    if args.json {
        println!("{}", json!({"unordered": unordered, "ordered": ordered}));
    } else {
        print_comparison(&unordered, &ordered);
    }
    soak_verdict(&args, &unordered)?;
    soak_verdict(&args, &ordered)
}

/// The ordered run's figures against the unordered run's.
fn print_comparison(unordered: &serde_json::Value, ordered: &serde_json::Value) {
    println!();
    println!("--- ordered against unordered (ratio ordered / unordered)");
    for (what, key, precision) in [
        ("deliveries/s", "deliveries_per_second", 0),
        ("latency p50 ms", "latency_p50_ms", 1),
        ("latency p99 ms", "latency_p99_ms", 1),
        ("CPU-s / 100k", "cpu_seconds_per_100k_deliveries", 2),
        ("peak RSS MB", "peak_rss_mb", 1),
    ] {
        let (u, o) = (
            unordered[key].as_f64().unwrap_or(0.0),
            ordered[key].as_f64().unwrap_or(0.0),
        );
        let ratio = if u > 0.0 { o / u } else { f64::NAN };
        println!("{what:<18}unordered {u:>10.precision$}   ordered {o:>10.precision$}   ratio {ratio:.2}");
    }
    for (what, key) in [
        ("order violations", "order_violations"),
        ("duplicates", "duplicates"),
    ] {
        println!(
            "{what:<18}unordered {:>10}   ordered {:>10}",
            unordered[key], ordered[key]
        );
    }
}

/// One run on fresh servers (and a fresh PostgreSQL database): its figures.
async fn run_once(args: &BenchArgs) -> Result<serde_json::Value> {
    let database = match &args.database_url {
        Some(url) => Some(BenchDatabase::create(url).await?),
        None => None,
    };
    let backend = match &database {
        Some(db) => Backend::Postgres {
            url: db.url.clone(),
            master_key: Cipher::generate_key(),
        },
        None => Backend::Sqlite,
    };
    // Interrupted or not, the servers stop (dropping them kills them) before the database
    // goes.
    let result = tokio::select! {
        result = measure(args, &backend, database.as_ref().map(|db| db.name.as_str())) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Some(db) = database {
        if args.keep_database {
            eprintln!("kept database {} ({})", db.name, postgres::redact(&db.url));
        } else {
            let name = db.name.clone();
            if let Err(e) = db.drop_database().await {
                eprintln!("warning: could not drop database {name}: {e:#}");
            }
        }
    }
    result
}

/// Starts the servers, runs the workload, prints the figures (unless `--json`) and returns
/// them.
async fn measure(
    args: &BenchArgs,
    backend: &Backend,
    database: Option<&str>,
) -> Result<serde_json::Value> {
    let tally = Arc::new(Tally::default());
    let failing_tally = Arc::new(Tally::default());
    let slow = Arc::new(SlowTally::default());
    let aws = Arc::new(AwsTally::default());
    let envs = Vec::new();
    let kind = args.kind();
    let rabbit = match kind {
        Kind::Rabbitmq => Some(
            brokers::RabbitQueue::start(&args.amqp_url, tally.clone(), args.subscriptions).await?,
        ),
        _ => None,
    };
    let nats = match kind {
        Kind::Nats => Some(brokers::NatsStream::start(&args.nats_url, tally.clone()).await?),
        _ => None,
    };
    let target = Target {
        queue: rabbit.as_ref().map(|q| q.name.clone()),
        subjects: nats.as_ref().map(|n| n.prefix.clone()),
    };
    let result = measure_with(
        args,
        backend,
        database,
        &target,
        Tallies {
            tally,
            failing_tally,
            slow,
            aws,
        },
        envs,
    )
    .await;
    if let Some(queue) = rabbit {
        queue.remove().await;
    }
    if let Some(stream) = nats {
        stream.remove().await;
    }
    result
}

/// The run's own queue (RabbitMQ) or subject prefix (NATS).
struct Target {
    queue: Option<String>,
    subjects: Option<String>,
}

struct Tallies {
    tally: Arc<Tally>,
    failing_tally: Arc<Tally>,
    slow: Arc<SlowTally>,
    aws: Arc<AwsTally>,
}

async fn measure_with(
    args: &BenchArgs,
    backend: &Backend,
    database: Option<&str>,
    target: &Target,
    tallies: Tallies,
    mut envs: Vec<(String, String)>,
) -> Result<serde_json::Value> {
    let Tallies {
        tally,
        failing_tally,
        slow,
        aws,
    } = tallies;
    if args.kind().aws() {
        let port = receiver::start_eventbridge(tally.clone(), aws.clone()).await?;
        for (k, v) in [
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
            ("AWS_ACCESS_KEY_ID", "bench".into()),
            ("AWS_SECRET_ACCESS_KEY", "bench".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ] {
            envs.push((k.to_owned(), v));
        }
    }
    // One after the other: node 1 applies the schema to the fresh database before the
    // others start.
    let mut servers = Vec::with_capacity(args.nodes);
    for node in 1..=args.nodes {
        let server = ServerProcess::start(
            args.server_exe.as_deref(),
            backend,
            &args.server_args,
            &envs,
        )
        .await
        .with_context(|| format!("node {node}"))?;
        servers.push(server);
    }
    let cost = match backend {
        Backend::Postgres { url, .. } => Some(postgres::DatabaseCost::start(url).await?),
        Backend::Sqlite => None,
    };
    let receivers = Receivers {
        healthy: tally.clone(),
        failing: failing_tally.clone(),
        slow: slow.clone(),
    };
    let (figures, last_arrival) = match workload(args, &servers, &receivers, target).await {
        Ok(done) => done,
        Err(e) => {
            for (i, server) in servers.iter().enumerate() {
                let tail = server.log_tail(20);
                if !tail.is_empty() {
                    eprintln!("--- node {} ({}), last log lines:", i + 1, server.base);
                    for line in tail {
                        eprintln!("{line}");
                    }
                }
            }
            save_logs(args, &servers);
            return Err(e);
        }
    };
    let node_rss_mb: Vec<f64> = servers
        .iter()
        .map(|s| s.peak_rss_kb().unwrap_or(0) as f64 / 1024.0)
        .collect();
    // Before the graceful stop, so that shutting down is not counted.
    let cpu_seconds: f64 = servers.iter().filter_map(|s| s.cpu_seconds()).sum();
    let database_cost = match (cost, backend) {
        (Some(cost), Backend::Postgres { url, .. }) => Some(cost.finish(url).await?),
        _ => None,
    };
    // The slow host's in-flight limit as node 1 has it now. The gauge is refreshed each
    // second, so a run shorter than that may end before it is first written: wait for it.
    let slow_limit = match figures.slow_port {
        Some(port) => {
            let lane = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let limit = lane_limit(&servers[0].base, &lane).await;
                if limit.is_some() || Instant::now() >= deadline {
                    break limit;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        None => None,
    };
    // What each node did, from its /metrics (null where that fails).
    let mut node_events = Vec::new();
    let mut node_deliveries = Vec::new();
    for server in &servers {
        let counts = node_counts(&server.base).await;
        node_events.push(counts.map(|c| c.0));
        node_deliveries.push(counts.map(|c| c.1));
    }
    for server in &mut servers {
        server.stop();
    }
    save_logs(args, &servers);
    drop(servers);
    let updates = match backend {
        Backend::Postgres { url, .. } => Some(postgres::delivery_updates(url).await?),
        Backend::Sqlite => None,
    };
    let Workload {
        expected,
        publish_secs,
        first_publish,
        mut publish_latencies,
        slow_port,
        rss_curve,
    } = figures;

    let peak_rss_mb: f64 = node_rss_mb.iter().sum();
    let delivery_secs = last_arrival.saturating_sub(first_publish) as f64 / 1e6;
    let mut latencies =
        std::mem::take(&mut *tally.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort_unstable();
    publish_latencies.sort_unstable();
    let mut slow_latencies = std::mem::take(
        &mut *slow
            .tally
            .latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    slow_latencies.sort_unstable();
    let slow_delivered = slow.tally.unique.load(Ordering::Relaxed);
    let mut figures = json!({
        "backend": backend.name(),
        "nodes": args.nodes,
        "database": database,
        "subscriptions": args.subscriptions,
        "events": args.events,
        "publishers": args.publishers,
        "failing": args.failing,
        "deliveries": expected,
        "publish_seconds": publish_secs,
        "events_per_second": args.events as f64 / publish_secs,
        "publish_p50_ms": percentile(&publish_latencies, 0.5),
        "publish_p99_ms": percentile(&publish_latencies, 0.99),
        "delivery_seconds": delivery_secs,
        "deliveries_per_second": expected as f64 / delivery_secs,
        "latency_p50_ms": percentile(&latencies, 0.5),
        "latency_p99_ms": percentile(&latencies, 0.99),
        "latency_max_ms": percentile(&latencies, 1.0),
        "duplicates": tally.duplicates.load(Ordering::Relaxed),
        "lost": expected.saturating_sub(tally.unique.load(Ordering::Relaxed)),
        "failing_requests": failing_tally.failing_requests.load(Ordering::Relaxed),
        "peak_rss_mb": peak_rss_mb,
        "node_peak_rss_mb": node_rss_mb,
        "node_events_accepted": node_events,
        "node_deliveries_succeeded": node_deliveries,
        "same_host": args.same_host,
        "cpu_seconds": cpu_seconds,
        "cpu_seconds_per_100k_deliveries": cpu_seconds * 100_000.0 / expected.max(1) as f64,
        "database_cpu_seconds": database_cost.as_ref().and_then(|c| c.cpu_seconds),
        "database_cpu_seconds_per_100k_deliveries": database_cost
            .as_ref()
            .and_then(|c| c.cpu_seconds)
            .map(|s| s * 100_000.0 / expected.max(1) as f64),
        "wal_bytes": database_cost.as_ref().map(|c| c.wal_bytes),
        "wal_bytes_per_delivery": database_cost
            .as_ref()
            .map(|c| c.wal_bytes / expected.max(1) as f64),
        "slow_host_ms": args.slow_host_ms,
        "slow_host_workers": slow_port.map(|_| args.slow_host_workers),
        "slow_host_deliveries": slow_port.map(|_| slow_delivered),
        "slow_host_peak_in_flight": slow_port.map(|_| slow.peak_in_flight.load(Ordering::Relaxed)),
        "slow_host_limit": slow_limit,
        "slow_host_latency_p50_ms": slow_port.map(|_| percentile(&slow_latencies, 0.5)),
        "slow_host_latency_p99_ms": slow_port.map(|_| percentile(&slow_latencies, 0.99)),
        "destination": args.kind().name(),
        "aws_calls": aws.calls.load(Ordering::Relaxed),
        "aws_entries_per_call": aws.entries.load(Ordering::Relaxed) as f64
            / aws.calls.load(Ordering::Relaxed).max(1) as f64,
    });
    // PostgreSQL's HOT updates of the deliveries table, apart: the
    // object above is at serde_json's macro recursion limit.
    let per_delivery_us = |s: f64| s * 1e6 / expected.max(1) as f64;
    figures["database_lock_wait_seconds"] =
        json!(database_cost.as_ref().and_then(|c| c.lock_wait_seconds));
    figures["database_lock_wait_us_per_delivery"] = json!(database_cost
        .as_ref()
        .and_then(|c| c.lock_wait_seconds)
        .map(per_delivery_us));
    figures["database_lwlock_wait_us_per_delivery"] = json!(database_cost
        .as_ref()
        .and_then(|c| c.lwlock_wait_seconds)
        .map(per_delivery_us));
    figures["delivery_updates"] = json!(updates.map(|u| u.0));
    figures["delivery_hot_updates"] = json!(updates.map(|u| u.1));
    figures["delivery_hot_update_ratio"] =
        json!(updates.map(|(all, hot)| hot as f64 / all.max(1) as f64));
    figures["keys"] = json!(args.keys);
    figures["ordered"] = json!(args.ordered);
    figures["failing_keys"] = json!(args.failing_keys);
    figures["order_violations"] = json!(args
        .keys
        .map(|_| tally.order_violations.load(Ordering::Relaxed)));
    figures["rss_curve"] = json!(rss_curve
        .iter()
        .map(|(n, mb)| json!({"deliveries": n, "rss_mb": mb}))
        .collect::<Vec<_>>());
    let rss_growth = match (rss_curve.first(), rss_curve.last()) {
        (Some((_, first)), Some((_, last))) if *first > 0.0 => Some(last / first),
        _ => None,
    };
    figures["rss_growth"] = json!(rss_growth);
    if args.json {
        return Ok(figures);
    }
    let f = |k: &str| figures[k].as_f64().unwrap_or(0.0);
    println!(
        "hookrelay bench: {} subscriptions{} × {} events = {} deliveries, {} publishers, {} failing endpoints",
        args.subscriptions,
        if args.same_host { " on one host" } else { "" },
        args.events,
        expected,
        args.publishers,
        args.failing
    );
    match database {
        Some(name) => println!(
            "backend:    postgres (database {name}), {} node{}",
            args.nodes,
            if args.nodes == 1 { "" } else { "s" }
        ),
        None => println!("backend:    sqlite, 1 node"),
    }
    println!(
        "publish:    {} events in {:.2} s = {:.0} events/s (request p50 {:.1} ms, p99 {:.1} ms)",
        args.events,
        publish_secs,
        f("events_per_second"),
        f("publish_p50_ms"),
        f("publish_p99_ms")
    );
    println!(
        "delivery:   {expected} deliveries in {delivery_secs:.2} s = {:.0} deliveries/s (first publish → last arrival)",
        f("deliveries_per_second")
    );
    println!(
        "latency:    end-to-end p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        f("latency_p50_ms"),
        f("latency_p99_ms"),
        f("latency_max_ms")
    );
    println!("duplicates: {}", figures["duplicates"]);
    if let Some(keys) = args.keys {
        println!(
            "keys:       {keys} ordering keys, subscriptions {}: {} order violations seen by the receivers{}",
            if args.ordered { "ordered" } else { "not ordered" },
            figures["order_violations"],
            match args.failing_keys {
                0 => String::new(),
                k => format!(
                    "; the first {k} key{} failing ({} requests answered 500, not in the figures)",
                    if k == 1 { "" } else { "s" },
                    tally.failing_requests.load(Ordering::Relaxed)
                ),
            }
        );
    }
    let call = match args.kind() {
        Kind::Eventbridge => Some("PutPartnerEvents"),
        Kind::Sqs => Some("SendMessageBatch"),
        Kind::Sns => Some("PublishBatch"),
        _ => None,
    };
    if let Some(call) = call {
        println!(
            "{:<12}{} {call} calls, {:.1} messages per call",
            format!("{}:", args.kind().name()),
            figures["aws_calls"],
            f("aws_entries_per_call")
        );
    }
    if args.failing > 0 {
        println!(
            "failing:    {} receivers answered 500 to {} requests",
            args.failing, figures["failing_requests"]
        );
    }
    if let Some(ms) = args.slow_host_ms {
        println!(
            "slow host:  {ms} ms × {} workers: {slow_delivered} delivered during the run (p50 {:.1} ms, p99 {:.1} ms), \
             at most {} in flight, in-flight limit at the end {}",
            args.slow_host_workers,
            f("slow_host_latency_p50_ms"),
            f("slow_host_latency_p99_ms"),
            figures["slow_host_peak_in_flight"],
            slow_limit.map_or_else(|| "?".to_owned(), |l| l.to_string()),
        );
    }
    println!(
        "cpu:        {cpu_seconds:.2} CPU-seconds in the server{}, {:.2} per 100,000 deliveries",
        if args.nodes == 1 { "" } else { "s" },
        f("cpu_seconds_per_100k_deliveries")
    );
    if let Some((all, hot)) = updates {
        println!(
            "updates:    {all} of the deliveries table, {hot} HOT ({:.0} %)",
            hot as f64 * 100.0 / all.max(1) as f64
        );
    }
    if let Some(cost) = &database_cost {
        match cost.cpu_seconds {
            Some(secs) => println!(
                "database:   {secs:.2} CPU-seconds in PostgreSQL's processes, {:.2} per 100,000 deliveries ({:.2} with the server{}); {:.0} WAL bytes per delivery",
                f("database_cpu_seconds_per_100k_deliveries"),
                f("database_cpu_seconds_per_100k_deliveries") + f("cpu_seconds_per_100k_deliveries"),
                if args.nodes == 1 { "" } else { "s" },
                f("wal_bytes_per_delivery")
            ),
            None => println!(
                "database:   {:.0} WAL bytes per delivery (PostgreSQL runs elsewhere: its CPU is not measured)",
                f("wal_bytes_per_delivery")
            ),
        }
        if cost.lock_wait_seconds.is_some() {
            println!(
                "lock waits: {:.1} µs per delivery on row, transaction and advisory locks, {:.1} µs on lightweight locks (backends sampled every {} ms)",
                f("database_lock_wait_us_per_delivery"),
                f("database_lwlock_wait_us_per_delivery"),
                postgres::LOCK_SAMPLE_EVERY.as_millis()
            );
        }
    }
    let curve: Vec<String> = rss_curve
        .iter()
        .map(|(n, mb)| format!("{n}: {mb:.1}"))
        .collect();
    println!(
        "memory:     resident MB after deliveries {}; end / first {}",
        curve.join(", "),
        rss_growth.map_or_else(|| "?".to_owned(), |g| format!("{g:.2}"))
    );
    if let [rss] = node_rss_mb[..] {
        println!("server:     peak RSS {rss:.1} MB");
    } else {
        let each: Vec<String> = node_rss_mb.iter().map(|mb| format!("{mb:.1}")).collect();
        println!(
            "servers:    peak RSS {} = {peak_rss_mb:.1} MB",
            each.join(" + ")
        );
        let each = |counts: &[Option<u64>]| -> String {
            let each: Vec<String> = counts
                .iter()
                .map(|c| c.map_or_else(|| "?".to_owned(), |n| n.to_string()))
                .collect();
            each.join(" + ")
        };
        println!(
            "per node:   events accepted {}, deliveries succeeded {}",
            each(&node_events),
            each(&node_deliveries)
        );
    }
    Ok(figures)
}

/// `--max-rss-growth`: the soak's verdict on a run's figures, an error when it failed.
fn soak_verdict(args: &BenchArgs, figures: &serde_json::Value) -> Result<()> {
    let Some(most) = args.max_rss_growth else {
        return Ok(());
    };
    let growth = figures["rss_growth"].as_f64();
    let duplicates = figures["duplicates"].as_u64().unwrap_or(0);
    let failure = match growth {
        _ if duplicates > 0 => Some(anyhow!(
            "soak failed: {duplicates} deliveries arrived twice"
        )),
        Some(g) if g > most => Some(anyhow!(
            "soak failed: memory grew {g:.2} × from the first sample to the end (at most {most})"
        )),
        None => Some(anyhow!(
            "soak failed: the servers' memory could not be read"
        )),
        _ => None,
    };
    failure.map_or(Ok(()), Err)
}

/// A node's `hookrelay_events_accepted_total` and succeeded `hookrelay_deliveries_total`,
/// from its /metrics.
async fn node_counts(base: &str) -> Option<(u64, u64)> {
    Some(parse_counts(&metrics_text(base).await?))
}

/// A node's /metrics text; `None` when it cannot be read.
async fn metrics_text(base: &str) -> Option<String> {
    reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()
}

/// A lane's `hookrelay_host_in_flight_limit` from a node's /metrics.
async fn lane_limit(base: &str, lane: &str) -> Option<u64> {
    let text = metrics_text(base).await?;
    let series = format!(
        "{}{{host=\"{lane}\"}} ",
        hookrelay_delivery::metrics::LANE_LIMIT
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn parse_counts(metrics: &str) -> (u64, u64) {
    let (mut events, mut delivered) = (0, 0);
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = value.parse::<f64>().unwrap_or(0.0) as u64;
        let name = series.split('{').next().unwrap_or_default();
        if name == hookrelay_delivery::metrics::EVENTS_ACCEPTED {
            events += value;
        } else if name == hookrelay_delivery::metrics::DELIVERIES
            && series.contains("outcome=\"succeeded\"")
        {
            delivered += value;
        }
    }
    (events, delivered)
}

/// `--server-logs DIR`: each node's log to DIR/node-N.log.
fn save_logs(args: &BenchArgs, servers: &[ServerProcess]) {
    let Some(dir) = &args.server_logs else {
        return;
    };
    let saved = std::fs::create_dir_all(dir)
        .with_context(|| format!("creating {}", dir.display()))
        .and_then(|()| {
            for (i, server) in servers.iter().enumerate() {
                server.save_log(&dir.join(format!("node-{}.log", i + 1)))?;
            }
            Ok(())
        });
    match saved {
        Ok(()) => eprintln!("server logs in {}", dir.display()),
        Err(e) => eprintln!("warning: {e:#}"),
    }
}

/// What the workload measured besides the tallies.
struct Workload {
    expected: u64,
    publish_secs: f64,
    /// Unix microseconds.
    first_publish: u64,
    publish_latencies: Vec<u32>,
    /// The slow host's port, with --slow-host-ms.
    slow_port: Option<u16>,
    /// (deliveries arrived, the servers' resident memory in MB) at each sample.
    rss_curve: Vec<(u64, f64)>,
}

/// Where the receivers count what they get.
struct Receivers {
    healthy: Arc<Tally>,
    failing: Arc<Tally>,
    slow: Arc<SlowTally>,
}

/// Creates the tokens and subscriptions (through node 1), publishes (round-robin over the
/// nodes) and waits until every delivery has arrived. Returns the figures and the last
/// arrival (unix microseconds), read before any late duplicates were waited for.
async fn workload(
    args: &BenchArgs,
    servers: &[ServerProcess],
    receivers: &Receivers,
    target: &Target,
) -> Result<(Workload, u64)> {
    let tally = &receivers.healthy;
    let first = &servers[0];
    let client = first.token(&["--role", "client", "--store", "bench"])?;
    let publisher = first.token(&["--role", "publisher"])?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.publishers)
        .tcp_nodelay(true)
        .build()?;

    let shared_port = match args.same_host {
        true => Some(
            receiver::start_shared(tally.clone(), receivers.failing.clone(), args.failing).await?,
        ),
        false => None,
    };
    let ordered = args.ordered;
    let webhook = |url: String| {
        let query = "mutation($url: String!, $ordered: Boolean) { createEventSubscription(input: { destination: { webhook: { url: $url, method: POST } }, eventType: \"ORDER_CONFIRMED\", ordered: $ordered }) { subscriptionId } }";
        json!({"query": query, "variables": {"url": url, "ordered": ordered}})
    };
    let subscribe = |destination: serde_json::Value| {
        let query = "mutation($destination: DestinationInput!, $ordered: Boolean) { createEventSubscription(input: { destination: $destination, eventType: \"ORDER_CONFIRMED\", ordered: $ordered }) { subscriptionId } }";
        json!({"query": query, "variables": {"destination": destination, "ordered": ordered}})
    };
    let mut requests = Vec::new();
    for i in 0..args.subscriptions {
        let request = if args.kind() == Kind::Eventbridge {
            subscribe(
                json!({"eventBridge": {"partnerEventSource": {"account": "123456789012", "name": format!("bench-{i}")}, "region": "us-east-1"}}),
            )
        } else if args.kind() == Kind::Sqs {
            subscribe(
                json!({"sqs": {"queueUrl": format!("https://sqs.us-east-1.amazonaws.com/123456789012/bench-{i}"), "region": "us-east-1"}}),
            )
        } else if args.kind() == Kind::Sns {
            subscribe(
                json!({"sns": {"topicArn": format!("arn:aws:sns:us-east-1:123456789012:bench-{i}")}}),
            )
        } else if let Some(queue) = &target.queue {
            subscribe(
                json!({"rabbitmq": {"url": args.amqp_url, "exchange": brokers::RABBIT_EXCHANGE, "routingKey": format!("{queue}.{i}")}}),
            )
        } else if let Some(prefix) = &target.subjects {
            subscribe(json!({"nats": {"url": args.nats_url, "subject": format!("{prefix}.{i}")}}))
        } else if let Some(port) = shared_port {
            webhook(format!("http://127.0.0.1:{port}/hook/{i}"))
        } else {
            let failing = i < args.failing;
            let t = if failing { &receivers.failing } else { tally };
            let port = receiver::start(t.clone(), i, failing).await?;
            webhook(format!("http://127.0.0.1:{port}/hook"))
        };
        requests.push(request);
    }
    let slow_port = match args.slow_host_ms {
        Some(ms) => {
            let delay = Duration::from_millis(ms);
            let port =
                receiver::start_slow(receivers.slow.clone(), delay, args.slow_host_workers).await?;
            requests.push(webhook(format!("http://127.0.0.1:{port}/hook")));
            Some(port)
        }
        None => None,
    };
    for request in requests {
        let answer: serde_json::Value = http
            .post(format!("{}/graphql", first.base))
            .header("X-Auth-Token", &client)
            .json(&request)
            .send()
            .await?
            .json()
            .await?;
        if answer.get("errors").is_some() {
            bail!("creating a subscription failed: {answer}");
        }
    }

    tally
        .failing_keys
        .store(args.failing_keys, Ordering::Relaxed);
    let healthy = (args.subscriptions - args.failing) as u64;
    // Events of a failing key never arrive: they are not waited for.
    let healthy_events = match args.keys {
        Some(keys) => (0..args.events as u64)
            .filter(|seq| seq % u64::from(keys) >= u64::from(args.failing_keys))
            .count() as u64,
        None => args.events as u64,
    };
    let expected = healthy_events * healthy;
    let bar = if args.no_progress {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(expected);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} deliveries ({per_sec}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    };

    let next = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    // With --keys, each key's next number; a publisher holds its key's lock from taking
    // the number until the 202, so that a key's numbers are its acceptance order.
    let key_numbers: Arc<Vec<tokio::sync::Mutex<u64>>> = Arc::new(
        (0..args.keys.unwrap_or(0))
            .map(|_| tokio::sync::Mutex::new(0))
            .collect(),
    );
    let started = Instant::now();
    let first_publish = now_micros();
    let mut publishers = Vec::new();
    for p in 0..args.publishers {
        let (http, next, published) = (http.clone(), next.clone(), published.clone());
        let key_numbers = key_numbers.clone();
        let url = format!("{}/v1/events", servers[p % servers.len()].base);
        let token = publisher.clone();
        let total = args.events as u64;
        publishers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let mut number = None;
                if !key_numbers.is_empty() {
                    let key = seq % key_numbers.len() as u64;
                    number = Some((key, key_numbers[key as usize].lock().await));
                }
                let sent = now_micros();
                let mut body = json!({"store": "bench", "type": "ORDER_CONFIRMED", "data": {"seq": seq, "sentAt": sent}});
                if let Some((key, n)) = &number {
                    body["orderingKey"] = json!(format!("key-{key}"));
                    body["data"]["key"] = json!(key);
                    body["data"]["n"] = json!(**n);
                }
                let response = http.post(&url).bearer_auth(&token).json(&body).send().await?;
                let status = response.status();
                if status != reqwest::StatusCode::ACCEPTED {
                    let text = response.text().await.unwrap_or_default();
                    bail!("publish to {url} answered {status}: {text}");
                }
                if let Some((_, mut n)) = number {
                    *n += 1;
                }
                latencies.push((now_micros() - sent).min(u32::MAX as u64) as u32);
                published.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let deadline = started + Duration::from_secs(args.timeout);
    let rss_every = args.rss_every.unwrap_or((expected / 10).max(1)).max(1);
    let mut next_sample = rss_every;
    let mut rss_curve = Vec::new();
    let rss_now = || {
        servers
            .iter()
            .map(|s| s.rss_kb().unwrap_or(0) as f64 / 1024.0)
            .sum::<f64>()
    };
    let mut publish_done: Option<Duration> = None;
    let mut publish_latencies = Vec::new();
    loop {
        let arrived = tally.unique.load(Ordering::Relaxed);
        if arrived >= next_sample && arrived < expected {
            rss_curve.push((arrived, rss_now()));
            while next_sample <= arrived {
                next_sample += rss_every;
            }
        }
        bar.set_position(arrived);
        bar.set_message(format!(
            "· {} / {} events published",
            published.load(Ordering::Relaxed),
            args.events
        ));
        if publish_done.is_none() && publishers.iter().all(|p| p.is_finished()) {
            publish_done = Some(started.elapsed());
            for p in publishers.drain(..) {
                publish_latencies.extend(p.await.context("publisher task")??);
            }
        }
        if arrived >= expected && publish_done.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bar.abandon();
            bail!(
                "timed out after {} s: {arrived} of {expected} deliveries arrived ({} lost, {} duplicates), {} of {} events published",
                args.timeout,
                expected - arrived.min(expected),
                tally.duplicates.load(Ordering::Relaxed),
                published.load(Ordering::Relaxed),
                args.events
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    // After the run: every delivery arrived.
    rss_curve.push((tally.unique.load(Ordering::Relaxed), rss_now()));
    let last_arrival = tally.last_arrival.load(Ordering::Relaxed);
    tokio::time::sleep(LATE_DUPLICATES_WAIT).await;
    Ok((
        Workload {
            expected,
            publish_secs: publish_done.unwrap_or_default().as_secs_f64(),
            first_publish,
            publish_latencies,
            slow_port,
            rss_curve,
        },
        last_arrival,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_counts_from_metrics() {
        let text = "# TYPE hookrelay_events_accepted_total counter\n\
                    hookrelay_events_accepted_total 300\n\
                    hookrelay_deliveries_total{outcome=\"created\"} 900\n\
                    hookrelay_deliveries_total{outcome=\"succeeded\"} 450\n\
                    hookrelay_deliveries_backlog{state=\"due\"} 0\n";
        assert_eq!(super::parse_counts(text), (300, 450));
    }
}
