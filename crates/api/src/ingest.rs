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
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::ErrorBody;

use crate::auth::authenticate;
use crate::error::{http_error, unavailable_error};
use crate::AppState;

/// Events in one batch request at most.
pub const MAX_BATCH: usize = 1000;

fn error_response(e: &IngestError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        unavailable_error(e.code, e.message.clone())
    } else {
        http_error(status, e.code, e.message.clone())
    }
}

/// The answer when the store could not take the events: 503 for what passes (a full disk,
/// a database that does not answer), 500 for stored data that is invalid (a bug).
fn store_failure(e: &hookrelay_store::StoreError) -> Response {
    match e {
        hookrelay_store::StoreError::Corrupt(_) => error_response(&IngestError::internal()),
        other => error_response(&IngestError::unavailable(other)),
    }
}

/// `202` for one event: it and its deliveries are committed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"eventId": "evt_01HXYZ8V6S3K4M2N7P9Q0R1T2W"}))]
pub struct Accepted {
    /// The event's id; for a repeated `idempotencyKey`, the first event's.
    pub event_id: String,
}

/// `POST /v1/events/batch`: 1 to 1000 events.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest<'a> {
    /// 1 to 1000 events, each a `PublishRequest`. Each is checked alone: one that is not
    /// a valid event gets an error in its slot of the answer and does not stop the others,
    /// so the items are any JSON here.
    #[serde(borrow)]
    #[schema(schema_with = batch_events_schema)]
    events: Vec<&'a RawValue>,
}

fn batch_events_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .description(Some("an event: #/components/schemas/PublishRequest")),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH))
        .into()
}

/// `202` for a batch: one result per event, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    pub results: Vec<BatchResult>,
}

/// One event's outcome in a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    /// Committed (or a repeat of an `idempotencyKey`: the first event's id).
    Accepted(Accepted),
    /// Refused; the others are unaffected.
    Refused { error: EventError },
}

/// Why one event of a batch was refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventError {
    /// As for `POST /v1/events`: `ValidationError`, `PayloadTooLarge`, `UnknownEventType`,
    /// `ReservedEventType`, `UnknownStore`, `InternalError`.
    pub code: String,
    pub message: String,
    /// The HTTP status this event alone would have had.
    pub status: u16,
}

impl From<&IngestError> for EventError {
    fn from(e: &IngestError) -> Self {
        EventError {
            code: e.code.to_owned(),
            message: e.message.clone(),
            status: e.status,
        }
    }
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

/// The failures both ingest routes share (docs/api.md#ingest-errors), for the OpenAPI
/// document: every one has an [`ErrorBody`], and 503 a `Retry-After`.
pub struct IngestFailures;

impl utoipa::IntoResponses for IngestFailures {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{Content, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(
                    <ErrorBody as utoipa::ToSchema>::name(),
                ))),
            )
        };
        let retry_after = HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some("seconds to wait before sending the request again"))
            .build();
        [
            ("400", error("`ValidationError`: not JSON, an unknown field, a bad store hash, a missing or malformed field, `data` neither an object nor an array (for a batch: a body that is not `{\"events\": [...]}` with 1 to 1000 events); `BadRequest`: the body could not be read")),
            ("401", error("`Unauthorized`: no valid token (`SessionEnded`: an ended portal session)")),
            ("403", error("`AccessDenied`: a client or store-admin token (`CrossOrigin`: a portal session from another site)")),
            ("413", error("`PayloadTooLarge`: `data` over `max_event_bytes`, or the request body over its limit")),
            ("422", error("`UnknownEventType`, `ReservedEventType` (`hookrelay/…`) or `UnknownStore`")),
            ("500", error("`InternalError`: stored data is invalid (a bug)")),
            ("503", error("`Unavailable`: the token could not be checked, or the event could not be written (the database is out of disk space or does not answer); nothing was stored").header("Retry-After", retry_after)),
        ]
        .into_iter()
        .map(|(status, response)| (status.to_owned(), response.build().into()))
        .collect()
    }
}

/// Publish one event.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "ingest",
    operation_id = "publishEvent",
    request_body(content = PublishRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The event and one delivery per matching active subscription are committed", body = Accepted),
        IngestFailures,
    ),
    security(("bearer" = []), ("xAuthToken" = [])),
)]
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
                (StatusCode::ACCEPTED, Json(Accepted { event_id })).into_response()
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

/// The events of a `POST /v1/events/batch` body, each still to be checked with
/// [`parse_event`]: `{"events": [...]}` with 1 to [`MAX_BATCH`] of them. Public for the
/// fuzz targets (fuzz/).
pub fn parse_batch(body: &[u8]) -> Result<Vec<&RawValue>, IngestError> {
    let batch: BatchRequest<'_> = serde_json::from_slice(body).map_err(|e| {
        IngestError::bad_request(format!("the body must be {{\"events\": [...]}}: {e}"))
    })?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return Err(IngestError::bad_request(format!(
            "events must hold 1 to {MAX_BATCH} events"
        )));
    }
    Ok(batch.events)
}

/// Publish up to 1000 events in one transaction.
#[utoipa::path(
    post,
    path = "/v1/events/batch",
    tag = "ingest",
    operation_id = "publishEvents",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The valid events are committed in one transaction; one result per event, in order", body = BatchAccepted),
        IngestFailures,
    ),
    security(("bearer" = []), ("xAuthToken" = [])),
)]
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
    let results: Vec<BatchResult> = slots
        .into_iter()
        .map(|slot| {
            let outcome = slot.and_then(|i| {
                let result = written.get_mut(i).and_then(Option::take);
                result
                    .ok_or_else(IngestError::internal)
                    .and_then(|r| answer(r, &stores[i]))
            });
            match outcome {
                Ok(event_id) => BatchResult::Accepted(Accepted { event_id }),
                Err(e) => BatchResult::Refused {
                    error: EventError::from(&e),
                },
            }
        })
        .collect();
    (StatusCode::ACCEPTED, Json(BatchAccepted { results })).into_response()
}
