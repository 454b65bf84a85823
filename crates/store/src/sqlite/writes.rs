//! Write helpers of the SQLite store: they run inside the writer's transaction.

use chrono::Utc;
use hookrelay_core::{AuthProfileRecord, SubscriptionRecord};
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, millis};
pub(crate) use crate::codec::{auth_profile_of, encode_subscription};
use crate::{Conflict, Result, StoreError, SubscriptionLimits};

pub(crate) fn ensure_store(conn: &Connection, store_hash: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO stores (store_hash, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![store_hash, millis(Utc::now())],
    )?;
    Ok(())
}

/// Keeps the duplicate and count rules for `sub` (which may already exist: its own rows
/// do not count against it), then writes its key rows.
pub(crate) fn write_subscription_keys(
    conn: &Connection,
    sub: &SubscriptionRecord,
    limits: SubscriptionLimits,
) -> Result<()> {
    let style = sub.style.as_str();
    let destination_key = sub.destination.identity();
    conn.execute(
        "DELETE FROM subscription_keys WHERE subscription_id = ?1",
        [&sub.id],
    )?;
    for event_type in &sub.event_types {
        let existing: Option<String> = conn
            .query_row(
                "SELECT subscription_id FROM subscription_keys WHERE store_hash = ?1 \
                 AND owner_client_id = ?2 AND style = ?3 AND event_type = ?4 AND destination_key = ?5",
                params![sub.store, sub.owner_client_id, style, event_type, destination_key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Err(StoreError::Conflict(Conflict::Subscription(id)));
        }
        if let Some(limit) = limits.max_per_type {
            let count: i64 = conn.query_row(
                "SELECT COUNT(*) FROM subscription_keys WHERE store_hash = ?1 \
                 AND owner_client_id = ?2 AND style = ?3 AND event_type = ?4",
                params![sub.store, sub.owner_client_id, style, event_type],
                |r| r.get(0),
            )?;
            if count as usize >= limit {
                return Err(StoreError::LimitReached {
                    scope: event_type.clone(),
                    limit,
                });
            }
        }
        conn.execute(
            "INSERT INTO subscription_keys (store_hash, owner_client_id, style, event_type, \
             destination_key, subscription_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                sub.store,
                sub.owner_client_id,
                style,
                event_type,
                destination_key,
                sub.id
            ],
        )?;
    }
    Ok(())
}

pub(crate) fn insert_auth_profile_row(conn: &Connection, p: &AuthProfileRecord) -> Result<()> {
    conn.execute(
        "INSERT INTO auth_profiles (store_hash, id, owner_client_id, kind, config, inline_for, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            p.store,
            p.id,
            p.owner_client_id,
            p.kind.as_str(),
            p.config.0,
            p.inline_for,
            millis(p.created_at),
            millis(p.updated_at)
        ],
    )
    .map_err(rows::conflict_as(Conflict::AuthProfile))?;
    Ok(())
}
