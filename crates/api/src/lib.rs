//! hookrelay's HTTP surface (SPEC §4): the GraphQL API on `/graphql` and
//! `/stores/{store_hash}/graphql`, GraphiQL, and health checks.

pub mod auth;
pub mod error;
pub mod graphql;
mod handler;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

pub use graphql::context::Services;

/// Largest GraphQL request body accepted.
pub const MAX_GRAPHQL_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub schema: graphql::ApiSchema,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState {
            services: Arc::new(services),
            schema: graphql::schema(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/graphql",
            get(handler::graphiql).post(handler::graphql_default_store),
        )
        .route(
            "/stores/{store_hash}/graphql",
            get(handler::graphiql).post(handler::graphql_path_store),
        )
        .layer(DefaultBodyLimit::max(MAX_GRAPHQL_BODY))
        .route("/healthz", get(handler::healthz))
        .route("/readyz", get(handler::readyz))
        .fallback(handler::not_found)
        .with_state(state)
}
