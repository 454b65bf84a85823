//! The one outgoing HTTP client shared by webhook deliveries and OAuth token requests, and
//! the words the delivery log uses for a failed request.
//!
//! One client means one connection pool: deliveries to a host reuse warm connections, and
//! the SSRF guard ([`GuardedResolver`]) is wired in exactly once.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hookrelay_core::net::AddressPolicy;
use reqwest::redirect;

use crate::destinations::Verdict;
use crate::resolver::{GuardedResolver, ResolveError};

/// The `User-Agent` of every outgoing request (docs/payloads.md#webhook-requests).
pub const USER_AGENT: &str = concat!("hookrelay/", env!("CARGO_PKG_VERSION"));

/// Connecting never waits longer than this, even with a long request timeout: a host that
/// does not accept within 10 s is down, and the attempt should fail and be retried.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle pooled connections are closed after this long; receivers usually drop them
/// sooner, and a long-dead connection only costs a failed first write.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Builds the shared client.
///
/// - Redirects are not followed (docs/delivery.md#outcome-of-an-attempt,
///   docs/security.md#destination-address-policy): a 3xx is the destination's answer, and
///   following it would let a public host bounce us to an internal one.
/// - Names resolve through [`GuardedResolver`], so the address connected to is the one
///   checked. IP-literal hosts bypass resolvers; callers run
///   [`crate::resolver::check_target`] for those.
/// - No proxy from the environment: a proxy connects on our behalf, so the address check
///   would only see the proxy.
pub fn build_client(
    policy: Arc<AddressPolicy>,
    request_timeout: Duration,
    max_idle_per_host: usize,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver::new(policy)))
        .timeout(request_timeout)
        .connect_timeout(request_timeout.min(MAX_CONNECT_TIMEOUT))
        .pool_max_idle_per_host(max_idle_per_host)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .user_agent(USER_AGENT)
        .no_proxy()
        .build()
}

/// [`describe_error`], but a timeout reads `timeout after Ns` with the request timeout
/// the client was built with (the error itself does not carry it).
pub fn describe_error_with_timeout(e: &reqwest::Error, request_timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timeout after {}", format_duration(request_timeout));
    }
    describe_error(e)
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The words a user reads in the delivery log for a failed request: short, lower-case,
/// and without the URL (its query string may carry secrets). Only the messages of the
/// error's sources are used, never the top-level `reqwest::Error` text, which names the URL.
pub fn describe_error(e: &reqwest::Error) -> String {
    let chain = sources(e);

    // The resolver's own reason is the most precise one there is.
    for err in &chain {
        if let Some(resolve) = as_resolve_error(*err) {
            return resolve.to_string();
        }
    }
    if e.is_timeout() {
        return "timeout".to_owned();
    }
    for io in chain.iter().flat_map(|err| io_errors(*err)) {
        match io.kind() {
            io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
            io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
            io::ErrorKind::ConnectionAborted => return "connection aborted".to_owned(),
            io::ErrorKind::BrokenPipe => return "connection closed".to_owned(),
            io::ErrorKind::InvalidData if e.is_connect() => {
                // rustls reports handshake failures as InvalidData io errors.
                return format!("tls error: {}", lower(&io.to_string()));
            }
            _ => {}
        }
    }
    let innermost = chain.last().map(|err| lower(&err.to_string()));
    if let Some(msg) = &innermost {
        // hyper: the peer closed the connection before a complete response.
        if msg.contains("connection closed before message completed") {
            return "connection closed before response".to_owned();
        }
        if is_tls_message(msg) {
            return format!("tls error: {msg}");
        }
    }
    let detail = innermost.unwrap_or_default();
    let head = if e.is_connect() {
        "connect error"
    } else if e.is_body() {
        "body error"
    } else if e.is_decode() {
        "decode error"
    } else if e.is_builder() {
        "invalid request"
    } else if e.is_redirect() {
        "redirect error"
    } else {
        "request error"
    };
    if detail.is_empty() {
        head.to_owned()
    } else {
        format!("{head}: {detail}")
    }
}

