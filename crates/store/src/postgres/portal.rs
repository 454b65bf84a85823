//! Portal links, sessions and figures in PostgreSQL (docs/portal.md). The same tables
//! and rules as SQLite's; a link is used once however many nodes redeem it at once
//! (the row is locked by the `UPDATE ... RETURNING`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookrelay_core::SubscriptionRecord;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::PgStore;
use crate::codec::{self, millis, time, SUBSCRIPTION_COLUMNS};
use crate::portal::{
    fill_buckets, grant_of, link_state_of, Bucket, Grant, LastError, LinkState, NewPortalLink,
    NewPortalSession, NodeRecord, PortalSession, PortalStore, Redeemed, ATTEMPT_COUNTS,
    ATTEMPT_SUCCEEDED, CLIENT_NOT_REVOKED,
};
use crate::Result;

async fn link_state(c: &mut PgConnection, hash: &str, now: i64) -> Result<LinkState> {
    let row: Option<(i64, Option<i64>)> =
        sqlx::query_as("SELECT expires_at, used_at FROM portal_links WHERE link_hash = $1")
            .bind(hash)
            .fetch_optional(c)
            .await?;
    Ok(link_state_of(row, now))
}

/// The grant with a client's role as the client has it; `None` when it is revoked.
async fn live_grant(c: &mut PgConnection, grant: Grant) -> Result<Option<Grant>> {
    let Some(client) = &grant.client_id else {
        return Ok(Some(grant));
    };
    let role_text: Option<String> = sqlx::query_scalar(
        "SELECT role FROM api_clients WHERE client_id = $1 AND revoked_at IS NULL",
    )
    .bind(client)
    .fetch_optional(c)
    .await?;
    role_text
        .map(|text| grant_of(&text, grant.store.clone(), grant.client_id.clone()))
        .transpose()
}

