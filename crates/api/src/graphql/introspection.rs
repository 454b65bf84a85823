//! `graphql_introspection = false` (docs/api.md#limits): a request that asks for
//! `__schema` or `__type` is refused with a clear error before it runs, instead of
//! answering null.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

pub struct NoIntrospection;

impl ExtensionFactory for NoIntrospection {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NoIntrospection)
    }
}

#[async_trait::async_trait]
impl Extension for NoIntrospection {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let asks = document
            .operations
            .iter()
            .any(|(_, op)| asks_introspection(&document, &op.node.selection_set.node, 0));
        if asks {
            return Err(ServerError::new(
                "introspection (__schema, __type) is turned off on this server (graphql_introspection = false)",
                None,
            ));
        }
        Ok(document)
    }
}

/// Whether a root selection set (with the fragments it spreads) selects `__schema` or
/// `__type`. `depth` stops fragment cycles, which validation refuses anyway.
fn asks_introspection(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
    if depth > 32 {
        return false;
    }
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            matches!(field.node.name.node.as_str(), "__schema" | "__type")
        }
        Selection::FragmentSpread(spread) => document
            .fragments
            .get(&spread.node.fragment_name.node)
            .is_some_and(|f| asks_introspection(document, &f.node.selection_set.node, depth + 1)),
        Selection::InlineFragment(inline) => {
            asks_introspection(document, &inline.node.selection_set.node, depth + 1)
        }
    })
}
