//! Master-key rotation (docs/operations.md#rotating-the-master-key), through the real
//! binary, while the servers deliver:
//!
//! - SQLite with its generated key file: `rotate-master-key` adds the new key to the file,
//!   the running server loads it, everything is re-sealed, and the file keeps the new key
//!   only; no restart.
//! - PostgreSQL: two nodes given both keys, the rotation run beside them, then both nodes
//!   restarted with the new key alone.
//! - A node that lacks the new key stops the rotation before anything changes, and a node
//!   that lacks the key the database seals under refuses to start.
//!
//! In each, a publisher sends events the whole time, and every delivery succeeds at its
//! first attempt with a signature made with the subscription's unchanged secret.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::hooks::{metrics, series, subscribe, WAIT};
use crate::common::receiver::{eventually, Receiver};
use crate::common::storage::new_master_key;
use crate::common::{Backend, Options, Server, Storage, TestDir, Token};
use crate::delivery::verify;

const STORE: &str = "keysshop";
const EVENT: &str = "ORDER_CONFIRMED";
/// Subscriptions: every one signs; every third has basic auth (a sealed auth profile);
/// every fourth had its signing secret rotated (a sealed previous secret).
const SUBSCRIPTIONS: usize = 12;
/// Every sealed value of the fixture: the webhooks' signing secrets, previous secrets and
/// auth profiles, and the NATS subscription's signing secret and broker URL.
const SEALED: usize = SUBSCRIPTIONS + SUBSCRIPTIONS.div_ceil(4) + SUBSCRIPTIONS.div_ceil(3) + 2;

