//! GraphiQL on `GET /graphql` and `GET /stores/{store_hash}/graphql`, self-contained: the
//! page loads nothing but files this binary serves, so it works offline and under a strict
//! Content-Security-Policy (no inline script, no eval).
//!
//! - `/assets/vendor/{*path}`: `assets/vendor/`, GraphiQL's and React's browser builds
//!   copied from pinned npm packages by `scripts/vendor-assets` (never edited by hand),
//!   each in a `NAME-VERSION/` directory listed in `assets/vendor/VERSIONS`. Those URLs
//!   carry the version, so they are cached as immutable.
//! - `/assets/graphiql/{*path}`: `assets/graphiql/`, our own `init.js` (mounts GraphiQL
//!   with a fetcher that posts to the page's own path) and `page.css`; `no-cache`, so a
//!   browser revalidates them with their ETag.
//!
//! Both directories are embedded in the binary by rust-embed (in debug builds it reads
//! them from the source tree instead, so edits show without a rebuild).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::assets::{serve, REVALIDATE};

#[derive(RustEmbed)]
#[folder = "assets/vendor/"]
struct Vendor;

#[derive(RustEmbed)]
#[folder = "assets/graphiql/"]
struct FirstParty;

/// The page's Content-Security-Policy. `style-src 'unsafe-inline'`: GraphiQL's dialogs
/// (settings, short keys: Radix UI's scroll lock) insert a `<style>` element from script,
/// which `style-src 'self'` blocks. Scripts: only files of ours, no eval.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `package → version`, from `assets/vendor/VERSIONS` (`package@version` per line).
fn versions() -> &'static BTreeMap<String, String> {
    static VERSIONS: LazyLock<BTreeMap<String, String>> = LazyLock::new(|| {
        let file = Vendor::get("VERSIONS").expect("assets/vendor/VERSIONS is embedded");
        let text = String::from_utf8_lossy(&file.data).into_owned();
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| {
                let (name, version) = line.trim().rsplit_once('@')?;
                Some((name.to_owned(), version.to_owned()))
            })
            .collect()
    });
    &VERSIONS
}

/// The URL of `file` of the vendored `package`.
fn vendor_url(package: &str, file: &str) -> String {
    let version = versions()
        .get(package)
        .unwrap_or_else(|| panic!("assets/vendor/VERSIONS has no {package}"));
    format!("/assets/vendor/{package}-{version}/{file}")
}

/// The paths (under `/assets/vendor/`) of the vendored files the page loads, in order.
fn page_vendor_files() -> [(&'static str, &'static str); 4] {
    [
        ("graphiql", "graphiql.min.css"),
        ("react", "react.production.min.js"),
        ("react-dom", "react-dom.production.min.js"),
        ("graphiql", "graphiql.min.js"),
    ]
}

fn page_html() -> &'static str {
    static PAGE: LazyLock<String> = LazyLock::new(|| {
        let [css, react, react_dom, graphiql] = page_vendor_files().map(|(p, f)| vendor_url(p, f));
        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hookrelay · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
<link rel="stylesheet" href="/assets/graphiql/page.css">
<script src="{react}" defer></script>
<script src="{react_dom}" defer></script>
<script src="{graphiql}" defer></script>
<script src="/assets/graphiql/init.js" defer></script>
</head>
<body>
<div id="graphiql">Loading GraphiQL…<noscript> (it needs JavaScript)</noscript></div>
</body>
</html>
"#
        )
    });
    &PAGE
}

/// `GET /graphql`, `GET /stores/{store_hash}/graphql`: the GraphiQL page (it posts to the
/// path it was loaded from).
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, REVALIDATE),
        ],
        page_html(),
    )
        .into_response()
}

/// `GET /assets/vendor/{*path}`.
pub async fn vendor_asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let versioned = path
        .split_once('/')
        .is_some_and(|(dir, _)| is_versioned_dir(dir));
    serve(Vendor::get(&path), &path, &headers, versioned)
}

/// `GET /assets/graphiql/{*path}`.
pub async fn first_party_asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(FirstParty::get(&path), &path, &headers, false)
}

/// `NAME-VERSION` of a package in VERSIONS.
fn is_versioned_dir(dir: &str) -> bool {
    versions()
        .iter()
        .any(|(name, version)| dir.strip_prefix(name.as_str()) == Some(&format!("-{version}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        for (package, file) in page_vendor_files() {
            let url = vendor_url(package, file);
            let path = url.strip_prefix("/assets/vendor/").unwrap();
            assert!(Vendor::get(path).is_some(), "{path} is not embedded");
            assert!(is_versioned_dir(path.split('/').next().unwrap()));
            assert!(
                Vendor::get(&format!("{}/LICENSE", path.split('/').next().unwrap())).is_some(),
                "{path}: no LICENSE beside it"
            );
        }
        for file in ["init.js", "page.css"] {
            assert!(FirstParty::get(file).is_some(), "{file} is not embedded");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = page_html();
        assert_eq!(html.matches("<script").count(), 4);
        assert_eq!(html.matches("<script src=").count(), 4);
        assert!(!html.contains("style="));
        assert!(!html.contains("<style"));
        assert!(!html.contains("//cdn") && !html.contains("https:"));
    }

    #[test]
    fn only_versioned_directories_are_immutable() {
        let (name, version) = versions().iter().next().unwrap();
        assert!(is_versioned_dir(&format!("{name}-{version}")));
        assert!(!is_versioned_dir(name));
        assert!(!is_versioned_dir(&format!("{name}-0.0.0-other")));
        assert!(!is_versioned_dir("VERSIONS"));
    }
}
