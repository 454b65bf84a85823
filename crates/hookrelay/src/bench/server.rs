//! The servers under test: `hookrelay serve` (this same executable), either alone on a
//! fresh data dir (SQLite) or one or more nodes sharing a PostgreSQL database.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Where the servers keep their data.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded SQLite database in the (single) server's temporary data dir.
    Sqlite,
    /// A PostgreSQL database every node shares; a master key is required there.
    Postgres { url: String, master_key: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

pub struct ServerProcess {
    pub base: String,
    /// The `hookrelay` executable (this one, or `--server-exe`).
    exe: std::path::PathBuf,
    child: Child,
    dir: tempfile::TempDir,
    /// Copies the server's stderr to `server.log` in `dir`; ends when the server does.
    log_thread: Option<JoinHandle<()>>,
    /// What every command touching this server's database is given: `--data-dir DIR`
    /// or `--database-url URL`, and the environment (the master key).
    storage_args: Vec<OsString>,
    storage_envs: Vec<(String, String)>,
}

impl ServerProcess {
    /// Starts `exe serve` (`None`: this executable) on `backend` with `extra` arguments
    /// and `envs` added to its environment.
    pub async fn start(
        exe: Option<&Path>,
        backend: &Backend,
        extra: &[String],
        envs: &[(String, String)],
    ) -> Result<Self> {
        let exe = match exe {
            Some(exe) => exe.to_path_buf(),
            None => std::env::current_exe().context("finding the hookrelay executable")?,
        };
        let dir = tempfile::tempdir().context("creating a data dir")?;
        let (storage_args, storage_envs): (Vec<OsString>, _) = match backend {
            Backend::Sqlite => (
                vec!["--data-dir".into(), dir.path().join("data").into()],
                Vec::new(),
            ),
            // The key goes in the environment, not on the command line (`ps` shows that).
            Backend::Postgres { url, master_key } => (
                vec!["--database-url".into(), url.into()],
                vec![("HOOKRELAY_MASTER_KEY".to_owned(), master_key.clone())],
            ),
        };
        // Any free port, unless `--server-arg=--listen=…` chose one (to watch a run's
        // /metrics from outside).
        let listen: &[&str] = match extra.iter().any(|a| a.starts_with("--listen")) {
            true => &[],
            false => &["--listen", "127.0.0.1:0"],
        };
        let mut command = Command::new(&exe);
        command
            .arg("serve")
            .args(listen)
            .arg("--allow-http")
            .args(["--allowed-networks", "127.0.0.0/8"])
            .args(&storage_args)
            .args(extra)
            // Anything a server would write to its working directory stays in the temp dir.
            .current_dir(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,hookrelay=info".into()),
            )
            .env("NO_COLOR", "1");
        storage_env(&mut command, &storage_envs);
        let mut child = command
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting hookrelay serve")?;
        let stderr = child.stderr.take().context("server stderr")?;
        let log_path = dir.path().join("server.log");
        let (tx, rx) = std::sync::mpsc::channel();
        let log_thread = std::thread::spawn(move || {
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
            exe,
            child,
            dir,
            log_thread: Some(log_thread),
            storage_args,
            storage_envs,
        })
    }

    /// `hookrelay token create` on the server's database; returns the access token.
    pub fn token(&self, args: &[&str]) -> Result<String> {
        let mut command = Command::new(&self.exe);
        command
            .args(["token", "create"])
            .args(&self.storage_args)
            .args(args)
            .current_dir(self.dir.path());
        storage_env(&mut command, &self.storage_envs);
        let out = command.output().context("running token create")?;
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
        self.status_kb("VmHWM:")
    }

    /// The server's resident memory now.
    pub fn rss_kb(&self) -> Option<u64> {
        self.status_kb("VmRSS:")
    }

    /// A `… kB` line of `/proc/PID/status`.
    fn status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// CPU time the server has used so far (user + system, all its threads), in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces, hence the last ')'): the
        // state is field 3, utime and stime are fields 14 and 15, in clock ticks.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (per_second > 0).then(|| ticks as f64 / per_second as f64)
    }

    /// The last `n` lines the server logged (for reports of failed runs).
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| (*l).to_owned())
            .collect()
    }

    /// Copies the server's log so far to `to`.
    pub fn save_log(&self, to: &Path) -> Result<()> {
        std::fs::copy(self.dir.path().join("server.log"), to)
            .with_context(|| format!("copying the server log to {}", to.display()))?;
        Ok(())
    }

    /// Stops the server (SIGTERM: a graceful shutdown) and waits until it and its log are
    /// done.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
    }
}

/// The storage environment for a child: ours, without a database URL or master key the
/// bench did not choose (an inherited `HOOKRELAY_DATABASE_URL` would otherwise move a
/// SQLite run onto PostgreSQL).
fn storage_env(command: &mut Command, envs: &[(String, String)]) {
    command
        .env_remove("HOOKRELAY_DATABASE_URL")
        .env_remove("HOOKRELAY_MASTER_KEY")
        .envs(envs.iter().map(|(k, v)| (k, v)));
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
