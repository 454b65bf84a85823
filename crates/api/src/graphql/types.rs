//! GraphQL types shared by both API styles: the HTTP method scalar, key/value pairs,
//! cursor connections and paging arguments.

use async_graphql::{
    InputObject, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject, Value,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hookrelay_core::{HttpMethod, KeyValue};
use hookrelay_store::{Page, PageRequest};

use crate::error::{ApiError, ApiResult};

/// `POST`, `PUT` or `GET`, written as an enum literal (`POST`) or a string (`"POST"`):
/// the vendor guides use both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method(pub HttpMethod);

#[Scalar(name = "HttpMethod")]
impl ScalarType for Method {
    fn parse(value: Value) -> InputValueResult<Self> {
        let text = match &value {
            Value::String(s) => s.as_str(),
            Value::Enum(name) => name.as_str(),
            _ => return Err(InputValueError::expected_type(value)),
        };
        HttpMethod::parse(text)
            .map(Method)
            .ok_or_else(|| InputValueError::custom(format!("{text:?} is not POST, PUT or GET")))
    }

    fn is_valid(value: &Value) -> bool {
        match value {
            Value::String(s) => HttpMethod::parse(s).is_some(),
            Value::Enum(name) => HttpMethod::parse(name.as_str()).is_some(),
            _ => false,
        }
    }

    fn to_value(&self) -> Value {
        Value::Enum(async_graphql::Name::new(self.0.as_str()))
    }
}

#[derive(Debug, Clone, InputObject)]
#[graphql(name = "KeyValueInput")]
pub struct KeyValueInput {
    pub key: String,
    pub value: String,
}

impl From<KeyValueInput> for KeyValue {
    fn from(kv: KeyValueInput) -> Self {
        KeyValue {
            key: kv.key,
            value: kv.value,
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "KeyValue")]
pub struct KeyValueObject {
    pub key: String,
    pub value: String,
}

impl From<&KeyValue> for KeyValueObject {
    fn from(kv: &KeyValue) -> Self {
        KeyValueObject {
            key: kv.key.clone(),
            value: kv.value.clone(),
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// A page of nodes with their cursors, before it becomes one of the concrete
/// `…Connection` types of [`connection_type!`].
pub struct Parts<T> {
    pub edges: Vec<(T, String)>,
    pub page_info: PageInfo,
    pub total_count: u64,
}

/// Declares `$conn { edges { node cursor } pageInfo totalCount }` and `$edge` for `$node`.
macro_rules! connection_type {
    ($conn:ident, $edge:ident, $node:ty) => {
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            pub node: $node,
            pub cursor: String,
        }

        #[derive(async_graphql::SimpleObject)]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub page_info: $crate::graphql::types::PageInfo,
            /// Counting is a database round trip of its own.
            #[graphql(complexity = "crate::graphql::ROUND_TRIP_COST")]
            pub total_count: u64,
        }

        impl From<$crate::graphql::types::Parts<$node>> for $conn {
            fn from(parts: $crate::graphql::types::Parts<$node>) -> Self {
                $conn {
                    edges: parts
                        .edges
                        .into_iter()
                        .map(|(node, cursor)| $edge { node, cursor })
                        .collect(),
                    page_info: parts.page_info,
                    total_count: parts.total_count,
                }
            }
        }
    };
}
pub(crate) use connection_type;

pub const DEFAULT_PAGE: i32 = 50;
pub const MAX_PAGE: i32 = 1000;

fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("seq:")?
        .parse()
        .ok()
}

/// `first`, defaulted and within 1..=1000.
fn check_first(path: &str, first: Option<i32>) -> ApiResult<usize> {
    let first = first.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(ApiError::validation(format!(
            "{path}/first must be between 1 and {MAX_PAGE}, got {first}"
        )));
    }
    Ok(first as usize)
}

/// Checks `first` / `after` of the connection field at `path` (e.g.
/// `/eventSubscriptions`); the total is counted only when `totalCount` is selected.
pub fn page_request(
    ctx: &async_graphql::Context<'_>,
    path: &str,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<PageRequest> {
    let first = check_first(path, first)?;
    let after = match after {
        None => None,
        Some(c) => Some(decode_cursor(&c).ok_or_else(|| {
            ApiError::validation(format!("{path}/after is not a cursor this API gave out"))
        })?),
    };
    Ok(PageRequest {
        first,
        after,
        count_total: ctx.look_ahead().field("totalCount").exists(),
    })
}

/// Turns a store page into a connection, mapping each record with `node`.
pub fn connection<R, T, C: From<Parts<T>>>(
    page: Page<R>,
    request: &PageRequest,
    mut node: impl FnMut(R) -> ApiResult<T>,
) -> ApiResult<C> {
    let mut edges = Vec::with_capacity(page.items.len());
    for (seq, record) in page.items {
        edges.push((node(record)?, encode_cursor(seq)));
    }
    Ok(C::from(Parts {
        page_info: PageInfo {
            has_next_page: page.has_next,
            has_previous_page: request.after.is_some(),
            start_cursor: edges.first().map(|e| e.1.clone()),
            end_cursor: edges.last().map(|e| e.1.clone()),
        },
        edges,
        // Only resolved when selected, and then it was counted.
        total_count: page.total.unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("nope"), None);
        assert!(check_first("/x", Some(1001)).is_err());
        assert!(check_first("/x", Some(0)).is_err());
        assert!(check_first("/x", Some(1000)).is_ok());
    }
}
