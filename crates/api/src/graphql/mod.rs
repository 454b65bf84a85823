//! The GraphQL API (docs/api.md#graphql): both vendors' styles in one schema, one file
//! per style.

pub mod auth_profiles;
pub mod comments;
pub mod context;
pub mod deliveries;
pub mod event_sources;
pub mod hosts;
mod introspection;
pub mod portal;
pub mod subscriptions;
pub mod types;
pub mod validate;
pub mod webhooks;

use async_graphql::{Context, EmptySubscription, MergedObject, Object, Schema};

use crate::error::ApiResult;
use context::request_ctx;

/// Deep enough for GraphiQL's introspection query and every real request; deeper queries
/// are refused before they run.
pub const MAX_DEPTH: usize = 16;

/// What one database round trip weighs in a request's complexity (docs/api.md#limits):
/// a field that reads or writes the database weighs this much for each round trip it
/// makes (a lookup or a list 1, `totalCount` 1 more, `deliveryStats` 3, a mutation 3,
/// `attempts` 1: a page loads them all at once); any other field weighs 1. A request may
/// weigh `graphql_max_round_trips` × this at most, so it makes at most about that many
/// round trips, and the check is made before anything runs.
pub const ROUND_TRIP_COST: usize = 50;
/// The default `graphql_max_round_trips`.
pub const DEFAULT_MAX_ROUND_TRIPS: usize = 60;
/// Round trips of a mutation, at most as its complexity counts them.
pub const MUTATION_COST: usize = 3 * ROUND_TRIP_COST;

/// How the schema is built: `graphql_max_round_trips` and `graphql_introspection`.
#[derive(Debug, Clone, Copy)]
pub struct SchemaLimits {
    pub max_round_trips: usize,
    pub introspection: bool,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        SchemaLimits {
            max_round_trips: DEFAULT_MAX_ROUND_TRIPS,
            introspection: true,
        }
    }
}

impl SchemaLimits {
    /// The complexity a request may have.
    pub fn max_complexity(&self) -> usize {
        self.max_round_trips.saturating_mul(ROUND_TRIP_COST)
    }
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Every event type that can be published and subscribed to (wildcard scopes such as
    /// `store/order/*` match the types under them).
    async fn event_types(&self, ctx: &Context<'_>) -> ApiResult<Vec<String>> {
        let rc = request_ctx(ctx)?;
        Ok(rc.services.catalog.types().map(str::to_owned).collect())
    }
}

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    auth_profiles::AuthProfileQuery,
    subscriptions::SubscriptionQuery,
    webhooks::WebhookQueryRoot,
    deliveries::DeliveryQuery,
    hosts::HostQuery,
    portal::PortalQuery,
    CatalogQuery,
);

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    auth_profiles::AuthProfileMutation,
    subscriptions::SubscriptionMutation,
    webhooks::WebhookMutationRoot,
    deliveries::DeliveryMutation,
    portal::PortalMutation,
);

pub type ApiSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

pub fn schema(limits: SchemaLimits) -> ApiSchema {
    let builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(limits.max_complexity())
    .limit_recursive_depth(64)
    .limit_directives(16);
    if limits.introspection {
        builder.finish()
    } else {
        builder
            .disable_introspection()
            .extension(introspection::NoIntrospection)
            .finish()
    }
}
