//! What Meridian's edges and its regional API must agree on, defined once:
//! both sides use these definitions, so they cannot drift apart.
//!
//! - [`headers`]: the header names that cross the boundary;
//! - [`idempotency`]: what an `Idempotency-Key` may be;
//! - [`problem`]: the RFC 9457 problem+json document every error is;
//! - [`delivery`]: what a status says about whether a write was applied,
//!   which decides what an edge may send to another region;
//! - [`session`]: the shopper session token's claims and bounds;
//! - [`purge`]: the purge feed's page, limits and query.

pub mod delivery;
pub mod headers;
pub mod idempotency;
pub mod problem;
pub mod purge;
pub mod session;

pub use delivery::Delivery;
pub use problem::Problem;
