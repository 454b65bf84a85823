//! Versioned migrations, tracked in `hookrelay_schema`. Nodes starting together take
//! turns through a session advisory lock; each migration runs in its own transaction.

use sqlx::{Connection, PgConnection, PgPool};

use crate::{Result, StoreError};

/// Every migration in order; index + 1 is the version it brings the schema to.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_portal.sql"),
    include_str!("../../migrations/postgres/0003_queue.sql"),
    include_str!("../../migrations/postgres/0004_ordering.sql"),
    include_str!("../../migrations/postgres/0005_rate_limits.sql"),
    include_str!("../../migrations/postgres/0006_keys.sql"),
];

pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key migrations hold ("hookrelay" in ASCII, truncated).
const LOCK: i64 = 0x686f_6f6b_7265_6c61;

pub(crate) async fn version(pool: &PgPool) -> Result<i64> {
    let mut c = pool.acquire().await?;
    current(&mut c).await
}

async fn has_schema_table(c: &mut PgConnection) -> Result<bool> {
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('hookrelay_schema')::text")
        .fetch_one(c)
        .await?;
    Ok(table.is_some())
}

async fn current(c: &mut PgConnection) -> Result<i64> {
    if !has_schema_table(c).await? {
        return Ok(0);
    }
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM hookrelay_schema")
            .fetch_one(&mut *c)
            .await?,
    )
}

/// Applies the migrations the database lacks. Returns the versions applied.
pub(crate) async fn migrate(pool: &PgPool) -> Result<Vec<i64>> {
    let mut c = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut *c)
        .await?;
    let result = apply(&mut c).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut *c)
        .await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply(c: &mut PgConnection) -> Result<Vec<i64>> {
    if !has_schema_table(c).await? {
        sqlx::raw_sql(
            "CREATE TABLE hookrelay_schema (version BIGINT PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut *c)
        .await?;
    }
    let current = current(c).await?;
    if current > LATEST {
        return Err(StoreError::Corrupt(format!(
            "the database schema is version {current}, newer than this hookrelay ({LATEST}); upgrade hookrelay"
        )));
    }
    let mut applied = Vec::new();
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let target = index as i64 + 1;
        let mut tx = c.begin().await?;
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO hookrelay_schema (version) VALUES ($1)")
            .bind(target)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        applied.push(target);
    }
    Ok(applied)
}
