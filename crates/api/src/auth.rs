//! Who is calling: `X-Auth-Token: TOKEN` (BigCommerce) or `Authorization: Bearer TOKEN`.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hookrelay_core::{secrets, Principal};
use hookrelay_store::Store;

use crate::error::http_error;

fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-auth-token") {
        return v.to_str().ok().map(str::trim).filter(|t| !t.is_empty());
    }
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// The caller, or the 401 answer. Missing and bad tokens get the same answer.
pub async fn authenticate(store: &dyn Store, headers: &HeaderMap) -> Result<Principal, Response> {
    let unauthorized = || {
        http_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a valid access token is required (X-Auth-Token or Authorization: Bearer)",
        )
    };
    let Some(token) = token(headers) else {
        return Err(unauthorized());
    };
    match store
        .principal_by_token_hash(&secrets::hash_token(token))
        .await
    {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => Err(unauthorized()),
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            Err(http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "the service cannot check tokens right now; try again",
            ))
        }
    }
}
