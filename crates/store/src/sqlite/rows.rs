//! Row ↔ record mapping for SQLite: [`Cols`] over rusqlite's rows, and the mappers the
//! listings take as plain functions.

use hookrelay_core::{AuthProfileRecord, EventSourceRecord, SubscriptionRecord};
use rusqlite::Row;

use crate::codec::{self, Cols};
pub(crate) use crate::codec::{millis, time};
use crate::delivery::DeliveryRecord;
use crate::{Conflict, Result, StoreError};

impl Cols for Row<'_> {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.get(i)?)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.get(i)?)
    }
}

pub(crate) use crate::codec::{AUTH_PROFILE_COLUMNS, EVENT_SOURCE_COLUMNS, SUBSCRIPTION_COLUMNS};

pub(crate) fn auth_profile(row: &Row<'_>) -> Result<(i64, AuthProfileRecord)> {
    codec::auth_profile(row)
}

pub(crate) fn subscription(row: &Row<'_>) -> Result<(i64, SubscriptionRecord)> {
    codec::subscription(row)
}

pub(crate) fn event_source(row: &Row<'_>) -> Result<(i64, EventSourceRecord)> {
    codec::event_source(row)
}

pub(crate) fn delivery(row: &Row<'_>) -> Result<(i64, DeliveryRecord)> {
    codec::delivery(row)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
                StoreError::Full(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
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
