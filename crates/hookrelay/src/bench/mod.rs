//! `hookrelay bench`: the end-to-end delivery benchmark. It starts `hookrelay serve` (this
//! same binary) on a fresh data dir, local receivers (or, with `--eventbridge`, a local
//! EventBridge endpoint), creates subscriptions, publishes events one per request from
//! concurrent publishers, waits until every delivery has arrived, and prints publish rate,
//! delivery throughput, end-to-end latency, duplicates and the server's peak RSS. Build
//! with `--release` to measure anything meaningful.

mod receiver;
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use receiver::{now_micros, AwsTally, Tally};
use server::ServerProcess;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Subscriptions, each to its own receiver (its own host:port).
    #[arg(long, default_value_t = 10)]
    subscriptions: usize,
    /// Events to publish, one per request.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 64)]
    publishers: usize,
    /// How many of the receivers answer 500 to everything.
    #[arg(long, default_value_t = 0)]
    failing: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// An extra argument for `hookrelay serve` (repeatable), e.g. --server-arg=--max-in-flight-per-host=64.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Deliver to Amazon EventBridge instead of webhooks: the subscriptions are Buy with
    /// Prime EventBridge subscriptions (a partner event source each), and a local endpoint
    /// speaking AWS's protocol accepts every entry and counts the calls.
    #[arg(long)]
    eventbridge: bool,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

pub async fn run(args: BenchArgs) -> Result<()> {
    if args.subscriptions == 0 || args.events == 0 || args.publishers == 0 {
        bail!("--subscriptions, --events and --publishers must be at least 1");
    }
    if args.failing >= args.subscriptions {
        bail!("--failing must leave at least one healthy receiver");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    if args.eventbridge && args.failing > 0 {
        bail!("--failing applies to webhook receivers, not to --eventbridge");
    }
    let tally = Arc::new(Tally::default());
    let failing_tally = Arc::new(Tally::default());
    let aws = Arc::new(AwsTally::default());
    let mut envs = Vec::new();
    if args.eventbridge {
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
    let server = ServerProcess::start(&args.server_args, &envs).await?;
    let client = server.token(&["--role", "client", "--store", "bench"])?;
    let publisher = server.token(&["--role", "publisher"])?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.publishers)
        .tcp_nodelay(true)
        .build()?;

    for i in 0..args.subscriptions {
        let request = if args.eventbridge {
            let query = "mutation($name: String!) { createEventSubscription(input: { destination: { eventBridge: { partnerEventSource: { account: \"123456789012\", name: $name }, region: \"us-east-1\" } }, eventType: \"ORDER_CONFIRMED\" }) { subscriptionId } }";
            json!({"query": query, "variables": {"name": format!("bench-{i}")}})
        } else {
            let failing = i < args.failing;
            let t = if failing { &failing_tally } else { &tally };
            let port = receiver::start(t.clone(), failing).await?;
            let query = "mutation($url: String!) { createEventSubscription(input: { destination: { webhook: { url: $url, method: POST } }, eventType: \"ORDER_CONFIRMED\" }) { subscriptionId } }";
            json!({"query": query, "variables": {"url": format!("http://127.0.0.1:{port}/hook")}})
        };
        let answer: serde_json::Value = http
            .post(format!("{}/graphql", server.base))
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

    let healthy = (args.subscriptions - args.failing) as u64;
    let expected = args.events as u64 * healthy;
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
    let started = Instant::now();
    let first_publish = now_micros();
    let mut publishers = Vec::new();
    for _ in 0..args.publishers {
        let (http, next, published) = (http.clone(), next.clone(), published.clone());
        let url = format!("{}/v1/events", server.base);
        let token = publisher.clone();
        let total = args.events as u64;
        publishers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let sent = now_micros();
                let body = json!({"store": "bench", "type": "ORDER_CONFIRMED", "data": {"seq": seq, "sentAt": sent}});
                let response = http.post(&url).bearer_auth(&token).json(&body).send().await?;
                let status = response.status();
                if status != reqwest::StatusCode::ACCEPTED {
                    let text = response.text().await.unwrap_or_default();
                    bail!("publish answered {status}: {text}");
                }
                latencies.push((now_micros() - sent).min(u32::MAX as u64) as u32);
                published.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let deadline = started + Duration::from_secs(args.timeout);
    let mut publish_done: Option<Duration> = None;
    let mut publish_latencies = Vec::new();
    loop {
        let arrived = tally.unique.load(Ordering::Relaxed);
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
            bail!("timed out: {arrived} of {expected} deliveries arrived");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    let peak_rss_mb = server.peak_rss_kb().unwrap_or(0) as f64 / 1024.0;
    server.stop();

    let publish_secs = publish_done.unwrap_or_default().as_secs_f64();
    let delivery_secs = (tally
        .last_arrival
        .load(Ordering::Relaxed)
        .saturating_sub(first_publish)) as f64
        / 1e6;
    let mut latencies =
        std::mem::take(&mut *tally.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort_unstable();
    publish_latencies.sort_unstable();
    let figures = json!({
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
        "failing_requests": failing_tally.failing_requests.load(Ordering::Relaxed),
        "peak_rss_mb": peak_rss_mb,
        "destination": if args.eventbridge { "eventbridge" } else { "webhook" },
        "eventbridge_calls": aws.calls.load(Ordering::Relaxed),
        "eventbridge_entries_per_call": aws.entries.load(Ordering::Relaxed) as f64
            / aws.calls.load(Ordering::Relaxed).max(1) as f64,
    });
    if args.json {
        println!("{figures}");
        return Ok(());
    }
    let f = |k: &str| figures[k].as_f64().unwrap_or(0.0);
    println!(
        "hookrelay bench: {} subscriptions × {} events = {} deliveries, {} publishers, {} failing endpoints",
        args.subscriptions, args.events, expected, args.publishers, args.failing
    );
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
    if args.eventbridge {
        println!(
            "eventbridge: {} PutPartnerEvents calls, {:.1} entries per call",
            figures["eventbridge_calls"],
            f("eventbridge_entries_per_call")
        );
    }
    if args.failing > 0 {
        println!(
            "failing:    {} receivers answered 500 to {} requests",
            args.failing, figures["failing_requests"]
        );
    }
    println!("server:     peak RSS {peak_rss_mb:.1} MB");
    Ok(())
}
