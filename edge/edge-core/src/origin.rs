//! Which region a request goes to, from the routing table: a shard's active
//! region (then its next serving standby, once), or the nearest serving
//! region for reads any region can answer.

use topology::ShardId;
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

/// Regions to try, nearest serving first, for a read any region answers.
pub fn nearest(table: &RoutingTable, latitude: f64, longitude: f64) -> Vec<String> {
    let mut serving: Vec<_> = table
        .regions
        .iter()
        .filter(|r| r.health.serves())
        .map(|r| {
            let km =
                topology::routing::great_circle_km(latitude, longitude, r.latitude, r.longitude);
            // Healthy before degraded, then by distance.
            (
                r.health != topology::routing::Health::Healthy,
                km,
                r.base_url.clone(),
            )
        })
        .collect();
    serving.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    serving
        .into_iter()
        .take(MAX_ATTEMPTS)
        .map(|(_, _, url)| url)
        .collect()
}

/// What happened to a call to an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection was refused or reset before the request was sent.
    Connect,
    /// No answer in time: the request may have been applied.
    Timeout,
    /// The origin answered 503 (not ready, or shedding load).
    Unavailable,
}

/// Whether a failed call may be sent to the next region. A read always
/// may. A write may when it cannot have been applied (connect error, 503),
/// or when it carries an idempotency key the regions deduplicate by (a
/// timeout's outcome is unknown, and the key makes the retry harmless).
pub fn may_retry(failure: Failure, is_write: bool, has_idempotency_key: bool) -> bool {
    !is_write || has_idempotency_key || matches!(failure, Failure::Connect | Failure::Unavailable)
}
