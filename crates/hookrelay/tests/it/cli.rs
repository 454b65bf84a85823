//! The command line (docs/operations.md, "Command line"): tokens and stores while the server runs, migrations,
//! configuration from flags, environment and file, health, GraphiQL, graceful shutdown.

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn token_commands_work_while_the_server_runs() {
    let server = Server::start().await;

    let create_my_app = [
        "token",
        "create",
        "--role",
        "client",
        "--store",
        "abc123",
        "--client-id",
        "my-app",
    ];
    let out = server.cli(&create_my_app);
    let created: Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{created}");
    assert_eq!(created["clientId"], "my-app");
    assert_eq!(created["store"], "abc123");
    assert_eq!(created["role"], "client");
    let token = Token {
        client_id: "my-app".into(),
        token: created["accessToken"].as_str().unwrap().into(),
    };
    server.gql_ok(&token, "{ eventTypes }").await;

    for role in ["publisher", "admin"] {
        let v: Value =
            serde_json::from_str(&server.cli(&["token", "create", "--role", role])).unwrap();
        assert_eq!(v["role"], role);
        assert_eq!(v["store"], Value::Null);
    }
    let v: Value = serde_json::from_str(&server.cli(&[
        "token",
        "create",
        "--role",
        "store-admin",
        "--store",
        "abc123",
    ]))
    .unwrap();
    assert_eq!(v["role"], "store-admin");

    assert!(server
        .cli_fails(&["token", "create", "--role", "client"])
        .contains("--store is required"));
    assert!(server.cli_fails(&create_my_app).contains("already exists"));

    let list = server.cli(&["token", "list"]);
    assert!(!list.contains(&token.token), "token list shows a token");
    let clients: Vec<Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(clients.len(), 4);
    assert!(clients
        .iter()
        .any(|c| c["clientId"] == "my-app" && c["store"] == "abc123" && c["role"] == "client"));

    let out = server.cli(&["token", "revoke", "--client-id", "my-app"]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"clientId": "my-app", "revoked": true})
    );
    let (status, _) = server
        .gql_at("/graphql", &token, "{ eventTypes }", json!({}))
        .await;
    assert_eq!(status, 401, "a revoked token still works");
    assert!(server
        .cli_fails(&["token", "revoke", "--client-id", "my-app"])
        .contains("no active client"));
    let list = server.cli(&["token", "list"]);
    assert!(list.lines().any(|l| l.contains("\"my-app\"")
        && l.contains("revokedAt")
        && !l.contains("\"revokedAt\":null")));
}

