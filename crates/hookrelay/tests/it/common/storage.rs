//! Where a test server keeps its data: the backend the suite runs on, chosen with
//! `HOOKRELAY_TEST_BACKEND` (`sqlite`, the default, or `postgres`).
//!
//! - SQLite: the data dir of a temporary directory, as `hookrelay serve` uses it alone.
//! - PostgreSQL: a new database of its own on the server at `HOOKRELAY_TEST_POSTGRES_URL`
//!   (an admin URL: the tests create and drop databases there), named `hookrelay_test_…`,
//!   with a generated master key. The [`TestDir`] holds both, so a restart on the same
//!   directory (crash tests) finds the same database and key; the database is dropped when
//!   the directory is. `scripts/test` drops what a killed test run left behind.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use rand::RngCore;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::BIN;

/// Prefix of every database the integration tests create (`scripts/test` drops leftovers).
pub const DATABASE_PREFIX: &str = "hookrelay_test_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend `HOOKRELAY_TEST_BACKEND` selects (SQLite when unset).
    pub fn selected() -> Backend {
        match std::env::var("HOOKRELAY_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") => Backend::Postgres,
            Ok(other) => panic!(
                "HOOKRELAY_TEST_BACKEND={other:?}: expected \"sqlite\" (the default) or \"postgres\""
            ),
        }
    }
}

/// The PostgreSQL server the tests may create and drop databases on. Panics when unset:
/// a test that needs PostgreSQL fails, it never skips.
pub fn postgres_admin_url() -> String {
    match std::env::var("HOOKRELAY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "HOOKRELAY_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server on which \
             it may create and drop databases. Run ./scripts/test (it starts PostgreSQL and sets \
             it), or set it yourself, e.g. \
             HOOKRELAY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
        ),
    }
}

/// `url` (a PostgreSQL URL) with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let rest = base
        .strip_prefix("postgres://")
        .or_else(|| base.strip_prefix("postgresql://"))
        .unwrap_or_else(|| panic!("not a postgres:// URL: {url}"));
    let scheme = &base[..base.len() - rest.len()];
    let server = rest.split_once('/').map_or(rest, |(server, _)| server);
    format!("{scheme}{server}/{database}{query}")
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A fresh master key: base64 of 32 random bytes.
pub fn new_master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>())
}

/// Runs `fut` to completion on a runtime of its own, on a thread of its own: callable from
/// synchronous code, from `Drop`, and from inside a test's runtime alike.
pub fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(fut)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A connection to `url`, with a clear message when the server does not answer.
pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {url}: {e}"))
}

/// A PostgreSQL database of a test: its name and URL.
#[derive(Debug, Clone)]
pub struct Database {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl Database {
    /// Creates a new, empty database on the server at `HOOKRELAY_TEST_POSTGRES_URL`.
    pub fn create() -> Database {
        Self::create_on(postgres_admin_url())
    }

