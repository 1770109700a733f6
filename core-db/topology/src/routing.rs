//! The routing table's wire shape: what the routing layer serves at
//! `GET /v1/table` and what edges and the DNS authority read. Defined here,
//! once, so producer and consumers agree by construction.

use std::net::IpAddr;

use crate::{RegionId, ShardId};

/// A region's state in the routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Probes succeed within the latency threshold.
    Healthy,
    /// Probes succeed, but slowly or with errors above the threshold: still
    /// serving, never preferred over a healthy region.
    Degraded,
    /// Probes fail: gets no traffic.
    Down,
    /// Taken out by an operator: gets no traffic whatever its probes say.
    Drained,
}

impl Health {
    /// Whether the region may be given traffic.
    pub fn serves(self) -> bool {
        matches!(self, Health::Healthy | Health::Degraded)
    }
}

/// One region's row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionStatus {
    pub name: RegionId,
    pub latitude: f64,
    pub longitude: f64,
    pub health: Health,
    /// Where the region's HTTP API answers (e.g. `http://127.0.0.1:8081`).
    pub base_url: String,
    /// Addresses DNS gives out for the region.
    pub addresses: Vec<IpAddr>,
    /// Recent probe latency (moving average), if any probe answered.
    pub probe_latency_ms: Option<f64>,
}

/// Where one shard is served now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRoute {
    pub shard: ShardId,
    pub home: RegionId,
    pub standbys: Vec<RegionId>,
    /// The region serving the shard: its home if that serves, else the
    /// first serving standby (healthy before degraded); `None` when no
    /// candidate serves.
    pub active: Option<RegionId>,
}

/// Longest the routing API holds a `GET /v1/table/watch` long poll (and an
/// edge asks for).
pub const MAX_WATCH_MS: u64 = 30_000;

/// A POP's row: the same shape as a region's (its name follows the same
/// rules), probed on its `/healthz`.
pub type PopStatus = RegionStatus;

/// The whole table. `version` increases on every change.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingTable {
    pub version: u64,
    pub regions: Vec<RegionStatus>,
    pub shards: Vec<ShardRoute>,
    /// The edge POPs the routing layer probes (for the storefront's DNS
    /// name); empty when it knows none.
    #[serde(default)]
    pub pops: Vec<PopStatus>,
}

impl RoutingTable {
    pub fn region(&self, name: &RegionId) -> Option<&RegionStatus> {
        self.regions.iter().find(|r| &r.name == name)
    }

    pub fn shard(&self, shard: &ShardId) -> Option<&ShardRoute> {
        self.shards.iter().find(|s| &s.shard == shard)
    }

    /// The region serving `shard` now.
    pub fn active_region(&self, shard: &ShardId) -> Option<&RegionStatus> {
        self.region(self.shard(shard)?.active.as_ref()?)
    }

    /// Where a write for `shard` goes after `failed` did not answer: the
    /// next serving candidate after it (home, then standbys in order).
    pub fn next_after(&self, shard: &ShardId, failed: &RegionId) -> Option<&RegionStatus> {
        let route = self.shard(shard)?;
        std::iter::once(&route.home)
            .chain(&route.standbys)
            .skip_while(|r| *r != failed)
            .skip(1)
            .filter_map(|r| self.region(r))
            .find(|r| r.health.serves())
    }

    /// Every serving region, healthy before degraded, each group nearest
    /// to a point first: the one order in which the DNS authority answers
    /// `api` and an edge tries regions for reads any region answers.
    pub fn serving_nearest_first(&self, latitude: f64, longitude: f64) -> Vec<&RegionStatus> {
        serving_nearest_first(&self.regions, latitude, longitude)
    }

    /// The serving region nearest to a point, healthy before degraded.
    pub fn nearest_serving(&self, latitude: f64, longitude: f64) -> Option<&RegionStatus> {
        self.serving_nearest_first(latitude, longitude)
            .into_iter()
            .next()
    }

    pub fn pop(&self, name: &RegionId) -> Option<&PopStatus> {
        self.pops.iter().find(|p| &p.name == name)
    }

    /// Every region and every POP healthy: the platform at rest, where a
    /// drill starts and a test's first shopper may shop.
    pub fn all_healthy(&self) -> bool {
        self.regions
            .iter()
            .chain(&self.pops)
            .all(|r| r.health == Health::Healthy)
    }

    /// The serving POP nearest to a point, healthy before degraded, by the
    /// same rule as regions: what the storefront's DNS name answers.
    pub fn nearest_serving_pop(&self, latitude: f64, longitude: f64) -> Option<&PopStatus> {
        serving_nearest_first(&self.pops, latitude, longitude)
            .into_iter()
            .next()
    }
}

/// Serving rows, healthy before degraded, each group nearest first.
fn serving_nearest_first(
    rows: &[RegionStatus],
    latitude: f64,
    longitude: f64,
) -> Vec<&RegionStatus> {
    let mut serving: Vec<(bool, f64, &RegionStatus)> = rows
        .iter()
        .filter(|r| r.health.serves())
        .map(|r| {
            (
                r.health != Health::Healthy,
                great_circle_km(latitude, longitude, r.latitude, r.longitude),
                r,
            )
        })
        .collect();
    serving.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    serving.into_iter().map(|(_, _, r)| r).collect()
}

/// Great-circle distance in kilometres (haversine, mean Earth radius).
pub fn great_circle_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6_371.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}
