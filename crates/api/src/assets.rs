//! Embedded files served as they are: the right Content-Type, a strong ETag (answered
//! with 304 when it matches), and a cache policy the caller chooses. GraphiQL's vendored
//! files and the portal's pages both go through here.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::EmbeddedFile;

use crate::error::http_error;

/// For URLs that carry a version: never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For the rest: revalidated by ETag on every use.
pub const REVALIDATE: &str = "no-cache";

/// `file` (from `path`), or a JSON 404 when there is none.
pub fn serve(
    file: Option<EmbeddedFile>,
    path: &str,
    headers: &HeaderMap,
    versioned: bool,
) -> Response {
    let Some(file) = file else {
        return http_error(StatusCode::NOT_FOUND, "NotFound", "no such asset");
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let etag = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    let cache = if versioned { IMMUTABLE } else { REVALIDATE };
    let common = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if if_none_match(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        )],
        Body::from(file.data),
    )
        .into_response()
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 has for it).
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(ours) = etag.to_str() else {
        return false;
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("txt" | "md") | None => "text/plain; charset=utf-8",
        Some(_) => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_weakly() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = HeaderMap::new();
        assert!(!if_none_match(&headers, &etag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(if_none_match(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abcd\""));
        assert!(!if_none_match(&headers, &etag));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type("a-1.0.0/x.min.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("a-1.0.0/x.min.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a-1.0.0/LICENSE"), "text/plain; charset=utf-8");
        assert_eq!(content_type("VERSIONS"), "text/plain; charset=utf-8");
    }
}
