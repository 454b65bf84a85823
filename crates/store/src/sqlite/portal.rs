//! Portal links, sessions and figures in SQLite (docs/portal.md).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookrelay_core::SubscriptionRecord;
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, millis};
use super::SqliteStore;
use crate::codec::{time, SUBSCRIPTION_COLUMNS};
use crate::portal::{
    fill_buckets, grant_of, link_state_of, Bucket, Grant, LastError, LinkState, NewPortalLink,
    NewPortalSession, NodeRecord, PortalSession, PortalStore, Redeemed, ATTEMPT_COUNTS,
    ATTEMPT_SUCCEEDED, CLIENT_NOT_REVOKED,
};
use crate::Result;

fn link_state(c: &Connection, hash: &str, now: i64) -> Result<LinkState> {
    let row = c
        .query_row(
            "SELECT expires_at, used_at FROM portal_links WHERE link_hash = ?1",
            [hash],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
        )
        .optional()?;
    Ok(link_state_of(row, now))
}

/// The link's grant, with a client's role as the client has it; `None` when the client
/// is gone or revoked.
fn live_grant(c: &Connection, grant: Grant) -> Result<Option<Grant>> {
    let Some(client) = &grant.client_id else {
        return Ok(Some(grant));
    };
    let role_text: Option<String> = c
        .query_row(
            "SELECT role FROM api_clients WHERE client_id = ?1 AND revoked_at IS NULL",
            [client],
            |r| r.get(0),
        )
        .optional()?;
    role_text
        .map(|text| grant_of(&text, grant.store.clone(), grant.client_id.clone()))
        .transpose()
}

