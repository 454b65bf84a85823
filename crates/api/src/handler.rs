//! HTTP handlers: GraphQL (authentication, store resolution, `//` comments, syntax errors,
//! error classification), health and metrics (GraphiQL: graphiql.rs).

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookrelay_core::{Principal, Role};
use serde_json::{json, Value};

use crate::auth::authenticate;
use crate::error::{http_error, ApiError, ErrorBody};
use crate::graphql::comments::strip_line_comments;
use crate::graphql::context::RequestCtx;
use crate::AppState;

pub async fn graphql_default_store(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(app, None, headers, body).await
}

pub async fn graphql_path_store(
    State(app): State<AppState>,
    Path(store_hash): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(app, Some(store_hash), headers, body).await
}

fn graphql_error(status: StatusCode, error: ApiError) -> Response {
    (status, Json(error.graphql_body())).into_response()
}

/// The store a request acts on: the token's own, or for an admin the one in the path.
async fn resolve_store(
    app: &AppState,
    principal: &Principal,
    path_store: Option<String>,
) -> Result<String, Response> {
    let denied = |store: &str| {
        graphql_error(
            StatusCode::FORBIDDEN,
            ApiError::AccessDenied(format!(
                "Access denied: this token cannot act on store {store:?}"
            )),
        )
    };
    match (principal.role, path_store, principal.store.as_deref()) {
        (Role::Publisher, _, _) => Err(graphql_error(
            StatusCode::FORBIDDEN,
            ApiError::AccessDenied("Access denied: publisher tokens publish events; the GraphQL API needs a client, store-admin or admin token".into()),
        )),
        (Role::Admin, Some(path), _) => match app.services.store.store_exists(&path).await {
            Ok(true) => Ok(path),
            Ok(false) => Err(denied(&path)),
            Err(e) => Err(crate::error::with_retry_after(graphql_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::from(e),
            ))),
        },
        (Role::Admin, None, _) => Err(graphql_error(
            StatusCode::BAD_REQUEST,
            ApiError::validation("admin tokens are not bound to a store: use /stores/{store_hash}/graphql"),
        )),
        (_, Some(path), Some(own)) if path == own => Ok(path),
        (_, Some(path), _) => Err(denied(&path)),
        (_, None, Some(own)) => Ok(own.to_owned()),
        (_, None, None) => Err(graphql_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::internal("store-bound token without a store"),
        )),
    }
}

async fn run(
    app: AppState,
    path_store: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let principal = match authenticate(&app.services, &headers).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let store = match resolve_store(&app, &principal, path_store).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return graphql_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::validation(format!(
                    "the request body is larger than {} bytes",
                    crate::MAX_GRAPHQL_BODY
                )),
            )
        }
        Err(rejection) => {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                ApiError::validation(format!("the request body could not be read: {rejection}")),
            )
        }
    };
    let request = match decode_request(&body) {
        Ok(r) => r,
        Err(Refused::NotJson(e)) => {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                ApiError::validation(format!(
                    "the request body must be JSON like {{\"query\": \"...\", \"variables\": {{...}}}}: {e}"
                )),
            )
        }
        Err(Refused::NoQuery) => {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                ApiError::validation("the request has no \"query\""),
            )
        }
        Err(Refused::Syntax(e)) => return Json(syntax_error(&e)).into_response(),
    };
    let request = request.data(RequestCtx {
        services: app.services.clone(),
        principal,
        store,
    });
    let response = app.schema.execute(request).await;
    let mut value = match serde_json::to_value(&response) {
        Ok(v) => v,
        Err(e) => return graphql_error(StatusCode::INTERNAL_SERVER_ERROR, ApiError::internal(e)),
    };
    classify_errors(&mut value, app.services.graphql);
    // The database could not answer: 503 and Retry-After, so that clients and proxies
    // retry, as ingest does (docs/api.md#status-codes-and-error-bodies).
    let unavailable = value["errors"].as_array().is_some_and(|errors| {
        errors
            .iter()
            .any(|e| e["extensions"]["code"] == "Unavailable")
    });
    if unavailable {
        return crate::error::with_retry_after(
            (StatusCode::SERVICE_UNAVAILABLE, Json(value)).into_response(),
        );
    }
    Json(value).into_response()
}

/// Why a GraphQL request body was refused before it reached the schema.
#[derive(Debug)]
pub enum Refused {
    /// Not a JSON object that reads as a GraphQL request; the text says why.
    NotJson(serde_json::Error),
    /// No `query`, or a blank one.
    NoQuery,
    /// The query, `//` comments removed, is not GraphQL.
    Syntax(async_graphql::ServerError),
}

