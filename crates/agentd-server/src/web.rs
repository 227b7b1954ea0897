//! The web board: a small single-page app (plain HTML, CSS and ES modules under
//! `crates/agentd-server/web/`, no build step) embedded in the binary and served from
//! the server's own port. It is a client of the user API (`/api/v1`) and of the live
//! event stream; it holds no state of its own beyond the token in the browser's session
//! storage.
//!
//! Every asset is sent with a Content-Security-Policy that allows only this origin (no
//! inline script or style), `nosniff`, and `no-cache` with a content-hash `ETag` (revalidate
//! cheaply: assets change with the binary).

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The embedded files: (path, content type, body).
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_str!("../web/favicon.svg"),
    ),
];

/// A strong validator per asset (its content hash), so `no-cache` revalidation is a 304.
static ETAGS: LazyLock<[String; 4]> = LazyLock::new(|| {
    ASSETS.map(|(_, _, body)| {
        let hash = Sha256::digest(body.as_bytes());
        let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
});

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

fn asset(i: usize, req: &HeaderMap) -> Response {
    let (_, content_type, body) = ASSETS[i];
    let etag = ETAGS[i].as_str();
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = resp.headers_mut();
    if !fresh {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `/` (the app; its views are `#/…` routes), `/app.js`, `/style.css`, `/favicon.svg`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new();
    for (i, (path, _, _)) in ASSETS.iter().enumerate() {
        r = r.route(
            path,
            get(move |req: HeaderMap| async move { asset(i, &req) }),
        );
    }
    r
}
