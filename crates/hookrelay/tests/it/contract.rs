//! The REST surface's contract (docs/api.md#openapi): the OpenAPI document at
//! `/openapi.json`, schemathesis against it and against the GraphQL endpoint, and
//! `/metrics` through Prometheus's own text-format parser (prometheus_client).
//!
//! The Python tools come from `./scripts/test`, which installs pinned versions into
//! target/contract-venv and names them in `HOOKRELAY_TEST_SCHEMATHESIS` (the `st`
//! executable) and `HOOKRELAY_TEST_PYTHON` (a Python with prometheus_client). Without them
//! these tests fail: they never pass by skipping.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::hooks::{metrics_with, subscribe, WAIT};
use crate::common::receiver::Receiver;
use crate::common::{Options, Server};

/// What one schemathesis run may take at most (it takes a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Test cases per operation and phase: enough to reach every response of the REST routes
/// and every GraphQL field, few enough to finish in seconds.
const MAX_EXAMPLES: &str = "25";

/// The checks run against the OpenAPI document. Every one that can judge a stateless API:
/// no 5xx; only documented status codes, content types and headers (`Retry-After`); bodies
/// that match their schema; invalid requests refused; a missing token refused; an
/// undocumented method answered 405. Left out: `positive_data_acceptance`, because a
/// schema cannot say which stores exist (a well-formed event for another store is a
/// documented 422 `UnknownStore`), nor sizes in bytes (413 `PayloadTooLarge`, the byte
/// limits of keys); and the stateful checks (`use_after_free`,
/// `ensure_resource_availability`, `object_level_authorization`), as the REST routes make
/// nothing to read back.
const REST_CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
missing_required_header,ignored_auth,unsupported_method,allow_header_conformance";

/// A tool `./scripts/test` installs and names in `var`.
fn tool(var: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{var} is not set: run the suite with ./scripts/test, which installs {what} into \
             target/contract-venv and sets {var}, or set {var} to one you installed"
        )
    });
    assert!(
        path.is_file(),
        "{var}={} is not a file: run ./scripts/test to install {what}",
        path.display()
    );
    path
}

fn schemathesis() -> PathBuf {
    tool(
        "HOOKRELAY_TEST_SCHEMATHESIS",
        "schemathesis (its `st` executable)",
    )
}

fn python() -> PathBuf {
    tool("HOOKRELAY_TEST_PYTHON", "a Python with prometheus_client")
}

/// The files of this module next to it (schemathesis hooks).
fn contract_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/contract")
        .join(name)
}

/// Runs `st [--config-file CONFIG] run ARGS` in a scratch directory; panics with its
/// output unless it passes.
async fn run_schemathesis(
    st: PathBuf,
    what: &str,
    config: Option<&Path>,
    args: &[String],
    envs: &[(&str, PathBuf)],
) {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let started = Instant::now();
    let mut command = tokio::process::Command::new(st);
    if let Some(config) = config {
        command.arg("--config-file").arg(config);
    }
    command
        .arg("run")
        .args(args)
        .current_dir(scratch.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ({what}) ran longer than {RUN_LIMIT:?}"))
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis ({what}) found problems ({}):\n{text}",
        output.status
    );
    eprintln!(
        "schemathesis ({what}) passed in {:.1} s:\n{text}",
        started.elapsed().as_secs_f64()
    );
}

async fn get(server: &Server, path: &str) -> reqwest::Response {
    server
        .http
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .expect("request")
}

/// A closed port on 127.0.0.1 (discard): what the servers of these tests may reach.
const CLOSED_PORT: &str = "9";

/// A server that reaches nothing but a closed port on 127.0.0.1, whatever generated
/// requests make it do: its AWS calls go there, and webhooks and token endpoints may use
/// that port only (`--allowed-ports`), so a generated destination is refused when made.
async fn start_offline_server() -> Server {
    let mut options = Options::default();
    options
        .args
        .extend(["--allowed-ports".into(), CLOSED_PORT.into()]);
    options.envs = crate::common::aws::aws_env(&format!("http://127.0.0.1:{CLOSED_PORT}"));
    Server::start_with(options).await
}

#[tokio::test]
async fn openapi_document_describes_the_rest_surface() {
    let server = Server::start().await;
    let response = get(&server, "/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "no token needed, JSON"
    );
    let doc: Value = response.json().await.expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "OpenAPI 3.1: {}",
        doc["openapi"]
    );
    for path in [
        "/v1/events",
        "/v1/events/batch",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not described");
    }
    let publish = &doc["paths"]["/v1/events"]["post"];
    for status in ["202", "400", "401", "403", "413", "422", "500", "503"] {
        assert!(
            publish["responses"][status].is_object(),
            "POST /v1/events does not describe {status}"
        );
    }
    assert!(
        publish["responses"]["503"]["headers"]["Retry-After"].is_object(),
        "503 carries Retry-After"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["xAuthToken"]["name"], "X-Auth-Token");
    // The event type is one of this server's catalog, operational types excepted.
    let types = doc["components"]["schemas"]["PublishRequest"]["properties"]["type"]["enum"]
        .as_array()
        .expect("the catalog as an enum");
    assert!(types.iter().any(|t| t == "store/order/created"));
    assert!(!types.iter().any(|t| t == "hookrelay/delivery/failed"));
}