fn bucket_rows(
    c: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<(i64, i64, i64)>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt
        .query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[async_trait]
impl PortalStore for SqliteStore {
    async fn insert_portal_link(&self, link: NewPortalLink) -> Result<()> {
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO portal_links (link_hash, role, store_hash, client_id, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        link.link_hash,
                        link.grant.role.as_str(),
                        link.grant.store,
                        link.grant.client_id,
                        millis(link.created_at),
                        millis(link.expires_at)
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn portal_link_state(&self, link_hash: &str, now: DateTime<Utc>) -> Result<LinkState> {
        let hash = link_hash.to_owned();
        self.read(move |c| link_state(c, &hash, millis(now))).await
    }

    async fn redeem_portal_link(
        &self,
        link_hash: &str,
        session: NewPortalSession,
    ) -> Result<Redeemed> {
        let hash = link_hash.to_owned();
        self.writer
            .write(move |c| {
                let now = millis(session.created_at);
                let used = c
                    .query_row(
                        "UPDATE portal_links SET used_at = ?2 \
                         WHERE link_hash = ?1 AND used_at IS NULL AND expires_at > ?2 \
                         RETURNING role, store_hash, client_id",
                        params![hash, now],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, Option<String>>(1)?,
                                r.get::<_, Option<String>>(2)?,
                            ))
                        },
                    )
                    .optional()?;
                let Some((role_text, store, client_id)) = used else {
                    return Ok(Redeemed::Refused(link_state(c, &hash, now)?));
                };
                let grant = grant_of(&role_text, store, client_id)?;
                let Some(grant) = live_grant(c, grant)? else {
                    return Ok(Redeemed::Refused(LinkState::Unknown));
                };
                c.execute(
                    "INSERT INTO portal_sessions (session_hash, role, store_hash, client_id, \
                     created_at, expires_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)",
                    params![
                        session.session_hash,
                        grant.role.as_str(),
                        grant.store,
                        grant.client_id,
                        now,
                        millis(session.expires_at)
                    ],
                )?;
                Ok(Redeemed::Session(grant))
            })
            .await
    }

    async fn portal_session(
        &self,
        session_hash: &str,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<Option<PortalSession>> {
        let hash = session_hash.to_owned();
        self.read(move |c| {
            let row = c
                .query_row(
                    &format!(
                        "SELECT s.role, s.store_hash, s.client_id, s.expires_at, s.last_seen_at \
                         FROM portal_sessions s WHERE s.session_hash = ?1 AND s.expires_at > ?2 \
                         AND s.last_seen_at >= ?3 AND {CLIENT_NOT_REVOKED}"
                    ),
                    params![hash, millis(now), millis(idle_since)],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    },
                )
                .optional()?;
            let Some((role_text, store, client_id, expires, seen)) = row else {
                return Ok(None);
            };
            Ok(Some(PortalSession {
                grant: grant_of(&role_text, store, client_id)?,
                expires_at: time(expires)?,
                last_seen_at: time(seen)?,
            }))
        })
        .await
    }

    async fn touch_portal_session(&self, session_hash: &str, now: DateTime<Utc>) -> Result<()> {
        let hash = session_hash.to_owned();
        self.writer
            .write(move |c| {
                c.execute(
                    "UPDATE portal_sessions SET last_seen_at = ?2 WHERE session_hash = ?1",
                    params![hash, millis(now)],
                )?;
                Ok(())
            })
            .await
    }

    async fn end_portal_session(&self, session_hash: &str) -> Result<()> {
        let hash = session_hash.to_owned();
        self.writer
            .write(move |c| {
                c.execute(
                    "DELETE FROM portal_sessions WHERE session_hash = ?1",
                    [hash],
                )?;
                Ok(())
            })
            .await
    }

    async fn prune_portal(&self, before: DateTime<Utc>) -> Result<u64> {
        self.writer
            .write(move |c| {
                let before = millis(before);
                let links =
                    c.execute("DELETE FROM portal_links WHERE expires_at < ?1", [before])?;
                let sessions = c.execute(
                    "DELETE FROM portal_sessions WHERE expires_at < ?1",
                    [before],
                )?;
                Ok((links + sessions) as u64)
            })
            .await
    }

    async fn attempt_buckets(
        &self,
        store: &str,
        subscription_id: &str,
        since: DateTime<Utc>,
        width: Duration,
        count: usize,
    ) -> Result<Vec<Bucket>> {
        let (store, id) = (store.to_owned(), subscription_id.to_owned());
        let width_ms = width.as_millis().max(1) as i64;
        self.read(move |c| {
            let sql = format!(
                "SELECT (a.started_at - ?3) / ?4, {ATTEMPT_COUNTS} \
                 FROM deliveries d JOIN attempts a ON a.delivery_seq = d.seq \
                 WHERE d.subscription_id = ?1 AND d.store_hash = ?2 AND a.started_at >= ?3 \
                 GROUP BY 1"
            );
            let rows = bucket_rows(c, &sql, &[&id, &store, &millis(since), &width_ms])?;
            Ok(fill_buckets(since, width, count, rows))
        })
        .await
    }

    async fn all_attempt_buckets(
        &self,
        since: DateTime<Utc>,
        width: Duration,
        count: usize,
    ) -> Result<Vec<Bucket>> {
        let width_ms = width.as_millis().max(1) as i64;
        self.read(move |c| {
            let sql = format!(
                "SELECT (a.started_at - ?1) / ?2, {ATTEMPT_COUNTS} \
                 FROM attempts a WHERE a.started_at >= ?1 GROUP BY 1"
            );
            let rows = bucket_rows(c, &sql, &[&millis(since), &width_ms])?;
            Ok(fill_buckets(since, width, count, rows))
        })
        .await
    }

    async fn last_error(&self, store: &str, subscription_id: &str) -> Result<Option<LastError>> {
        let (store, id) = (store.to_owned(), subscription_id.to_owned());
        self.read(move |c| {
            let sql = format!(
                "SELECT a.started_at, a.status_code, a.error \
                 FROM deliveries d JOIN attempts a ON a.delivery_seq = d.seq \
                 WHERE d.subscription_id = ?1 AND d.store_hash = ?2 AND NOT {ATTEMPT_SUCCEEDED} \
                 ORDER BY a.started_at DESC LIMIT 1"
            );
            let row = c
                .query_row(&sql, params![id, store], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .optional()?;
            row.map(|(at, code, error)| {
                Ok(LastError {
                    at: time(at)?,
                    status_code: code.and_then(|c| u16::try_from(c).ok()),
                    error,
                })
            })
            .transpose()
        })
        .await
    }

    async fn deactivated_subscriptions(&self, limit: usize) -> Result<Vec<SubscriptionRecord>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE status = 'DEACTIVATED' \
                 ORDER BY updated_at DESC, seq DESC LIMIT ?1"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let mut found = stmt.query([limit as i64])?;
            let mut out = Vec::new();
            while let Some(r) = found.next()? {
                out.push(rows::subscription(r)?.1);
            }
            Ok(out)
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT id, heartbeat_at FROM nodes ORDER BY id")?;
            let found = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            found
                .into_iter()
                .map(|(id, at)| {
                    Ok(NodeRecord {
                        id,
                        heartbeat_at: time(at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn subscription_counts(&self) -> Result<Vec<(String, u64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT store_hash, COUNT(*) FROM subscriptions GROUP BY store_hash",
            )?;
            let found = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(found)
        })
        .await
    }
}