/// `hookrelay rotate-master-key` against `storage`, with `envs` on top of its own; its
/// exit status, stdout and stderr.
async fn rotate(storage: &Storage, envs: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut command = storage.command();
    command
        .arg("rotate-master-key")
        .args(args)
        .args(storage.args())
        .envs(envs.iter().copied());
    let out = tokio::task::spawn_blocking(move || command.output().expect("run hookrelay"))
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The subscriptions of the test, and what their deliveries must show.
struct Fixture {
    client: Token,
    publisher: Token,
    receiver: Receiver,
    /// Each subscription's path on the receiver and signing secret.
    secrets: Vec<(String, String)>,
}

impl Fixture {
    async fn new(server: &Server) -> Fixture {
        let client = server.client(STORE);
        let publisher = server.token("publisher", None);
        let receiver = Receiver::ok().await;
        let mut secrets = Vec::new();
        for i in 0..SUBSCRIPTIONS {
            let path = format!("/s{i}");
            let auth = if i.is_multiple_of(3) {
                format!(
                    r#", authConfig: {{ basicAuthConfig: {{ username: "u{i}", password: "p{i}" }} }}"#
                )
            } else {
                String::new()
            };
            let id = subscribe(
                server,
                &client,
                &format!("{}{path}", receiver.url),
                EVENT,
                &auth,
            )
            .await;
            if i.is_multiple_of(4) {
                server
                    .gql_ok(
                        &client,
                        &format!(r#"mutation {{ rotateSigningSecret(subscriptionId: "{id}") {{ signingSecret }} }}"#),
                    )
                    .await;
            }
            let data = server
                .gql_ok(
                    &client,
                    &format!(
                        r#"{{ eventSubscription(subscriptionId: "{id}") {{ signingSecret }} }}"#
                    ),
                )
                .await;
            let secret = data["eventSubscription"]["signingSecret"]
                .as_str()
                .expect("signing secret")
                .to_owned();
            secrets.push((path, secret));
        }
        // A broker URL with credentials, sealed inside the destination. Another event type,
        // so that its deliveries (which would need a stream) are not part of the load.
        let nats = std::env::var("HOOKRELAY_TEST_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
            .replacen("nats://", "nats://rotation:pw-sealed@", 1);
        crate::common::brokers::subscribe(
            server,
            &client,
            "REFUND_REQUESTED",
            &format!(r#"{{ nats: {{ url: "{nats}", subject: "rotation.test" }} }}"#),
        )
        .await;
        Fixture {
            client,
            publisher,
            receiver,
            secrets,
        }
    }

    /// Publishes through `servers` in turn, every 20 ms, until `stop`; counts what was
    /// accepted in `accepted`.
    fn load(
        &self,
        servers: Vec<(String, reqwest::Client)>,
        stop: Arc<AtomicBool>,
        accepted: Arc<AtomicUsize>,
    ) -> tokio::task::JoinHandle<()> {
        let token = self.publisher.token.clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (base, http) = &servers[n % servers.len()];
                let response = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&token)
                    .json(&json!({"store": STORE, "type": EVENT, "data": {"n": n}}))
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(
                    response.status(),
                    202,
                    "publish answered {}",
                    response.status()
                );
                accepted.fetch_add(1, Ordering::Relaxed);
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    /// Waits until every accepted event reached every subscription once; checks each
    /// request's signature (with the subscription's secret, unchanged by the rotation)
    /// and basic auth.
    async fn all_delivered(&self, before: usize, events: usize) {
        let want = before + events * SUBSCRIPTIONS;
        self.receiver.wait_for(want, WAIT * 3).await;
        // Nothing more comes: each delivery was sent once.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = self.receiver.requests();
        assert_eq!(got.len(), want, "requests received");
        for r in &got[before..] {
            let i: usize = r.path.trim_start_matches("/s").parse().expect("path");
            let (_, secret) = &self.secrets[i];
            verify(secret, r);
            if i.is_multiple_of(3) {
                use base64::Engine as _;
                let expected =
                    base64::engine::general_purpose::STANDARD.encode(format!("u{i}:p{i}"));
                assert_eq!(
                    r.header("authorization"),
                    Some(format!("Basic {expected}").as_str())
                );
            }
        }
    }

    /// The secrets still open: the API answers each subscription's signing secret.
    async fn secrets_open(&self, server: &Server) {
        let data = server
            .gql_ok(
                &self.client,
                "{ eventSubscriptions(first: 50) { edges { node { signingSecret } } } }",
            )
            .await;
        let mut answered: Vec<String> = data["eventSubscriptions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["signingSecret"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = self.secrets.iter().map(|(_, s)| s.clone()).collect();
        // The NATS subscription's secret opens too (its value is not checked).
        assert_eq!(answered.len(), expected.len() + 1, "{answered:?}");
        answered.retain(|s| expected.contains(s));
        answered.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(answered, expected);
    }
}

/// No attempt failed on `server` (an attempt whose secret did not open is a failure).
async fn no_failed_attempts(server: &Server) {
    let text = metrics(server).await;
    assert_eq!(
        series(&text, r#"hookrelay_attempts_total{result="failure"}"#),
        0.0,
        "{text}"
    );
}

/// Runs `rotation` while publishing through `servers`, then checks every delivery.
async fn under_load<F, Fut>(fixture: &Fixture, servers: &[&Server], rotation: F) -> usize
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = fixture.receiver.count();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let targets = servers
        .iter()
        .map(|s| (s.base.clone(), reqwest::Client::new()))
        .collect();
    let load = fixture.load(targets, stop.clone(), accepted.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    rotation().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let events = accepted.load(Ordering::Relaxed);
    assert!(events >= 20, "only {events} events were published");
    fixture.all_delivered(before, events).await;
    events
}

#[tokio::test]
async fn the_master_key_rotates_under_load_and_no_delivery_fails_for_it() {
    let dir = TestDir::new();
    let new_key = new_master_key();
    if dir.backend() == Backend::Sqlite {
        // The generated key file: no key is configured, none is restarted.
        let server = Server::start_in(dir, Options::default());
        let fixture = Fixture::new(&server).await;
        let key_file = server.data_dir().join("master.key");
        let old_key = std::fs::read_to_string(&key_file).unwrap();
        let storage = server.storage().clone();
        let mut report = Value::Null;
        under_load(&fixture, &[&server], || async {
            let (ok, out, err) = rotate(&storage, &[], &["--new-key", &new_key]).await;
            assert!(ok, "rotate-master-key failed: {err}");
            report = serde_json::from_str(&out).expect("report");
            assert!(err.contains("re-sealed"), "progress: {err}");
        })
        .await;
        // Every signing secret, previous secret, auth profile and broker URL was re-sealed.
        let sealed = SEALED;
        assert_eq!(report["resealed"], sealed as u64, "{report}");
        assert_eq!(report["already"], 0, "{report}");
        let kept = std::fs::read_to_string(&key_file).unwrap();
        assert_eq!(kept.trim(), new_key, "the key file holds the new key only");
        assert_ne!(kept.trim(), old_key.trim());
        no_failed_attempts(&server).await;
        // Run again, it finds nothing to do.
        let (ok, out, err) = rotate(&storage, &[], &["--new-key", &new_key]).await;
        assert!(ok, "{err}");
        let again: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (again["resealed"].as_u64(), again["already"].as_u64()),
            (Some(0), Some(sealed as u64))
        );

        // After a restart, the new key alone opens everything.
        let (_, dir) = server.terminate();
        let server = Server::start_in(dir, Options::default());
        fixture.secrets_open(&server).await;
        let before = fixture.receiver.count();
        server
            .publish(&fixture.publisher, STORE, EVENT, json!({"after": true}))
            .await;
        fixture
            .receiver
            .wait_for(before + SUBSCRIPTIONS, WAIT)
            .await;
        no_failed_attempts(&server).await;
        return;
    }

    // PostgreSQL: two nodes, each given both keys (step 1 of the roll).
    let both = Options {
        envs: vec![("HOOKRELAY_OTHER_MASTER_KEYS".into(), new_key.clone())],
        ..Options::default()
    };
    let a = Server::start_in(dir, both.clone());
    let b = a.start_peer_with(both.clone());
    let fixture = Fixture::new(&a).await;
    let storage = a.storage().clone();
    let mut report = Value::Null;
    under_load(&fixture, &[&a, &b], || async {
        let (ok, out, err) =
            rotate(&storage, &[], &["--new-key", &new_key, "--batch-size", "5"]).await;
        assert!(ok, "rotate-master-key failed: {err}");
        report = serde_json::from_str(&out).expect("report");
    })
    .await;
    assert_eq!(report["resealed"], SEALED as u64, "{report}");
    no_failed_attempts(&a).await;
    no_failed_attempts(&b).await;

    // Step 3: both nodes restarted with the new key alone.
    let alone = Options {
        envs: vec![("HOOKRELAY_MASTER_KEY".into(), new_key.clone())],
        ..Options::default()
    };
    let (_, dir_b) = b.terminate();
    let (_, dir_a) = a.terminate();
    drop(dir_b);
    let a = Server::start_in(dir_a, alone.clone());
    let b = a.start_peer_with(alone);
    fixture.secrets_open(&a).await;
    fixture.secrets_open(&b).await;
    under_load(&fixture, &[&a, &b], || async {}).await;
    no_failed_attempts(&a).await;
    no_failed_attempts(&b).await;
}

#[tokio::test]
async fn a_node_without_the_new_key_stops_the_rotation_and_a_node_without_the_sealing_key_does_not_start(
) {
    let dir = TestDir::new();
    // The old key given explicitly on both backends (SQLite too: no key file to add to).
    let old_key = dir
        .storage
        .master_key
        .clone()
        .unwrap_or_else(new_master_key);
    let new_key = new_master_key();
    let with = |envs: Vec<(&str, &str)>| Options {
        envs: envs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..Options::default()
    };
    let server = Server::start_in(dir, with(vec![("HOOKRELAY_MASTER_KEY", &old_key)]));
    let fixture = Fixture::new(&server).await;
    let storage = server.storage().clone();
    let old_env = [("HOOKRELAY_MASTER_KEY", old_key.as_str())];

    // The node holds only the old key: nothing is changed, and the message says why.
    let (ok, _, err) = rotate(&storage, &old_env, &["--new-key", &new_key, "--wait", "2s"]).await;
    assert!(
        !ok,
        "the rotation went ahead without the node holding the key"
    );
    assert!(
        err.contains("1 running node(s) do not hold the new key")
            && err.contains("Nothing was re-sealed")
            && err.contains("HOOKRELAY_OTHER_MASTER_KEYS"),
        "{err}"
    );
    under_load(&fixture, &[&server], || async {}).await;
    no_failed_attempts(&server).await;

    // Given both keys, the node lets it through.
    let (_, dir) = server.terminate();
    let server = Server::start_in(
        dir,
        with(vec![
            ("HOOKRELAY_MASTER_KEY", &old_key),
            ("HOOKRELAY_OTHER_MASTER_KEYS", &new_key),
        ]),
    );
    under_load(&fixture, &[&server], || async {
        let (ok, _, err) = rotate(&storage, &old_env, &["--new-key", &new_key]).await;
        assert!(ok, "{err}");
    })
    .await;
    no_failed_attempts(&server).await;

    // A node given only the old key now refuses to start, naming the key it lacks.
    let (_, dir) = server.terminate();
    let new_id = hookrelay_core::secrets::Cipher::key_id(&new_key)
        .unwrap()
        .to_string();
    let mut command = dir.storage.command();
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(dir.storage.args())
        .env("HOOKRELAY_MASTER_KEY", &old_key)
        .env_remove("HOOKRELAY_OTHER_MASTER_KEYS");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a node without the sealing key started"
    );
    assert!(
        err.contains(&format!(
            "master key {new_id}, which this node was not given"
        )),
        "{err}"
    );
    assert!(
        !err.contains(&new_key) && !err.contains(&old_key),
        "a key was printed: {err}"
    );
    // And with the new key alone, it starts and delivers.
    let server = Server::start_in(dir, with(vec![("HOOKRELAY_MASTER_KEY", &new_key)]));
    fixture.secrets_open(&server).await;
    eventually("the server answers", WAIT, || async {
        server
            .http
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
            .then_some(())
    })
    .await;
    under_load(&fixture, &[&server], || async {}).await;
    no_failed_attempts(&server).await;
}
