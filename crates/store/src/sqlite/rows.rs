//! Row ↔ record mapping for SQLite.

use chrono::{DateTime, TimeZone, Utc};
use hookrelay_core::{
    AuthKind, AuthProfileRecord, Destination, PreviousSecret, Sealed, Style, SubscriptionRecord,
    SubscriptionStatus,
};
use rusqlite::Row;

use crate::{Conflict, Result, StoreError};

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {ms}")))
}

pub(crate) const AUTH_PROFILE_COLUMNS: &str =
    "seq, store_hash, id, owner_client_id, kind, config, inline_for, created_at, updated_at";

pub(crate) fn auth_profile(row: &Row<'_>) -> Result<(i64, AuthProfileRecord)> {
    let kind: String = row.get(4)?;
    Ok((
        row.get(0)?,
        AuthProfileRecord {
            store: row.get(1)?,
            id: row.get(2)?,
            owner_client_id: row.get(3)?,
            kind: AuthKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("auth profile kind {kind:?}")))?,
            config: Sealed(row.get(5)?),
            inline_for: row.get(6)?,
            created_at: time(row.get(7)?)?,
            updated_at: time(row.get(8)?)?,
        },
    ))
}

pub(crate) const SUBSCRIPTION_COLUMNS: &str = "seq, store_hash, id, owner_client_id, style, \
     event_types, destination, status, signing_secret, created_at, updated_at, \
     previous_signing_secret, previous_secret_until";

pub(crate) fn subscription(row: &Row<'_>) -> Result<(i64, SubscriptionRecord)> {
    let style: String = row.get(4)?;
    let event_types: String = row.get(5)?;
    let destination: String = row.get(6)?;
    let status: String = row.get(7)?;
    Ok((
        row.get(0)?,
        SubscriptionRecord {
            store: row.get(1)?,
            id: row.get(2)?,
            owner_client_id: row.get(3)?,
            style: Style::parse(&style)
                .ok_or_else(|| StoreError::Corrupt(format!("subscription style {style:?}")))?,
            event_types: serde_json::from_str(&event_types)
                .map_err(|e| StoreError::Corrupt(format!("event types: {e}")))?,
            destination: serde_json::from_str::<Destination>(&destination)
                .map_err(|e| StoreError::Corrupt(format!("destination: {e}")))?,
            status: SubscriptionStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("subscription status {status:?}")))?,
            signing_secret: Sealed(row.get(8)?),
            created_at: time(row.get(9)?)?,
            updated_at: time(row.get(10)?)?,
            previous_secret: match (row.get::<_, Option<Vec<u8>>>(11)?, row.get(12)?) {
                (Some(secret), Some(until)) => Some(PreviousSecret {
                    secret: Sealed(secret),
                    until: time(until)?,
                }),
                _ => None,
            },
        },
    ))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// A unique-key violation becomes `Conflict(conflict)`; any other error stays a database error.
pub(crate) fn conflict_as(conflict: Conflict) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(conflict)
        }
        _ => e.into(),
    }
}
