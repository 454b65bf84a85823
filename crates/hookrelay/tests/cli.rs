//! The command line (SPEC §3): tokens and stores while the server runs, migrations,
//! configuration from flags, environment and file, health, GraphiQL, graceful shutdown.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn token_commands_work_while_the_server_runs() {
    let server = Server::start().await;
    let data = server.data_dir();
    let dir = data.to_str().unwrap();

    let create_my_app = [
        "token",
        "create",
        "--data-dir",
        dir,
        "--role",
        "client",
        "--store",
        "abc123",
        "--client-id",
        "my-app",
    ];
    let out = cli(&create_my_app);
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
        let v: Value = serde_json::from_str(&cli(&[
            "token",
            "create",
            "--data-dir",
            dir,
            "--role",
            role,
        ]))
        .unwrap();
        assert_eq!(v["role"], role);
        assert_eq!(v["store"], Value::Null);
    }
    let v: Value = serde_json::from_str(&cli(&[
        "token",
        "create",
        "--data-dir",
        dir,
        "--role",
        "store-admin",
        "--store",
        "abc123",
    ]))
    .unwrap();
    assert_eq!(v["role"], "store-admin");

    assert!(
        cli_fails(&["token", "create", "--data-dir", dir, "--role", "client"])
            .contains("--store is required")
    );
    assert!(cli_fails(&create_my_app).contains("already exists"));

    let list = cli(&["token", "list", "--data-dir", dir]);
    assert!(!list.contains(&token.token), "token list shows a token");
    let clients: Vec<Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(clients.len(), 4);
    assert!(clients
        .iter()
        .any(|c| c["clientId"] == "my-app" && c["store"] == "abc123" && c["role"] == "client"));

    let out = cli(&[
        "token",
        "revoke",
        "--data-dir",
        dir,
        "--client-id",
        "my-app",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"clientId": "my-app", "revoked": true})
    );
    let (status, _) = server
        .gql_at("/graphql", &token, "{ eventTypes }", json!({}))
        .await;
    assert_eq!(status, 401, "a revoked token still works");
    assert!(cli_fails(&[
        "token",
        "revoke",
        "--data-dir",
        dir,
        "--client-id",
        "my-app"
    ])
    .contains("no active client"));
    let list = cli(&["token", "list", "--data-dir", dir]);
    assert!(list.lines().any(|l| l.contains("\"my-app\"")
        && l.contains("revokedAt")
        && !l.contains("\"revokedAt\":null")));
}

#[test]
fn store_and_migrate_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let first: Value = serde_json::from_str(&cli(&["migrate", "--data-dir", d])).unwrap();
    assert_eq!(first["applied"], json!([1, 2, 3]));
    let second: Value = serde_json::from_str(&cli(&["migrate", "--data-dir", d])).unwrap();
    assert_eq!(second["applied"], json!([]));

    cli(&["store", "create", "--data-dir", d, "zeta"]);
    cli(&["store", "create", "--data-dir", d, "alpha"]);
    assert!(cli_fails(&["store", "create", "--data-dir", d, "alpha"]).contains("already exists"));
    assert!(cli_fails(&["store", "create", "--data-dir", d, "NOT_OK"]).contains("[a-z0-9]"));
    let stores: Vec<String> = cli(&["store", "list", "--data-dir", d])
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
    let out = std::process::Command::new(BIN)
        .args(["store", "list"])
        .env("HOOKRELAY_DATA_DIR", d)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);

    let err = cli_fails(&[
        "migrate",
        "--database-url",
        "postgres://postgres@127.0.0.1:5432/test",
    ]);
    assert!(
        err.contains("PostgreSQL is not supported by this version"),
        "{err}"
    );
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
    let err = std::process::Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ])
        .env("HOOKRELAY_MASTER_KEY", "too-short")
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("HOOKRELAY_MASTER_KEY"));
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
