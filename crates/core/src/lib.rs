//! hookrelay's domain: the vocabulary of docs/concepts.md as types, with the rules that
//! need no I/O (event-type matching, destination validation, secret sealing, token
//! hashing).
//!
//! Everything here is pure so that the API, the store and the delivery engine agree on
//! one definition of each rule.

pub mod aws;
pub mod duration;
pub mod event_types;
pub mod ids;
pub mod model;
pub mod net;
pub mod payload;
pub mod retry;
pub mod secrets;
pub mod signing;

pub use model::*;