/// Whose failure a request that got no answer was (docs/delivery.md "Blocking a failing
/// destination"): a response timeout after the request went out is the endpoint's (the
/// host took the request); an address the policy forbids after DNS is nobody's (nothing
/// was sent, and waiting will not change it); everything else before an answer (DNS,
/// refused or reset connections, connect and TLS errors and timeouts) is the host's.
pub fn verdict_of(e: &reqwest::Error) -> Verdict {
    let chain = sources(e);
    if chain
        .iter()
        .filter_map(|err| as_resolve_error(*err))
        .any(|r| matches!(r, ResolveError::Forbidden { .. }))
    {
        return Verdict::NotSent;
    }
    if e.is_timeout() && !e.is_connect() {
        return Verdict::EndpointFailed;
    }
    Verdict::HostFailed
}

/// The source chain below `e`, outermost first.
fn sources(e: &reqwest::Error) -> Vec<&(dyn StdError + 'static)> {
    let mut chain = Vec::new();
    let mut next = e.source();
    while let Some(err) = next {
        chain.push(err);
        next = err.source();
    }
    chain
}

/// `err` if it is an `io::Error`, and the `io::Error`s nested in its payload (rustls's
/// errors arrive as an InvalidData `io::Error` wrapped in another one).
fn io_errors<'a>(err: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a io::Error> {
    std::iter::successors(err.downcast_ref::<io::Error>(), |io| {
        io.get_ref()?.downcast_ref::<io::Error>()
    })
}

/// The resolver's error, directly or inside the `io::Error` it travels in (an
/// `io::Error`'s `source()` skips its own payload, so look inside with `get_ref`).
fn as_resolve_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a ResolveError> {
    if let Some(resolve) = err.downcast_ref::<ResolveError>() {
        return Some(resolve);
    }
    err.downcast_ref::<io::Error>()?
        .get_ref()?
        .downcast_ref::<ResolveError>()
}

fn is_tls_message(msg: &str) -> bool {
    [
        "certificate",
        "handshake",
        "tls",
        "alert",
        "corrupt message",
    ]
    .iter()
    .any(|w| msg.contains(w))
}

