//! The purge feed (`GET /v1/purge`): catalog change events an edge applies
//! to its cache. The region serves pages of this shape within these
//! limits; the edge asks within them and reads this shape.

/// The route.
pub const PATH: &str = "/v1/purge";
/// Most events one page holds (and an edge asks for).
pub const MAX_LIMIT: usize = 1_000;
/// Longest a long poll of the feed is held.
pub const MAX_WAIT_MS: u64 = 30_000;

/// The purge tag of a product's own answers (the product, its stock).
pub fn product_tag(sku: &str) -> String {
    format!("product:{sku}")
}

/// The purge tag of a category's answers.
pub fn category_tag(slug: &str) -> String {
    format!("category:{slug}")
}

/// The purge tag of a product's reviews and review summary.
pub fn reviews_tag(sku: &str) -> String {
    format!("reviews:{sku}")
}

/// One change: the purge tags it touches and the catalog version it made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub tags: Vec<String>,
    pub version: u64,
}

/// A page of the feed, as the edge reads it (the region's page may carry
/// more fields).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Page {
    pub events: Vec<Event>,
    /// Pass as `after` for the next page.
    pub cursor: String,
    /// The cursor asked for is older than the feed keeps: drop everything
    /// cached, then go on from `cursor`.
    pub reset: bool,
}

/// The query of a long poll after `cursor`, waiting at most `wait_ms`
/// (capped at [`MAX_WAIT_MS`]), for a full page.
pub fn query(cursor: &str, wait_ms: u64) -> String {
    format!(
        "after={cursor}&limit={MAX_LIMIT}&wait_ms={}",
        wait_ms.min(MAX_WAIT_MS)
    )
}
