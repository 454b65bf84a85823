//! Destinations that fail in every way a network can, through the real binary: refused,
//! hung, reset, redirected, resolving to a forbidden address (the OAuth token endpoint
//! too); a hanging host does not delay another; a failing endpoint trips its circuit
//! breaker (shared_host.rs has the shared-host and whole-host cases).

use std::time::{Duration, Instant};

use crate::common::hooks::{deliveries, metrics, subscribe, WAIT};
use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::{Options, Server, Token};
use serde_json::json;

fn options(extra: &[&str]) -> Options {
    let mut options = Options::default();
    options
        .args
        .extend(["--retry-schedule".into(), "60".into()]);
    options.args.extend(extra.iter().map(|s| s.to_string()));
    options
}

/// The error of the first attempt of the first delivery of `sub`.
async fn first_error(server: &Server, client: &Token, sub: &str) -> String {
    eventually("a failed attempt", WAIT, || async {
        let all = deliveries(server, client, sub).await;
        all.first()?.get("attempts")?.get(0)?["error"]
            .as_str()
            .map(str::to_owned)
    })
    .await
}

async fn one_event(server: &Server, url: &str) -> (Token, String) {
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let sub = subscribe(server, &client, url, "ORDER_CONFIRMED", "").await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    (client, sub)
}

#[tokio::test]
async fn refused_connection() {
    let server = Server::start_with(options(&[])).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (client, sub) = one_event(&server, &format!("http://127.0.0.1:{port}/x")).await;
    assert_eq!(
        first_error(&server, &client, &sub).await,
        "connection refused"
    );
}

#[tokio::test]
async fn hanging_endpoint_times_out() {
    let server = Server::start_with(options(&["--request-timeout", "500ms"])).await;
    let hook = Receiver::start(|_, _| Reply::status(204).after(Duration::from_secs(3))).await;
    let (client, sub) = one_event(&server, &hook.url).await;
    let error = first_error(&server, &client, &sub).await;
    assert!(error.starts_with("timeout"), "{error}");
}

#[tokio::test]
async fn connection_closed_without_an_answer() {
    let server = Server::start_with(options(&[])).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            // Close with RST, as a crashing server would.
            let _ = socket.set_zero_linger();
            drop(socket);
        }
    });
    let (client, sub) = one_event(&server, &format!("http://127.0.0.1:{port}/x")).await;
    let error = first_error(&server, &client, &sub).await;
    assert!(
        error.contains("reset") || error.contains("closed"),
        "{error}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Server::start_with(options(&[])).await;
    let target = Receiver::ok().await;
    let location = format!("{}/elsewhere", target.url);
    let hook = Receiver::start(move |_, _| Reply::status(302).header("Location", &location)).await;
    let (client, sub) = one_event(&server, &hook.url).await;
    let error = first_error(&server, &client, &sub).await;
    assert!(error.contains("302"), "{error}");
    assert_eq!(target.count(), 0);
}

/// A name (not a literal address) that resolves to loopback on this machine.
fn loopback_name() -> String {
    use std::net::ToSocketAddrs;
    let host = std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    for name in [
        host.as_str(),
        "vm",
        "runsc",
        "ip6-localhost",
        "localhost.localdomain",
    ] {
        if name.is_empty() {
            continue;
        }
        if let Ok(mut addrs) = (name, 80).to_socket_addrs() {
            if addrs.next().is_some_and(|a| a.ip().is_loopback()) {
                return name.to_owned();
            }
        }
    }
    panic!("no host name resolves to loopback on this machine");
}

/// Loopback is not allowed (only 127.0.0.2/32); a retry a minute away.
fn loopback_forbidden() -> Options {
    Options {
        args: vec![
            "--allow-http".into(),
            "--allowed-networks".into(),
            "127.0.0.2/32".into(),
            "--retry-schedule".into(),
            "60".into(),
        ],
        envs: Vec::new(),
    }
}

#[tokio::test]
async fn a_name_resolving_to_a_forbidden_address_is_refused_at_connect_time() {
    // Loopback is not allowed here; the URL's host is a name, so the API accepts it and
    // the connection-time check must refuse it.
    let server = Server::start_with(loopback_forbidden()).await;
    let hook = Receiver::ok().await;
    let url = format!("http://{}:{}/x", loopback_name(), hook.port);
    let (client, sub) = one_event(&server, &url).await;
    let error = first_error(&server, &client, &sub).await;
    assert!(error.starts_with("forbidden address"), "{error}");
    assert!(error.contains("loopback"), "{error}");
    assert_eq!(hook.count(), 0);
}

