//! The API's error type and its two renderings: GraphQL errors in the Buy with Prime shape
//! (`extensions.classification`, docs/api.md#errors) and JSON errors for plain HTTP
//! answers (docs/api.md#status-codes-and-error-bodies).

use async_graphql::ErrorExtensions as _;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookrelay_store::{Conflict, StoreError};
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
    /// The database cannot be reached or cannot write now: the request may be sent again
    /// (HTTP 503 with `Retry-After`). The detail is logged, never shown.
    Unavailable(String),
    /// Anything else. The detail is logged, never shown.
    Internal(String),
}

/// What a 503 asks the caller to wait, in seconds (`Retry-After`).
pub const RETRY_AFTER_SECS: &str = "5";

/// `response` with `Retry-After` ([`RETRY_AFTER_SECS`]).
pub fn with_retry_after(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    response
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
            ApiError::Unavailable(_) => "the database is unavailable right now; try again shortly",
            ApiError::Internal(_) => "internal error",
        }
    }

    /// classification, code, errorType, errorCode (docs/api.md#errors).
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
            ApiError::Unavailable(_) => (
                "UnavailableError",
                "Unavailable".into(),
                "ServiceUnavailableException",
                503,
            ),
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
        match &e {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering a GraphQL request");
            }
            ApiError::Unavailable(detail) => {
                tracing::warn!(%detail, "the database is unavailable for a GraphQL request");
            }
            _ => {}
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

/// What each store outcome means to a caller, decided once. A resolver that knows more
/// (which field, which record) maps the case itself and gives the rest to this; whatever
/// it leaves out still gets the right class, never a 500.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Missing, or another store's or client's: the same answer.
            StoreError::NotFound => ApiError::AccessDenied(
                "Access denied: the record does not exist or is not accessible with this token"
                    .into(),
            ),
            StoreError::Conflict(Conflict::Subscription(existing)) => ApiError::coded(
                "SubscriptionAlreadyExists",
                format!(
                    "a subscription to this event type and destination already exists: {existing}"
                ),
            ),
            StoreError::Conflict(conflict) => {
                ApiError::coded("AlreadyExists", format!("the {conflict} already exists"))
            }
            StoreError::LimitReached { scope, limit } => ApiError::validation(format!(
                "at most {limit} webhooks per client and scope; {scope:?} has {limit} already"
            )),
            StoreError::InUse(users) => ApiError::coded(
                "InUse",
                format!(
                    "in use by {}; delete or deactivate them first",
                    users.join(", ")
                ),
            ),
            e @ (StoreError::Database(_) | StoreError::Full(_) | StoreError::Closed) => {
                ApiError::Unavailable(e.to_string())
            }
            e @ StoreError::Corrupt(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// The body of every plain HTTP error (docs/api.md#status-codes-and-error-bodies).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "Unauthorized", "message": "a valid access token is required (X-Auth-Token or Authorization: Bearer)"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable word to act on: `ValidationError`, `BadRequest`, `Unauthorized`,
    /// `SessionEnded`, `AccessDenied`, `CrossOrigin`, `PayloadTooLarge`,
    /// `UnknownEventType`, `ReservedEventType`, `UnknownStore`, `InternalError`,
    /// `Unavailable`, `NotReady`, `NotFound`.
    pub code: String,
    /// For people: what was wrong and, where it helps, what to do.
    pub message: String,
}

/// A 503 JSON error with `Retry-After`.
pub fn unavailable_error(code: &str, message: impl Into<String>) -> Response {
    with_retry_after(http_error(StatusCode::SERVICE_UNAVAILABLE, code, message))
}

/// A JSON error for plain HTTP answers: `{"error": {"code", "message"}}`.
pub fn http_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.into(),
        },
    };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(e: StoreError) -> &'static str {
        ApiError::from(e).shape().0
    }

    #[test]
    fn a_503_asks_to_come_back_later() {
        let response = unavailable_error("Unavailable", "try again");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[axum::http::header::RETRY_AFTER],
            RETRY_AFTER_SECS
        );
    }

    #[test]
    fn store_outcomes_keep_their_meaning() {
        assert_eq!(class(StoreError::NotFound), "AccessDeniedError");
        assert_eq!(
            class(StoreError::Conflict(Conflict::Store)),
            "ValidationError"
        );
        assert_eq!(
            class(StoreError::Conflict(Conflict::Subscription("sub_1".into()))),
            "ValidationError"
        );
        assert_eq!(
            class(StoreError::InUse(vec!["sub_1".into()])),
            "ValidationError"
        );
        assert_eq!(
            class(StoreError::LimitReached {
                scope: "store/order/*".into(),
                limit: 10
            }),
            "ValidationError"
        );
        let e = ApiError::from(StoreError::Corrupt("bad row".into()));
        assert_eq!(e.shape().0, "InternalError");
        assert_eq!(e.message(), "internal error", "no internals shown");
        for unavailable in [
            StoreError::Database("connection refused".into()),
            StoreError::Full("disk".into()),
            StoreError::Closed,
        ] {
            let e = ApiError::from(unavailable);
            assert_eq!(e.shape().0, "UnavailableError");
            assert_eq!(e.shape().3, 503);
            assert!(!e.message().contains("refused"), "no internals shown");
        }
        let e = ApiError::from(StoreError::InUse(vec!["sub_1".into(), "sub_2".into()]));
        assert!(e.message().contains("sub_1, sub_2"), "{}", e.message());
    }
}
