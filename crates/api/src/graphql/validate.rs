//! Input checks. Each takes the path of the field it checks, so that the message says what
//! is wrong and where: `/createEventSubscription/input/destination/webhook/url must be an
//! https URL`.

use hookrelay_core::event_types::Catalog;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::{AuthConfig, BasicAuthConfig, HttpMethod, KeyValue, OAuthConfig};

use super::auth_profiles::AuthConfigInput;
use super::types::KeyValueInput;
use crate::error::{ApiError, ApiResult};

const MAX_TEXT: usize = 4096;
const MAX_NAME: usize = 512;
const MAX_PAIRS: usize = 50;
pub const MAX_EVENT_TYPES: usize = 100;

fn invalid(path: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::validation(format!("{path} {problem}"))
}

pub fn text(path: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(invalid(path, "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(path, format!("must be at most {max} bytes long")));
    }
    Ok(())
}

/// The highest `rateLimit` (requests per second) a subscription may have.
pub const MAX_RATE_LIMIT: i32 = 10_000;

/// Checks a `rateLimit` (docs/delivery.md#rate-limits); `None`: no limit.
pub fn rate_limit(path: &str, value: Option<i32>) -> ApiResult<Option<u32>> {
    match value {
        None => Ok(None),
        Some(n) if (1..=MAX_RATE_LIMIT).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(invalid(
            path,
            format!(
                "must be between 1 and {MAX_RATE_LIMIT} requests per second, or null for no limit (got {n})"
            ),
        )),
    }
}

/// Checks a destination URL; it is kept as the caller wrote it.
pub fn url(policy: &AddressPolicy, path: &str, value: &str) -> ApiResult<String> {
    policy
        .check_url(value)
        .map(|_| value.to_owned())
        .map_err(|e| invalid(path, e))
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Headers or header parameters: valid names and values, no more than 50.
fn header_pairs(path: &str, pairs: Vec<KeyValueInput>) -> ApiResult<Vec<KeyValue>> {
    if pairs.len() > MAX_PAIRS {
        return Err(invalid(
            path,
            format!("must have at most {MAX_PAIRS} entries"),
        ));
    }
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            if kv.key.is_empty() || kv.key.len() > 256 || !kv.key.bytes().all(is_token_char) {
                return Err(invalid(
                    &format!("{path}/{i}/key"),
                    format!("{:?} is not a valid HTTP header name", kv.key),
                ));
            }
            if kv.value.len() > MAX_TEXT
                || kv.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
            {
                return Err(invalid(
                    &format!("{path}/{i}/value"),
                    "must be a valid HTTP header value (no line breaks, at most 4096 bytes)",
                ));
            }
            Ok(kv.into())
        })
        .collect()
}

/// A webhook's custom headers: header rules, and none of the headers hookrelay sets itself.
pub fn webhook_headers(path: &str, pairs: Option<Vec<KeyValueInput>>) -> ApiResult<Vec<KeyValue>> {
    let headers = header_pairs(path, pairs.unwrap_or_default())?;
    for (i, kv) in headers.iter().enumerate() {
        let name = kv.key.to_ascii_lowercase();
        let reserved = matches!(
            name.as_str(),
            "host"
                | "content-length"
                | "authorization"
                | "transfer-encoding"
                | "connection"
                | "te"
                | "upgrade"
                | "keep-alive"
                | "proxy-authorization"
        ) || name.starts_with("webhook-");
        if reserved {
            return Err(invalid(
                &format!("{path}/{i}/key"),
                format!(
                    "{:?} is set by hookrelay and cannot be a custom header",
                    kv.key
                ),
            ));
        }
    }
    Ok(headers)
}

fn body_pairs(path: &str, pairs: Vec<KeyValueInput>) -> ApiResult<Vec<KeyValue>> {
    if pairs.len() > MAX_PAIRS {
        return Err(invalid(
            path,
            format!("must have at most {MAX_PAIRS} entries"),
        ));
    }
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            text(&format!("{path}/{i}/key"), &kv.key, 256)?;
            if kv.value.len() > MAX_TEXT {
                return Err(invalid(
                    &format!("{path}/{i}/value"),
                    "must be at most 4096 bytes long",
                ));
            }
            Ok(kv.into())
        })
        .collect()
}

/// `AuthConfigInput` → `AuthConfig`: exactly one of the two options, every field checked.
pub fn auth_config(
    policy: &AddressPolicy,
    path: &str,
    input: AuthConfigInput,
) -> ApiResult<AuthConfig> {
    match (input.o_auth_config, input.basic_auth_config) {
        (Some(oauth), None) => {
            let path = format!("{path}/oAuthConfig");
            let client = oauth.client_parameters;
            text(
                &format!("{path}/clientParameters/clientId"),
                &client.client_id,
                MAX_NAME,
            )?;
            text(
                &format!("{path}/clientParameters/clientSecret"),
                &client.client_secret,
                MAX_TEXT,
            )?;
            let auth_endpoint = url(
                policy,
                &format!("{path}/authEndpoint"),
                &oauth.auth_endpoint,
            )?;
            let params = oauth.http_parameters.unwrap_or_default();
            Ok(AuthConfig::OAuth(OAuthConfig {
                client_id: client.client_id,
                client_secret: client.client_secret,
                auth_endpoint,
                http_method: oauth.http_method.map(|m| m.0).unwrap_or(HttpMethod::Post),
                body_parameters: body_pairs(
                    &format!("{path}/httpParameters/bodyParameters"),
                    params.body_parameters.unwrap_or_default(),
                )?,
                header_parameters: header_pairs(
                    &format!("{path}/httpParameters/headerParameters"),
                    params.header_parameters.unwrap_or_default(),
                )?,
            }))
        }
        (None, Some(basic)) => {
            let path = format!("{path}/basicAuthConfig");
            text(&format!("{path}/username"), &basic.username, MAX_NAME)?;
            if basic.username.contains(':') {
                return Err(invalid(&format!("{path}/username"), "must not contain ':'"));
            }
            if basic.password.len() > MAX_TEXT {
                return Err(invalid(
                    &format!("{path}/password"),
                    "must be at most 4096 bytes long",
                ));
            }
            Ok(AuthConfig::Basic(BasicAuthConfig {
                username: basic.username,
                password: basic.password,
            }))
        }
        (Some(_), Some(_)) => Err(invalid(
            path,
            "must have exactly one of oAuthConfig or basicAuthConfig, not both",
        )),
        (None, None) => Err(invalid(
            path,
            "must have one of oAuthConfig or basicAuthConfig",
        )),
    }
}

/// One or many event types, each known to the catalog; duplicates dropped, order kept.
pub fn event_types(
    catalog: &Catalog,
    path: &str,
    types: Vec<(String, String)>,
) -> ApiResult<Vec<String>> {
    if types.is_empty() {
        return Err(invalid(path, "must name at least one event type"));
    }
    if types.len() > MAX_EVENT_TYPES {
        return Err(invalid(
            path,
            format!("must name at most {MAX_EVENT_TYPES} event types"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for (field, name) in types {
        catalog
            .check_subscribable(&name)
            .map_err(|e| invalid(&field, e))?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}
