//! Real HTTP receivers on `127.0.0.1:0` for delivery tests: each records every request
//! and answers as its plan says (a status, headers, a body, a delay), so tests can play
//! healthy endpoints, failing ones, slow ones, OAuth token endpoints and rate limiters.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// Where the request came from (the sending node's local address).
    pub peer: SocketAddr,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Decides the reply to the `n`-th request (0-based).
pub type Plan = Box<dyn FnMut(usize, &Received) -> Reply + Send>;

struct Shared {
    requests: Mutex<Vec<Received>>,
    /// Requests not answered yet (waiting out their reply's delay), by arrival number.
    open: Mutex<BTreeMap<usize, Received>>,
    plan: Mutex<Plan>,
}

/// Takes a request off the open list when it is answered, or when its sender goes away
/// before the answer (the handler is dropped).
struct Answering<'a> {
    shared: &'a Shared,
    n: usize,
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.shared.open.lock().unwrap().remove(&self.n);
    }
}

pub struct Receiver {
    pub url: String,
    pub port: u16,
    shared: Arc<Shared>,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
        peer,
    };
    let (n, reply) = {
        let mut requests = shared.requests.lock().unwrap();
        let n = requests.len();
        let reply = (shared.plan.lock().unwrap())(n, &received);
        shared.open.lock().unwrap().insert(n, received.clone());
        requests.push(received);
        (n, reply)
    };
    let _answering = Answering { shared: &shared, n };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    for (k, v) in &reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    response
}

impl Receiver {
    /// A receiver that answers every request as `plan` says.
    pub async fn start(plan: impl FnMut(usize, &Received) -> Reply + Send + 'static) -> Receiver {
        Self::start_on(0, plan).await
    }

    /// The same on a given port (0: any), e.g. to bring back a host that was down.
    pub async fn start_on(
        port: u16,
        plan: impl FnMut(usize, &Received) -> Reply + Send + 'static,
    ) -> Receiver {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            open: Mutex::new(BTreeMap::new()),
            plan: Mutex::new(Box::new(plan)),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}"),
            port,
            shared,
        }
    }

    /// Answers 204 to everything.
    pub async fn ok() -> Receiver {
        Self::start(|_, _| Reply::status(204)).await
    }

    /// Changes how later requests are answered.
    pub fn set_plan(&self, plan: impl FnMut(usize, &Received) -> Reply + Send + 'static) {
        *self.shared.plan.lock().unwrap() = Box::new(plan);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// The requests that arrived and are not answered yet (their reply is delayed).
    pub fn open_requests(&self) -> Vec<Received> {
        self.shared.open.lock().unwrap().values().cloned().collect()
    }

    /// A reader of how many requests are being answered now, for sampling from a task.
    pub fn open_requests_counter(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.open.lock().unwrap().len()
    }

    /// Waits until at least `n` requests arrived (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests at {}, got {} within {timeout:?}",
                self.url,
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Polls `check` until it returns `Some` (panics with `what` after `timeout`).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
