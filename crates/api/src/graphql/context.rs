//! What every resolver knows about the request: the caller, the store it acts on, and the
//! shared services.

use std::sync::Arc;

use hookrelay_core::event_types::Catalog;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::secrets::Cipher;
use hookrelay_core::{Principal, Role};
use hookrelay_store::{Scope, Store};

use crate::error::{ApiError, ApiResult};

/// Services shared by every request.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub cipher: Arc<Cipher>,
    pub catalog: Catalog,
    pub policy: AddressPolicy,
    pub engine: Arc<hookrelay_delivery::Engine>,
    /// The AWS client (EventBridge partner event sources).
    pub eventbridge: Arc<hookrelay_delivery::eventbridge::EventBridge>,
    /// The SaaS partner name in partner event source names (`aws.partner/{name}/…`).
    pub partner_name: String,
    /// `max_event_bytes`: the largest event `data` accepted.
    pub max_event_bytes: usize,
    /// Renders `/metrics`; `None` when no metrics recorder is installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Where the portal is reached and who may frame it.
    pub portal: crate::portal::PortalConfig,
    /// `graphql_max_round_trips` and `graphql_introspection`.
    pub graphql: super::SchemaLimits,
}

/// One GraphQL request's caller and store.
pub struct RequestCtx {
    pub services: Arc<Services>,
    pub principal: Principal,
    /// The store the request acts on (the token's, or the path's for an admin).
    pub store: String,
}

impl RequestCtx {
    /// Store admins and admins see every record of the store; clients only their own.
    pub fn sees_all(&self) -> bool {
        matches!(self.principal.role, Role::StoreAdmin | Role::Admin)
    }

    /// The listing scope for this caller.
    pub fn scope(&self) -> Scope {
        Scope {
            store: self.store.clone(),
            owner: (!self.sees_all()).then(|| self.principal.client_id.clone()),
        }
    }

    pub fn can_see(&self, owner_client_id: &str) -> bool {
        self.sees_all() || owner_client_id == self.principal.client_id
    }

    pub fn is_owner(&self, owner_client_id: &str) -> bool {
        owner_client_id == self.principal.client_id
    }

    /// `Ok(record)` if the caller may see it, else the same `AccessDenied` as for an id
    /// that does not exist.
    pub fn visible<T>(
        &self,
        record: Option<T>,
        owner: impl Fn(&T) -> &str,
        kind: &str,
        id: &str,
    ) -> ApiResult<T> {
        match record {
            Some(r) if self.can_see(owner(&r)) => Ok(r),
            _ => Err(ApiError::no_such(kind, id)),
        }
    }
}

pub fn request_ctx<'a>(ctx: &async_graphql::Context<'a>) -> ApiResult<&'a RequestCtx> {
    ctx.data::<RequestCtx>()
        .map_err(|_| ApiError::internal("request context missing"))
}
