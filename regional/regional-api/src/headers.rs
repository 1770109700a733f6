//! Header names (lower case, as HTTP/2 and the edge's request type use them).

/// A client-chosen key that makes a write apply at most once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The cart's version after a cart write (the consistency token).
pub const CART_VERSION: &str = "x-cart-version";
/// The least catalog version a product read accepts (an edge refilling
/// after a purge asks for at least the version that purged it).
pub const MIN_VERSION: &str = "x-meridian-min-version";
