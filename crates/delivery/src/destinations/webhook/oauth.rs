//! OAuth 2.0 client-credentials tokens for webhook destinations
//! (docs/payloads.md#destination-authentication): fetched from the profile's token
//! endpoint, cached per profile until shortly before they expire, and fetched once however
//! many deliveries wait for one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hookrelay_core::model::{HttpMethod, OAuthConfig};
use hookrelay_core::net::AddressPolicy;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use url::Url;

use super::http::describe_error;
use crate::resolver::check_target;

/// How long a token without `expires_in` is used.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// The most a token is refreshed ahead of its expiry, so a delivery never carries a token
/// that expires on its way.
const MAX_MARGIN: Duration = Duration::from_secs(60);
/// Tokens are refreshed at least daily, whatever `expires_in` claims.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Token responses are small; a larger one is cut here instead of filling memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of an error answer the delivery log shows.
const ERROR_EXCERPT_CHARS: usize = 200;

const FORM: &str = "application/x-www-form-urlencoded";

/// Why no token could be had. Every message starts with `token request failed: `, which
/// is what the delivery log shows for the failed attempt. `Clone` because one failed
/// request answers every caller that waited for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token request failed: invalid auth endpoint ({0})")]
    InvalidEndpoint(String),
    /// The endpoint's scheme or IP-literal host is not allowed by the address policy.
    #[error("token request failed: {0}")]
    Refused(String),
    #[error("token request failed: invalid header parameter {0:?}")]
    InvalidHeader(String),
    #[error("token request failed: endpoint answered {status}: {body}")]
    Status { status: u16, body: String },
    /// The request did not get an answer; the text is [`describe_error`]'s.
    #[error("token request failed: {0}")]
    Network(String),
    #[error("token request failed: response has no access_token")]
    NoAccessToken,
    #[error("token request failed: the response is larger than {0} bytes")]
    TooLarge(usize),
}

struct Cached {
    version: String,
    token: Arc<str>,
    expires_at: Instant,
}

#[derive(Default)]
struct SlotState {
    cached: Option<Cached>,
    /// Finished fetches, so a caller that waited for one can tell it happened.
    fetches: u64,
    /// The outcome of the last fetch when it failed, with the version it was for.
    last_error: Option<(String, TokenError)>,
}

impl SlotState {
    fn valid(&self, version: &str, now: Instant) -> Option<Arc<str>> {
        self.cached
            .as_ref()
            .filter(|c| c.version == version && now < c.expires_at)
            .map(|c| c.token.clone())
    }
}

