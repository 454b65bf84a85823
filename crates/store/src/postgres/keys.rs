//! Master-key rotation in PostgreSQL (docs/operations.md#rotating-the-master-key).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};

use super::deliveries::DB_NOW;
use super::PgStore;
use crate::keys::{KeyStore, NodeKeys, Resealed, SecretColumn, StoredSecret};
use crate::keys_sql::{join_ids, split_ids};
use crate::{Result, StoreError};

#[async_trait]
impl KeyStore for PgStore {
    async fn sealing_key(&self) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM keyring WHERE name = 'sealing'")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_sealing_key(&self, key_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO keyring (name, value) VALUES ('sealing', $1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn report_keys(&self, node: &str, key_ids: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO node_keys (node, key_ids, reported_at) VALUES ($1, $2, {DB_NOW}) \
             ON CONFLICT (node) DO UPDATE SET key_ids = excluded.key_ids, \
             reported_at = excluded.reported_at"
        )))
        .bind(node)
        .bind(join_ids(key_ids))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM node_keys WHERE node <> $1 AND node NOT IN (SELECT id FROM nodes)",
        )
        .bind(node)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn live_node_keys(&self, within: Duration) -> Result<Vec<NodeKeys>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT n.id, k.key_ids FROM nodes n LEFT JOIN node_keys k ON k.node = n.id \
             WHERE n.heartbeat_at >= {DB_NOW} - $1 ORDER BY n.id"
        )))
        .bind(i64::try_from(within.as_millis()).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeKeys {
                    node: r.try_get(0)?,
                    key_ids: r.try_get::<Option<String>, _>(1)?.as_deref().map(split_ids),
                })
            })
            .collect()
    }

    async fn sealed_secrets(
        &self,
        column: SecretColumn,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredSecret>> {
        let (table, name) = column.place();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT seq, store_hash, id, {name} FROM {table} \
             WHERE seq > $1 AND {name} IS NOT NULL ORDER BY seq LIMIT $2"
        )))
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredSecret {
                    seq: r.try_get(0)?,
                    store: r.try_get(1)?,
                    id: r.try_get(2)?,
                    value: if column == SecretColumn::Destination {
                        r.try_get::<String, _>(3)?.into_bytes()
                    } else {
                        r.try_get(3)?
                    },
                })
            })
            .collect()
    }

    async fn reseal(&self, column: SecretColumn, changes: Vec<Resealed>) -> Result<u64> {
        if changes.is_empty() {
            return Ok(0);
        }
        let (table, name) = column.place();
        let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        let text = column == SecretColumn::Destination;
        // One statement for the batch: each row is written only if it still holds the
        // value read (a concurrent change wins, and is seen again by the next pass).
        let sql_type = if text { "text" } else { "bytea" };
        let query = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table} t SET {name} = u.new \
             FROM UNNEST($1::bigint[], $2::{sql_type}[], $3::{sql_type}[]) AS u(seq, old, new) \
             WHERE t.seq = u.seq AND t.{name} = u.old"
        )))
        .bind(seqs);
        let query = if text {
            let as_text =
                |b: Vec<u8>| String::from_utf8(b).map_err(|e| StoreError::Corrupt(e.to_string()));
            let (old, new): (Vec<_>, Vec<_>) = changes.into_iter().map(|c| (c.old, c.new)).unzip();
            let old = old.into_iter().map(as_text).collect::<Result<Vec<_>>>()?;
            let new = new.into_iter().map(as_text).collect::<Result<Vec<_>>>()?;
            query.bind(old).bind(new)
        } else {
            let (old, new): (Vec<_>, Vec<_>) = changes.into_iter().map(|c| (c.old, c.new)).unzip();
            query.bind(old).bind(new)
        };
        let result = query.execute(&self.pool).await?;
        Ok(result.rows_affected())
    }
}
