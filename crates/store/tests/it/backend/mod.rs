//! The backend the store tests run against: SQLite in a temporary directory, or with
//! `HOOKRELAY_TEST_BACKEND=postgres` a new database of its own on the server at
//! `HOOKRELAY_TEST_POSTGRES_URL` (`scripts/test` sets both and drops the databases).
#![allow(dead_code)]

use std::sync::Arc;

use hookrelay_store::{PgStore, SqliteStore, Store};
use sqlx::Connection;

pub struct TestDb {
    pub db: Arc<dyn Store>,
    /// The PostgreSQL database's URL (another node may connect to it).
    pub url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_selected() -> bool {
    std::env::var("HOOKRELAY_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// The PostgreSQL server's URL; tests that need it fail (never skip) without it.
pub fn postgres_url() -> String {
    std::env::var("HOOKRELAY_TEST_POSTGRES_URL").expect(
        "HOOKRELAY_TEST_POSTGRES_URL is not set: run ./scripts/test, or set it to a PostgreSQL \
         server URL such as postgres://postgres@127.0.0.1:5432/test",
    )
}

/// A new, empty PostgreSQL database; returns its URL.
pub async fn new_postgres_database() -> String {
    let admin = postgres_url();
    let name = format!(
        "hookrelay_test_{}",
        hookrelay_core::ids::new_id("s").to_lowercase()
    );
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to HOOKRELAY_TEST_POSTGRES_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .expect("create a test database");
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin.as_str(), String::new()),
    };
    let server = base.rsplit_once('/').map(|(s, _)| s).unwrap_or(base);
    format!("{server}/{name}{query}")
}

/// A fresh store on the selected backend.
pub async fn open() -> TestDb {
    if postgres_selected() {
        let url = new_postgres_database().await;
        let db = PgStore::connect(&url).await.expect("open PostgreSQL store");
        TestDb {
            db: Arc::new(db),
            url: Some(url),
            _dir: None,
        }
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = SqliteStore::open(&dir.path().join("db.sqlite3")).expect("open SQLite store");
        TestDb {
            db: Arc::new(db),
            url: None,
            _dir: Some(dir),
        }
    }
}
