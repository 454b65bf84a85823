//! hookrelay's HTTP surface (docs/api.md#routes): the GraphQL API on `/graphql` and
//! `/stores/{store_hash}/graphql`, GraphiQL, the ingest API, health checks, metrics, and
//! the OpenAPI document of the REST routes (`/openapi.json`).

pub mod assets;
pub mod auth;
pub mod error;
pub mod graphiql;
pub mod graphql;
mod handler;
pub mod ingest;
pub mod openapi;
pub mod portal;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use graphql::context::Services;

/// What the fuzz targets (fuzz/) drive: the decoding of a GraphQL request body, which is
/// otherwise private to the handler.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::handler::{decode_request, syntax_error, Refused};
}

/// Largest GraphQL request body accepted.
pub const MAX_GRAPHQL_BODY: usize = 1024 * 1024;

/// Largest batch ingest body accepted (each event's `data` is held to `max_event_bytes` too).
pub const MAX_BATCH_BODY: usize = 16 * 1024 * 1024;

/// Room for an event's envelope around its `data`.
const EVENT_ENVELOPE: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub schema: graphql::ApiSchema,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState {
            schema: graphql::schema(services.graphql),
            services: Arc::new(services),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let single = Router::new()
        .route("/v1/events", post(ingest::publish_one))
        .layer(DefaultBodyLimit::max(
            state.services.max_event_bytes + EVENT_ENVELOPE,
        ));
    let batch = Router::new()
        .route("/v1/events/batch", post(ingest::publish_batch))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BODY));
    Router::new()
        .route(
            "/graphql",
            get(graphiql::page).post(handler::graphql_default_store),
        )
        .route(
            "/stores/{store_hash}/graphql",
            get(graphiql::page).post(handler::graphql_path_store),
        )
        .layer(DefaultBodyLimit::max(MAX_GRAPHQL_BODY))
        .route("/healthz", get(handler::healthz))
        .route("/readyz", get(handler::readyz))
        .route("/metrics", get(handler::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/assets/vendor/{*path}", get(graphiql::vendor_asset))
        .route("/assets/graphiql/{*path}", get(graphiql::first_party_asset))
        .merge(single)
        .merge(batch)
        .merge(portal::router().layer(axum::middleware::from_fn_with_state(
            state.clone(),
            portal::guard,
        )))
        .fallback(handler::not_found)
        .with_state(state)
}