#[tokio::test]
async fn a_token_endpoint_resolving_to_a_forbidden_address_is_refused_too() {
    let server = Server::start_with(loopback_forbidden()).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let tokens = Receiver::start(|_, _| Reply::json(200, json!({"access_token": "t"}))).await;
    let hook = Receiver::ok().await;
    let name = loopback_name();
    server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ createAuthProfile(input: {{ authProfileAliasId: "o", authConfig: {{ oAuthConfig: {{ clientParameters: {{ clientId: "c", clientSecret: "s" }}, authEndpoint: "http://{name}:{}/token", httpMethod: POST }} }} }}) {{ authProfileId }} }}"#,
                tokens.port
            ),
        )
        .await;
    let sub = subscribe(
        &server,
        &client,
        &format!("http://{name}:{}/x", hook.port),
        "ORDER_CONFIRMED",
        r#", authProfileId: "o""#,
    )
    .await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    let error = first_error(&server, &client, &sub).await;
    assert!(error.starts_with("token request failed"), "{error}");
    assert!(error.contains("forbidden address"), "{error}");
    assert_eq!(tokens.count(), 0, "the token request did not reach it");
    assert_eq!(hook.count(), 0);
}

#[tokio::test]
async fn a_hanging_host_does_not_delay_another() {
    let server = Server::start_with(options(&[
        "--max-in-flight-per-host",
        "4",
        "--request-timeout",
        "10s",
    ]))
    .await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let slow = Receiver::start(|_, _| Reply::status(204).after(Duration::from_secs(5))).await;
    let fast = Receiver::ok().await;
    subscribe(&server, &client, &slow.url, "ORDER_CONFIRMED", "").await;
    subscribe(&server, &client, &fast.url, "ORDER_CONFIRMED", "").await;
    let started = Instant::now();
    for n in 0..40 {
        server
            .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": n}))
            .await;
    }
    fast.wait_for(40, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the healthy host waited for the hanging one: {:?}",
        started.elapsed()
    );
    assert!(
        slow.count() <= 4,
        "in flight to the hanging host: {}",
        slow.count()
    );
}

#[tokio::test]
async fn a_failing_endpoint_trips_the_breaker_and_resumes_after_the_pause() {
    let server = Server::start_with(options(&[
        "--breaker-window",
        "10s",
        "--breaker-min-requests",
        "10",
        "--breaker-pause",
        "2s",
        "--max-in-flight-per-host",
        "1",
    ]))
    .await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let failing = Receiver::start(|_, _| Reply::status(500)).await;
    let healthy = Receiver::ok().await;
    let failing_sub = subscribe(&server, &client, &failing.url, "ORDER_CONFIRMED", "").await;
    subscribe(&server, &client, &healthy.url, "ORDER_CONFIRMED", "").await;
    for n in 0..40 {
        server
            .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": n}))
            .await;
    }
    healthy.wait_for(40, WAIT).await;
    eventually("the breaker opens", WAIT, || async {
        let text = metrics(&server).await;
        text.lines()
            .any(|l| {
                l.starts_with(r#"hookrelay_breaker_opened_total{level="endpoint"}"#)
                    && !l.ends_with(" 0")
            })
            .then_some(())
    })
    .await;
    let at_pause = failing.count();
    assert!(
        (10..20).contains(&at_pause),
        "about min_requests attempts before the pause, got {at_pause}"
    );
    // While paused, nothing more goes to the failing host.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(failing.count(), at_pause, "requests during the pause");
    // The paused deliveries wait without counting attempts: the log has one per request.
    let waiting = deliveries(&server, &client, &failing_sub).await;
    assert_eq!(waiting.len(), 40);
    assert!(
        waiting.iter().all(|d| d["status"] == "PENDING"),
        "{waiting:?}"
    );
    let attempts: i64 = waiting
        .iter()
        .map(|d| d["attemptCount"].as_i64().unwrap())
        .sum();
    assert_eq!(
        attempts as usize, at_pause,
        "attempts logged = requests made"
    );
    // After the pause the waiting deliveries are attempted.
    eventually("attempts after the pause", WAIT, || async {
        (failing.count() > at_pause).then_some(())
    })
    .await;
}