#[tokio::test]
async fn schemathesis_finds_nothing_against_the_openapi_document() {
    let st = schemathesis();
    let server = start_offline_server().await;
    let publisher = server.token("publisher", None);
    // The stores of the document's examples and of the harness exist, so the examples
    // phase is accepted (202) and those answers are checked too.
    server.client("abc123");
    server.client("shop");
    let url = format!("{}/openapi.json", server.base);
    run_schemathesis(
        st,
        "REST",
        None,
        &[
            url,
            "--checks".into(),
            REST_CHECKS.into(),
            "--header".into(),
            format!("Authorization: Bearer {}", publisher.token),
            "--max-examples".into(),
            MAX_EXAMPLES.into(),
            "--phases".into(),
            "examples,coverage,fuzzing".into(),
            "--generation-database".into(),
            "none".into(),
            "--request-timeout".into(),
            "10".into(),
        ],
        &[],
    )
    .await;
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_in_graphql() {
    let st = schemathesis();
    let server = start_offline_server().await;
    let admin = server.token("admin", None);
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    // Records for the generated requests to find (a fuzz dictionary), so that lookups and
    // mutations of one record reach past "no such id": a subscription whose deliveries
    // fail on the closed port, and one of its deliveries.
    let destination = format!("http://127.0.0.1:{CLOSED_PORT}/hook");
    let subscription = subscribe(&server, &client, &destination, "ORDER_CONFIRMED", "").await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", serde_json::json!({}))
        .await;
    let delivery = crate::common::hooks::deliveries(&server, &client, &subscription)
        .await
        .first()
        .and_then(|d| d["id"].as_str().map(str::to_owned))
        .expect("a delivery");
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(
        config.path(),
        format!(
            "[dictionaries.records]\nvalues = [{subscription:?}, {delivery:?}]\n\n\
             [generation.dictionaries.string]\ndictionary = \"records\"\nprobability = 0.3\n"
        ),
    )
    .expect("write config");
    let url = format!("{}/stores/shop/graphql", server.base);
    run_schemathesis(
        st,
        "GraphQL",
        Some(config.path()),
        &[
            url,
            // `no_server_error` (the hooks file says why not `not_a_server_error`); the
            // answers must be GraphQL responses that keep the schema's non-null promises.
            "--checks".into(),
            "no_server_error,response_schema_conformance".into(),
            "--header".into(),
            format!("Authorization: Bearer {}", admin.token),
            "--max-examples".into(),
            MAX_EXAMPLES.into(),
            "--generation-database".into(),
            "none".into(),
            "--request-timeout".into(),
            "10".into(),
        ],
        &[(
            "SCHEMATHESIS_HOOKS",
            contract_file("schemathesis_graphql_hooks.py"),
        )],
    )
    .await;
}

/// `/metrics` after deliveries, through prometheus_client's parser: any line it cannot
/// read fails the test.
#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let python = python();
    let server = Server::start().await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let receiver = Receiver::ok().await;
    subscribe(
        &server,
        &client,
        &format!("{}/hook", receiver.url),
        "ORDER_CONFIRMED",
        "",
    )
    .await;
    for n in 0..3 {
        server
            .publish(
                &publisher,
                "shop",
                "ORDER_CONFIRMED",
                serde_json::json!({ "n": n }),
            )
            .await;
    }
    receiver.wait_for(3, WAIT).await;
    let response = get(&server, "/metrics").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        response.headers()["content-type"]
    );
    // The attempts are counted once their results are recorded, just after they arrive.
    let text = metrics_with(&server, "hookrelay_attempt_duration_seconds_count").await;

    let mut parse = tokio::process::Command::new(python);
    parse
        .arg(contract_file("parse_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = parse.spawn().expect("run python");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).await.expect("write");
    }
    let output = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("the parser finishes")
        .expect("python");
    assert!(
        output.status.success(),
        "prometheus_client refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One line per family: NAME TYPE SAMPLES.
    let families: Vec<(String, String, usize)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            Some((
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
                parts.next()?.parse().ok()?,
            ))
        })
        .collect();
    let family = |name: &str| {
        families
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no family {name} in {families:?}"))
    };
    // prometheus_client names counters without their `_total`.
    for (name, kind) in [
        ("hookrelay_events_accepted", "counter"),
        ("hookrelay_deliveries", "counter"),
        ("hookrelay_attempts", "counter"),
        ("hookrelay_attempt_duration_seconds", "histogram"),
        ("hookrelay_deliveries_backlog", "gauge"),
    ] {
        let (_, got, samples) = family(name);
        assert_eq!(got, kind, "{name}");
        assert!(*samples > 0, "{name} has no samples");
    }
}
