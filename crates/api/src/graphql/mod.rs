//! The GraphQL API (docs/api.md#graphql): both vendors' styles in one schema, one file
//! per style.

pub mod auth_profiles;
pub mod comments;
pub mod context;
pub mod deliveries;
pub mod event_sources;
pub mod hosts;
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
pub const MAX_COMPLEXITY: usize = 2000;

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

pub fn schema() -> ApiSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .limit_recursive_depth(64)
    .limit_directives(16)
    .finish()
}
