//! The ingest bodies (crates/api/src/ingest.rs, crates/delivery/src/ingest.rs): the same
//! bytes as the body of `POST /v1/events` and of `POST /v1/events/batch`, each event
//! checked by `prepare` into the record ingest writes.
#![no_main]

use std::sync::OnceLock;

use hookrelay_api::ingest::{parse_batch, parse_event, parse_single, MAX_BATCH};
use hookrelay_core::event_types::{Catalog, OPERATIONAL_PREFIX};
use hookrelay_core::ids::is_valid_store_hash;
use hookrelay_delivery::ingest::{DEFAULT_MAX_EVENT_BYTES, MAX_ORDERING_KEY_BYTES};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::with_defaults(["custom/thing/happened"]))
}

fuzz_target!(|data: &[u8]| {
    let catalog = catalog();
    if let Ok(event) = parse_single(data, catalog, DEFAULT_MAX_EVENT_BYTES) {
        let text = std::str::from_utf8(data).expect("accepted but not UTF-8");
        check_accepted(text, &event);
        // The same event in a batch of one comes out the same.
        let batch = format!("{{\"events\":[{text}]}}");
        let events = parse_batch(batch.as_bytes()).expect("a batch of one valid event");
        assert_eq!(events.len(), 1);
        let again = parse_event(events[0].get(), catalog, DEFAULT_MAX_EVENT_BYTES)
            .expect("valid alone but not in a batch");
        assert_eq!(
            (
                &again.store,
                &again.event_type,
                &again.data,
                &again.resources
            ),
            (
                &event.store,
                &event.event_type,
                &event.data,
                &event.resources
            )
        );
        assert_eq!(
            (&again.idempotency_key, &again.ordering_key),
            (&event.idempotency_key, &event.ordering_key)
        );
    }
    if let Ok(events) = parse_batch(data) {
        assert!((1..=MAX_BATCH).contains(&events.len()));
        for raw in events {
            if let Ok(event) = parse_event(raw.get(), catalog, DEFAULT_MAX_EVENT_BYTES) {
                check_accepted(raw.get(), &event);
            }
        }
    }
});

/// What every accepted event holds to (docs/api.md#ingest).
fn check_accepted(raw: &str, event: &hookrelay_store::NewEvent) {
    assert!(is_valid_store_hash(&event.store), "{:?}", event.store);
    assert!(catalog().is_known(&event.event_type));
    assert!(!event.event_type.contains('*'));
    assert!(!event.event_type.starts_with(OPERATIONAL_PREFIX));
    assert!(event.data.len() <= DEFAULT_MAX_EVENT_BYTES);
    // One compact encoding of an object or array: the bytes subscribers get and sign.
    let data: Value = serde_json::from_str(&event.data).expect("stored data is not JSON");
    assert!(data.is_object() || data.is_array());
    assert_eq!(data.to_string(), event.data);
    assert!(event.resources.len() <= 100);
    assert!(event
        .resources
        .iter()
        .all(|r| !r.is_empty() && r.len() <= 2048));
    assert!(event
        .idempotency_key
        .as_ref()
        .is_none_or(|k| (1..=256).contains(&k.len())));
    assert!(event
        .ordering_key
        .as_ref()
        .is_none_or(|k| (1..=MAX_ORDERING_KEY_BYTES).contains(&k.len())));
    // The type first, then each wildcard scope above it.
    assert_eq!(event.patterns.first(), Some(&event.event_type));
    for pattern in &event.patterns[1..] {
        let scope = pattern.strip_suffix('*').expect("a wildcard pattern");
        assert!(scope.ends_with('/') && event.event_type.starts_with(scope));
    }
    // The size limit holds for the data as sent and as stored: a limit one byte under
    // what is stored refuses it.
    let limit = event.data.len();
    let refused = parse_event(raw, catalog(), limit - 1).expect_err("over the limit");
    assert_eq!(refused.status, 413, "{refused:?}");
}