#[test]
fn store_and_migrate_commands() {
    let dir = TestDir::new();
    let storage = &dir.storage;
    let first: Value = serde_json::from_str(&storage.cli(&["migrate"])).unwrap();
    // Every version once, in order, from 1 (SQLite and PostgreSQL count their own).
    let applied: Vec<i64> = first["applied"]
        .as_array()
        .unwrap_or_else(|| panic!("applied: {first}"))
        .iter()
        .map(|v| v.as_i64().expect("a version number"))
        .collect();
    assert!(!applied.is_empty(), "{first}");
    assert_eq!(applied, (1..=applied.len() as i64).collect::<Vec<_>>());
    // It says which database it migrated: the file, or the PostgreSQL database.
    let database = first["database"].as_str().expect("database");
    match &storage.database {
        None => assert!(
            database.ends_with("hookrelay.sqlite3")
                && database.contains(storage.data_dir.to_str().unwrap()),
            "{first}"
        ),
        Some(db) => assert!(database.contains(&db.name), "{first}"),
    }
    let second: Value = serde_json::from_str(&storage.cli(&["migrate"])).unwrap();
    assert_eq!(second["applied"], json!([]));

    storage.cli(&["store", "create", "zeta"]);
    storage.cli(&["store", "create", "alpha"]);
    assert!(storage
        .cli_fails(&["store", "create", "alpha"])
        .contains("already exists"));
    assert!(storage
        .cli_fails(&["store", "create", "NOT_OK"])
        .contains("[a-z0-9]"));
    let stores: Vec<String> = storage
        .cli(&["store", "list"])
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["storeHash"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(stores, ["alpha", "zeta"]);

    // Environment instead of flags.
    let mut list = storage.command();
    list.args(["store", "list"]);
    match &storage.database {
        None => list.env("HOOKRELAY_DATA_DIR", &storage.data_dir),
        Some(db) => list.env("HOOKRELAY_DATABASE_URL", &db.url),
    };
    let out = list.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);

    // Only PostgreSQL URLs are databases; a database that is not there is a clear error.
    let err = cli_fails(&["migrate", "--database-url", "mysql://localhost/hookrelay"]);
    assert!(err.contains("PostgreSQL"), "{err}");
    if let Some(db) = &storage.database {
        let missing = db.url.replace(&db.name, &format!("{}_missing", db.name));
        let err = cli_fails(&["migrate", "--database-url", &missing]);
        assert!(
            err.contains(&format!("{}_missing", db.name)) && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn configuration_from_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookrelay.toml");
    std::fs::write(
        &config,
        r#"
allow_http = true
allowed_networks = ["127.0.0.0/8"]
event_types = ["acme/widget/created", "acme/widget/deleted"]
"#,
    )
    .unwrap();
    let server = Server::start_with(Options {
        args: vec!["--config".into(), config.to_str().unwrap().into()],
        envs: vec![],
    })
    .await;
    let app = server.client("shop");
    let types = server.gql_ok(&app, "{ eventTypes }").await;
    assert!(types["eventTypes"]
        .as_array()
        .unwrap()
        .contains(&json!("acme/widget/created")));
    // allow_http and allowed_networks came from the file; the custom wildcard is known.
    server
        .gql_ok(
            &app,
            r#"mutation { webhook { createHttpsWebhook(input: { scope: "acme/widget/*", destination: "http://127.0.0.1:9/w" }) { webhook { id } } } }"#,
        )
        .await;

    // The environment overrides the file.
    let server = Server::start_with(Options {
        args: vec!["--config".into(), config.to_str().unwrap().into()],
        envs: vec![("HOOKRELAY_ALLOW_HTTP".into(), "false".into())],
    })
    .await;
    let app = server.client("shop");
    let body = server
        .gql(
            &app,
            r#"mutation { webhook { createHttpsWebhook(input: { scope: "acme/widget/*", destination: "http://127.0.0.1:9/w" }) { webhook { id } } } }"#,
        )
        .await;
    assert!(message(&body).ends_with("must be an https URL"), "{body}");

    // Mistakes in the file are refused at start, clearly.
    let data_dir = dir.path().join("d");
    let serve_with_file = [
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    std::fs::write(&config, "allow_htttp = true\n").unwrap();
    let err = cli_fails(&serve_with_file);
    assert!(
        err.contains("allow_htttp") && err.contains("hookrelay.toml"),
        "{err}"
    );
    std::fs::write(&config, "allowed_networks = \"not-a-network\"\n").unwrap();
    let err = cli_fails(&serve_with_file);
    assert!(err.contains("not-a-network"), "{err}");
    let err = cli_fails(&[
        "serve",
        "--listen",
        "nowhere",
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
    ]);
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn a_bad_or_missing_master_key_is_refused_at_start() {
    let dir = TestDir::new();
    let storage = &dir.storage;
    let serve = |key: Option<&str>| {
        let mut command = storage.command();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(storage.args())
            .env_remove("HOOKRELAY_MASTER_KEY");
        if let Some(key) = key {
            command.env("HOOKRELAY_MASTER_KEY", key);
        }
        let out = command.output().unwrap();
        assert!(!out.status.success(), "serve started with key {key:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = serve(Some("too-short"));
    assert!(err.contains("HOOKRELAY_MASTER_KEY"), "{err}");
    if storage.backend == Backend::Postgres {
        // SQLite generates a key into its data dir; every node of a PostgreSQL database
        // must be given the same one.
        let err = serve(None);
        assert!(
            err.contains("HOOKRELAY_MASTER_KEY") && err.contains("required"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn health_graphiql_and_graceful_shutdown() {
    let server = Server::start().await;
    let get = |path: &str| server.http.get(format!("{}{path}", server.base)).send();
    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    let graphiql = get("/graphql").await.unwrap();
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));
    let missing = get("/nope").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "NotFound"
    );

    let app = server.client("shop");
    server
        .gql_ok(&app, r#"mutation { webhook { createHttpsWebhook(input: { scope: "store/order/created", destination: "http://127.0.0.1:9/w" }) { webhook { id } } } }"#)
        .await;
    let (status, dir) = server.terminate();
    assert!(
        status.success(),
        "SIGTERM should stop hookrelay cleanly: {status}"
    );
    // What was written is there after the restart.
    let server = Server::start_in(dir, Options::default());
    let data = server
        .gql_ok(&app, "{ store { webhooks { totalCount } } }")
        .await;
    assert_eq!(data["store"]["webhooks"]["totalCount"], 1);
}

#[tokio::test]
async fn json_logs() {
    let mut options = Options::default();
    options.args.extend(["--log-format".into(), "json".into()]);
    let server = Server::start_with(options).await;
    let app = server.client("shop");
    server.gql_ok(&app, "{ eventTypes }").await;
    let logs = server.logs.clone();
    let (status, _) = server.terminate();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("hookrelay stopped"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no shutdown log: {:?}",
            logs.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for line in logs.lock().unwrap().iter() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

/// Every command reads the one merged set of settings: `publish` takes `max_event_bytes`
/// and `event_types` from the flags and environment as `serve` does, over the file's.
#[test]
fn publish_reads_the_same_settings_as_serve() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookrelay.toml");
    std::fs::write(
        &config,
        "max_event_bytes = 64\nevent_types = [\"acme/widget/created\"]\n",
    )
    .unwrap();
    let data_dir = dir.path().join("d");
    let base = [
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    let run = |extra: &[String], env: Option<(&str, &str)>| {
        let mut command = std::process::Command::new(BIN);
        command.args(extra).args(base);
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        command.output().expect("run hookrelay")
    };
    assert!(run(&["store".into(), "create".into(), "shop".into()], None)
        .status
        .success());
    let publish = |data: &str, event_type: &str| {
        vec![
            "publish".to_owned(),
            "--store".into(),
            "shop".into(),
            "--type".into(),
            event_type.into(),
            "--data".into(),
            data.into(),
        ]
    };

    // From the file.
    let ok = run(&publish(r#"{"a":1}"#, "acme/widget/created"), None);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(80));
    let out = run(&publish(&big, "acme/widget/created"), None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 64 bytes"));

    // The environment over the file.
    let out = run(
        &publish(r#"{"a":12345}"#, "acme/widget/created"),
        Some(("HOOKRELAY_MAX_EVENT_BYTES", "8")),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at most 8 bytes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A flag over the file: the list is replaced, not added to.
    let mut with_flag = publish("{}", "acme/gadget/made");
    with_flag.extend(["--event-types".into(), "acme/gadget/made".into()]);
    let out = run(&with_flag, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut replaced = publish("{}", "acme/widget/created");
    replaced.extend(["--event-types".into(), "acme/gadget/made".into()]);
    let out = run(&replaced, None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown event type"));

    // Checked the same way as for serve.
    let mut bad = publish("{}", "acme/widget/created");
    bad.extend(["--max-event-bytes".into(), "999999999".into()]);
    let out = run(&bad, None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_event_bytes must be between"));
}
