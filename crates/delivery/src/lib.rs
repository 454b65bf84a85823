//! The delivery engine (docs/delivery.md, docs/destinations.md): ingest fan-out, the
//! scheduler that claims due deliveries, the dispatcher with its lanes (adaptive in-flight
//! limits, host and endpoint circuit breakers, batching, rate limits per subscription), the destination kinds behind one
//! trait (webhooks with their SSRF-checked resolver and OAuth token cache, EventBridge,
//! SQS, SNS, RabbitMQ, NATS JetStream), and the outcome recorder.

pub mod aws;
pub mod breaker;
pub mod concurrency;
pub mod destinations;
pub mod dispatcher;
pub mod engine;
pub mod ingest;
pub mod metrics;
pub mod operational;
mod rate;
pub mod resolver;
pub mod target;
mod worker;

pub use destinations::eventbridge;
pub use dispatcher::LaneStatus;
pub use engine::{Engine, EngineConfig, EngineError};
