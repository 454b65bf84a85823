//! The delivery engine (docs/delivery.md, docs/eventbridge.md): ingest fan-out, the
//! scheduler that claims due deliveries, the dispatcher with its lanes (adaptive in-flight
//! limits, host and endpoint circuit breakers, batching), the webhook sender with its
//! SSRF-checked resolver and OAuth token cache, the EventBridge sender, and the outcome
//! recorder.

pub mod breaker;
pub mod concurrency;
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

pub use dispatcher::LaneStatus;
pub use engine::{Engine, EngineConfig, EngineError};
