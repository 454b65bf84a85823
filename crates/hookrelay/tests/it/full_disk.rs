//! SQLite on a full disk, through the real binary: the data dir is a small tmpfs the test
//! mounts (it runs as root, as the suite does), filled up by a file beside the database.
//! Ingest answers 503 with a clear error and `Retry-After`; every event that got 202 is
//! delivered; when the space comes back, it carries on without a restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::hooks::{webhook, WAIT};
use crate::common::receiver::{eventually, Receiver};
use crate::common::storage::TestDir;
use crate::common::{Backend, Options, Server};
use serde_json::{json, Value};

/// A tmpfs mounted at a path for the test; unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs failed ({status}): this test mounts a small filesystem and needs root, as ./scripts/test runs"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Bytes free on the filesystem of `path` (`df`).
fn free_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("run df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df's answer")
}

/// Fills the filesystem of `path` with it, leaving about `room` bytes free.
fn fill(path: &Path, room: u64) {
    let parent = path.parent().expect("a directory");
    let mut left = free_bytes(parent).saturating_sub(room);
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 16 * 1024];
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if file.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = file.sync_all();
}

#[tokio::test]
async fn a_full_disk_answers_503_loses_no_accepted_event_and_recovers_without_a_restart() {
    let dir = TestDir::on(Backend::Sqlite);
    let data = dir.storage.data_dir.clone();
    let _tmpfs = Tmpfs::mount(&data, "8m");
    let hook = Receiver::ok().await;
    let server = Server::start_in(dir, Options::default());
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    webhook(&server, &client, &hook.url, "store/order/*").await;

    let filler = data.join("filler");
    // Room for some events, not for 2,000 of 8 KiB.
    fill(&filler, 512 * 1024);
    // Events of 8 KiB each until the database cannot take more.
    let padding = "x".repeat(8 * 1024);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for n in 0..2_000u64 {
        let resp = server
            .http
            .post(format!("{}/v1/events", server.base))
            .bearer_auth(&publisher.token)
            .json(&json!({"store": "shop", "type": "store/order/created", "data": {"n": n, "pad": padding}}))
            .send()
            .await
            .expect("publish");
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = resp.json().await.expect("a JSON answer");
        match status {
            202 => accepted.push(n),
            503 => {
                assert_eq!(body["error"]["code"], "Unavailable", "{body}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("out of disk space"), "{body}");
                assert_eq!(retry_after.as_deref(), Some("5"), "{body}");
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!("a full disk answered {other}: {body}"),
        }
    }
    assert!(
        refused >= 3,
        "the disk never filled: {} accepted",
        accepted.len()
    );
    assert!(
        !accepted.is_empty(),
        "some events fit before the disk was full"
    );
    println!(
        "full disk: {} events accepted before the first 503",
        accepted.len()
    );

    // Room again: the same server takes events and delivers everything it accepted.
    std::fs::remove_file(&filler).expect("remove the filler");
    let more = eventually("ingest taking events again", WAIT, || async {
        let (status, body) = server
            .post_json(
                "/v1/events",
                &publisher,
                &json!({"store": "shop", "type": "store/order/created", "data": {"n": 9_999}}),
            )
            .await;
        (status == 202).then_some(body)
    })
    .await;
    assert!(more["eventId"].is_string(), "{more}");
    accepted.push(9_999);
    let total = accepted.len();
    eventually(
        "every accepted event delivered",
        Duration::from_secs(60),
        || {
            let got: std::collections::HashSet<u64> = hook
                .requests()
                .iter()
                .filter_map(|r| r.json()["data"]["n"].as_u64())
                .collect();
            let missing = accepted.iter().filter(|n| !got.contains(n)).count();
            async move { (missing == 0).then_some(()) }
        },
    )
    .await;
    println!("full disk: all {total} accepted events delivered after the space came back");
}
