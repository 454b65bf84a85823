//! Checking a published event (docs/api.md#ingest) before it is written: the same rules
//! for the HTTP ingest and `hookrelay publish`.

use chrono::{DateTime, Utc};
use hookrelay_core::event_types::{Catalog, OPERATIONAL_PREFIX};
use hookrelay_core::ids;
use hookrelay_store::NewEvent;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The default `max_event_bytes`: EventBridge's entry limit.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;

/// The longest ordering key a publisher may give, in bytes.
pub const MAX_ORDERING_KEY_BYTES: usize = 256;

// Its OpenAPI schema (docs/api.md#openapi) is derived from these fields and their doc
// comments (the descriptions); what a schema cannot say (an existing store, sizes in
// bytes) is `prepare`'s, and the server adds the catalog as the enum of `type`.
/// One event as a publisher sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "store": "abc123", "type": "store/order/created", "data": {"id": 42},
    "resources": ["orders/42"], "idempotencyKey": "order-42-created",
    "time": "2024-05-01T12:00:00Z"
}))]
pub struct PublishRequest {
    /// An existing store's hash: 1 to 32 characters of `[a-z0-9]`. No such store: 422
    /// `UnknownStore`.
    #[schema(pattern = "^[a-z0-9]{1,32}$")]
    pub store: String,
    /// A concrete type of the catalog (no wildcard), at most 256 bytes. Not in the
    /// catalog: 422 `UnknownEventType`; `hookrelay/…`: 422 `ReservedEventType`.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 256, pattern = "^[^*]+$")]
    pub event_type: String,
    /// A JSON object or array of at most `max_event_bytes` bytes, as sent and once written
    /// compactly (beyond: 413 `PayloadTooLarge`).
    #[schema(schema_with = data_schema)]
    pub data: Box<RawValue>,
    /// At most 100 strings of 1 to 2048 bytes.
    #[serde(default)]
    #[schema(schema_with = resources_schema)]
    pub resources: Option<Vec<String>>,
    /// 1 to 256 bytes. A key the store already used answers the first event's id and
    /// delivers nothing again.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub idempotency_key: Option<String>,
    /// RFC 3339; default: now.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub time: Option<String>,
    /// 1 to 256 bytes. Events of one key go out one at a time, in order, to ordered
    /// subscriptions (docs/delivery.md#ordered-delivery).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub ordering_key: Option<String>,
}

/// `data`: an object or an array (a `RawValue`, so its schema is written here).
fn data_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Object))
        .item(ObjectBuilder::new().schema_type(Type::Array))
        .into()
}

/// `resources`: null or at most 100 strings of 1 to 2048 bytes.
fn resources_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(2048)),
        )
        .max_items(Some(100))
        .into()
}

/// Why an event was refused. `status` is the HTTP status docs/api.md#ingest-errors gives
/// each case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IngestError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl IngestError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        IngestError {
            status: 400,
            code: "ValidationError",
            message: message.into(),
        }
    }
    pub fn too_large(limit: usize) -> Self {
        IngestError {
            status: 413,
            code: "PayloadTooLarge",
            message: format!("data must be at most {limit} bytes of JSON"),
        }
    }
    pub fn unknown_type(event_type: &str) -> Self {
        IngestError {
            status: 422,
            code: "UnknownEventType",
            message: format!("unknown event type {event_type:?}"),
        }
    }
    pub fn unknown_store(store: &str) -> Self {
        IngestError {
            status: 422,
            code: "UnknownStore",
            message: format!("unknown store {store:?}"),
        }
    }
    /// The database could not take the event now (out of disk space, or not answering):
    /// 503, and the publisher sends it again later. Nothing was stored.
    pub fn unavailable(why: &hookrelay_store::StoreError) -> Self {
        let message = match why {
            hookrelay_store::StoreError::Full(_) => {
                "the database is out of disk space: the event was not stored; send it again later"
                    .to_owned()
            }
            other => format!("the event was not stored ({other}); send it again later"),
        };
        IngestError {
            status: 503,
            code: "Unavailable",
            message,
        }
    }
    pub fn internal() -> Self {
        IngestError {
            status: 500,
            code: "InternalError",
            message: "the event could not be stored".into(),
        }
    }
}

/// The event types a subscription may name to receive `event_type`: the type itself and
/// each wildcard scope above it (`store/order/created` → `store/order/*`, `store/*`).
pub fn patterns_for(event_type: &str) -> Vec<String> {
    let mut patterns = vec![event_type.to_owned()];
    for (i, _) in event_type.match_indices('/') {
        if i + 1 < event_type.len() {
            patterns.push(format!("{}*", &event_type[..=i]));
        }
    }
    patterns
}

