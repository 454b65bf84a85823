//! Integration harness: the real `hookrelay` binary on `127.0.0.1:0` with fresh storage
//! (a data directory, or a PostgreSQL database of its own: see [`storage`]), tokens made
//! through its real CLI, and a GraphQL client.
#![allow(dead_code)]

pub mod aws;
pub mod brokers;
pub mod hooks;
pub mod receiver;
pub mod storage;

pub use storage::{Backend, Storage, TestDir};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_hookrelay");

pub struct Server {
    pub base: String,
    /// The temporary directory and the storage (data dir or database) in it.
    pub dir: TestDir,
    options: Options,
    child: Child,
    pub http: reqwest::Client,
    /// Every line the server wrote to stderr after its start line.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub client_id: String,
    pub token: String,
}

/// Runs the CLI with `args` and returns stdout; panics with stderr if it fails.
pub fn cli(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run hookrelay");
    assert!(
        out.status.success(),
        "hookrelay {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs the CLI expecting failure; returns stderr.
pub fn cli_fails(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run hookrelay");
    assert!(
        !out.status.success(),
        "hookrelay {args:?} should have failed"
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
}

impl Default for Options {
    /// What tests use: http allowed, loopback allowed.
    fn default() -> Self {
        Options {
            args: vec![
                "--allow-http".into(),
                "--allowed-networks".into(),
                "127.0.0.0/8".into(),
            ],
            envs: Vec::new(),
        }
    }
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Options::default()).await
    }

    /// Starts on new storage of the selected backend (`HOOKRELAY_TEST_BACKEND`).
    pub async fn start_with(options: Options) -> Server {
        Self::start_in(TestDir::new(), options)
    }

    /// Starts on new storage of `backend`, whatever the selected one.
    pub async fn start_on(backend: Backend, options: Options) -> Server {
        Self::start_in(TestDir::on(backend), options)
    }

    /// Another node on this server's PostgreSQL database, with the same master key and
    /// options (panics on SQLite: one node only).
    pub fn start_peer(&self) -> Server {
        self.start_peer_with(self.options.clone())
    }

    /// Like [`Server::start_peer`], with other options.
    pub fn start_peer_with(&self, options: Options) -> Server {
        Self::start_in(TestDir::sharing(&self.dir), options)
    }

    /// Starts on existing storage (for restarts: the same data dir, or the same database
    /// and master key).
    pub fn start_in(dir: TestDir, options: Options) -> Server {
        let mut command = dir.storage.command();
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&dir.storage.data_dir);
        if let Some(db) = &dir.storage.database {
            command.arg("--database-url").arg(&db.url);
        }
        let mut child = command
            .args(&options.args)
            .envs(options.envs.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hookrelay serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Some(logs.clone());
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(addr) = line.split("listening on ").nth(1) {
                        // Text or JSON logs: the address is the run of address characters.
                        let addr: String = addr
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')
                            })
                            .collect();
                        let _ = tx.send(Ok(addr));
                        sent = true;
                        continue;
                    }
                    // An error logged, or the one the process exits with; not any line
                    // with the word (sqlx's slow-statement warning quotes the schema).
                    if line.contains(" ERROR ")
                        || line.contains(r#""level":"ERROR""#)
                        || line.starts_with("error:")
                    {
                        let _ = tx.send(Err(line.clone()));
                    }
                }
                if let Some(lines) = &log {
                    lines.lock().unwrap().push(line.clone());
                }
                if std::env::var_os("HOOKRELAY_TEST_LOGS").is_some() {
                    eprintln!("[server] {line}");
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(line)) => panic!("hookrelay serve failed to start: {line}"),
            Err(_) => panic!("hookrelay serve did not report its address"),
        };
        Server {
            base: format!("http://{addr}"),
            dir,
            options,
            child,
            http: reqwest::Client::new(),
            logs,
        }
    }

    /// The data dir `serve` was given (the SQLite database is there; not used for the
    /// database on PostgreSQL).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.storage.data_dir.clone()
    }

    pub fn backend(&self) -> Backend {
        self.dir.backend()
    }

    /// This server's storage: its backend, data dir, database and master key.
    pub fn storage(&self) -> &Storage {
        &self.dir.storage
    }

    /// The arguments that point a CLI command at this server's database: `--data-dir DIR`
    /// on SQLite, `--database-url URL` on PostgreSQL.
    pub fn storage_args(&self) -> Vec<String> {
        self.dir.storage.args()
    }

    /// Runs a database command (`token`, `store`, `publish`, `migrate`) of the CLI against
    /// this server's database; returns stdout, panics with stderr if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.dir.storage.cli(args)
    }

    /// Like [`Server::cli`], expecting failure; returns stderr.
    pub fn cli_fails(&self, args: &[&str]) -> String {
        self.dir.storage.cli_fails(args)
    }

    /// `token create` through the CLI, against this server's database, while it runs.
    pub fn token(&self, role: &str, store: Option<&str>) -> Token {
        let mut args = vec!["token", "create", "--role", role];
        if let Some(s) = store {
            args.extend(["--store", s]);
        }
        let v: Value = serde_json::from_str(&self.cli(&args)).expect("token json");
        Token {
            client_id: v["clientId"].as_str().unwrap().to_owned(),
            token: v["accessToken"].as_str().unwrap().to_owned(),
        }
    }

    pub fn client(&self, store: &str) -> Token {
        self.token("client", Some(store))
    }

    /// POST a GraphQL request to `path`; returns status and body.
    pub async fn gql_at(
        &self,
        path: &str,
        token: &Token,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-Auth-Token", &token.token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// POST to `/graphql` and return the body.
    pub async fn gql(&self, token: &Token, query: &str) -> Value {
        self.gql_vars(token, query, json!({})).await
    }

    pub async fn gql_vars(&self, token: &Token, query: &str, variables: Value) -> Value {
        self.gql_at("/graphql", token, query, variables).await.1
    }

    /// Like `gql` but fails the test on any error; returns `data`.
    pub async fn gql_ok(&self, token: &Token, query: &str) -> Value {
        let body = self.gql(token, query).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// POST `body` to an ingest route (`/v1/events` or `/v1/events/batch`) with a
    /// publisher's token; returns status and JSON body.
    pub async fn post_json(&self, path: &str, token: &Token, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&token.token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Publishes one event; panics unless it is accepted. Returns the event id.
    pub async fn publish(
        &self,
        token: &Token,
        store: &str,
        event_type: &str,
        data: Value,
    ) -> String {
        let (status, body) = self
            .post_json(
                "/v1/events",
                token,
                &json!({"store": store, "type": event_type, "data": data}),
            )
            .await;
        assert_eq!(status, 202, "publish answered {status}: {body}");
        body["eventId"].as_str().expect("eventId").to_owned()
    }

    /// Kills the process with SIGKILL (no shutdown at all) and returns its storage.
    pub fn kill9(mut self) -> TestDir {
        // `Child::kill` is SIGKILL on Unix, sent at once (no `kill` process to start).
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.take_dir()
    }

    /// The storage, leaving an empty placeholder (the server is going away).
    fn take_dir(&mut self) -> TestDir {
        std::mem::replace(&mut self.dir, TestDir::on(Backend::Sqlite))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, TestDir) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = wait_timeout(&mut self.child, Duration::from_secs(20))
            .expect("server exits on SIGTERM");
        (status, self.take_dir())
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The single error of a GraphQL response.
pub fn only_error(body: &Value) -> &Value {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("expected errors: {body}"));
    assert_eq!(errors.len(), 1, "expected one error: {body}");
    &errors[0]
}

pub fn classification(body: &Value) -> &str {
    only_error(body)["extensions"]["classification"]
        .as_str()
        .unwrap_or("")
}

pub fn code(body: &Value) -> &str {
    only_error(body)["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

pub fn message(body: &Value) -> &str {
    only_error(body)["message"].as_str().unwrap_or("")
}

/// A fixture file under `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file of the data dir (the database, its WAL) concatenated, for plaintext checks.
pub fn data_dir_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            all.extend(std::fs::read(&path).expect("read"));
        }
    }
    all
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Unix seconds of an RFC 3339 timestamp in UTC (`2024-05-06T07:08:09.123Z` or `+00:00`).
pub fn unix_of(rfc3339: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| -> i64 {
        rfc3339
            .get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not RFC 3339: {rfc3339}"))
    };
    assert!(
        rfc3339.ends_with('Z') || rfc3339.ends_with("+00:00"),
        "not UTC: {rfc3339}"
    );
    // Days since 1970-01-01 of the civil date (Howard Hinnant's algorithm).
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
