//! The storefront's static assets, built into the edge: versioned files
//! under `/assets/` are immutable; the page itself is revalidated often.
//! (A placeholder until the storefront exists.)

use crate::http::Response;

const INDEX: &str = include_str!("../assets/index.html");
const APP_CSS: &str = include_str!("../assets/app.css");

/// The asset at `path`, or `None`.
pub fn serve(path: &str) -> Option<Response> {
    let (content_type, body, cache_control) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX, "public, max-age=60"),
        "/assets/app.css" => (
            "text/css; charset=utf-8",
            APP_CSS,
            "public, max-age=31536000, immutable",
        ),
        _ => return None,
    };
    let mut response = Response::new(200);
    response.set_header("content-type", content_type);
    response.set_header("cache-control", cache_control);
    response.set_header("etag", crate::policy::etag(body.as_bytes()));
    response.body = body.as_bytes().to_vec();
    Some(response)
}
