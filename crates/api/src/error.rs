//! The API's error type and its two renderings: GraphQL errors in the Buy with Prime shape
//! (`extensions.classification`, SPEC §5) and JSON errors for plain HTTP answers.

use async_graphql::ErrorExtensions as _;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookrelay_store::StoreError;
use serde_json::json;

/// An API failure, as the caller will see it.
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into a plain error
/// and would drop the classification. Without it, resolvers can return
/// `Result<T, ApiError>` and the conversion below keeps the extensions.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// Bad input. `code` is `ValidationError` or a precise one (`SubscriptionAlreadyExists`…).
    Validation { code: &'static str, message: String },
    /// An id that does not exist, or is another store's or client's: the same answer.
    AccessDenied(String),
    /// An upstream (AWS) call refused.
    Upstream { code: String, message: String },
    /// Anything else. The detail is logged, never shown.
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation {
            code: "ValidationError",
            message: message.into(),
        }
    }

    pub fn coded(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            code,
            message: message.into(),
        }
    }

    /// The answer for an id the caller may not see, whether or not it exists.
    pub fn no_such(kind: &str, id: &str) -> Self {
        ApiError::AccessDenied(format!(
            "Access denied: {kind} {id:?} does not exist or is not accessible with this token"
        ))
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    /// What the caller is told.
    pub fn message(&self) -> &str {
        match self {
            ApiError::Validation { message, .. }
            | ApiError::AccessDenied(message)
            | ApiError::Upstream { message, .. } => message,
            ApiError::Internal(_) => "internal error",
        }
    }

    /// classification, code, errorType, errorCode (SPEC §5 "Errors").
    fn shape(&self) -> (&'static str, String, &'static str, u16) {
        match self {
            ApiError::Validation { code, .. } => (
                "ValidationError",
                code.to_string(),
                "ValidationException",
                400,
            ),
            ApiError::AccessDenied(_) => (
                "AccessDeniedError",
                "AccessDenied".into(),
                "AccessDeniedException",
                403,
            ),
            ApiError::Upstream { code, .. } => {
                ("UpstreamError", code.clone(), "DependencyException", 502)
            }
            ApiError::Internal(_) => (
                "InternalError",
                "InternalError".into(),
                "InternalException",
                500,
            ),
        }
    }

    /// The `extensions` object of a GraphQL error.
    pub fn extensions(&self) -> serde_json::Value {
        let (classification, code, error_type, error_code) = self.shape();
        json!({
            "classification": classification,
            "code": code,
            "errorType": error_type,
            "errorCode": error_code,
        })
    }

    /// A whole GraphQL response carrying only this error (for failures before execution).
    pub fn graphql_body(&self) -> serde_json::Value {
        json!({ "data": null, "errors": [{ "message": self.message(), "extensions": self.extensions() }] })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        if let ApiError::Internal(detail) = &e {
            tracing::error!(%detail, "internal error answering a GraphQL request");
        }
        let (classification, code, error_type, error_code) = e.shape();
        async_graphql::Error::new(e.message()).extend_with(|_, e| {
            e.set("classification", classification);
            e.set("code", code.clone());
            e.set("errorType", error_type);
            e.set("errorCode", error_code);
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// A JSON error for plain HTTP answers: `{"error": {"code", "message"}}`.
pub fn http_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}