/// Checks one published event and turns it into the record ingest writes.
pub fn prepare(
    request: PublishRequest,
    catalog: &Catalog,
    max_event_bytes: usize,
) -> Result<NewEvent, IngestError> {
    if !ids::is_valid_store_hash(&request.store) {
        return Err(IngestError::bad_request(
            "store must be 1-32 characters of [a-z0-9]",
        ));
    }
    if request.event_type.is_empty()
        || request.event_type.len() > 256
        || request.event_type.contains('*')
    {
        return Err(IngestError::bad_request(
            "type must be an event type of 1-256 characters without wildcards",
        ));
    }
    if request.event_type.starts_with(OPERATIONAL_PREFIX) {
        return Err(IngestError {
            status: 422,
            code: "ReservedEventType",
            message: format!(
                "{:?}: {OPERATIONAL_PREFIX}* events are published by hookrelay itself",
                request.event_type
            ),
        });
    }
    if !catalog.is_known(&request.event_type) {
        return Err(IngestError::unknown_type(&request.event_type));
    }
    if request.data.get().len() > max_event_bytes {
        return Err(IngestError::too_large(max_event_bytes));
    }
    // One compact encoding, so the BigCommerce `hash` matches the bytes delivered.
    let data: serde_json::Value = serde_json::from_str(request.data.get())
        .map_err(|e| IngestError::bad_request(format!("data: {e}")))?;
    if !(data.is_object() || data.is_array()) {
        return Err(IngestError::bad_request(
            "data must be a JSON object or array",
        ));
    }
    let data = data.to_string();
    if data.len() > max_event_bytes {
        return Err(IngestError::too_large(max_event_bytes));
    }
    let resources = request.resources.unwrap_or_default();
    if resources.len() > 100 || resources.iter().any(|r| r.is_empty() || r.len() > 2048) {
        return Err(IngestError::bad_request(
            "resources must be at most 100 non-empty strings of at most 2048 characters",
        ));
    }
    if let Some(key) = &request.idempotency_key {
        if key.is_empty() || key.len() > 256 {
            return Err(IngestError::bad_request(
                "idempotencyKey must be 1-256 characters",
            ));
        }
    }
    if let Some(key) = &request.ordering_key {
        if key.is_empty() || key.len() > MAX_ORDERING_KEY_BYTES {
            return Err(IngestError::bad_request(format!(
                "orderingKey must be 1-{MAX_ORDERING_KEY_BYTES} bytes"
            )));
        }
    }
    let time = match &request.time {
        None => hookrelay_core::now(),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| IngestError::bad_request("time must be an RFC 3339 timestamp"))?
            .with_timezone(&Utc),
    };
    Ok(NewEvent {
        id: ids::new_id("evt"),
        patterns: patterns_for(&request.event_type),
        store: request.store,
        event_type: request.event_type,
        data,
        resources,
        idempotency_key: request.idempotency_key,
        time,
        only_subscription: None,
        ordering_key: request.ordering_key,
        except_subscriptions: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> PublishRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn wildcard_patterns() {
        assert_eq!(
            patterns_for("store/order/created"),
            vec!["store/order/created", "store/*", "store/order/*"]
        );
        assert_eq!(patterns_for("ORDER_CONFIRMED"), vec!["ORDER_CONFIRMED"]);
    }

    /// Found by the ingest fuzz target: without serde_json's `float_roundtrip`, this
    /// number was stored (and delivered) as 1.5555555555555557e+89.
    #[test]
    fn numbers_are_stored_as_sent() {
        let catalog = Catalog::with_defaults(Vec::<String>::new());
        let data = r#"{"x":1.5555555555555555e+89,"y":[0.1,-2.5e-308,1e300]}"#;
        let e = prepare(
            request(&format!(
                r#"{{"store":"s1","type":"store/order/created","data":{data}}}"#
            )),
            &catalog,
            1024,
        )
        .unwrap();
        assert_eq!(
            e.data,
            r#"{"x":1.5555555555555555e+89,"y":[0.1,-2.5e-308,1e+300]}"#
        );
    }

    #[test]
    fn prepares_and_refuses() {
        let catalog = Catalog::with_defaults(Vec::<String>::new());
        let e = prepare(
            request(r#"{"store":"s1","type":"store/order/created","data":{ "b" : 1, "a":[1, 2] },"resources":["r"],"idempotencyKey":"k","time":"2024-01-02T03:04:05Z"}"#),
            &catalog,
            1024,
        )
        .unwrap();
        assert_eq!(e.data, r#"{"a":[1,2],"b":1}"#);
        assert_eq!(e.time.to_rfc3339(), "2024-01-02T03:04:05+00:00");
        let err = |json: &str, max| prepare(request(json), &catalog, max).unwrap_err();
        assert_eq!(
            err(r#"{"store":"s1","type":"nope","data":{}}"#, 1024).status,
            422
        );
        let reserved = err(
            r#"{"store":"s1","type":"hookrelay/delivery/failed","data":{}}"#,
            1024,
        );
        assert_eq!((reserved.status, reserved.code), (422, "ReservedEventType"));
        assert_eq!(
            err(r#"{"store":"S!","type":"ORDER_CONFIRMED","data":{}}"#, 1024).status,
            400
        );
        assert_eq!(
            err(
                r#"{"store":"s1","type":"ORDER_CONFIRMED","data":{"x":"0123456789"}}"#,
                8
            )
            .status,
            413
        );
        assert_eq!(
            err(r#"{"store":"s1","type":"ORDER_CONFIRMED","data":1}"#, 1024).status,
            400
        );
        assert_eq!(
            err(
                r#"{"store":"s1","type":"ORDER_CONFIRMED","data":{},"time":"yesterday"}"#,
                1024
            )
            .status,
            400
        );
    }
}
