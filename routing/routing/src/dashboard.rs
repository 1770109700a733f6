//! The SRE dashboard: one page with its script and style sheet, built into
//! the routing service and served beside its API, so the page reads the
//! table, the events and the drills from the API it came from (long polls,
//! same origin) and drains with the admin token the operator types in.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The page, with the values it shares with the server filled in.
static INDEX: LazyLock<String> = LazyLock::new(|| {
    include_str!("../dashboard/index.html").replace("{{ALL_POPS}}", crate::drills::ALL_POPS)
});
/// The page's script: what Meridian's pages share, then the dashboard.
const SCRIPT: &str = concat!(
    include_str!("../../../infra/web/common.js"),
    include_str!("../dashboard/dashboard.js")
);
const STYLE: &str = include_str!("../dashboard/dashboard.css");

/// Where the page is.
pub const PATH: &str = "/dashboard";

/// The page runs only its own script and style sheet, talks only to its
/// own origin and cannot be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes (`/` leads to it).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to(PATH) }))
        .route(
            PATH,
            get(|| async { asset("text/html; charset=utf-8", INDEX.as_str()) }),
        )
        .route(
            "/dashboard/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// An asset, revalidated on every load (an operator's page must never be
/// stale after an upgrade; it is small).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    if content_type.starts_with("text/html") {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        response.headers_mut().insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}
