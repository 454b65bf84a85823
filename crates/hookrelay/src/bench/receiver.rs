//! The benchmark's receivers: minimal HTTP/1.1 servers with keep-alive. By default one
//! listener per endpoint (each its own `host:port`, the unit of hookrelay's in-flight
//! limit and host breaker); with `--same-host` one listener for every endpoint, told apart
//! by path; with `--slow-host-ms` one more host that serves a few requests at a time,
//! slowly; and a local EventBridge endpoint for `--eventbridge`. They count unique
//! `webhook-id`s and the end-to-end latency from the publisher's `data.sentAt` to arrival.
//! They share the machine with the server being measured, so they do as little as
//! possible.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// What all healthy receivers saw together.
#[derive(Default)]
pub struct Tally {
    /// Unique deliveries at healthy receivers.
    pub unique: AtomicU64,
    pub duplicates: AtomicU64,
    /// Requests answered 500 by failing receivers.
    pub failing_requests: AtomicU64,
    seen: Mutex<HashSet<String>>,
    /// End-to-end latencies in microseconds.
    pub latencies: Mutex<Vec<u32>>,
    /// Unix microseconds of the last arrival.
    pub last_arrival: AtomicU64,
    /// `--keys`: for each (endpoint, key), the `data.n` its next first arrival should
    /// carry. Each key's events are published one after the other, numbered from 0.
    next_in_key: Mutex<HashMap<(usize, u64), u64>>,
    /// First arrivals whose `data.n` was not the next of their key: the order a
    /// subscriber sees broken.
    pub order_violations: AtomicU64,
    /// `--failing-keys`: events whose `data.key` is below this are answered 500.
    pub failing_keys: AtomicU32,
}

pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `data.sentAt` without parsing the whole body.
fn sent_at(body: &[u8]) -> Option<u64> {
    number(body, b"\"sentAt\":")
}

