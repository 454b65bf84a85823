//! Hostile receivers and token endpoints, through the real binary: raw TCP servers that
//! misbehave on purpose. Each must cost hookrelay a bounded time (the request timeout) and
//! memory, and leave a clear error in the attempt (docs/delivery.md#outcome-of-an-attempt).
//! `failure_modes` has the plain cases (refused, hung before the headers, reset).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::hooks::{deliveries, subscribe, WAIT};
use crate::common::receiver::eventually;
use crate::common::{Options, Server, Token};
use serde_json::{json, Value};

/// The request timeout of these tests.
const TIMEOUT: Duration = Duration::from_secs(2);

fn options() -> Options {
    let mut options = Options::default();
    options.args.extend([
        "--retry-schedule".into(),
        "60".into(),
        "--request-timeout".into(),
        "2s".into(),
    ]);
    options
}

/// Serves every connection with `behave`; returns the port.
async fn hostile<F, Fut>(behave: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(behave(socket));
        }
    });
    port
}

/// Reads the request head (up to the blank line), so that an answer follows a request.
async fn read_head(socket: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// The first attempt of the first delivery of `sub`.
async fn first_attempt(server: &Server, client: &Token, sub: &str) -> Value {
    eventually("a failed attempt", WAIT, || async {
        let all = deliveries(server, client, sub).await;
        all.first()?.get("attempts")?.get(0).cloned()
    })
    .await
}

async fn one_event(server: &Server, url: &str, extra: &str) -> (Token, String) {
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let sub = subscribe(server, &client, url, "ORDER_CONFIRMED", extra).await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    (client, sub)
}

/// The attempt failed with an error containing `expected`, within the timeout and a
/// little more.
fn assert_bounded(attempt: &Value, expected: &[&str]) {
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(
        expected.iter().any(|e| error.contains(e)),
        "the attempt says {error:?}, expected one of {expected:?}: {attempt}"
    );
    let took = attempt["durationMs"].as_u64().unwrap_or(u64::MAX);
    assert!(
        took <= TIMEOUT.as_millis() as u64 + 1_000,
        "the attempt took {took} ms: {attempt}"
    );
}

/// The server's resident memory now, in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test]
async fn a_receiver_that_accepts_and_never_answers_times_out() {
    let server = Server::start_with(options()).await;
    let port = hostile(|mut socket| async move {
        read_head(&mut socket).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    })
    .await;
    let (client, sub) = one_event(&server, &format!("http://127.0.0.1:{port}/x"), "").await;
    let attempt = first_attempt(&server, &client, &sub).await;
    assert_bounded(&attempt, &["timeout after 2s"]);
}

#[tokio::test]
async fn a_body_trickled_a_byte_a_second_is_cut_at_the_timeout() {
    let server = Server::start_with(options()).await;
    let port = hostile(|mut socket| async move {
        read_head(&mut socket).await;
        let head = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100000\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..100 {
            if socket.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let (client, sub) = one_event(&server, &format!("http://127.0.0.1:{port}/x"), "").await;
    let attempt = first_attempt(&server, &client, &sub).await;
    // The status came; the body did not finish within the timeout.
    assert_eq!(attempt["statusCode"], 500, "{attempt}");
    assert_bounded(&attempt, &["timeout", "reading the response"]);
}

#[tokio::test]
async fn a_one_gib_body_is_read_no_further_than_the_log_keeps() {
    let server = Server::start_with(options()).await;
    let pid = server.pid();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    let port = hostile(move |mut socket| {
        let counter = counter.clone();
        async move {
            read_head(&mut socket).await;
            let head = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1073741824\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..(1 << 14) {
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
                counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    })
    .await;
    let before = rss_mb(pid);
    let (client, sub) = one_event(&server, &format!("http://127.0.0.1:{port}/x"), "").await;
    // Sample the server's memory while the answer is being sent.
    let mut peak = before;
    let started = Instant::now();
    let attempt = loop {
        peak = peak.max(rss_mb(pid));
        let all = deliveries(&server, &client, &sub).await;
        if let Some(a) = all.first().and_then(|d| d["attempts"].get(0).cloned()) {
            break a;
        }
        assert!(started.elapsed() < WAIT, "no attempt logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "1 GiB answer: the receiver got {} KiB out before hookrelay stopped reading; server RSS {before:.1} MB before, {peak:.1} MB at most",
        sent / 1024
    );
    assert_eq!(attempt["statusCode"], 500, "{attempt}");
    let body = attempt["responseBody"].as_str().unwrap_or_default();
    assert_eq!(body.len(), 4096, "the log keeps 4 KiB: {}", body.len());
    assert!(
        peak - before < 32.0,
        "RSS grew {:.1} MB while a 1 GiB body was offered",
        peak - before
    );
    assert!(
        sent < 64 << 20,
        "hookrelay stopped reading early: the receiver wrote {sent} bytes"
    );
}

#[tokio::test]
async fn garbage_instead_of_http_fails_the_attempt_with_the_reason() {
    let server = Server::start_with(options()).await;
    let port = hostile(|mut socket| async move {
        read_head(&mut socket).await;
        let _ = socket
            .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 this is not HTTP\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (client, sub) = one_event(&server, &format!("http://127.0.0.1:{port}/x"), "").await;
    let attempt = first_attempt(&server, &client, &sub).await;
    assert_bounded(&attempt, &["invalid http", "not http", "parse", "invalid"]);
}

#[tokio::test]
async fn a_stalled_tls_handshake_times_out() {
    let server = Server::start_with(options()).await;
    // Takes the connection and the ClientHello, and never answers.
    let port = hostile(|mut socket| async move {
        let mut buf = [0u8; 4096];
        let _ = socket.read(&mut buf).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let (client, sub) = one_event(&server, &format!("https://127.0.0.1:{port}/x"), "").await;
    let attempt = first_attempt(&server, &client, &sub).await;
    assert_bounded(&attempt, &["timeout"]);
}

#[tokio::test]
async fn a_token_endpoint_answering_a_huge_or_malformed_body_fails_the_attempt() {
    let server = Server::start_with(options()).await;
    let pid = server.pid();
    let huge = hostile(|mut socket| async move {
        read_head(&mut socket).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{\"access_token\": \"";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..(1 << 14) {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let malformed = hostile(|mut socket| async move {
        read_head(&mut socket).await;
        let body = "{\"access_token\": [1, 2";
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(answer.as_bytes()).await;
    })
    .await;
    let before = rss_mb(pid);
    for (alias, port, reason) in [
        ("huge", huge, "the response is larger than 65536 bytes"),
        ("malformed", malformed, "response has no access_token"),
    ] {
        let client = server.client("shop");
        server
            .gql_ok(
                &client,
                &format!(
                    r#"mutation {{ createAuthProfile(input: {{ authProfileAliasId: "{alias}", authConfig: {{ oAuthConfig: {{ clientParameters: {{ clientId: "c", clientSecret: "s" }}, authEndpoint: "http://127.0.0.1:{port}/token", httpMethod: POST }} }} }}) {{ authProfileId }} }}"#
                ),
            )
            .await;
        let hook = crate::common::receiver::Receiver::ok().await;
        let sub = subscribe(
            &server,
            &client,
            &hook.url,
            "ORDER_CONFIRMED",
            &format!(r#", authProfileId: "{alias}""#),
        )
        .await;
        let publisher = server.token("publisher", None);
        server
            .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
            .await;
        let attempt = first_attempt(&server, &client, &sub).await;
        let error = attempt["error"].as_str().unwrap_or_default();
        assert_eq!(
            error,
            format!("token request failed: {reason}"),
            "{alias}: {attempt}"
        );
        assert_eq!(hook.count(), 0, "{alias}: no token, no delivery");
        println!("{alias} token endpoint: {error}");
    }
    let after = rss_mb(pid);
    assert!(
        after - before < 32.0,
        "RSS grew {:.1} MB over the token endpoints",
        after - before
    );
}
