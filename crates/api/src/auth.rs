//! Who is calling: `X-Auth-Token: TOKEN` (BigCommerce) or `Authorization: Bearer TOKEN`.
//! The token is an API client's, or a portal session's (docs/portal.md), which acts as
//! the client or store administrator its link was made for.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hookrelay_core::{secrets, Principal};

use crate::error::{http_error, unavailable_error};
use crate::graphql::context::Services;
use crate::portal;

/// The token a request carries, from either header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
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

/// The caller, or the 401 answer. Missing and bad tokens get the same answer. A portal
/// session is refused from a page of another origin.
pub async fn authenticate(services: &Services, headers: &HeaderMap) -> Result<Principal, Response> {
    let unauthorized = || {
        http_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a valid access token is required (X-Auth-Token or Authorization: Bearer)",
        )
    };
    let unavailable = |e: hookrelay_store::StoreError| {
        tracing::error!(error = %e, "token lookup failed");
        unavailable_error(
            "Unavailable",
            "the service cannot check tokens right now (the database is unavailable); try again shortly",
        )
    };
    let Some(token) = bearer_token(headers) else {
        return Err(unauthorized());
    };
    let store = services.store.as_ref();
    if token.starts_with(secrets::PORTAL_SESSION_PREFIX) {
        if !portal::same_origin(headers, &services.portal.public_url) {
            return Err(http_error(
                StatusCode::FORBIDDEN,
                "CrossOrigin",
                "portal sessions are accepted from the portal's own pages only",
            ));
        }
        return match portal::links::session(store, token).await {
            Ok(Some(session)) => Ok(session.principal),
            Ok(None) => Err(http_error(
                StatusCode::UNAUTHORIZED,
                "SessionEnded",
                "the portal session has ended; open a new link",
            )),
            Err(e) => Err(unavailable(e)),
        };
    }
    match store
        .principal_by_token_hash(&secrets::hash_token(token))
        .await
    {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => Err(unauthorized()),
        Err(e) => Err(unavailable(e)),
    }
}
