//! Header names (lower case, as HTTP/2 and the edge's request type use them).

/// A client-chosen key that makes a write apply at most once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The cart's version after a cart write (the consistency token).
pub const CART_VERSION: &str = "x-cart-version";
/// The least catalog version a product read accepts (an edge refilling
/// after a purge asks for at least the version that purged it).
pub const MIN_VERSION: &str = "x-meridian-min-version";
/// The region that answered (every regional response carries it; the edge
/// keeps it with a cached answer and passes it on, so a page can say which
/// region served it).
pub const REGION: &str = "x-meridian-region";
/// Set by the edge on an answer for a shard that came from a region other
/// than the shard's home (the home is down or drained and a standby
/// serves): its value is the home region. The storefront tells the
/// shopper their region is failing over and their order is safe.
pub const FAILOVER: &str = "x-meridian-failover";
