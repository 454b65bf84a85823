//! Versioned migrations, tracked in SQLite's `user_version`.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// Every migration in order; index + 1 is the version it brings the schema to.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_delivery.sql"),
    include_str!("../../migrations/sqlite/0003_event_sources.sql"),
    include_str!("../../migrations/sqlite/0004_retention.sql"),
    include_str!("../../migrations/sqlite/0005_portal.sql"),
    include_str!("../../migrations/sqlite/0006_ordering.sql"),
    include_str!("../../migrations/sqlite/0007_rate_limits.sql"),
    include_str!("../../migrations/sqlite/0008_keys.sql"),
];

pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

pub(crate) fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Applies the migrations the database lacks, each in its own transaction. Returns the
/// versions applied.
pub(crate) fn migrate(conn: &mut Connection) -> Result<Vec<i64>> {
    let current = version(conn)?;
    if current > LATEST {
        return Err(StoreError::Corrupt(format!(
            "the database schema is version {current}, newer than this hookrelay ({LATEST}); upgrade hookrelay"
        )));
    }
    let mut applied = Vec::new();
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let target = index as i64 + 1;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        if version(&tx)? >= target {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
        applied.push(target);
    }
    Ok(applied)
}
