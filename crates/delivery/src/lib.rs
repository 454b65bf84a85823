//! The delivery engine (SPEC §6, §7): ingest fan-out, the scheduler that claims due
//! deliveries, the per-host dispatcher with its circuit breaker and batching, the webhook
//! sender with its SSRF-checked resolver and OAuth token cache, the EventBridge sender,
//! and the outcome recorder.

pub mod breaker;
pub mod dispatcher;
pub mod engine;
pub mod eventbridge;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod oauth;
pub mod resolver;
pub mod sender;
pub mod target;
mod worker;

pub use engine::{Engine, EngineConfig, EngineError};