/// One profile's cache entry.
#[derive(Default)]
struct Slot {
    /// Held across a fetch, so that concurrent callers queue behind one request.
    fetching: tokio::sync::Mutex<()>,
    /// Never held across an await, so [`TokenCache::invalidate`] can stay synchronous.
    state: Mutex<SlotState>,
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        // The state is only ever assigned whole, so a panic elsewhere cannot leave it
        // half-written: a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The token cache shared by every delivery.
pub struct TokenCache {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl TokenCache {
    /// `client` should be the shared client of [`super::http::build_client`], whose
    /// resolver applies the address policy to names; `policy` covers IP-literal endpoints.
    pub fn new(client: reqwest::Client, policy: Arc<AddressPolicy>) -> Self {
        Self {
            client,
            policy,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// A bearer token for the profile `key` (callers pass "store_hash/profile_id").
    /// `version` identifies the config (callers pass the profile's updated_at millis):
    /// a cached token for another version is never used. Concurrent callers of one key
    /// share one token request, and share its failure too: callers that waited for a
    /// fetch that failed get its error rather than each trying again in turn.
    pub async fn token(
        &self,
        key: &str,
        version: &str,
        config: &OAuthConfig,
    ) -> Result<Arc<str>, TokenError> {
        let slot = self.slot(key);
        let seen = {
            let state = slot.state();
            if let Some(token) = state.valid(version, Instant::now()) {
                return Ok(token);
            }
            state.fetches
        };

        let _fetching = slot.fetching.lock().await;
        {
            let state = slot.state();
            if let Some(token) = state.valid(version, Instant::now()) {
                return Ok(token);
            }
            if state.fetches != seen {
                if let Some((failed_version, err)) = &state.last_error {
                    if failed_version == version {
                        return Err(err.clone());
                    }
                }
            }
        }

        let result = self.fetch(config).await;
        let mut state = slot.state();
        state.fetches += 1;
        match &result {
            Ok(fetched) => {
                state.cached = Some(Cached {
                    version: version.to_owned(),
                    token: fetched.token.clone(),
                    expires_at: Instant::now() + fetched.lifetime,
                });
                state.last_error = None;
            }
            Err(err) => state.last_error = Some((version.to_owned(), err.clone())),
        }
        result.map(|fetched| fetched.token)
    }

    /// Drops the cached token of `key` if it is still `stale` (the token a webhook
    /// answered 401 to), so a token that another caller fetched meanwhile is kept.
    /// `stale: None` drops whatever is cached (profile updated or deleted), and the entry
    /// with it, so deleted profiles do not linger.
    pub fn invalidate(&self, key: &str, stale: Option<&str>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = slots.get(key) else { return };
        match stale {
            None => {
                slot.state().cached = None;
                slots.remove(key);
            }
            Some(stale) => {
                let mut state = slot.state();
                if state.cached.as_ref().is_some_and(|c| &*c.token == stale) {
                    state.cached = None;
                }
            }
        }
    }

    async fn fetch(&self, config: &OAuthConfig) -> Result<Fetched, TokenError> {
        let request = self.request(config)?;
        let response = request
            .send()
            .await
            .map_err(|e| TokenError::Network(describe_error(&e)))?;
        let status = response.status();
        let body = read_limited(response).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(TokenError::Status {
                status: status.as_u16(),
                body: text.trim().chars().take(ERROR_EXCERPT_CHARS).collect(),
            });
        }
        parse_token(&body)
    }

    /// The token request as docs/payloads.md#destination-authentication describes it.
    fn request(&self, config: &OAuthConfig) -> Result<reqwest::RequestBuilder, TokenError> {
        let mut url = Url::parse(&config.auth_endpoint)
            .map_err(|e| TokenError::InvalidEndpoint(e.to_string()))?;
        check_target(&self.policy, &url).map_err(TokenError::Refused)?;

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut content_type = None;
        for kv in &config.header_parameters {
            let name = HeaderName::from_bytes(kv.key.as_bytes())
                .map_err(|_| TokenError::InvalidHeader(kv.key.clone()))?;
            let value = HeaderValue::from_str(&kv.value)
                .map_err(|_| TokenError::InvalidHeader(kv.key.clone()))?;
            if name == CONTENT_TYPE {
                content_type = Some(kv.value.to_ascii_lowercase());
            }
            if name == ACCEPT {
                // Theirs replaces our default rather than adding to it.
                headers.insert(name, value);
            } else {
                headers.append(name, value);
            }
        }

        // client_id and client_secret come from their own fields; a body parameter of
        // the same name would send the credential twice.
        let params: Vec<(&str, &str)> = config
            .body_parameters
            .iter()
            .filter(|kv| kv.key != "client_id" && kv.key != "client_secret")
            .map(|kv| (kv.key.as_str(), kv.value.as_str()))
            .chain([
                ("client_id", config.client_id.as_str()),
                ("client_secret", config.client_secret.as_str()),
            ])
            .collect();

        let method = match config.http_method {
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Get => reqwest::Method::GET,
        };
        if method == reqwest::Method::GET {
            url.query_pairs_mut().extend_pairs(&params);
            return Ok(self.client.get(url).headers(headers));
        }

        let json = content_type
            .as_deref()
            .is_some_and(|ct| ct.contains("application/json"));
        let body = if json {
            let object: serde_json::Map<String, serde_json::Value> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                .collect();
            serde_json::Value::Object(object).to_string()
        } else {
            if content_type.is_none() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM));
            }
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish()
        };
        Ok(self.client.request(method, url).headers(headers).body(body))
    }
}

