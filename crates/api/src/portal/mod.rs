//! The portal (docs/portal.md): a web UI in the binary for a store's subscribers and for
//! the operator. The pages are static files (`assets/portal/`, embedded) that call the
//! public GraphQL API with a session token, so every domain rule stays in one place, the
//! API's. What lives here: links and sessions ([`links`]), the few routes the pages need
//! beside GraphQL, and the headers that make them safe to embed.
//!
//! Sessions are header-borne: the page keeps the token in `sessionStorage` and sends it
//! as `Authorization: Bearer`. No cookie, so it works in a third-party iframe (where
//! browsers drop cookies), and no ambient credential a cross-site form could ride on.

pub mod links;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DurationRound, Utc};
use hookrelay_core::Role;
use hookrelay_store::portal::LinkState;
use rust_embed::RustEmbed;
use serde_json::json;

use crate::auth::{authenticate, bearer_token};
use crate::error::http_error;
use crate::AppState;

/// Where the portal is reached and who may frame it.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// The base of the links handed out (`public_url`), e.g. `https://hooks.example.com`.
    pub public_url: String,
    /// `frame-ancestors` sources: `'none'` (the default), or the platform dashboard's
    /// origins, space-separated.
    pub frame_ancestors: String,
}

impl PortalConfig {
    /// The Content-Security-Policy of every portal response.
    fn content_security_policy(&self) -> String {
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors {}",
            self.frame_ancestors
        )
    }
}

#[derive(RustEmbed)]
#[folder = "assets/portal/"]
struct Pages;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(|| async { Redirect::permanent("/portal/") }))
        .route("/portal/", get(shell))
        .route("/portal/open/{secret}", get(open))
        .route("/portal/assets/{*path}", get(asset))
        .route("/portal/api/session", post(exchange))
        .route("/portal/api/me", get(me))
        .route("/portal/api/logout", post(logout))
        .route("/portal/api/console", get(console))
}

/// The security headers of every portal response, and the cross-origin refusal of every
/// state-changing request (the header-borne token is the CSRF defence; checking the
/// origin too costs nothing).
pub async fn guard(
    State(app): State<AppState>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let portal = &app.services.portal;
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let mut response = if changes && !same_origin(request.headers(), &portal.public_url) {
        http_error(
            StatusCode::FORBIDDEN,
            "CrossOrigin",
            "cross-origin requests are refused",
        )
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&portal.content_security_policy()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if portal.frame_ancestors.trim() == "'none'" {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The origin part (`scheme://host[:port]`) of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Whether a browser request comes from one of our own pages: its `Origin` (sent on
/// every cross-origin request and every POST) names this server, either as the public
/// URL or as the host the request was sent to; `Sec-Fetch-Site`, when sent, agrees.
/// Requests without either header are not from a browser page, and carry no ambient
/// credential to abuse.
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site" | "same-site")) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin.eq_ignore_ascii_case(origin_of(public_url)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (host, origin.split_once("://")) {
        (Some(host), Some((_, origin_host))) => origin_host.eq_ignore_ascii_case(host),
        _ => false,
    }
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Html(body),
    )
        .into_response()
}

/// `GET /portal/`: the app shell.
async fn shell() -> Response {
    match Pages::get("index.html") {
        Some(file) => html(
            StatusCode::OK,
            String::from_utf8_lossy(&file.data).into_owned(),
        ),
        None => http_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the portal is not built in",
        ),
    }
}

/// A page of its own for a link that cannot be used, with no data of anyone's.
fn refused_page(state: LinkState) -> Response {
    let (status, title, text) = match state {
        LinkState::Used => (
            StatusCode::GONE,
            "This link has already been used",
            "A portal link opens one session, once. Ask for a new link where you got this one.",
        ),
        LinkState::Expired => (
            StatusCode::GONE,
            "This link has expired",
            "Portal links are valid for a short time. Ask for a new link where you got this one.",
        ),
        LinkState::Valid | LinkState::Unknown => (
            StatusCode::UNAUTHORIZED,
            "This link is not valid",
            "Check that the whole link was copied, or ask for a new one.",
        ),
    };
    html(
        status,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · hookrelay</title>\
             <link rel=\"icon\" href=\"/portal/assets/favicon.svg\" type=\"image/svg+xml\">\
             <link rel=\"stylesheet\" href=\"/portal/assets/app.css\"></head>\
             <body class=\"refused\"><main class=\"notice\"><h1>{title}</h1><p>{text}</p></main></body></html>\n"
        ),
    )
}

/// `GET /portal/open/{secret}`: the app shell for a link that can be used (the page
/// exchanges it with a POST: a link preview that fetches the URL does not use it up);
/// a page saying why not otherwise.
async fn open(State(app): State<AppState>, Path(secret): Path<String>) -> Response {
    match links::link_state(app.services.store.as_ref(), &secret).await {
        Ok(LinkState::Valid) => shell().await,
        Ok(state) => refused_page(state),
        Err(e) => unavailable(e),
    }
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "portal: the database failed");
    http_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "the service cannot answer right now; try again",
    )
}

