//! Isolation on a host that many subscriptions share, through the real binary
//! (docs/delivery.md "Blocking a failing destination", "Concurrency"):
//! - an endpoint that answers 500 is paused alone; the healthy endpoints on the same
//!   `host:port` get every delivery, also while it is paused;
//! - a host that refuses connections is paused as a whole, and resumes after the pause;
//! - the adaptive in-flight limit stays between its floor and its ceiling, grows under
//!   load, and is shown to admins in GraphQL `hosts` and in `/metrics`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::hooks::{metrics, series, subscribe, WAIT};
use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::{unix_of, Options, Server, Token};
use serde_json::{json, Value};

/// A breaker rule that trips within a test: 10 requests in 10 s under 90 % success.
fn options(pause: &str, extra: &[&str]) -> Options {
    let mut options = Options::default();
    for arg in [
        "--breaker-window",
        "10s",
        "--breaker-min-requests",
        "10",
        "--breaker-pause",
        pause,
    ] {
        options.args.push(arg.into());
    }
    options.args.extend(extra.iter().map(|s| s.to_string()));
    options
}

const HOSTS: &str = "{ hosts { host inFlight queued limit rttMs breaker pausedSince pausedUntil pausedEndpoints { url pausedSince pausedUntil } } }";

/// The lane `host` as GraphQL `hosts` shows it to an admin (through the store path).
async fn host(server: &Server, admin: &Token, host: &str) -> Option<Value> {
    let (status, body) = server
        .gql_at("/stores/shop/graphql", admin, HOSTS, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["hosts"]
        .as_array()?
        .iter()
        .find(|h| h["host"] == host)
        .cloned()
}

async fn publish_n(server: &Server, publisher: &Token, from: usize, n: usize) {
    for i in from..from + n {
        server
            .publish(publisher, "shop", "ORDER_CONFIRMED", json!({"n": i}))
            .await;
    }
}

#[tokio::test]
async fn a_failing_endpoint_on_a_shared_host_pauses_alone() {
    let server = Server::start_with(options(
        "5s",
        &["--retry-schedule", "60", "--max-in-flight-per-host", "8"],
    ))
    .await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let admin = server.token("admin", None);
    // One host:port; /bad answers 500, every other path 204.
    let receiver =
        Receiver::start(|_, r| Reply::status(if r.path == "/bad" { 500 } else { 204 })).await;
    let count = |path: &str| {
        receiver
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    };
    let bad = subscribe(
        &server,
        &client,
        &format!("{}/bad", receiver.url),
        "ORDER_CONFIRMED",
        "",
    )
    .await;
    for path in ["good-1", "good-2"] {
        subscribe(
            &server,
            &client,
            &format!("{}/{path}", receiver.url),
            "ORDER_CONFIRMED",
            "",
        )
        .await;
    }

    publish_n(&server, &publisher, 0, 60).await;
    eventually("every healthy delivery", WAIT, || async {
        (count("/good-1") >= 60 && count("/good-2") >= 60).then_some(())
    })
    .await;
    let text = eventually("the endpoint breaker open in /metrics", WAIT, || async {
        let text = metrics(&server).await;
        (series(&text, r#"hookrelay_breakers_open{level="endpoint"}"#) == 1.0).then_some(text)
    })
    .await;
    assert_eq!(
        series(&text, r#"hookrelay_breakers_open{level="host"}"#),
        0.0,
        "the host itself is fine"
    );
    assert_eq!(
        series(&text, r#"hookrelay_breaker_opened_total{level="host"}"#),
        0.0
    );
    assert!(series(&text, r#"hookrelay_breaker_opened_total{level="endpoint"}"#) >= 1.0);
    let at_pause = count("/bad");
    assert!(
        (10..10 + 8).contains(&at_pause),
        "min_requests, plus what was in flight, before the pause: {at_pause}"
    );

    // Operators see which endpoint is paused, and that the host is not.
    let lane = format!("127.0.0.1:{}", receiver.port);
    let shown = host(&server, &admin, &lane).await.expect("the shared host");
    assert_eq!(shown["breaker"], "CLOSED", "{shown}");
    assert!(shown["pausedUntil"].is_null(), "{shown}");
    let paused = shown["pausedEndpoints"].as_array().expect("endpoints");
    assert_eq!(paused.len(), 1, "{shown}");
    assert_eq!(paused[0]["url"], format!("{}/bad", receiver.url));
    assert!(paused[0]["pausedUntil"].is_string());
    // Since when: the pause's length before its end.
    assert!(
        unix_of(paused[0]["pausedSince"].as_str().expect("since"))
            < unix_of(paused[0]["pausedUntil"].as_str().unwrap()),
        "{shown}"
    );
    let limit = shown["limit"].as_u64().expect("limit");
    assert!((1..=8).contains(&limit), "{shown}");
    assert!(shown["rttMs"].as_f64().is_some(), "{shown}");
    // Only admins.
    let (_, body) = server.gql_at("/graphql", &client, HOSTS, json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["classification"], "AccessDeniedError",
        "{body}"
    );

    // While it is paused the neighbours keep flowing and nothing goes to /bad.
    publish_n(&server, &publisher, 60, 20).await;
    eventually("healthy deliveries during the pause", WAIT, || async {
        (count("/good-1") >= 80 && count("/good-2") >= 80).then_some(())
    })
    .await;
    assert_eq!(count("/bad"), at_pause, "requests to the paused endpoint");
    // Its deliveries wait without using attempts: one logged attempt per request made.
    let page = server
        .gql_ok(
            &client,
            &format!(
                r#"{{ deliveries(subscriptionId: "{bad}", first: 200) {{ edges {{ node {{ status attemptCount }} }} }} }}"#
            ),
        )
        .await;
    let waiting: Vec<Value> = page["deliveries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(waiting.len(), 80);
    assert!(
        waiting.iter().all(|d| d["status"] == "PENDING"),
        "{waiting:?}"
    );
    let attempts: i64 = waiting
        .iter()
        .map(|d| d["attemptCount"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(attempts as usize, at_pause);

    // After the pause the waiting deliveries go out again.
    eventually("attempts after the pause", WAIT, || async {
        (count("/bad") > at_pause).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_host_that_refuses_connections_is_paused_whole_and_resumes() {
    let server =
        Server::start_with(options("3s", &["--retry-schedule", "1,1,1,1,1,1,1,1,1,1"])).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let admin = server.token("admin", None);
    // Nothing listens on `port` (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for path in ["a", "b"] {
        subscribe(
            &server,
            &client,
            &format!("http://127.0.0.1:{port}/{path}"),
            "ORDER_CONFIRMED",
            "",
        )
        .await;
    }
    publish_n(&server, &publisher, 0, 15).await;
    let text = eventually("the host breaker open in /metrics", WAIT, || async {
        let text = metrics(&server).await;
        (series(&text, r#"hookrelay_breakers_open{level="host"}"#) == 1.0).then_some(text)
    })
    .await;
    assert_eq!(
        series(&text, r#"hookrelay_breaker_opened_total{level="endpoint"}"#),
        0.0,
        "refused connections are the host's failures, not its endpoints'"
    );
    let lane = format!("127.0.0.1:{port}");
    assert_eq!(
        series(
            &text,
            &format!(r#"hookrelay_host_breaker_open{{host="{lane}"}}"#)
        ),
        1.0
    );
    let shown = host(&server, &admin, &lane).await.expect("the host");
    assert_eq!(shown["breaker"], "OPEN", "{shown}");
    assert!(shown["pausedUntil"].is_string(), "{shown}");
    assert!(
        unix_of(shown["pausedSince"].as_str().expect("since"))
            < unix_of(shown["pausedUntil"].as_str().unwrap()),
        "{shown}"
    );

    // The host comes back: after the pause every (event, subscription) pair arrives.
    let receiver = Receiver::start_on(port, |_, _| Reply::status(204)).await;
    let ids = eventually("all 30 deliveries after the pause", WAIT, || async {
        let ids: HashSet<String> = receiver
            .requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect();
        (ids.len() >= 30).then_some(ids)
    })
    .await;
    assert_eq!(ids.len(), 30);
    eventually("the breaker closed again", WAIT, || async {
        let shown = host(&server, &admin, &lane).await?;
        (shown["breaker"] == "CLOSED").then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_in_flight_limit_grows_under_load_and_keeps_to_its_ceiling() {
    let server = Server::start_with(options(
        "3m",
        &[
            "--min-in-flight-per-host",
            "2",
            "--max-in-flight-per-host",
            "6",
        ],
    ))
    .await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let admin = server.token("admin", None);
    // Counts the requests being answered at once, as the receiver sees them.
    let open = Arc::new(AtomicUsize::new(0));
    let receiver =
        Receiver::start(|_, _| Reply::status(204).after(Duration::from_millis(30))).await;
    subscribe(&server, &client, &receiver.url, "ORDER_CONFIRMED", "").await;
    let lane = format!("127.0.0.1:{}", receiver.port);

    let sampler = {
        let (open, receiver_open) = (open.clone(), receiver.open_requests_counter());
        tokio::spawn(async move {
            loop {
                open.fetch_max(receiver_open(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    publish_n(&server, &publisher, 0, 300).await;
    let grown = eventually("the limit above its floor", WAIT, || async {
        let shown = host(&server, &admin, &lane).await?;
        let limit = shown["limit"].as_u64()?;
        (limit > 2).then_some(limit)
    })
    .await;
    assert!(grown <= 6, "{grown}");
    receiver.wait_for(300, WAIT).await;
    sampler.abort();
    let most = open.load(Ordering::Relaxed);
    assert!(most <= 6, "{most} requests at once against a ceiling of 6");
    assert!(most > 2, "the limit never grew past its floor: {most}");
    let text = metrics(&server).await;
    let limit = series(
        &text,
        &format!(r#"hookrelay_host_in_flight_limit{{host="{lane}"}}"#),
    );
    assert!((2.0..=6.0).contains(&limit), "{limit}");
    assert!(
        series(
            &text,
            &format!(r#"hookrelay_host_rtt_seconds{{host="{lane}"}}"#)
        ) >= 0.03
    );
}

#[test]
fn a_floor_above_the_ceiling_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let err = crate::common::cli_fails(&[
        "serve",
        "--data-dir",
        data,
        "--min-in-flight-per-host",
        "10",
        "--max-in-flight-per-host",
        "5",
    ]);
    assert!(
        err.contains("min_in_flight_per_host (10) must not be above max_in_flight_per_host (5)"),
        "{err}"
    );
    let err = crate::common::cli_fails(&[
        "serve",
        "--data-dir",
        data,
        "--endpoint-breaker-success-ratio",
        "1.5",
    ]);
    assert!(
        err.contains("endpoint_breaker_success_ratio must be between 0 and 1"),
        "{err}"
    );
}

/// The endpoint level has settings of its own: here, from the config file, an endpoint
/// rule that trips after 10 requests while the host keeps the default 100.
#[tokio::test]
async fn endpoint_breaker_settings_apart_from_the_hosts_from_the_config_file() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "retry_schedule = \"60\"\nmax_in_flight_per_host = 4\n\
         endpoint_breaker_window = \"10s\"\nendpoint_breaker_min_requests = 10\n\
         endpoint_breaker_pause = \"1m\"\n",
    )
    .unwrap();
    let mut options = Options::default();
    options.args.push("--config".into());
    options
        .args
        .push(config.path().to_str().unwrap().to_owned());
    let server = Server::start_with(options).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let failing = Receiver::start(|_, _| Reply::status(500)).await;
    subscribe(&server, &client, &failing.url, "ORDER_CONFIRMED", "").await;
    publish_n(&server, &publisher, 0, 40).await;
    eventually("the endpoint breaker open", WAIT, || async {
        let text = metrics(&server).await;
        (series(&text, r#"hookrelay_breakers_open{level="endpoint"}"#) == 1.0).then_some(())
    })
    .await;
    let requests = failing.count();
    assert!(
        (10..10 + 4).contains(&requests),
        "the endpoint rule (10), not the host's (100): {requests} requests"
    );
}
