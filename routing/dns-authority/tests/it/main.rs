//! Integration tests: the authority on real sockets (127.0.0.1, port 0),
//! queried with `dig`, the DNS client operators use.
//!
//! Every test starts its own server, so they run in parallel and one test's
//! routing-table changes never leak into another.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed step is a failed test"
)]

mod answers;
mod config_files;
mod failover;
mod harness;
mod negative;
mod robustness;
mod tcp;
