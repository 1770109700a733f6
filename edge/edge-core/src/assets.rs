//! The storefront's static assets, built into the edge: a single page
//! (`index.html`, revalidated often) whose script and style sheet are
//! named by their content's hash (`/assets/app.<hash>.js`), so they are
//! cached for a year and a new build is never mixed with an old one.

use std::sync::LazyLock;

use crate::http::Response;

const INDEX: &str = include_str!("../assets/index.html");
const APP_CSS: &str = include_str!("../assets/app.css");
/// The page's script: what Meridian's pages share, then the storefront.
const APP_JS: &str = concat!(
    include_str!("../../../infra/web/common.js"),
    include_str!("../assets/app.js")
);

/// How long browsers and caches may keep the page before revalidating.
pub const PAGE_CACHE_CONTROL: &str = "public, max-age=60";
/// Hashed assets never change under their name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page runs only its own script and style sheet, talks only to its
/// own origin and cannot be framed: injected markup cannot run or leak.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    path: String,
    content_type: &'static str,
    body: &'static str,
}

struct Assets {
    index: String,
    files: [Asset; 2],
}

/// `/assets/<stem>.<16 hex of the content's FNV-1a>.<ext>`.
fn hashed(name: &str, body: &str) -> String {
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    let tag = crate::policy::etag(body.as_bytes());
    let hex: String = tag.chars().filter(char::is_ascii_hexdigit).collect();
    format!("/assets/{stem}.{hex}.{ext}")
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let files = [
        Asset {
            name: "app.css",
            path: hashed("app.css", APP_CSS),
            content_type: "text/css; charset=utf-8",
            body: APP_CSS,
        },
        Asset {
            name: "app.js",
            path: hashed("app.js", APP_JS),
            content_type: "text/javascript; charset=utf-8",
            body: APP_JS,
        },
    ];
    let index = INDEX
        .replace("{{app.css}}", &files[0].path)
        .replace("{{app.js}}", &files[1].path);
    Assets { index, files }
});

/// The path the page links `name` (`app.css`, `app.js`) under.
pub fn path_of(name: &str) -> Option<&'static str> {
    ASSETS
        .files
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.path.as_str())
}

/// The asset at `path`, or `None`.
pub fn serve(path: &str) -> Option<Response> {
    let assets = &*ASSETS;
    let (content_type, body, cache_control) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            assets.index.as_str(),
            PAGE_CACHE_CONTROL,
        ),
        _ => {
            let asset = assets.files.iter().find(|a| a.path == path)?;
            (asset.content_type, asset.body, IMMUTABLE)
        }
    };
    let mut response = Response::new(200);
    response.set_header("content-type", content_type);
    response.set_header("cache-control", cache_control);
    response.set_header("etag", crate::policy::etag(body.as_bytes()));
    response.set_header("x-content-type-options", "nosniff");
    if content_type.starts_with("text/html") {
        response.set_header("content-security-policy", CONTENT_SECURITY_POLICY);
        response.set_header("referrer-policy", "same-origin");
    }
    response.body = body.as_bytes().to_vec();
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_its_assets_by_hash_and_each_is_served() {
        let index = serve("/").expect("index");
        let page = String::from_utf8(index.body.clone()).unwrap();
        assert!(!page.contains("{{"), "every placeholder filled");
        assert_eq!(
            index.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY)
        );
        for name in ["app.css", "app.js"] {
            let path = path_of(name).expect(name);
            assert!(page.contains(path), "{name} linked as {path}");
            let asset = serve(path).expect(path);
            assert_eq!(asset.header("cache-control"), Some(IMMUTABLE));
        }
        assert!(
            serve("/assets/app.css").is_none(),
            "unhashed names are not served"
        );
    }
}
