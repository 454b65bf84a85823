//! The store's tests, in one binary: each module runs against the backend
//! `HOOKRELAY_TEST_BACKEND` selects (`backend`): SQLite in a temporary directory, or a
//! PostgreSQL database of its own.

mod backend;

mod event_sources;
mod ingest;
mod leases;
mod portal;
mod retention;
mod shared;
