//! Master-key rotation in SQLite (docs/operations.md#rotating-the-master-key).

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{params, OptionalExtension};

use super::rows::millis;
use super::SqliteStore;
use crate::keys::{KeyStore, NodeKeys, Resealed, SecretColumn, StoredSecret};
use crate::keys_sql::{join_ids, split_ids};
use crate::Result;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn sealing_key(&self) -> Result<Option<String>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT value FROM keyring WHERE name = 'sealing'",
                [],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn set_sealing_key(&self, key_id: &str) -> Result<()> {
        let id = key_id.to_owned();
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO keyring (name, value) VALUES ('sealing', ?1) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    [id],
                )?;
                Ok(())
            })
            .await
    }

    async fn report_keys(&self, node: &str, key_ids: &[String]) -> Result<()> {
        let (node, ids) = (node.to_owned(), join_ids(key_ids));
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO node_keys (node, key_ids, reported_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (node) DO UPDATE SET key_ids = excluded.key_ids, \
                     reported_at = excluded.reported_at",
                    params![node, ids, millis(Utc::now())],
                )?;
                c.execute(
                    "DELETE FROM node_keys WHERE node <> ?1 AND node NOT IN (SELECT id FROM nodes)",
                    [node],
                )?;
                Ok(())
            })
            .await
    }

    async fn live_node_keys(&self, within: Duration) -> Result<Vec<NodeKeys>> {
        let since = millis(Utc::now()) - i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT n.id, k.key_ids FROM nodes n LEFT JOIN node_keys k ON k.node = n.id \
                 WHERE n.heartbeat_at >= ?1 ORDER BY n.id",
            )?;
            let rows = stmt.query_map([since], |r| {
                Ok(NodeKeys {
                    node: r.get(0)?,
                    key_ids: r.get::<_, Option<String>>(1)?.as_deref().map(split_ids),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn sealed_secrets(
        &self,
        column: SecretColumn,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredSecret>> {
        let (table, name) = column.place();
        let sql = format!(
            "SELECT seq, store_hash, id, {name} FROM {table} \
             WHERE seq > ?1 AND {name} IS NOT NULL ORDER BY seq LIMIT ?2"
        );
        let text = column == SecretColumn::Destination;
        self.read(move |c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params![after, limit as i64], |r| {
                Ok(StoredSecret {
                    seq: r.get(0)?,
                    store: r.get(1)?,
                    id: r.get(2)?,
                    value: if text {
                        r.get::<_, String>(3)?.into_bytes()
                    } else {
                        r.get(3)?
                    },
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn reseal(&self, column: SecretColumn, changes: Vec<Resealed>) -> Result<u64> {
        let (table, name) = column.place();
        let sql = format!("UPDATE {table} SET {name} = ?1 WHERE seq = ?2 AND {name} = ?3");
        let text = column == SecretColumn::Destination;
        self.writer
            .write(move |c| {
                let mut stmt = c.prepare(&sql)?;
                let mut written = 0;
                for change in changes {
                    written += if text {
                        let as_text = |b: Vec<u8>| {
                            String::from_utf8(b)
                                .map_err(|e| crate::StoreError::Corrupt(e.to_string()))
                        };
                        stmt.execute(params![
                            as_text(change.new)?,
                            change.seq,
                            as_text(change.old)?
                        ])?
                    } else {
                        stmt.execute(params![change.new, change.seq, change.old])?
                    } as u64;
                }
                Ok(written)
            })
            .await
    }
}
