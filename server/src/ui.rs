//! The dashboard: `GET /ui`, one page with no build step (HTML, JavaScript
//! and CSS embedded in the binary) that reads the JSON API with the API key
//! the user types in. The page and its files hold no data, so they are
//! served without authentication; every call the page makes carries the key,
//! and the API scopes what it answers to the key's organization.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const STYLE_CSS: &str = include_str!("../ui/style.css");

/// The page's policy: scripts and styles only from the server's own files
/// (no inline code, no eval), requests only to the same origin, no plugins,
/// no framing (clickjacking of the action buttons), no form posting
/// anywhere (the key form is read by the script, so the key never lands in
/// a URL). The API's JSON answers need none: browsers do not render them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes, merged into the API's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/ui",
            get(|| async { file("text/html; charset=utf-8", INDEX_HTML) }),
        )
        // The page links its files relatively (`ui/app.js`), so that it works
        // where the router is nested under a prefix; from `/ui/` those links
        // would miss, hence the redirect (relative too, for the same reason).
        .route("/ui/", get(|| async { Redirect::permanent("../ui") }))
        .route(
            "/ui/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/style.css",
            get(|| async { file("text/css; charset=utf-8", STYLE_CSS) }),
        )
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // The page's address holds nothing secret, but nothing needs it either.
        (header::REFERRER_POLICY, "no-referrer"),
        // Revalidated each time, so that a new binary's page is never mixed
        // with an old cached script.
        (header::CACHE_CONTROL, "no-cache"),
    ]
    .map(|(name, value)| (name, HeaderValue::from_static(value)));
    (headers, body).into_response()
}
