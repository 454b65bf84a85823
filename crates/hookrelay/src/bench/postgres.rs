//! `--database-url`: a fresh PostgreSQL database for one run, created on the server the URL
//! names (through the database in the URL) and dropped afterwards.

use anyhow::{Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

pub struct BenchDatabase {
    /// The URL given, used to create and drop the run's database.
    admin_url: String,
    /// The run's database, e.g. `hookrelay_bench_1767225600_4242`.
    pub name: String,
    /// `admin_url` pointing at the run's database: what the servers get.
    pub url: String,
}

impl BenchDatabase {
    /// Creates `hookrelay_bench_<unix seconds>_<pid>` on the server `admin_url` names.
    pub async fn create(admin_url: &str) -> Result<Self> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!("hookrelay_bench_{secs}_{}", std::process::id());
        let mut conn = connect(admin_url).await?;
        // The name is ours (letters, digits and underscores): nothing to inject.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name} on {}", redact(admin_url)))?;
        let _ = conn.close().await;
        Ok(BenchDatabase {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// Drops the database, disconnecting whatever is still connected to it.
    pub async fn drop_database(self) -> Result<()> {
        // PostgreSQL checkpoints before it drops a database: this can take seconds.
        let mut conn = connect(&self.admin_url).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .with_context(|| format!("dropping database {}", self.name))?;
        let _ = conn.close().await;
        Ok(())
    }
}

/// What the database server did during a run: the WAL it wrote (from the server) and the
/// CPU time of its processes (from `/proc`, so only when it runs on this machine: the
/// `postgres` processes' own time plus what the postmaster collected from backends that
/// exited; other databases' work on that server counts too).
pub struct DatabaseCost {
    lsn: String,
    ticks: Option<u64>,
    waits: Option<LockWaits>,
}

/// WAL bytes and CPU-seconds (when measurable here) since [`DatabaseCost::start`], and
/// the time the run's backends spent waiting for a lock.
pub struct DatabaseFigures {
    pub wal_bytes: f64,
    pub cpu_seconds: Option<f64>,
    /// Backend-seconds spent waiting for a heavyweight lock (a row, a transaction, an
    /// advisory lock), estimated by sampling `pg_stat_activity`.
    pub lock_wait_seconds: Option<f64>,
    /// The same for lightweight locks (buffer contents, the WAL insert and write locks).
    pub lwlock_wait_seconds: Option<f64>,
}

/// How often the run's backends are sampled for lock waits. Each sample is one small
/// query, so the sampling adds about 0.1 CPU-seconds per 20 s run to the database's figure.
pub const LOCK_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// A task sampling the wait events of the run database's backends.
struct LockWaits {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl LockWaits {
    async fn start(url: &str) -> Result<Self> {
        let mut conn = connect(url).await?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let (mut heavy, mut light) = (0u64, 0u64);
            let mut tick = tokio::time::interval(LOCK_SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let sample: Result<(i64, i64), _> = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), \
                       count(*) FILTER (WHERE wait_event_type = 'LWLock') \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(&mut conn)
                .await;
                match sample {
                    Ok((h, l)) => {
                        heavy += h.max(0) as u64;
                        light += l.max(0) as u64;
                    }
                    Err(_) => break,
                }
            }
            let _ = conn.close().await;
            (heavy, light)
        });
        Ok(LockWaits { stop, task })
    }

    /// Backend-seconds waiting for heavyweight and for lightweight locks.
    async fn finish(self) -> Option<(f64, f64)> {
        let _ = self.stop.send(());
        let (heavy, light) = self.task.await.ok()?;
        let every = LOCK_SAMPLE_EVERY.as_secs_f64();
        Some((heavy as f64 * every, light as f64 * every))
    }
}

impl DatabaseCost {
    pub async fn start(url: &str) -> Result<Self> {
        let mut conn = connect(url).await?;
        let (lsn,): (String,) = sqlx::query_as("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&mut conn)
            .await
            .context("reading the WAL position")?;
        let _ = conn.close().await;
        Ok(DatabaseCost {
            lsn,
            ticks: postgres_ticks(),
            waits: LockWaits::start(url).await.ok(),
        })
    }

    pub async fn finish(self, url: &str) -> Result<DatabaseFigures> {
        let waits = match self.waits {
            Some(w) => w.finish().await,
            None => None,
        };
        let ticks = postgres_ticks();
        let mut conn = connect(url).await?;
        let (wal_bytes,): (f64,) =
            sqlx::query_as("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8")
                .bind(&self.lsn)
                .fetch_one(&mut conn)
                .await
                .context("reading the WAL written")?;
        let _ = conn.close().await;
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let cpu_seconds = match (self.ticks, ticks) {
            (Some(before), Some(after)) if per_second > 0 && after >= before => {
                Some((after - before) as f64 / per_second as f64)
            }
            _ => None,
        };
        Ok(DatabaseFigures {
            wal_bytes,
            cpu_seconds,
            lock_wait_seconds: waits.map(|w| w.0),
            lwlock_wait_seconds: waits.map(|w| w.1),
        })
    }
}

/// The updates of the `deliveries` table in the run's database, and how many of them were
/// HOT (no index entry rewritten), from `pg_stat_user_tables`. Read once the servers have
/// stopped: a backend sends its statistics when it exits.
pub async fn delivery_updates(url: &str) -> Result<(i64, i64)> {
    let mut conn = connect(url).await?;
    let mut last = (0, 0);
    // The servers' backends exit just after them: give their statistics a moment.
    for _ in 0..10 {
        let counts: (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(n_tup_upd), 0)::int8, coalesce(sum(n_tup_hot_upd), 0)::int8 \
             FROM pg_stat_user_tables WHERE relname = 'deliveries'",
        )
        .fetch_one(&mut conn)
        .await
        .context("reading the deliveries table's statistics")?;
        if counts == last && counts.0 > 0 {
            break;
        }
        last = counts;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = conn.close().await;
    Ok(last)
}

/// The CPU ticks of every `postgres` process on this machine, with what they collected
/// from their exited children; `None` when there is none (the server is elsewhere).
fn postgres_ticks() -> Option<u64> {
    let mut total = 0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        // After the command: state is field 3; utime, stime, cutime, cstime 14 to 17.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields
            .get(11..15)
            .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        total += ticks;
        found = true;
    }
    found.then_some(total)
}

/// A connection that logs no statements (sqlx warns of slow ones: DROP DATABASE is).
async fn connect(url: &str) -> Result<PgConnection> {
    let options: PgConnectOptions = url
        .parse()
        .with_context(|| format!("--database-url {}", redact(url)))?;
    options
        .disable_statement_logging()
        .connect()
        .await
        .with_context(|| format!("connecting to {}", redact(url)))
}

/// `url` with its database (the path) replaced by `name`; user, host, port and query
/// parameters stay.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_and_hides_passwords() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "b"),
            "postgresql://u:p@h/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "b"),
            "postgres://h:5432/b"
        );
        assert_eq!(
            with_database("postgres:///db?host=/run/postgresql", "b"),
            "postgres:///b?host=/run/postgresql"
        );
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
