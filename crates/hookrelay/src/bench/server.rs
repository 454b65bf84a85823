//! The server under test: `hookrelay serve` (this same executable) on a fresh data dir.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub struct ServerProcess {
    pub base: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the server with `extra` arguments and `envs` added to its environment.
    pub async fn start(extra: &[String], envs: &[(String, String)]) -> Result<Self> {
        let exe = std::env::current_exe().context("finding the hookrelay executable")?;
        let dir = tempfile::tempdir().context("creating a data dir")?;
        let data = dir.path().join("data");
        let mut child = Command::new(&exe)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--allow-http"])
            .args(["--allowed-networks", "127.0.0.0/8"])
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,hookrelay=info".into()),
            )
            .env("NO_COLOR", "1")
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting hookrelay serve")?;
        let stderr = child.stderr.take().context("server stderr")?;
        let log_path = dir.path().join("server.log");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(&log_path).ok();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr: String = rest
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')
                            })
                            .collect();
                        let _ = tx.send(Ok(addr));
                        sent = true;
                    } else if line.contains("error") {
                        let _ = tx.send(Err(line.clone()));
                    }
                }
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .context("waiting for the server")?;
        let addr = match addr {
            Ok(Ok(addr)) => addr,
            Ok(Err(line)) => bail!("hookrelay serve failed: {line}"),
            Err(_) => bail!("hookrelay serve did not start within 30 s"),
        };
        Ok(ServerProcess {
            base: format!("http://{addr}"),
            child,
            dir,
        })
    }

    /// `hookrelay token create` on the server's data dir; returns the access token.
    pub fn token(&self, args: &[&str]) -> Result<String> {
        let exe = std::env::current_exe()?;
        let out = Command::new(exe)
            .args(["token", "create", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(args)
            .output()
            .context("running token create")?;
        if !out.status.success() {
            bail!(
                "token create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        v["accessToken"]
            .as_str()
            .map(str::to_owned)
            .context("token create printed no accessToken")
    }

    /// The server's peak resident set (VmHWM), in KiB.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
