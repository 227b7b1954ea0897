//! The embedded web board is served from the server's own port, with a strict
//! Content-Security-Policy; API paths keep their JSON errors.

mod common;

use reqwest::StatusCode;

#[tokio::test]
async fn the_board_is_served_with_its_assets_and_a_strict_csp() {
    let srv = common::start().await;
    for (path, ctype, needle) in [
        ("/", "text/html; charset=utf-8", "/app.js"),
        ("/app.js", "text/javascript; charset=utf-8", "localStorage"),
        ("/style.css", "text/css; charset=utf-8", ".board"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let resp = srv.get_anonymous(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], ctype, "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = resp.text().await.unwrap();
        assert!(body.contains(needle), "{path} carries {needle}");
    }
}

#[tokio::test]
async fn the_token_never_travels_in_a_url_and_unknown_paths_stay_json() {
    let srv = common::start().await;
    // The app sends the token only as an Authorization header.
    let js = srv.get_anonymous("/app.js").await.text().await.unwrap();
    assert!(js.contains("Authorization: `Bearer ${state.token}`"));
    assert!(!js.contains("token=") && !js.contains("innerHTML"));
    // Markdown and every other text becomes DOM nodes: no HTML parser is ever fed.
    for sink in [
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "DOMParser",
        "eval(",
    ] {
        assert!(!js.contains(sink), "app.js uses {sink}");
    }
    for path in ["/api/v1/nope", "/nope", "/api/daemon/nope"] {
        let resp = srv.get_anonymous(path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert!(v["error"].is_string(), "{path}: {v}");
    }
}

#[tokio::test]
async fn assets_revalidate_with_their_etag() {
    let srv = common::start().await;
    let url = format!("{}/app.js", srv.url);
    let first = srv.http.get(&url).send().await.unwrap();
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let etag = first.headers()["etag"].clone();
    let again = srv
        .http
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.headers().contains_key("content-security-policy"));
    let stale = srv
        .http
        .get(&url)
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    // Another asset has its own validator.
    let css = srv.get_anonymous("/style.css").await;
    assert_ne!(css.headers()["etag"], etag);
}
