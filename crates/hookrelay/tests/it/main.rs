//! hookrelay's integration tests, in one binary: each module drives the real `hookrelay`
//! binary (`common`) over HTTP and its CLI, with real receivers, token endpoints and AWS
//! emulator on 127.0.0.1, on the backend `HOOKRELAY_TEST_BACKEND` selects. One binary
//! links the program's dependencies once instead of once per file.
//!
//! Select a module with a name filter: `cargo nextest run -E 'test(/^portal::/)'`, or
//! `cargo test --test it portal::`.

mod common;

mod access;
mod auth_delivery;
mod auth_profiles;
mod bench;
mod chaos;
mod cli;
mod contract;
mod crash;
mod delivery;
mod eventbridge;
mod eventbridge_failures;
mod failure_modes;
mod full_disk;
mod hostile;
mod ingest_api;
mod key_rotation;
mod log_api;
mod multinode;
mod nats;
mod operational;
pub mod ordering;
mod portal;
mod rabbitmq;
pub mod rate_limits;
mod retention;
mod retry_flow;
mod secrets;
mod seeds;
mod shared_host;
mod sns;
mod sqs;
mod validation;
mod webhooks;
