//! Faults on PostgreSQL under load, through real processes (two `hookrelay serve` nodes on
//! one database): PostgreSQL stopped and started again, every backend connection killed
//! with `pg_terminate_backend`, and one node frozen with SIGSTOP for longer than the lease
//! timeout, then resumed. After each, every accepted event is delivered, nothing stays
//! claimed, and the copies sent twice are counted (at-least-once: bounded by what the nodes
//! held at the fault).
//!
//! The restart runs on a PostgreSQL server of the test's own ([`Cluster`]: initdb on a free
//! port, as the `postgres` user when run as root), as the suite's tests share one server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::storage::connect;
use crate::common::{Backend, Options, Server, TestDir};
use serde_json::{json, Value};

/// Arrivals per event number, from the receiver's side.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<u64, usize>>>);

impl Arrivals {
    fn note(&self, body: &[u8]) {
        let body: Value = serde_json::from_slice(body).unwrap_or_default();
        if let Some(n) = body["data"]["n"].as_u64() {
            *self.0.lock().unwrap().entry(n).or_default() += 1;
        }
    }
    /// (distinct events, copies beyond the first).
    fn counts(&self) -> (usize, usize) {
        let all = self.0.lock().unwrap();
        (all.len(), all.values().map(|c| c - 1).sum())
    }
}

fn options() -> Options {
    let mut options = Options::default();
    options.args.extend([
        "--lease-timeout".into(),
        "2s".into(),
        "--max-in-flight-per-host".into(),
        "4".into(),
    ]);
    options
}

