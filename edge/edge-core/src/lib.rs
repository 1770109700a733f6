//! Meridian's portable edge logic. No I/O and no platform SDK: the Spin
//! component, the Cloudflare Worker and the local host give it their
//! capabilities through [`edge::Host`] and convert their HTTP types to
//! [`http::Request`] and [`http::Response`]. Builds for wasm32.
//!
//! - [`classify`]: what a request is and where it must go;
//! - [`policy`] and [`entry`]: cache policy per route (TTL,
//!   stale-while-revalidate, stale-if-error), cache keys, purge tags,
//!   `Cache-Control` / `ETag` / 304, the stored entry;
//! - [`token`]: the cart version token (read-your-writes across POPs);
//! - [`origin`]: region choice from the routing table and the failover rule;
//! - [`ratelimit`]: per-client token buckets;
//! - [`edge`]: the request flow over those;
//! - [`assets`]: the storefront's static files;
//! - `std_host`: clock and nonce for hosts with an OS underneath (not
//!   built for wasm32-unknown-unknown).

pub mod assets;
pub mod classify;
pub mod edge;
pub mod entry;
pub mod http;
pub mod origin;
pub mod planted;
pub mod policy;
pub mod ratelimit;
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub mod std_host;
pub mod token;

pub use edge::{Deferred, Edge, EdgeConfig, Handled, Host, MissingSetting, Outbound};
