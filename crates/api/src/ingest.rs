//! The ingest API (docs/api.md#ingest): `POST /v1/events` and `POST /v1/events/batch`,
//! for publisher and admin tokens. `202` means committed: the event and its deliveries are
//! in the database (the store's group commit shares one transaction among concurrent
//! requests).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookrelay_core::event_types::Catalog;
use hookrelay_core::Role;
use hookrelay_delivery::ingest::{prepare, IngestError, PublishRequest};
use hookrelay_store::{Ingested, NewEvent};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::auth::authenticate;
use crate::error::http_error;
use crate::AppState;

/// Events in one batch request at most.
pub const MAX_BATCH: usize = 1000;

fn error_response(e: &IngestError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = http_error(status, e.code, e.message.clone());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

/// What a 503 from ingest asks the publisher to wait, in seconds.
const RETRY_AFTER_SECS: &str = "5";

/// The answer when the store could not take the events: 503 for what passes (a full disk,
/// a database that does not answer), 500 for stored data that is invalid (a bug).
fn store_failure(e: &hookrelay_store::StoreError) -> Response {
    match e {
        hookrelay_store::StoreError::Corrupt(_) => error_response(&IngestError::internal()),
        other => error_response(&IngestError::unavailable(other)),
    }
}

fn error_value(e: &IngestError) -> Value {
    json!({"error": {"code": e.code, "message": e.message, "status": e.status}})
}

/// The caller may publish, or the answer that says why not.
async fn publisher(app: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let principal = authenticate(&app.services, headers).await?;
    match principal.role {
        Role::Publisher | Role::Admin => Ok(()),
        _ => Err(http_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "only publisher and admin tokens may publish events",
        )),
    }
}

/// The request body of a caller who may publish, or the answer that says why not.
async fn publisher_body(
    app: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Response> {
    publisher(app, headers).await?;
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            http_error(status, "PayloadTooLarge", "the request body is too large")
        } else {
            http_error(status, "BadRequest", e.body_text())
        }
    })
}

/// One event of a request, checked: the body of `POST /v1/events`, or one of a batch's.
/// Public for the fuzz targets (fuzz/).
pub fn parse_event(
    raw: &str,
    catalog: &Catalog,
    max_event_bytes: usize,
) -> Result<NewEvent, IngestError> {
    let request: PublishRequest = serde_json::from_str(raw)
        .map_err(|e| IngestError::bad_request(format!("invalid event: {e}")))?;
    prepare(request, catalog, max_event_bytes)
}

/// The body of `POST /v1/events`. Public for the fuzz targets (fuzz/).
pub fn parse_single(
    body: &[u8],
    catalog: &Catalog,
    max_event_bytes: usize,
) -> Result<NewEvent, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| IngestError::bad_request("the body must be UTF-8 JSON"))?;
    parse_event(text, catalog, max_event_bytes)
}

/// What one written event answers.
fn answer(result: Ingested, store: &str) -> Result<String, IngestError> {
    match result {
        Ingested::Created { event_id, .. } | Ingested::Duplicate { event_id } => Ok(event_id),
        Ingested::UnknownStore => Err(IngestError::unknown_store(store)),
    }
}

pub async fn publish_one(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match publisher_body(&app, &headers, body).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let event = match parse_single(&body, &app.services.catalog, app.services.max_event_bytes) {
        Ok(e) => e,
        Err(e) => return error_response(&e),
    };
    let store = event.store.clone();
    match app.services.engine.publish(vec![event]).await {
        Ok(mut results) => match results.pop().map(|r| answer(r, &store)) {
            Some(Ok(event_id)) => {
                (StatusCode::ACCEPTED, Json(json!({ "eventId": event_id }))).into_response()
            }
            Some(Err(e)) => error_response(&e),
            None => error_response(&IngestError::internal()),
        },
        Err(e) => {
            tracing::error!(error = %e, "ingest failed");
            store_failure(&e)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// The events of a `POST /v1/events/batch` body, each still to be checked with
/// [`parse_event`]: `{"events": [...]}` with 1 to [`MAX_BATCH`] of them. Public for the
/// fuzz targets (fuzz/).
pub fn parse_batch(body: &[u8]) -> Result<Vec<&RawValue>, IngestError> {
    let batch: Batch<'_> = serde_json::from_slice(body).map_err(|e| {
        IngestError::bad_request(format!("the body must be {{\"events\": [...]}}: {e}"))
    })?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return Err(IngestError::bad_request(format!(
            "events must hold 1 to {MAX_BATCH} events"
        )));
    }
    Ok(batch.events)
}

pub async fn publish_batch(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match publisher_body(&app, &headers, body).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let events = match parse_batch(&body) {
        Ok(events) => events,
        Err(e) => return error_response(&e),
    };
    // Each slot: the event's error, or its index among those written.
    let mut slots: Vec<Result<usize, IngestError>> = Vec::with_capacity(events.len());
    let mut valid = Vec::new();
    let mut stores = Vec::new();
    for raw in events {
        match parse_event(
            raw.get(),
            &app.services.catalog,
            app.services.max_event_bytes,
        ) {
            Ok(event) => {
                slots.push(Ok(valid.len()));
                stores.push(event.store.clone());
                valid.push(event);
            }
            Err(e) => slots.push(Err(e)),
        }
    }
    let written = if valid.is_empty() {
        Vec::new()
    } else {
        match app.services.engine.publish(valid).await {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(error = %e, "batch ingest failed");
                return store_failure(&e);
            }
        }
    };
    let mut written: Vec<Option<Ingested>> = written.into_iter().map(Some).collect();
    let results: Vec<Value> = slots
        .into_iter()
        .map(|slot| {
            let outcome = slot.and_then(|i| {
                let result = written.get_mut(i).and_then(Option::take);
                result
                    .ok_or_else(IngestError::internal)
                    .and_then(|r| answer(r, &stores[i]))
            });
            match outcome {
                Ok(event_id) => json!({ "eventId": event_id }),
                Err(e) => error_value(&e),
            }
        })
        .collect();
    (StatusCode::ACCEPTED, Json(json!({ "results": results }))).into_response()
}