/// The request a GraphQL body holds, as [`run`] hands it to the schema: JSON (with
/// Postman's string-encoded `variables` decoded), `//` comments removed, the query parsed.
/// Public for the fuzz targets (fuzz/), through [`crate::fuzzing`].
pub fn decode_request(body: &[u8]) -> Result<async_graphql::Request, Refused> {
    let parsed = serde_json::from_slice::<Value>(body).and_then(|v| match v {
        Value::Object(mut fields) => {
            // Postman exports (BigCommerce's collection among them) carry `variables` as a
            // JSON-encoded string.
            if let Some(Value::String(text)) = fields.get("variables") {
                let decoded = if text.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(text).map_err(|e| {
                        serde::de::Error::custom(format!(
                            "\"variables\" is a string but not JSON: {e}"
                        ))
                    })?
                };
                fields.insert("variables".into(), decoded);
            }
            serde_json::from_value::<async_graphql::Request>(Value::Object(fields))
        }
        _ => Err(serde::de::Error::custom("expected a JSON object")),
    });
    let mut request = parsed.map_err(Refused::NotJson)?;
    if request.query.trim().is_empty() {
        return Err(Refused::NoQuery);
    }
    if let Cow::Owned(stripped) = strip_line_comments(&request.query) {
        request.query = stripped;
    }
    request.parsed_query().map_err(Refused::Syntax)?;
    Ok(request)
}

/// `Syntax error at line 13, column 1: expected …`, with the position in `locations` too.
pub fn syntax_error(e: &async_graphql::ServerError) -> Value {
    let detail = e
        .message
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("= "))
        .unwrap_or(e.message.trim())
        .to_owned();
    let error = match e.locations.first() {
        Some(pos) => ApiError::coded(
            "InvalidSyntax",
            format!(
                "Syntax error at line {}, column {}: {detail}",
                pos.line, pos.column
            ),
        ),
        None => ApiError::coded("InvalidSyntax", format!("Syntax error: {detail}")),
    };
    let mut body = error.graphql_body();
    body["errors"][0]["locations"] = json!(e
        .locations
        .iter()
        .map(|p| json!({"line": p.line, "column": p.column}))
        .collect::<Vec<_>>());
    body
}

/// Errors raised by our resolvers carry their classification. Errors without one come
/// from async-graphql's own checks of the request (unknown fields, wrong types, limits):
/// they are the caller's bad input.
fn classify_errors(response: &mut Value, limits: crate::graphql::SchemaLimits) {
    let Some(errors) = response.get_mut("errors").and_then(Value::as_array_mut) else {
        return;
    };
    let validation = ApiError::validation("").extensions();
    for error in errors {
        let has_class = error
            .get("extensions")
            .and_then(|e| e.get("classification"))
            .is_some();
        if !has_class {
            error["extensions"] = validation.clone();
            let clearer = match error["message"].as_str() {
                Some("Query is nested too deep.") => Some(format!(
                    "the query is nested too deep: the depth limit is {}",
                    crate::graphql::MAX_DEPTH
                )),
                Some("Query is too complex.") => Some(format!(
                    "the query would make too many database round trips or is too large: a request may weigh {} ({} round trips of {} each; totalCount, every list, lookup and mutation count as round trips)",
                    limits.max_complexity(),
                    limits.max_round_trips,
                    crate::graphql::ROUND_TRIP_COST
                )),
                _ => None,
            };
            if let Some(message) = clearer {
                error["message"] = Value::String(message);
            }
        }
    }
}

/// The answer of `/healthz` and `/readyz` when all is well.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: HealthStatus,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// `/healthz`: the process runs.
    Ok,
    /// `/readyz`: the database answers and its schema is current.
    Ready,
}

/// Liveness: answers while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "health",
    responses((status = 200, description = "The process runs", body = Health, example = json!({"status": "ok"}))),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// Readiness: the database answers and its schema is current.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready to serve", body = Health, example = json!({"status": "ready"})),
        (status = 503, description = "`NotReady`: the database does not answer, or its schema is not current", body = ErrorBody),
    ),
)]
pub async fn readyz(State(app): State<AppState>) -> Response {
    match app.services.store.ready().await {
        Ok(()) => Json(Health {
            status: HealthStatus::Ready,
        })
        .into_response(),
        Err(e) => http_error(StatusCode::SERVICE_UNAVAILABLE, "NotReady", e.to_string()),
    }
}

/// The content type of `/metrics`: Prometheus text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus text format. The database gauges are read at scrape time.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4 (docs/operations.md#health-and-metrics)", body = String, content_type = "text/plain"),
        (status = 404, description = "`NotFound`: metrics are not enabled", body = ErrorBody),
    ),
)]
pub async fn metrics(State(app): State<AppState>) -> Response {
    let Some(handle) = &app.services.metrics else {
        return http_error(StatusCode::NOT_FOUND, "NotFound", "metrics are not enabled");
    };
    app.services.engine.refresh_gauges().await;
    (
        [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        handle.render(),
    )
        .into_response()
}

pub async fn not_found() -> Response {
    http_error(StatusCode::NOT_FOUND, "NotFound", "no such route")
}
