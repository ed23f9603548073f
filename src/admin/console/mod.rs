//! The admin console at `/ui`: a browser front end over the management API, built into the
//! binary. It holds no data of its own and no key: the page signs in with an API key kept in
//! the tab's `sessionStorage` and calls the same endpoints as any client, so it can do no more
//! than the key can.
//!
//! Every asset is served from memory under a Content-Security-Policy that allows this origin
//! only: no inline script or style, no other host, no framing. The assets are hand-written
//! (no third-party code, no build step), so `cargo build` needs nothing but Rust.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use crate::http_error::ApiError;

/// Where the console is served.
pub const PATH: &str = "/ui";

/// Scripts and styles only from this origin, which is also the only one the page may call;
/// no plugins, no `<base>`, no form posted anywhere, never inside another page's frame.
const POLICY: &str = "default-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'; object-src 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/config.js", JS),
    asset!("js/sessions.js", JS),
    asset!("js/session.js", JS),
    asset!("js/graph.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/usage.js", JS),
    asset!("js/operations.js", JS),
];

/// Each asset's entity tag, from its content: a page reloaded after an upgrade revalidates
/// and gets the new files, an unchanged one gets 304s.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            HeaderValue::try_from(format!("\"{}\"", hex::encode(&digest[..12])))
                .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// The console's routes: the page at `/ui` (and `/ui/`), its files under `/ui/…`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PATH, get(index))
        .route("/ui/", get(index))
        .route("/ui/{*file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return ApiError::not_found(format!("the console has no file `{path}`")).into_response();
    };
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let fresh = request
        .get(IF_NONE_MATCH)
        .is_some_and(|tags| tags.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.body.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag.clone());
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_page_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .rsplit_once("from \"./")
                    .map(|(_, rest)| rest.trim_end_matches("\";"))
                    .unwrap_or_else(|| panic!("{}: unexpected import {line}", asset.path));
                let path = format!("js/{target}");
                assert!(
                    served.contains(&path.as_str()),
                    "{}: {path} is not served",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        for asset in ASSETS
            .iter()
            .filter(|a| a.path.ends_with(".html") || a.path.ends_with(".js"))
        {
            // The one URL a script may name is SVG's namespace, which is no address.
            let text = std::str::from_utf8(asset.body)
                .unwrap()
                .replace("\"http://www.w3.org/2000/svg\"", "SVG_NS");
            for forbidden in [
                "<script>",
                "style=",
                "innerHTML",
                "javascript:",
                "http://",
                "https://",
            ] {
                assert!(
                    !text.contains(forbidden),
                    "{} contains {forbidden}",
                    asset.path
                );
            }
        }
    }

    /// The style sheet pulls nothing in: no import, no font or image from elsewhere.
    #[test]
    fn the_style_sheet_names_no_other_file() {
        let css = ASSETS.iter().find(|a| a.path == "console.css").unwrap();
        let text = std::str::from_utf8(css.body).unwrap();
        for forbidden in ["@import", "url(", "@font-face", "http://", "https://"] {
            assert!(
                !text.contains(forbidden),
                "console.css contains {forbidden}"
            );
        }
    }

    #[test]
    fn a_revalidation_with_the_current_tag_is_answered_304() {
        let first = serve("console.css", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[ETAG].clone();
        assert!(first.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'"));
        let mut again = HeaderMap::new();
        again.insert(IF_NONE_MATCH, tag);
        assert_eq!(
            serve("console.css", &again).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            serve("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
