//! The bodies subscribers receive (docs/payloads.md). The subscription's style decides
//! the shape; the same bytes go to a webhook body and to an EventBridge `Detail`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sha1::{Digest, Sha1};

use crate::Style;

/// The version of the Buy with Prime payload shape.
pub const API_VERSION: &str = "1.0";

/// What a payload is built from: one event and the delivery that carries it.
pub struct PayloadInput<'a> {
    pub style: Style,
    pub store: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// The event's `data`, compact JSON as stored at ingest.
    pub data: &'a str,
    pub resources: &'a [String],
    pub time: DateTime<Utc>,
    pub delivery_id: &'a str,
    pub subscription_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuyWithPrime<'a> {
    idempotency_key: &'a str,
    event_descriptor: &'a str,
    resources: &'a [String],
    event_id: &'a str,
    api_version: &'a str,
    subscription_id: &'a str,
    event_time: String,
    data: &'a RawValue,
}

#[derive(Serialize)]
struct BigCommerce<'a> {
    scope: &'a str,
    store_id: &'a str,
    data: &'a RawValue,
    hash: String,
    created_at: i64,
    producer: String,
}

/// The SHA-1 hex of the JSON-encoded `data`, as BigCommerce puts in `hash`.
pub fn data_hash(data: &str) -> String {
    let digest = Sha1::digest(data.as_bytes());
    let mut out = String::with_capacity(40);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The JSON body for `input`. `data` that is not valid JSON (it is validated at ingest, so
/// only a corrupt database gets here) is an error.
pub fn build(input: &PayloadInput<'_>) -> Result<Vec<u8>, serde_json::Error> {
    let data: &RawValue = serde_json::from_str(input.data)?;
    match input.style {
        Style::BuyWithPrime => serde_json::to_vec(&BuyWithPrime {
            idempotency_key: input.delivery_id,
            event_descriptor: input.event_type,
            resources: input.resources,
            event_id: input.event_id,
            api_version: API_VERSION,
            subscription_id: input.subscription_id,
            event_time: input.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            data,
        }),
        Style::BigCommerce => serde_json::to_vec(&BigCommerce {
            scope: input.event_type,
            store_id: input.store,
            data,
            hash: data_hash(input.data),
            created_at: input.time.timestamp(),
            producer: format!("stores/{}", input.store),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::Value;

    fn input(style: Style) -> PayloadInput<'static> {
        PayloadInput {
            style,
            store: "abc123",
            event_id: "evt_1",
            event_type: "store/category/updated",
            data: r#"{"id":42,"type":"category"}"#,
            resources: &[],
            time: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            delivery_id: "dlv_1",
            subscription_id: "sub_1",
        }
    }

    #[test]
    fn bigcommerce_shape_and_hash() {
        let body: Value =
            serde_json::from_slice(&build(&input(Style::BigCommerce)).unwrap()).unwrap();
        assert_eq!(body["scope"], "store/category/updated");
        assert_eq!(body["store_id"], "abc123");
        assert_eq!(body["producer"], "stores/abc123");
        assert_eq!(body["created_at"], 1_700_000_000);
        assert_eq!(body["data"]["id"], 42);
        // sha1 of the compact JSON of data, as PHP's json_encode or Python's
        // json.dumps(separators=(",", ":")) would write it.
        let encoded = serde_json::to_string(&body["data"]).unwrap();
        assert_eq!(body["hash"], data_hash(&encoded));
        assert_eq!(data_hash("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn buy_with_prime_shape() {
        let body: Value =
            serde_json::from_slice(&build(&input(Style::BuyWithPrime)).unwrap()).unwrap();
        assert_eq!(body["idempotencyKey"], "dlv_1");
        assert_eq!(body["eventDescriptor"], "store/category/updated");
        assert_eq!(body["eventId"], "evt_1");
        assert_eq!(body["subscriptionId"], "sub_1");
        assert_eq!(body["apiVersion"], API_VERSION);
        assert_eq!(body["eventTime"], "2023-11-14T22:13:20.000Z");
        assert_eq!(body["resources"], serde_json::json!([]));
        assert_eq!(body["data"]["type"], "category");
    }
}