/// The unsigned number after `key` (`"name":`) in a JSON body, without parsing it.
fn number(body: &[u8], key: &[u8]) -> Option<u64> {
    let start = body.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = body[start..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// `data.key` and `data.n` of a keyed bench event.
fn key_and_n(body: &[u8]) -> Option<(u64, u64)> {
    Some((number(body, b"\"key\":")?, number(body, b"\"n\":")?))
}

impl Tally {
    /// Whether the receiver should fail this request (`--failing-keys`).
    fn fails(&self, body: &[u8]) -> bool {
        let failing = u64::from(self.failing_keys.load(Ordering::Relaxed));
        failing > 0 && key_and_n(body).is_some_and(|(key, _)| key < failing)
    }

    /// A delivery arrived at `endpoint` (the subscription's receiver or path).
    pub fn arrived(&self, endpoint: usize, id: Option<String>, body: &[u8]) {
        let now = now_micros();
        let fresh = match id {
            Some(id) => self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id),
            None => true,
        };
        if !fresh {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some((key, n)) = key_and_n(body) {
            let mut next = self.next_in_key.lock().unwrap_or_else(|e| e.into_inner());
            let expected = next.entry((endpoint, key)).or_insert(0);
            if n != *expected {
                self.order_violations.fetch_add(1, Ordering::Relaxed);
            }
            // After a violation, judge the next arrival against this one, so that one
            // event out of place counts once or twice, not for every event after it.
            *expected = n + 1;
        }
        if let Some(sent) = sent_at(body) {
            let micros = now.saturating_sub(sent).min(u32::MAX as u64) as u32;
            self.latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(micros);
        }
        self.last_arrival.fetch_max(now, Ordering::Relaxed);
        self.unique.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the EventBridge endpoint saw, besides the deliveries in the [`Tally`].
#[derive(Default)]
pub struct AwsTally {
    /// `PutPartnerEvents` calls.
    pub calls: AtomicU64,
    /// Entries in them.
    pub entries: AtomicU64,
}

/// Binds `127.0.0.1:0` and serves HTTP/1.1 with keep-alive; `handle` answers each request
/// from its head and body. Returns the port.
async fn serve<F, R>(what: &str, handle: F) -> Result<u16>
where
    F: Fn(hyper::http::request::Parts, Bytes) -> R + Send + Sync + 'static,
    R: Future<Output = Response<Full<Bytes>>> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .with_context(|| format!("binding {what}"))?;
    let port = listener.local_addr()?.port();
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let handle = handle.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        Ok::<_, hyper::Error>(handle(parts, body).await)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(port)
}

/// Starts a local EventBridge endpoint (AWS's JSON 1.1 protocol): it answers
/// `CreatePartnerEventSource` with an ARN and accepts every `PutPartnerEvents` entry,
/// counting each entry's `Detail` as a delivery (the Buy with Prime `idempotencyKey` is
/// the delivery id). Returns its port.
pub async fn start_eventbridge(tally: Arc<Tally>, aws: Arc<AwsTally>) -> Result<u16> {
    serve("the AWS endpoint", move |parts, body| {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (answer, content_type) = if target.starts_with("AmazonSQS.") {
            (
                sqs_answer(target, &body, &tally, &aws),
                "application/x-amz-json-1.0",
            )
        } else if target.is_empty() {
            // SNS speaks the query protocol: a form in, XML out.
            (sns_answer(&body, &tally, &aws), "text/xml")
        } else {
            (
                eventbridge_answer(target, &body, &tally, &aws),
                "application/x-amz-json-1.1",
            )
        };
        let mut response = Response::new(Full::new(Bytes::from(answer)));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        std::future::ready(response)
    })
    .await
}

/// The message's delivery, from the body every style carries (`idempotencyKey` in Buy
/// with Prime style).
fn idempotency_key(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|d| d["idempotencyKey"].as_str().map(str::to_owned))
}

/// `SendMessageBatch` takes every message.
fn sqs_answer(target: &str, body: &[u8], tally: &Tally, aws: &AwsTally) -> String {
    if target != "AmazonSQS.SendMessageBatch" {
        return "{}".to_owned();
    }
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    aws.calls.fetch_add(1, Ordering::Relaxed);
    aws.entries
        .fetch_add(entries.len() as u64, Ordering::Relaxed);
    let mut ok = Vec::with_capacity(entries.len());
    for entry in &entries {
        let message = entry["MessageBody"].as_str().unwrap_or_default();
        tally.arrived(0, idempotency_key(message), message.as_bytes());
        ok.push(serde_json::json!({
            "Id": entry["Id"],
            "MessageId": format!("bench-{}", aws.entries.load(Ordering::Relaxed)),
            "MD5OfMessageBody": "",
        }));
    }
    serde_json::json!({ "Successful": ok, "Failed": [] }).to_string()
}

/// `PublishBatch` takes every message.
fn sns_answer(body: &[u8], tally: &Tally, aws: &AwsTally) -> String {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    if form.get("Action").map(String::as_str) != Some("PublishBatch") {
        return "<Response/>".to_owned();
    }
    aws.calls.fetch_add(1, Ordering::Relaxed);
    let mut members = String::new();
    for n in 1.. {
        let prefix = format!("PublishBatchRequestEntries.member.{n}");
        let (Some(id), Some(message)) = (
            form.get(&format!("{prefix}.Id")),
            form.get(&format!("{prefix}.Message")),
        ) else {
            break;
        };
        aws.entries.fetch_add(1, Ordering::Relaxed);
        tally.arrived(0, idempotency_key(message), message.as_bytes());
        members.push_str(&format!(
            "<member><Id>{id}</Id><MessageId>bench-{n}</MessageId></member>"
        ));
    }
    format!(
        "<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
         <PublishBatchResult><Successful>{members}</Successful><Failed/></PublishBatchResult>\
         <ResponseMetadata><RequestId>bench</RequestId></ResponseMetadata></PublishBatchResponse>"
    )
}

fn eventbridge_answer(target: &str, body: &[u8], tally: &Tally, aws: &AwsTally) -> String {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match target {
        "AWSEvents.CreatePartnerEventSource" => serde_json::json!({
            "EventSourceArn": format!(
                "arn:aws:events:us-east-1::event-source/{}",
                request["Name"].as_str().unwrap_or_default()
            )
        })
        .to_string(),
        "AWSEvents.PutPartnerEvents" => {
            let entries = request["Entries"].as_array().cloned().unwrap_or_default();
            aws.calls.fetch_add(1, Ordering::Relaxed);
            aws.entries
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            let mut results = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                let detail = entry["Detail"].as_str().unwrap_or_default();
                tally.arrived(0, idempotency_key(detail), detail.as_bytes());
                results.push(serde_json::json!({ "EventId": format!("bench-{i}") }));
            }
            serde_json::json!({ "FailedEntryCount": 0, "Entries": results }).to_string()
        }
        _ => "{}".to_owned(),
    }
}

fn webhook_id(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Counts a delivery to a healthy endpoint (204), or a request to a failing one, or of a
/// failing key (500).
fn answer(
    tally: &Tally,
    endpoint: usize,
    failing: bool,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Response<Full<Bytes>> {
    if failing || tally.fails(body) {
        tally.failing_requests.fetch_add(1, Ordering::Relaxed);
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    }
    tally.arrived(endpoint, webhook_id(headers), body);
    empty(StatusCode::NO_CONTENT)
}

/// Starts the receiver of endpoint `endpoint`; returns its port. A failing receiver
/// answers 500 to everything.
pub async fn start(tally: Arc<Tally>, endpoint: usize, failing: bool) -> Result<u16> {
    serve("a receiver", move |parts, body| {
        std::future::ready(answer(&tally, endpoint, failing, &parts.headers, &body))
    })
    .await
}

/// Starts one receiver for many endpoints (`--same-host`): `/hook/{i}` answers 500 when
/// `i < failing` (counted in `failing_tally`), else 204 (counted in `healthy`).
pub async fn start_shared(
    healthy: Arc<Tally>,
    failing_tally: Arc<Tally>,
    failing: usize,
) -> Result<u16> {
    serve("the shared receiver", move |parts, body| {
        let index = parts
            .uri
            .path()
            .strip_prefix("/hook/")
            .and_then(|i| i.parse::<usize>().ok());
        let response = match index {
            Some(i) if i < failing => answer(&failing_tally, i, true, &parts.headers, &body),
            Some(i) => answer(&healthy, i, false, &parts.headers, &body),
            None => empty(StatusCode::NOT_FOUND),
        };
        std::future::ready(response)
    })
    .await
}

/// What the slow host saw, from its side.
#[derive(Default)]
pub struct SlowTally {
    pub tally: Tally,
    /// Requests inside the receiver now (served or waiting for a worker), and the most at
    /// once: what hookrelay had in flight to it.
    in_flight: AtomicU64,
    pub peak_in_flight: AtomicU64,
}

/// Starts a slow host (`--slow-host-ms`): it serves `workers` requests at a time and
/// answers each after `delay`; more requests wait for a worker, so its response time
/// grows with what it is sent beyond its capacity, as a real overloaded server's does.
pub async fn start_slow(slow: Arc<SlowTally>, delay: Duration, workers: usize) -> Result<u16> {
    let workers = Arc::new(tokio::sync::Semaphore::new(workers.max(1)));
    serve("the slow host", move |parts, body| {
        let (slow, workers) = (slow.clone(), workers.clone());
        async move {
            let now = slow.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            slow.peak_in_flight.fetch_max(now, Ordering::Relaxed);
            let response = match workers.acquire().await {
                Ok(_permit) => {
                    tokio::time::sleep(delay).await;
                    answer(&slow.tally, usize::MAX, false, &parts.headers, &body)
                }
                Err(_) => empty(StatusCode::SERVICE_UNAVAILABLE),
            };
            slow.in_flight.fetch_sub(1, Ordering::Relaxed);
            response
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sent_at_and_counts_duplicates() {
        assert_eq!(sent_at(br#"{"data":{"seq":1,"sentAt":1234}}"#), Some(1234));
        assert_eq!(sent_at(br#"{"data":{}}"#), None);
        let t = Tally::default();
        t.arrived(0, Some("a".into()), br#"{"sentAt":1}"#);
        t.arrived(0, Some("a".into()), br#"{"sentAt":1}"#);
        t.arrived(0, Some("b".into()), b"{}");
        assert_eq!(t.unique.load(Ordering::Relaxed), 2);
        assert_eq!(t.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(t.latencies.lock().unwrap().len(), 1);
    }

    #[test]
    fn counts_first_arrivals_out_of_their_key_order() {
        let t = Tally::default();
        let body = |key: u64, n: u64| format!(r#"{{"data":{{"key":{key},"n":{n},"sentAt":1}}}}"#);
        // Key 0 in order at endpoint 0, and again (its own order) at endpoint 1.
        for (endpoint, id, n) in [(0, "a", 0), (0, "b", 1), (1, "c", 0), (1, "d", 1)] {
            t.arrived(endpoint, Some(id.into()), body(0, n).as_bytes());
        }
        assert_eq!(t.order_violations.load(Ordering::Relaxed), 0);
        // A duplicate of an earlier one is a duplicate, not a violation.
        t.arrived(0, Some("a".into()), body(0, 0).as_bytes());
        assert_eq!(t.order_violations.load(Ordering::Relaxed), 0);
        // Key 1: n = 1 before n = 0 is one swap, counted at each of the two arrivals.
        t.arrived(0, Some("e".into()), body(1, 1).as_bytes());
        t.arrived(0, Some("f".into()), body(1, 0).as_bytes());
        assert_eq!(t.order_violations.load(Ordering::Relaxed), 2);
        t.failing_keys.store(1, Ordering::Relaxed);
        assert!(t.fails(body(0, 5).as_bytes()));
        assert!(!t.fails(body(1, 5).as_bytes()));
        assert!(!t.fails(br#"{"sentAt":1}"#));
    }
}