/// `POST /portal/api/session` `{"link": SECRET}`: uses the link, opens a session.
async fn exchange(State(app): State<AppState>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Exchange {
        link: String,
    }
    let Ok(Exchange { link }) = serde_json::from_slice::<Exchange>(&body) else {
        return http_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "the body must be {\"link\": \"...\"}",
        );
    };
    match links::redeem(app.services.store.as_ref(), &link).await {
        Ok(Ok(session)) => (StatusCode::CREATED, Json(session)).into_response(),
        Ok(Err(LinkState::Used)) => http_error(
            StatusCode::GONE,
            "LinkUsed",
            "this link has already been used; ask for a new one",
        ),
        Ok(Err(LinkState::Expired)) => http_error(
            StatusCode::GONE,
            "LinkExpired",
            "this link has expired; ask for a new one",
        ),
        Ok(Err(_)) => http_error(
            StatusCode::UNAUTHORIZED,
            "LinkInvalid",
            "this link is not valid",
        ),
        Err(e) => unavailable(e),
    }
}

fn session_ended() -> Response {
    http_error(
        StatusCode::UNAUTHORIZED,
        "SessionEnded",
        "the portal session has ended; open a new link",
    )
}

/// The live portal session the request carries.
async fn live(app: &AppState, headers: &HeaderMap) -> Result<links::LiveSession, Response> {
    let Some(token) = bearer_token(headers) else {
        return Err(session_ended());
    };
    match links::session(app.services.store.as_ref(), token).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(session_ended()),
        Err(e) => Err(unavailable(e)),
    }
}

/// `GET /portal/api/me`: whom the session acts for, and until when.
async fn me(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match live(&app, &headers).await {
        Ok(s) => {
            let mut body = serde_json::to_value(&s.who).unwrap_or_default();
            body["expiresAt"] = json!(s.expires_at);
            Json(body).into_response()
        }
        Err(r) => r,
    }
}

/// `POST /portal/api/logout`: ends the session.
async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = bearer_token(&headers) else {
        return session_ended();
    };
    match links::end(app.services.store.as_ref(), token).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => unavailable(e),
    }
}

/// `GET /portal/assets/{*path}`.
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    crate::assets::serve(Pages::get(&path), &path, &headers, false)
}

/// `GET /portal/api/console`: the operator console's figures. Admin sessions (and admin
/// tokens) only.
async fn console(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let principal = match authenticate(&app.services, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if principal.role != Role::Admin {
        return http_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "the operator console needs an admin session",
        );
    }
    match console_figures(&app).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn console_figures(app: &AppState) -> Result<serde_json::Value, hookrelay_store::StoreError> {
    let store = app.services.store.as_ref();
    let counts: std::collections::HashMap<String, u64> =
        store.subscription_counts().await?.into_iter().collect();
    let stores: Vec<_> = store
        .list_stores()
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "storeHash": s.store_hash,
                "createdAt": s.created_at,
                "subscriptions": counts.get(&s.store_hash).copied().unwrap_or(0),
            })
        })
        .collect();
    let backlog = store.backlog().await?;
    let mut breakers = Vec::new();
    for lane in app.services.engine.lanes().await {
        if let Some((since, until)) = lane.paused {
            breakers.push(
                json!({"host": lane.lane, "url": null, "pausedSince": since, "pausedUntil": until}),
            );
        }
        for (url, since, until) in lane.paused_endpoints {
            breakers.push(
                json!({"host": lane.lane, "url": url, "pausedSince": since, "pausedUntil": until}),
            );
        }
    }
    let deactivated: Vec<_> = store
        .deactivated_subscriptions(100)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "store": s.store,
                "id": s.id,
                "destination": s.destination.address(),
                "style": s.style,
                "eventTypes": s.event_types,
                "deactivatedAt": s.updated_at,
            })
        })
        .collect();
    let nodes: Vec<_> = store
        .nodes()
        .await?
        .into_iter()
        .map(|n| json!({"node": n.id, "heartbeatAt": n.heartbeat_at}))
        .collect();
    let now = Utc::now();
    let minute = now
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(now);
    let since = minute - chrono::Duration::minutes(59);
    let per_minute: Vec<_> = store
        .all_attempt_buckets(since, std::time::Duration::from_secs(60), 60)
        .await?
        .into_iter()
        .map(|b| json!({"minute": b.start, "succeeded": b.succeeded, "failed": b.failed}))
        .collect();
    Ok(json!({
        "stores": stores,
        "backlog": {
            "due": backlog.due,
            "scheduled": backlog.scheduled,
            "parked": backlog.parked,
            "inFlight": backlog.in_flight,
        },
        "breakers": breakers,
        "deactivated": deactivated,
        "nodes": nodes,
        "deliveriesPerMinute": per_minute,
    }))
}
