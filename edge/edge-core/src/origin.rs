//! Which region a request goes to, from the routing table: a shard's active
//! region (then its next serving standby, once), or the nearest serving
//! region for reads any region can answer.

use regional_api::Delivery;
use topology::ShardId;

use crate::http::Response;
use topology::routing::RoutingTable;

/// At most this many regions are tried for one request.
pub const MAX_ATTEMPTS: usize = 2;

/// Regions to try, in order (base URLs), for `shard`.
pub fn for_shard(table: &RoutingTable, shard: &ShardId) -> Vec<String> {
    let mut out = Vec::with_capacity(MAX_ATTEMPTS);
    if let Some(active) = table.active_region(shard) {
        out.push(active.base_url.clone());
        if let Some(next) = table.next_after(shard, &active.name) {
            out.push(next.base_url.clone());
        }
    }
    out
}

/// Regions to try, nearest serving first (healthy before degraded, the
/// routing table's one rule, which DNS follows too), for a read any region
/// answers.
pub fn nearest(table: &RoutingTable, latitude: f64, longitude: f64) -> Vec<String> {
    table
        .serving_nearest_first(latitude, longitude)
        .into_iter()
        .take(MAX_ATTEMPTS)
        .map(|r| r.base_url.clone())
        .collect()
}

/// A call to an origin that got no answer. Hosts report only what their
/// platform tells them for certain, never what an error message's words
/// suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing was sent: the connection was refused (or never made), so
    /// the request cannot have been applied.
    NotSent,
    /// The request may have reached the origin and its answer was lost
    /// (reset, timeout, or a platform that cannot tell): it may have been
    /// applied.
    Lost,
}

impl Failure {
    pub fn delivery(self) -> Delivery {
        match self {
            Failure::NotSent => Delivery::NotApplied,
            Failure::Lost => Delivery::MaybeApplied,
        }
    }
}

/// What a call's outcome says about whether it was applied: the answer's
/// status read by the contract's one rule, or the failure.
pub fn delivery(outcome: &Result<Response, Failure>) -> Delivery {
    match outcome {
        Ok(response) => regional_api::delivery::of_status(response.status),
        Err(failure) => failure.delivery(),
    }
}

/// Whether a call that ended as `delivery` may be sent to the next region:
/// when it certainly was not applied, or when repeating it is harmless (a
/// read, a write the regions deduplicate by the idempotency key it
/// carries, or one that stores nothing).
pub fn may_resend(delivery: Delivery, safe_to_repeat: bool) -> bool {
    regional_api::delivery::may_resend(delivery, safe_to_repeat)
}