/// Lower-cases the first letter only: messages keep their proper nouns and addresses.
fn lower(msg: &str) -> String {
    let mut chars = msg.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};

    fn open_policy() -> Arc<AddressPolicy> {
        Arc::new(AddressPolicy {
            allow_http: true,
            allowed_networks: AddressPolicy::parse_networks("127.0.0.0/8, ::1").unwrap(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        })
    }

    fn client(timeout: Duration) -> reqwest::Client {
        build_client(open_policy(), timeout, 4).unwrap()
    }

    /// A plain blocking server on its own thread: each accepted connection gets `handle`.
    fn serve(handle: fn(std::net::TcpStream)) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || handle(stream));
            }
        });
        addr
    }

    /// Reads until the end of the request head.
    fn read_head(stream: &mut std::net::TcpStream) {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&byte[..n]),
            }
        }
    }

    fn strict_client(timeout: Duration) -> reqwest::Client {
        let policy = AddressPolicy {
            allow_http: true,
            allowed_networks: Vec::new(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        };
        build_client(Arc::new(policy), timeout, 4).unwrap()
    }

    /// The error of a request that must fail; the URL carries a secret that no
    /// description may repeat.
    async fn fail(client: &reqwest::Client, base: &str) -> (reqwest::Error, String) {
        let url = format!("{base}/hook?token=s3cr3t");
        let err = match client.get(&url).send().await {
            Ok(resp) => panic!("{url} answered {}", resp.status()),
            Err(err) => err,
        };
        let text = describe_error(&err);
        assert!(
            !text.contains("s3cr3t") && !text.contains("/hook"),
            "{text}"
        );
        (err, text)
    }

    #[tokio::test]
    async fn refused_connection() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The listener is dropped: nothing listens on `port` any more.
        let (err, text) = fail(
            &client(Duration::from_secs(5)),
            &format!("http://127.0.0.1:{port}"),
        )
        .await;
        assert_eq!(text, "connection refused");
        assert_eq!(verdict_of(&err), Verdict::HostFailed);
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let addr = serve(|mut s| {
            read_head(&mut s);
            // Hold the connection open without answering until the client gives up.
            let _ = s.read(&mut [0u8; 1]);
        });
        let timeout = Duration::from_millis(200);
        let started = std::time::Instant::now();
        let (err, text) = fail(&client(timeout), &format!("http://{addr}")).await;
        assert!(started.elapsed() >= timeout);
        assert!(text.starts_with("timeout"), "{text}");
        // The host took the request and did not answer: the endpoint's failure.
        assert_eq!(verdict_of(&err), Verdict::EndpointFailed);
        assert_eq!(
            describe_error_with_timeout(&err, timeout),
            "timeout after 200ms"
        );
        assert_eq!(
            describe_error_with_timeout(&err, Duration::from_secs(10)),
            "timeout after 10s"
        );
    }

    /// A server that reads the request and closes cleanly sends a FIN, not a RST, so hyper
    /// sees the stream end before any response: that is reported as a closed connection,
    /// not as a reset (a reset needs unread data or SO_LINGER 0 on the server side).
    #[tokio::test]
    async fn server_closing_without_answer() {
        let addr = serve(|mut s| read_head(&mut s));
        let (_, text) = fail(&client(Duration::from_secs(5)), &format!("http://{addr}")).await;
        assert!(
            text == "connection closed before response" || text == "connection reset",
            "{text}"
        );
    }

    #[tokio::test]
    async fn redirect_is_returned_not_followed() {
        let addr = serve(|mut s| {
            read_head(&mut s);
            let _ = s.write_all(
                b"HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/\r\ncontent-length: 0\r\n\r\n",
            );
        });
        let resp = client(Duration::from_secs(5))
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::FOUND);
        assert_eq!(resp.headers()["location"], "http://10.0.0.1/");
    }

    #[tokio::test]
    async fn user_agent_is_sent() {
        let addr = serve(|mut s| {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            let status = if head.contains(&format!("user-agent: {USER_AGENT}")) {
                "204 No Content"
            } else {
                "400 Bad Request"
            };
            let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        });
        let resp = client(Duration::from_secs(5))
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn name_resolving_to_loopback_is_forbidden() {
        // Something listens, so only the address check can make this fail.
        let addr = serve(|mut s| {
            read_head(&mut s);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        });
        let base = format!("http://localhost:{}", addr.port());
        let (err, text) = fail(&strict_client(Duration::from_secs(5)), &base).await;
        assert_eq!(verdict_of(&err), Verdict::NotSent);
        // /etc/hosts usually maps localhost to 127.0.0.1; some systems list ::1 first.
        assert!(
            text == "forbidden address 127.0.0.1 (loopback)"
                || text == "forbidden address ::1 (loopback)",
            "{text}"
        );
        // The same name is fine where loopback is allowed.
        let ok = client(Duration::from_secs(5))
            .get(&base)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), reqwest::StatusCode::OK);
    }

    #[tokio::test]
    async fn dns_failure() {
        let (err, text) = fail(
            &client(Duration::from_secs(5)),
            "http://no-such-host.invalid",
        )
        .await;
        assert!(text.starts_with("dns error: "), "{text}");
        assert_eq!(verdict_of(&err), Verdict::HostFailed);
    }

    #[tokio::test]
    async fn tls_handshake_failure() {
        // Answers a TLS ClientHello with plain HTTP.
        let addr = serve(|mut s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            let _ = s.read(&mut [0u8; 1024]);
        });
        let (err, text) = fail(&client(Duration::from_secs(5)), &format!("https://{addr}")).await;
        assert!(text.starts_with("tls error: "), "{text}");
        assert_eq!(verdict_of(&err), Verdict::HostFailed);
    }
}