struct Fetched {
    token: Arc<str>,
    lifetime: Duration,
}

/// The body, at most [`MAX_RESPONSE_BYTES`]: a longer one is refused without reading
/// the rest (a token response is a few hundred bytes).
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, TokenError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_RESPONSE_BYTES {
                    return Err(TokenError::TooLarge(MAX_RESPONSE_BYTES));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(TokenError::Network(describe_error(&e))),
        }
    }
}

/// `{"access_token": "...", "expires_in": N}`; `expires_in` may be missing, and some
/// servers send it as a string.
fn parse_token(body: &[u8]) -> Result<Fetched, TokenError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| TokenError::NoAccessToken)?;
    let token = value
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::NoAccessToken)?;
    let expires_in = value.get("expires_in").and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    });
    Ok(Fetched {
        token: Arc::from(token),
        lifetime: expires_in.map_or(DEFAULT_LIFETIME, lifetime),
    })
}

/// [`parse_token`] for the fuzz targets (fuzz/): the token, and how long it is used.
#[doc(hidden)]
pub fn parse_token_for_fuzzing(body: &[u8]) -> Result<(Arc<str>, Duration), TokenError> {
    parse_token(body).map(|f| (f.token, f.lifetime))
}

/// `expires_in` minus a margin of a tenth, at most [`MAX_MARGIN`].
fn lifetime(expires_in_secs: f64) -> Duration {
    let expires_in = Duration::try_from_secs_f64(expires_in_secs.max(0.0))
        .unwrap_or(MAX_LIFETIME)
        .min(MAX_LIFETIME);
    expires_in.saturating_sub(MAX_MARGIN.min(expires_in / 10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Bytes, extract::RawQuery, extract::State, http::Method};
    use hookrelay_core::model::KeyValue;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// (method, headers, query, body) of a request the token server saw.
    type Seen = (Method, axum::http::HeaderMap, Option<String>, String);

    /// A token server on 127.0.0.1:0 that counts requests and answers `tok-<n>`.
    #[derive(Clone, Default)]
    struct Server {
        hits: Arc<AtomicUsize>,
        seen: Arc<Mutex<Vec<Seen>>>,
        /// (status, expires_in); `None` leaves `expires_in` out.
        reply: Arc<Mutex<(u16, Option<f64>)>>,
        /// Latency of a real endpoint: gives concurrent callers time to pile up.
        delay: Duration,
    }

    async fn handle(
        State(s): State<Server>,
        method: Method,
        headers: axum::http::HeaderMap,
        RawQuery(query): RawQuery,
        body: Bytes,
    ) -> (axum::http::StatusCode, String) {
        let n = s.hits.fetch_add(1, SeqCst) + 1;
        let body = String::from_utf8_lossy(&body).into_owned();
        s.seen.lock().unwrap().push((method, headers, query, body));
        tokio::time::sleep(s.delay).await;
        let (status, expires_in) = *s.reply.lock().unwrap();
        let mut reply = serde_json::json!({"access_token": format!("tok-{n}")});
        match (status, expires_in) {
            (200, Some(e)) => reply["expires_in"] = e.into(),
            (200, None) => {}
            _ => reply = serde_json::json!({"error": "invalid_client"}),
        }
        (status.try_into().unwrap(), reply.to_string())
    }

    impl Server {
        async fn start(delay: Duration) -> (Self, String) {
            let server = Server {
                delay,
                ..Default::default()
            };
            *server.reply.lock().unwrap() = (200, Some(3600.0));
            let app = axum::Router::new()
                .route("/token", axum::routing::any(handle))
                .with_state(server.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            (server, format!("http://{addr}/token"))
        }
        fn hits(&self) -> usize {
            self.hits.load(SeqCst)
        }
        fn last(&self) -> Seen {
            self.seen
                .lock()
                .unwrap()
                .last()
                .cloned()
                .expect("a request")
        }
    }

    fn cache_with(networks: &str) -> Arc<TokenCache> {
        let networks = AddressPolicy::parse_networks(networks).unwrap();
        let policy = Arc::new(AddressPolicy {
            allow_http: true,
            allowed_networks: networks,
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        });
        let client = crate::destinations::webhook::http::build_client(
            policy.clone(),
            Duration::from_secs(5),
            4,
        )
        .unwrap();
        Arc::new(TokenCache::new(client, policy))
    }

    fn cache() -> Arc<TokenCache> {
        cache_with("127.0.0.0/8")
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }

    fn config(endpoint: &str) -> OAuthConfig {
        OAuthConfig {
            client_id: "id-1".into(),
            client_secret: "s3cr3t&=".into(),
            auth_endpoint: endpoint.into(),
            http_method: HttpMethod::Post,
            body_parameters: vec![kv("grant_type", "client_credentials"), kv("scope", "a b")],
            header_parameters: vec![kv("X-Tenant", "t1")],
        }
    }

    fn form(s: &str) -> HashMap<String, String> {
        url::form_urlencoded::parse(s.as_bytes())
            .into_owned()
            .collect()
    }

    #[tokio::test]
    async fn request_shapes_form_json_get() {
        let (server, url) = Server::start(Duration::ZERO).await;
        assert_eq!(
            &*cache().token("s/p", "1", &config(&url)).await.unwrap(),
            "tok-1"
        );
        let (method, headers, _, body) = server.last();
        assert_eq!(method, Method::POST);
        assert_eq!(headers["x-tenant"], "t1");
        assert_eq!(headers["content-type"], FORM);
        assert_eq!(headers["accept"], "application/json");
        let expected = [
            ("grant_type", "client_credentials"),
            ("scope", "a b"),
            ("client_id", "id-1"),
            ("client_secret", "s3cr3t&="),
        ];
        let expected: HashMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(form(&body), expected);

        let mut json = config(&url);
        json.header_parameters
            .push(kv("content-TYPE", "Application/JSON; charset=utf-8"));
        cache().token("s/p", "1", &json).await.unwrap();
        let body: HashMap<String, String> = serde_json::from_str(&server.last().3).unwrap();
        assert_eq!(body, expected);

        let mut get = config(&url);
        get.http_method = HttpMethod::Get;
        cache().token("s/p", "1", &get).await.unwrap();
        let (method, _, query, body) = server.last();
        assert_eq!((method, body.as_str()), (Method::GET, ""));
        assert_eq!(form(&query.unwrap()), expected);
    }

    #[tokio::test]
    async fn cached_invalidated_and_versioned() {
        let (server, url) = Server::start(Duration::ZERO).await;
        let (cache, cfg) = (cache(), config(&url));
        let token = |version: &'static str, key: &'static str| {
            let (cache, cfg) = (cache.clone(), cfg.clone());
            async move { cache.token(key, version, &cfg).await.unwrap().to_string() }
        };
        assert_eq!(token("1", "s/p").await, "tok-1");
        assert_eq!(token("1", "s/p").await, "tok-1");
        // A 401 to some other token does not drop the current one; to this one it does.
        cache.invalidate("s/p", Some("other"));
        assert_eq!(token("1", "s/p").await, "tok-1");
        assert_eq!(server.hits(), 1);
        cache.invalidate("s/p", Some("tok-1"));
        assert_eq!(token("1", "s/p").await, "tok-2");
        // A new config version never uses the old token; another key has its own.
        assert_eq!(token("2", "s/p").await, "tok-3");
        assert_eq!(token("2", "s/q").await, "tok-4");
        cache.invalidate("s/p", None);
        assert_eq!(token("2", "s/p").await, "tok-5");
        assert_eq!(token("2", "s/q").await, "tok-4");
        assert_eq!(server.hits(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_request() {
        let (server, url) = Server::start(Duration::from_millis(100)).await;
        let (cache, cfg) = (cache(), Arc::new(config(&url)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (cache, cfg) = (cache.clone(), cfg.clone());
            tasks.spawn(async move { cache.token("s/p", "1", &cfg).await });
        }
        while let Some(result) = tasks.join_next().await {
            assert_eq!(&*result.unwrap().unwrap(), "tok-1");
        }
        assert_eq!(server.hits(), 1);

        // A failure is shared the same way instead of being retried by every waiter.
        *server.reply.lock().unwrap() = (400, None);
        for _ in 0..20 {
            let (cache, cfg) = (cache.clone(), cfg.clone());
            tasks.spawn(async move { cache.token("s/p", "2", &cfg).await });
        }
        while let Some(result) = tasks.join_next().await {
            let err = result.unwrap().unwrap_err();
            assert!(
                matches!(err, TokenError::Status { status: 400, .. }),
                "{err}"
            );
        }
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn expires_after_lifetime_minus_margin() {
        let (server, url) = Server::start(Duration::ZERO).await;
        *server.reply.lock().unwrap() = (200, Some(1.0));
        let (cache, cfg) = (cache(), config(&url));
        let started = Instant::now();
        assert_eq!(&*cache.token("s/p", "1", &cfg).await.unwrap(), "tok-1");
        // Valid for 0.9 s (1 s minus a tenth): poll until it is replaced.
        while &*cache.token("s/p", "1", &cfg).await.unwrap() != "tok-2" {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never refreshed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn lifetimes_and_parsing() {
        assert_eq!(lifetime(3600.0), Duration::from_secs(3540));
        assert_eq!(lifetime(100.0), Duration::from_secs(90));
        assert_eq!(lifetime(1e300), MAX_LIFETIME - MAX_MARGIN);
        assert_eq!(lifetime(-5.0), Duration::ZERO);
        let parse = |s: &str| parse_token(s.as_bytes()).map(|f| (f.token.to_string(), f.lifetime));
        assert_eq!(
            parse(r#"{"access_token":"t"}"#),
            Ok(("t".into(), DEFAULT_LIFETIME))
        );
        let as_string = parse(r#"{"access_token":"t","expires_in":"100","token_type":"x"}"#);
        assert_eq!(as_string, Ok(("t".into(), Duration::from_secs(90))));
        assert_eq!(parse(r#"{"token":"t"}"#), Err(TokenError::NoAccessToken));
        assert_eq!(
            parse(r#"{"access_token":""}"#),
            Err(TokenError::NoAccessToken)
        );
        assert_eq!(parse("<html>"), Err(TokenError::NoAccessToken));
    }

    #[tokio::test]
    async fn failures_and_refused_endpoints() {
        let (server, url) = Server::start(Duration::ZERO).await;
        *server.reply.lock().unwrap() = (400, None);
        let err = cache()
            .token("s/p", "1", &config(&url))
            .await
            .unwrap_err()
            .to_string();
        let expected = r#"token request failed: endpoint answered 400: {"error":"invalid_client"}"#;
        assert_eq!(err, expected);

        let mut bad_header = config(&url);
        bad_header.header_parameters.push(kv("bad header", "x"));
        let err = cache()
            .token("s/p", "1", &bad_header)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("token request failed: invalid header"),
            "{err}"
        );
        assert_eq!(server.hits(), 1);

        // Loopback is refused by address (check_target) and by name (the resolver).
        let strict = cache_with("");
        let err = strict
            .token("s/p", "1", &config(&url))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "token request failed: forbidden address 127.0.0.1 (loopback)"
        );
        let by_name = config(&url.replace("127.0.0.1", "localhost"));
        let err = strict
            .token("s/p", "1", &by_name)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("token request failed: forbidden address"),
            "{err}"
        );
        assert_eq!(server.hits(), 1);
    }
}