/// Publishes events `from..to` in batches of 20 with an idempotency key each, to `bases`
/// in turn; a batch that is not accepted (the database is failing) is sent again until it
/// is, so every event ends accepted exactly once.
async fn publish_all(bases: Vec<String>, token: String, from: u64, to: u64) {
    let http = reqwest::Client::new();
    let mut i = 0usize;
    let mut n = from;
    while n < to {
        let events: Vec<Value> = (n..(n + 20).min(to))
            .map(|k| json!({"store": "shop", "type": "store/order/created", "idempotencyKey": format!("e{k}"), "data": {"n": k}}))
            .collect();
        loop {
            let base = &bases[i % bases.len()];
            i += 1;
            let sent = http
                .post(format!("{base}/v1/events/batch"))
                .bearer_auth(&token)
                .timeout(Duration::from_secs(10))
                .json(&json!({ "events": events }))
                .send()
                .await;
            let ok = match sent {
                Ok(resp) if resp.status() == 202 => {
                    let body: Value = resp.json().await.unwrap_or_default();
                    body["results"]
                        .as_array()
                        .is_some_and(|r| r.iter().all(|e| e["eventId"].is_string()))
                }
                _ => false,
            };
            if ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        n += 20;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until every event `0..total` arrived and no delivery is left claimed or open.
async fn settle(server: &Server, arrivals: &Arrivals, total: u64) -> usize {
    eventually("every event delivered", Duration::from_secs(90), || {
        let (distinct, _) = arrivals.counts();
        async move { (distinct as u64 == total).then_some(()) }
    })
    .await;
    let url = server
        .storage()
        .database
        .as_ref()
        .expect("PostgreSQL")
        .url
        .clone();
    eventually(
        "nothing left claimed or open",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                let mut c = connect(&url).await;
                let open: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_queue")
                    .fetch_one(&mut c)
                    .await
                    .ok()?;
                (open == 0).then_some(())
            }
        },
    )
    .await;
    arrivals.counts().1
}

/// Two nodes delivering `total` events published through both: what a fault test needs.
struct Run {
    b: Server,
    client: crate::common::Token,
    publisher: crate::common::Token,
    arrivals: Arrivals,
    hook: Receiver,
    publishing: tokio::task::JoinHandle<()>,
}

/// Starts a second node beside `a`, a webhook answering 204 in 5 ms, and the publishing of
/// `total` events through both nodes; returns once a third of them arrived.
async fn run_until_a_third(a: &Server, total: u64) -> Run {
    let b = a.start_peer();
    let client = a.client("shop");
    let publisher = a.token("publisher", None);
    let arrivals = Arrivals::default();
    let noted = arrivals.clone();
    let hook = Receiver::start(move |_, r| {
        noted.note(&r.body);
        Reply::status(204).after(Duration::from_millis(5))
    })
    .await;
    crate::common::hooks::webhook(a, &client, &hook.url, "store/order/*").await;
    let publishing = tokio::spawn(publish_all(
        vec![a.base.clone(), b.base.clone()],
        publisher.token.clone(),
        0,
        total,
    ));
    eventually("a third delivered", Duration::from_secs(60), || {
        let (distinct, _) = arrivals.counts();
        async move { (distinct as u64 >= total / 3).then_some(()) }
    })
    .await;
    Run {
        b,
        client,
        publisher,
        arrivals,
        hook,
        publishing,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_backend_connection_killed_mid_run_loses_nothing() {
    const TOTAL: u64 = 600;
    let a = Server::start_on(Backend::Postgres, options()).await;
    let Run {
        b,
        client,
        arrivals,
        hook: _hook,
        publishing,
        ..
    } = run_until_a_third(&a, TOTAL).await;
    let db = a.storage().database.as_ref().expect("PostgreSQL");
    let mut admin = connect(&db.url).await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    assert!(killed >= 2, "both nodes had connections: {killed}");
    publishing.await.unwrap();
    let duplicates = settle(&a, &arrivals, TOTAL).await;
    println!("pg_terminate_backend of {killed} connections: {TOTAL} events delivered, {duplicates} copies sent twice");
    // Each node holds at most what it claimed; a lost lease is the only way to send a
    // delivery twice, and the kill lasts far less than the lease timeout.
    assert!(duplicates <= 64, "{duplicates} copies sent twice");
    // The API answers again on both nodes.
    for node in [&a, &b] {
        node.gql_ok(&client, "{ eventTypes }").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_frozen_past_its_lease_and_resumed_loses_nothing() {
    const TOTAL: u64 = 400;
    let a = Server::start_on(Backend::Postgres, options()).await;
    let b = a.start_peer();
    let client = a.client("shop");
    let publisher = a.token("publisher", None);
    let arrivals = Arrivals::default();
    let noted = arrivals.clone();
    // Slow answers, so that the nodes hold deliveries in flight and queued.
    let hook = Receiver::start(move |_, r| {
        noted.note(&r.body);
        Reply::status(204).after(Duration::from_millis(50))
    })
    .await;
    crate::common::hooks::webhook(&a, &client, &hook.url, "store/order/*").await;
    // Every event through A, so that A holds most of the work when it freezes.
    publish_all(vec![a.base.clone()], publisher.token.clone(), 0, TOTAL).await;
    eventually("some delivered", Duration::from_secs(60), || {
        let (distinct, _) = arrivals.counts();
        async move { (distinct >= 20).then_some(()) }
    })
    .await;
    let before_stop = arrivals.counts().0;
    let pid = a.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    // Longer than the lease timeout: B takes A's deliveries and sends them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = arrivals.counts().0;
    assert!(std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let duplicates = settle(&b, &arrivals, TOTAL).await;
    println!("SIGSTOP 5 s past a 2 s lease: {during} of {TOTAL} delivered by the resume, all {TOTAL} after, {duplicates} copies sent twice");
    // A's late outcomes did not overwrite B's: every delivery ended SUCCEEDED once, and
    // each event has one delivery.
    let db = b.storage().database.as_ref().expect("PostgreSQL");
    let mut c = connect(&db.url).await;
    let (deliveries, succeeded): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status = 'SUCCEEDED') FROM deliveries",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!((deliveries, succeeded), (TOTAL as i64, TOTAL as i64));
    // Only what A had in flight when it froze (4 requests) went out twice: B sent it again
    // after the lease. On waking, A saw it had not run for longer than the lease and
    // handed back what it held before sending any of it.
    let held = TOTAL as usize - before_stop;
    println!("A held at most {held} undelivered deliveries when it froze");
    assert!(
        duplicates <= 2 * 4,
        "{duplicates} copies sent twice: more than A's in-flight requests allow ({held} held)"
    );
}

/// A PostgreSQL server of the test's own: a new cluster (initdb) in a temporary directory,
/// listening on 127.0.0.1 at a free port, stopped and removed when dropped. The binaries
/// are those of the newest PostgreSQL under /usr/lib/postgresql (Debian's layout), or on
/// the PATH. As root, it runs as the `postgres` user, as PostgreSQL refuses root.
struct Cluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .flatten()
                    .filter_map(|v| {
                        let n: u32 = v.file_name().to_str()?.parse().ok()?;
                        Some((n, v.path().join("bin")))
                    })
                    .filter(|(_, bin)| bin.join("initdb").exists())
                    .max_by_key(|(n, _)| *n)
                    .map(|(_, bin)| bin)
            })
            .unwrap_or_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Cluster { dir, bin, port };
        if cluster.as_root() {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster's directory failed");
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-N",
                "-E",
                "UTF8",
            ],
        );
        cluster.pg_ctl("start");
        cluster
    }

    fn as_root(&self) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a PostgreSQL program; panics with its output if it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let path = if self.bin.as_os_str().is_empty() {
            std::path::PathBuf::from(program)
        } else {
            self.bin.join(program)
        };
        let mut command = if self.as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            std::process::Command::new(&path)
        };
        let out = command.args(args).output().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): this test needs PostgreSQL's server programs \
                 (Debian: apt-get install postgresql; ./scripts/test installs it)",
                path.display()
            )
        });
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl start` or `pg_ctl stop -m fast`, waiting until it is done.
    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let data = self.data();
        let mut args = vec!["-D", &data, "-w", "-t", "60"];
        match action {
            "start" => args.extend(["-l", &log, "-o", &options, "start"]),
            _ => args.extend(["-m", "fast", "stop"]),
        }
        self.run("pg_ctl", &args);
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let mut command = if self.as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            std::process::Command::new(&path)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// What one request to a node answered while PostgreSQL was down.
#[derive(Debug)]
struct Probe {
    what: &'static str,
    took: Duration,
    /// The status, or `None` if no answer came within 5 s.
    status: Option<u16>,
    retry_after: bool,
    /// The JSON error's code (`error.code`, or a GraphQL error's `extensions.code`).
    code: Option<String>,
}

async fn probe(what: &'static str, request: reqwest::RequestBuilder) -> Probe {
    let started = std::time::Instant::now();
    match request.timeout(Duration::from_secs(5)).send().await {
        Err(_) => Probe {
            what,
            took: started.elapsed(),
            status: None,
            retry_after: false,
            code: None,
        },
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp.headers().contains_key("retry-after");
            let body: Value = resp.json().await.unwrap_or_default();
            let code = body["error"]["code"]
                .as_str()
                .or(body["errors"][0]["extensions"]["code"].as_str())
                .map(str::to_owned);
            Probe {
                what,
                took: started.elapsed(),
                status: Some(status),
                retry_after,
                code,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_mid_run_loses_nothing_and_the_api_answers_503_meanwhile() {
    const TOTAL: u64 = 600;
    let cluster = Cluster::start();
    let a = Server::start_in(TestDir::on_server(cluster.admin_url()), options());
    let Run {
        b,
        client,
        publisher,
        arrivals,
        hook: _hook,
        publishing,
    } = run_until_a_third(&a, TOTAL).await;

    cluster.pg_ctl("stop");
    // Down for about 6 s: both nodes are asked, through ingest and GraphQL, every 500 ms
    // (each round's four requests at once).
    let http = reqwest::Client::new();
    let mut probes = Vec::new();
    let down = std::time::Instant::now();
    while down.elapsed() < Duration::from_secs(6) {
        let mut round = Vec::new();
        for node in [&a, &b] {
            let ingest = http
                .post(format!("{}/v1/events", node.base))
                .bearer_auth(&publisher.token)
                .json(&json!({"store": "shop", "type": "store/order/created", "data": {"probe": true}}));
            round.push(tokio::spawn(probe("POST /v1/events", ingest)));
            let graphql = http
                .post(format!("{}/graphql", node.base))
                .bearer_auth(&client.token)
                .json(&json!({"query": "{ store { webhooks { edges { node { id } } } } }"}));
            round.push(tokio::spawn(probe("POST /graphql", graphql)));
        }
        for p in round {
            probes.push(p.await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.pg_ctl("start");
    let downtime = down.elapsed();

    for p in &probes {
        assert!(
            p.status == Some(503) && p.retry_after && p.code.as_deref() == Some("Unavailable"),
            "while PostgreSQL was down, {} answered {p:?}; every answer must be a 503 with a JSON \
             error and Retry-After",
            p.what
        );
    }
    publishing.await.unwrap();
    let duplicates = settle(&a, &arrivals, TOTAL).await;
    let slowest = probes.iter().map(|p| p.took).max().unwrap_or_default();
    println!(
        "PostgreSQL stopped for {:.1} s: {} probes all 503 with Retry-After, the slowest in {:.1} s; {TOTAL} events delivered, {duplicates} copies sent twice",
        downtime.as_secs_f64(),
        probes.len(),
        slowest.as_secs_f64()
    );
    // Through an outage longer than the lease, a node's leases pass to the other when the
    // database is back: what it had sent but could not yet record may go twice.
    assert!(duplicates <= 64, "{duplicates} copies sent twice");
    // Both nodes answer again, without a restart.
    for node in [&a, &b] {
        node.gql_ok(&client, "{ eventTypes }").await;
    }
}
