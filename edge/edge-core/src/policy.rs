//! Cache policy per route, cache keys, tags, and the headers the shopper
//! gets (`Cache-Control`, `ETag`, `Age`, 304).

use crate::classify::Route;
use crate::http::Request;
use regional_api::purge::{category_tag, product_tag, reviews_tag};

/// How long a response may be served, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachePolicy {
    /// Fresh for this long.
    pub ttl_s: u32,
    /// Then served stale while one request revalidates it.
    pub swr_s: u32,
    /// Then (and during the above) served stale when the origin fails.
    pub sie_s: u32,
    /// Shared by every shopper (`public`), or one shopper's (`private`).
    pub shared: bool,
}

impl CachePolicy {
    /// The `Cache-Control` header for the shopper's browser.
    pub fn cache_control(&self) -> String {
        if self.shared {
            format!(
                "public, max-age={}, stale-while-revalidate={}, stale-if-error={}",
                self.ttl_s, self.swr_s, self.sie_s
            )
        } else {
            // The browser must always ask: the edge decides freshness
            // with the cart's version token.
            "private, no-cache".to_owned()
        }
    }
}

/// The policy of a cacheable route (`None`: never stored).
pub fn policy(route: &Route) -> Option<CachePolicy> {
    let p = |ttl_s, swr_s, sie_s, shared| {
        Some(CachePolicy {
            ttl_s,
            swr_s,
            sie_s,
            shared,
        })
    };
    match route {
        // Products and categories are purged by tag on change: long TTLs.
        Route::Product { .. } => p(300, 600, 86_400, true),
        // Reviews are purged by tag when the projection changes them.
        Route::Reviews { .. } | Route::ReviewSummary { .. } => p(300, 600, 86_400, true),
        // A new set is published by a batch job now and then: a TTL, no
        // purge.
        Route::Recommendations { .. } | Route::Popular => p(300, 3_600, 86_400, true),
        Route::Categories => p(300, 600, 86_400, true),
        // Search pages depend on many products: bounded by a short TTL.
        Route::Search => p(30, 60, 3_600, true),
        // Stock moves without catalog events.
        Route::Availability { .. } => p(5, 10, 60, true),
        Route::CartRead { .. } => p(60, 0, 0, false),
        _ => None,
    }
}

/// Query parameters each route's responses depend on; others are dropped
/// from the cache key (so `?utm_source=…` does not split the cache).
fn key_params(route: &Route) -> &'static [&'static str] {
    match route {
        Route::Search => &[
            "q",
            "category",
            "price_min_minor",
            "price_max_minor",
            "sort",
            "offset",
            "limit",
        ],
        Route::Reviews { .. } => &["sort", "limit", "after"],
        Route::Recommendations { .. } => &["limit"],
        Route::Popular => &["region", "category", "limit"],
        _ => &[],
    }
}

/// Longest cache key, in bytes; longer requests are not cached.
pub const MAX_KEY_LEN: usize = 1024;

/// The cache key: path plus the route's parameters, sorted. `None` when the
/// key would be too long (the request goes to the origin uncached).
pub fn cache_key(route: &Route, req: &Request) -> Option<String> {
    let allowed = key_params(route);
    let mut params: Vec<(&str, &str)> = req
        .query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            allowed.contains(&name).then_some((name, value))
        })
        .collect();
    params.sort();
    let mut key = format!("c1:{}", req.path);
    for (i, (name, value)) in params.iter().enumerate() {
        key.push(if i == 0 { '?' } else { '&' });
        key.push_str(name);
        key.push('=');
        key.push_str(value);
    }
    (key.len() <= MAX_KEY_LEN).then_some(key)
}

/// The purge tags of a route's responses: what the catalog change feed
/// names when something they show changes.
pub fn tags(route: &Route, req: &Request) -> Vec<String> {
    match route {
        Route::Product { sku } | Route::Availability { sku } => vec![product_tag(sku)],
        Route::Reviews { sku } | Route::ReviewSummary { sku } => vec![reviews_tag(sku)],
        Route::Categories => vec!["categories".to_owned()],
        Route::Search => {
            // A category-filtered page changes when that category does.
            let category = req
                .query
                .as_deref()
                .unwrap_or_default()
                .split('&')
                .find_map(|p| p.strip_prefix("category="));
            match category {
                Some(slug) => vec![category_tag(slug)],
                None => Vec::new(),
            }
        }
        Route::CartRead { cart } => vec![format!("cart:{cart}")],
        _ => Vec::new(),
    }
}

/// A weak validator for a body: FNV-1a, enough to answer `If-None-Match`.
pub fn etag(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("W/\"{h:016x}\"")
}

/// Whether the request's `If-None-Match` matches `etag`.
pub fn not_modified(req: &Request, etag: &str) -> bool {
    req.header("if-none-match").is_some_and(|v| {
        v.split(',').map(str::trim).any(|t| {
            t == "*" || t == etag || t.trim_start_matches("W/") == etag.trim_start_matches("W/")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(query: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/v1/search".into(),
            query: Some(query.into()),
            ..Default::default()
        }
    }

    #[test]
    fn keys_ignore_order_and_unknown_parameters() {
        let a = cache_key(&Route::Search, &search("q=wool&limit=5&utm_source=x")).unwrap();
        let b = cache_key(&Route::Search, &search("limit=5&q=wool")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, "c1:/v1/search?limit=5&q=wool");
        let c = cache_key(&Route::Search, &search("q=linen&limit=5")).unwrap();
        assert_ne!(a, c);
        assert!(cache_key(&Route::Search, &search(&format!("q={}", "x".repeat(2000)))).is_none());
    }

    #[test]
    fn reviews_are_purged_with_the_regions_tag_and_keyed_by_their_page() {
        let route = Route::Reviews {
            sku: "MUG-1".into(),
        };
        let r = Request {
            method: "GET".into(),
            path: "/v1/products/MUG-1/reviews".into(),
            query: Some("utm=x&sort=helpful&after=ab&limit=5".into()),
            ..Default::default()
        };
        // The tag the region's projection names in its purge events.
        assert_eq!(
            tags(&route, &r),
            vec![regional_api::purge::reviews_tag("MUG-1")]
        );
        assert_eq!(
            cache_key(&route, &r).unwrap(),
            "c1:/v1/products/MUG-1/reviews?after=ab&limit=5&sort=helpful"
        );
        let summary = Route::ReviewSummary {
            sku: "MUG-1".into(),
        };
        assert_eq!(tags(&summary, &r), tags(&route, &r));
        assert!(policy(&summary).unwrap().shared);
    }

    #[test]
    fn tags_and_validators() {
        let r = search("category=kitchen&q=pan");
        assert_eq!(
            tags(&Route::Search, &r),
            vec!["category:kitchen".to_owned()]
        );
        let e = etag(b"{}");
        assert_eq!(e, etag(b"{}"));
        assert_ne!(e, etag(b"[]"));
        let mut r = search("");
        r.headers.push(("if-none-match".into(), e.clone()));
        assert!(not_modified(&r, &e));
        assert!(!not_modified(&r, &etag(b"x")));
        assert!(
            policy(&Route::Search)
                .unwrap()
                .cache_control()
                .starts_with("public, max-age=30")
        );
    }
}