#[async_trait]
impl PortalStore for PgStore {
    async fn insert_portal_link(&self, link: NewPortalLink) -> Result<()> {
        sqlx::query(
            "INSERT INTO portal_links (link_hash, role, store_hash, client_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&link.link_hash)
        .bind(link.grant.role.as_str())
        .bind(&link.grant.store)
        .bind(&link.grant.client_id)
        .bind(millis(link.created_at))
        .bind(millis(link.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn portal_link_state(&self, link_hash: &str, now: DateTime<Utc>) -> Result<LinkState> {
        let mut c = self.pool.acquire().await?;
        link_state(&mut c, link_hash, millis(now)).await
    }

    async fn redeem_portal_link(
        &self,
        link_hash: &str,
        session: NewPortalSession,
    ) -> Result<Redeemed> {
        let now = millis(session.created_at);
        let mut tx = self.pool.begin().await?;
        let used: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "UPDATE portal_links SET used_at = $2 \
             WHERE link_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING role, store_hash, client_id",
        )
        .bind(link_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((role_text, store, client_id)) = used else {
            let state = link_state(&mut tx, link_hash, now).await?;
            return Ok(Redeemed::Refused(match state {
                // Another node used it between the two statements.
                LinkState::Valid => LinkState::Used,
                other => other,
            }));
        };
        let grant = grant_of(&role_text, store, client_id)?;
        let Some(grant) = live_grant(&mut tx, grant).await? else {
            tx.commit().await?;
            return Ok(Redeemed::Refused(LinkState::Unknown));
        };
        sqlx::query(
            "INSERT INTO portal_sessions (session_hash, role, store_hash, client_id, \
             created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $5)",
        )
        .bind(&session.session_hash)
        .bind(grant.role.as_str())
        .bind(&grant.store)
        .bind(&grant.client_id)
        .bind(now)
        .bind(millis(session.expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Redeemed::Session(grant))
    }

    async fn portal_session(
        &self,
        session_hash: &str,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<Option<PortalSession>> {
        let mut c = self.pool.acquire().await?;
        let row: Option<(String, Option<String>, Option<String>, i64, i64)> =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT s.role, s.store_hash, s.client_id, s.expires_at, s.last_seen_at \
                 FROM portal_sessions s WHERE s.session_hash = $1 AND s.expires_at > $2 \
                 AND s.last_seen_at >= $3 AND {CLIENT_NOT_REVOKED}"
            )))
            .bind(session_hash)
            .bind(millis(now))
            .bind(millis(idle_since))
            .fetch_optional(&mut *c)
            .await?;
        let Some((role_text, store, client_id, expires, seen)) = row else {
            return Ok(None);
        };
        Ok(Some(PortalSession {
            grant: grant_of(&role_text, store, client_id)?,
            expires_at: time(expires)?,
            last_seen_at: time(seen)?,
        }))
    }

    async fn touch_portal_session(&self, session_hash: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE portal_sessions SET last_seen_at = $2 WHERE session_hash = $1")
            .bind(session_hash)
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn end_portal_session(&self, session_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune_portal(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = millis(before);
        let links = sqlx::query("DELETE FROM portal_links WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let sessions = sqlx::query("DELETE FROM portal_sessions WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(links + sessions)
    }

    async fn attempt_buckets(
        &self,
        store: &str,
        subscription_id: &str,
        since: DateTime<Utc>,
        width: Duration,
        count: usize,
    ) -> Result<Vec<Bucket>> {
        let width_ms = width.as_millis().max(1) as i64;
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT (a.started_at - $3) / $4, {ATTEMPT_COUNTS} \
             FROM deliveries d JOIN attempts a ON a.delivery_seq = d.seq \
             WHERE d.subscription_id = $1 AND d.store_hash = $2 AND a.started_at >= $3 \
             GROUP BY 1"
        )))
        .bind(subscription_id)
        .bind(store)
        .bind(millis(since))
        .bind(width_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(fill_buckets(since, width, count, rows))
    }

    async fn all_attempt_buckets(
        &self,
        since: DateTime<Utc>,
        width: Duration,
        count: usize,
    ) -> Result<Vec<Bucket>> {
        let width_ms = width.as_millis().max(1) as i64;
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT (a.started_at - $1) / $2, {ATTEMPT_COUNTS} \
             FROM attempts a WHERE a.started_at >= $1 GROUP BY 1"
        )))
        .bind(millis(since))
        .bind(width_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(fill_buckets(since, width, count, rows))
    }

    async fn last_error(&self, store: &str, subscription_id: &str) -> Result<Option<LastError>> {
        let row: Option<(i64, Option<i64>, Option<String>)> =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT a.started_at, a.status_code, a.error \
                 FROM deliveries d JOIN attempts a ON a.delivery_seq = d.seq \
                 WHERE d.subscription_id = $1 AND d.store_hash = $2 AND NOT {ATTEMPT_SUCCEEDED} \
                 ORDER BY a.started_at DESC LIMIT 1"
            )))
            .bind(subscription_id)
            .bind(store)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(at, code, error)| {
            Ok(LastError {
                at: time(at)?,
                status_code: code.and_then(|c| u16::try_from(c).ok()),
                error,
            })
        })
        .transpose()
    }

    async fn deactivated_subscriptions(&self, limit: usize) -> Result<Vec<SubscriptionRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE status = 'DEACTIVATED' \
             ORDER BY updated_at DESC, seq DESC LIMIT $1"
        )))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| codec::subscription(r).map(|(_, s)| s))
            .collect()
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let rows = sqlx::query("SELECT id, heartbeat_at FROM nodes ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeRecord {
                    id: r.try_get(0)?,
                    heartbeat_at: time(r.try_get(1)?)?,
                })
            })
            .collect()
    }

    async fn subscription_counts(&self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT store_hash, COUNT(*) FROM subscriptions GROUP BY store_hash")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, n.max(0) as u64))
            .collect())
    }
}
