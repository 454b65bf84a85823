//! The OpenAPI 3.1 document of the REST surface (docs/api.md#openapi), served at
//! `GET /openapi.json`. It is derived from the request and response types and the
//! handlers' `#[utoipa::path]` annotations, and completed at run time with what only the
//! running server knows: its event-type catalog.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookrelay_core::event_types::{Catalog, OPERATIONAL_PREFIX};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Schema};
use utoipa::{Modify, OpenApi};

use crate::error::{http_error, ErrorBody, ErrorDetail};
use crate::handler::{Health, HealthStatus};
use crate::ingest::{Accepted, BatchAccepted, BatchRequest, BatchResult, EventError};
use crate::AppState;
use hookrelay_delivery::ingest::PublishRequest;

/// The names of the two security schemes: `Authorization: Bearer` and `X-Auth-Token`.
const BEARER: &str = "bearer";
const X_AUTH_TOKEN: &str = "xAuthToken";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookrelay",
        description = "hookrelay's REST surface: the ingest API the platform's backend publishes events with, health, readiness and metrics (docs/api.md). The GraphQL API is described by its own introspection at `/graphql`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::ingest::publish_one,
        crate::ingest::publish_batch,
        crate::handler::healthz,
        crate::handler::readyz,
        crate::handler::metrics,
        openapi_json,
    ),
    components(schemas(
        PublishRequest,
        BatchRequest,
        Accepted,
        BatchAccepted,
        BatchResult,
        EventError,
        ErrorBody,
        ErrorDetail,
        Health,
        HealthStatus,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "ingest", description = "Publishing events, with a publisher or admin token"),
        (name = "operations", description = "Health, readiness, metrics and this document; no token"),
    ),
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer TOKEN`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            X_AUTH_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Auth-Token",
                "`X-Auth-Token: TOKEN` (BigCommerce's header); used when both are sent",
            ))),
        );
    }
}

/// The document for a server with `catalog`: the event `type` is one of the catalog's
/// types that may be published (not `hookrelay/…`).
pub fn document(catalog: &Catalog) -> Document {
    let mut doc = ApiDoc::openapi();
    let publishable: Vec<&str> = catalog
        .types()
        .filter(|t| !t.starts_with(OPERATIONAL_PREFIX))
        .collect();
    let request = doc.components.as_mut().and_then(|c| {
        c.schemas
            .get_mut(<PublishRequest as utoipa::ToSchema>::name().as_ref())
    });
    if let Some(RefOr::T(Schema::Object(request))) = request {
        if let Some(RefOr::T(Schema::Object(event_type))) = request.properties.get_mut("type") {
            event_type.enum_values = Some(publishable.into_iter().map(Into::into).collect());
        }
    }
    doc
}

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses(
        (status = 200, description = "This document", content_type = "application/json", body = Object),
        (status = 500, description = "`InternalError`: the document could not be written (a bug)", body = ErrorBody),
    ),
)]
pub async fn openapi_json(State(app): State<AppState>) -> Response {
    match document(&app.services.catalog).to_json() {
        Ok(json) => (StatusCode::OK, [(CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "writing the OpenAPI document failed");
            http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "the OpenAPI document could not be written",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_catalog() {
        let doc = document(&Catalog::with_defaults(["custom/thing"]));
        let value: serde_json::Value =
            serde_json::from_str(&doc.to_json().expect("json")).expect("parse");
        assert_eq!(value["openapi"], "3.1.0");
        for path in [
            "/v1/events",
            "/v1/events/batch",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(value["paths"][path].is_object(), "{path} missing");
        }
        let types = value["components"]["schemas"]["PublishRequest"]["properties"]["type"]["enum"]
            .as_array()
            .expect("type enum");
        assert!(types.iter().any(|t| t == "custom/thing"));
        assert!(types.iter().any(|t| t == "ORDER_CONFIRMED"));
        assert!(!types
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.starts_with("hookrelay/"))));
        let publish = &value["paths"]["/v1/events"]["post"];
        for status in ["202", "400", "401", "403", "413", "422", "500", "503"] {
            assert!(publish["responses"][status].is_object(), "{status} missing");
        }
        assert!(publish["responses"]["503"]["headers"]["Retry-After"].is_object());
    }
}