    /// Creates a new, empty database on the server `admin_url` points at.
    pub fn create_on(admin_url: String) -> Database {
        let name = format!(
            "{DATABASE_PREFIX}{}",
            random_bytes::<8>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let url = with_database(&admin_url, &name);
        let (admin, created) = (admin_url.clone(), name.clone());
        block_on(async move {
            let mut conn = connect(&admin).await;
            sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{created}""#)))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {created}: {e}"));
        });
        Database {
            name,
            url,
            admin_url,
        }
    }

    /// Drops the database, closing whatever is still connected to it.
    pub fn drop_database(&self) -> Result<(), String> {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        block_on(async move {
            let mut conn = PgConnection::connect(&admin)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
            )))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
            Ok(())
        })
    }

    /// Whether the database still exists on the server.
    pub async fn exists(&self) -> bool {
        let mut conn = connect(&self.admin_url).await;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&self.name)
            .fetch_one(&mut conn)
            .await
            .expect("query pg_database")
            == 1
    }

    /// Every value of every column of every table, as text (`bytea` columns as their raw
    /// bytes), one value a line: what is stored, for plain-text checks.
    pub async fn all_values(&self) -> Vec<u8> {
        let mut conn = connect(&self.url).await;
        let columns: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT c.table_schema::text, c.table_name::text, c.column_name::text, c.data_type::text \
             FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE t.table_type = 'BASE TABLE' \
               AND c.table_schema NOT IN ('pg_catalog', 'information_schema') \
             ORDER BY 1, 2, c.ordinal_position",
        )
        .fetch_all(&mut conn)
        .await
        .expect("list columns");
        assert!(!columns.is_empty(), "no tables in {}", self.name);
        let mut all = Vec::new();
        for (schema, table, column, data_type) in columns {
            let from = format!(r#"FROM "{schema}"."{table}""#);
            if data_type == "bytea" {
                let values: Vec<Option<Vec<u8>>> =
                    sqlx::query_scalar(AssertSqlSafe(format!(r#"SELECT "{column}" {from}"#)))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap_or_else(|e| panic!("read {table}.{column}: {e}"));
                for v in values.into_iter().flatten() {
                    all.extend(v);
                    all.push(b'\n');
                }
            } else {
                let values: Vec<Option<String>> =
                    sqlx::query_scalar(AssertSqlSafe(format!(r#"SELECT "{column}"::text {from}"#)))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap_or_else(|e| panic!("read {table}.{column}: {e}"));
                for v in values.into_iter().flatten() {
                    all.extend(v.into_bytes());
                    all.push(b'\n');
                }
            }
        }
        all
    }
}

/// What a `hookrelay` command needs to reach a test's data: the data dir, and on
/// PostgreSQL the database and the master key.
#[derive(Debug, Clone)]
pub struct Storage {
    pub backend: Backend,
    /// The data dir (`--data-dir`): the SQLite database and its generated master key.
    /// Given to `serve` on PostgreSQL too, so nothing lands in the working directory.
    pub data_dir: PathBuf,
    pub database: Option<Database>,
    pub master_key: Option<String>,
}

impl Storage {
    /// The arguments that point a database command (`token`, `store`, `publish`,
    /// `migrate`) at this storage: `--data-dir DIR`, or `--database-url URL`.
    pub fn args(&self) -> Vec<String> {
        match &self.database {
            None => vec!["--data-dir".into(), self.data_dir.display().to_string()],
            Some(db) => vec!["--database-url".into(), db.url.clone()],
        }
    }

    /// The environment of every command: the master key on PostgreSQL.
    pub fn envs(&self) -> Vec<(String, String)> {
        self.master_key
            .iter()
            .map(|key| ("HOOKRELAY_MASTER_KEY".to_owned(), key.clone()))
            .collect()
    }

    /// `hookrelay` with this storage's environment (no arguments yet).
    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.envs(self.envs());
        command
    }

    /// Runs the CLI with `args` followed by [`Storage::args`]; returns stdout, panics
    /// with stderr if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .args(self.args())
            .output()
            .expect("run hookrelay");
        assert!(
            out.status.success(),
            "hookrelay {args:?} {:?} failed: {}",
            self.args(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Like [`Storage::cli`], expecting failure; returns stderr.
    pub fn cli_fails(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .args(self.args())
            .output()
            .expect("run hookrelay");
        assert!(
            !out.status.success(),
            "hookrelay {args:?} {:?} should have failed",
            self.args()
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// How many rows `table` has (`events`, `deliveries`, `attempts`, …), read straight from
    /// the database while the server runs.
    pub async fn count_rows(&self, table: &str) -> i64 {
        assert!(
            table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "table name {table:?}"
        );
        let sql = format!("SELECT count(*) FROM {table}");
        match &self.database {
            None => {
                let path = self.data_dir.join("hookrelay.sqlite3");
                let conn = rusqlite::Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .expect("busy timeout");
                conn.query_row(&sql, [], |row| row.get(0))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Some(db) => {
                let mut conn = connect(&db.url).await;
                sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }

    /// Everything stored, for plain-text checks: the files of the data dir (the SQLite
    /// database and its WAL), or every value of the PostgreSQL database.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match &self.database {
            None => super::data_dir_bytes(&self.data_dir),
            Some(db) => db.all_values().await,
        }
    }
}

/// A test's temporary directory and the storage in it. Dropping it drops the PostgreSQL
/// database too (unless it only borrows one, as a peer node's directory does).
pub struct TestDir {
    dir: tempfile::TempDir,
    pub storage: Storage,
    owns_database: bool,
}

impl TestDir {
    /// A new directory on the selected backend.
    pub fn new() -> TestDir {
        Self::on(Backend::selected())
    }

    /// A new directory on `backend` (a new database on PostgreSQL).
    pub fn on(backend: Backend) -> TestDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database, master_key) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => (Some(Database::create()), Some(new_master_key())),
        };
        let storage = Storage {
            backend,
            data_dir: dir.path().join("data"),
            database,
            master_key,
        };
        TestDir {
            dir,
            storage,
            owns_database: true,
        }
    }

    /// A new directory on a new database of the PostgreSQL server `admin_url` points at
    /// (a server of the test's own, not the suite's).
    pub fn on_server(admin_url: String) -> TestDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage {
            backend: Backend::Postgres,
            data_dir: dir.path().join("data"),
            database: Some(Database::create_on(admin_url)),
            master_key: Some(new_master_key()),
        };
        TestDir {
            dir,
            storage,
            owns_database: true,
        }
    }

    /// A new directory on the same database and master key as `other` (another node);
    /// the database stays `other`'s to drop.
    pub fn sharing(other: &TestDir) -> TestDir {
        assert_eq!(
            other.storage.backend,
            Backend::Postgres,
            "several nodes on one database need PostgreSQL"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage {
            data_dir: dir.path().join("data"),
            ..other.storage.clone()
        };
        TestDir {
            dir,
            storage,
            owns_database: false,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn backend(&self) -> Backend {
        self.storage.backend
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !self.owns_database || std::env::var_os("HOOKRELAY_TEST_KEEP_DATABASES").is_some() {
            return;
        }
        if let Some(db) = &self.storage.database {
            if let Err(e) = db.drop_database() {
                // Not worth failing a test over: scripts/test drops leftovers.
                eprintln!("could not drop test database {}: {e}", db.name);
            }
        }
    }
}
