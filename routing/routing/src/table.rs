//! The region table: every region's probe-driven health and drain flag,
//! each shard's active region derived from them, a version that increases
//! on every routing change, and a bounded timeline of changes. Changes are
//! published on a `watch` channel that the API's long poll and the DNS
//! authority read.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::watch;
use topology::routing::{Health, RegionStatus, RoutingTable, ShardRoute};
use topology::{RegionId, ShardId, Topology};

use crate::health::{HealthPolicy, ProbeOutcome, RegionHealth};

/// Timeline entries kept at most.
pub const MAX_EVENTS: usize = 1_000;

/// A region as configured: where to probe it and what DNS gives out.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionEndpoint {
    pub name: RegionId,
    pub base_url: String,
    pub readyz_url: String,
    pub addresses: Vec<IpAddr>,
    /// The probe's round trip at rest from where the routing layer runs;
    /// only latency above it can make the endpoint degraded.
    pub baseline_ms: f64,
}

/// An edge POP as configured: a region-like endpoint with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct PopEndpoint {
    /// `readyz_url` is the POP's health route.
    pub endpoint: RegionEndpoint,
    pub latitude: f64,
    pub longitude: f64,
}

/// One change in the timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Unix time, milliseconds.
    pub at_ms: u64,
    /// The table version this change produced.
    pub version: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RegionHealth {
        region: RegionId,
        from: Health,
        to: Health,
    },
    ShardMoved {
        shard: ShardId,
        from: Option<RegionId>,
        to: Option<RegionId>,
    },
    PopHealth {
        pop: RegionId,
        from: Health,
        to: Health,
    },
}

#[derive(Debug)]
struct RegionState {
    endpoint: RegionEndpoint,
    latitude: f64,
    longitude: f64,
    probes: RegionHealth,
    drained: bool,
}

impl RegionState {
    fn health(&self) -> Health {
        if self.drained {
            Health::Drained
        } else {
            self.probes.health()
        }
    }
}

#[derive(Debug)]
struct PopState {
    endpoint: PopEndpoint,
    probes: RegionHealth,
}

#[derive(Debug)]
struct State {
    regions: Vec<RegionState>,
    pops: Vec<PopState>,
    shards: Vec<(ShardId, RegionId, Vec<RegionId>)>,
    version: u64,
    events: VecDeque<Event>,
}

/// Errors from table operations.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("unknown region {region}")]
    UnknownRegion { region: RegionId },
    #[error("region {region} of the topology has no endpoint configured")]
    MissingEndpoint { region: RegionId },
    #[error("unknown POP {pop}")]
    UnknownPop { pop: RegionId },
    #[error("POP {pop} is configured twice")]
    DuplicatePop { pop: RegionId },
}

/// The shared region table.
#[derive(Debug, Clone)]
pub struct RegionTable {
    state: Arc<Mutex<State>>,
    policy: HealthPolicy,
    published: watch::Sender<Arc<RoutingTable>>,
    /// The routing layer's own metrics registry.
    metrics: crate::metrics::Metrics,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RegionTable {
    /// A table for `topology` with every region down until probed.
    pub fn new(
        topology: &Topology,
        endpoints: Vec<RegionEndpoint>,
        policy: HealthPolicy,
    ) -> Result<Self, TableError> {
        let mut regions = Vec::new();
        for region in topology.regions() {
            let endpoint = endpoints
                .iter()
                .find(|e| &e.name == region.name())
                .cloned()
                .ok_or_else(|| TableError::MissingEndpoint {
                    region: region.name().clone(),
                })?;
            let probes = RegionHealth::new().with_baseline(endpoint.baseline_ms);
            regions.push(RegionState {
                endpoint,
                latitude: region.latitude(),
                longitude: region.longitude(),
                probes,
                drained: false,
            });
        }
        if let Some(extra) = endpoints
            .iter()
            .find(|e| topology.region(&e.name).is_none())
        {
            return Err(TableError::UnknownRegion {
                region: extra.name.clone(),
            });
        }
        let shards = topology
            .shards()
            .iter()
            .map(|s| (s.id().clone(), s.home().clone(), s.standbys().to_vec()))
            .collect();
        let state = State {
            regions,
            pops: Vec::new(),
            shards,
            version: 1,
            events: VecDeque::new(),
        };
        let (published, _) = watch::channel(Arc::new(snapshot(&state)));
        let metrics = crate::metrics::Metrics::default();
        metrics.record_table(&snapshot(&state));
        Ok(RegionTable {
            state: Arc::new(Mutex::new(state)),
            policy: policy.bounded(),
            published,
            metrics,
        })
    }

    /// The same table, also probing `pops` (for the storefront's DNS
    /// name). Call before sharing it.
    pub fn with_pops(self, pops: Vec<PopEndpoint>) -> Result<Self, TableError> {
        {
            let mut state = self.state.lock();
            for pop in pops {
                if state
                    .pops
                    .iter()
                    .any(|p| p.endpoint.endpoint.name == pop.endpoint.name)
                {
                    return Err(TableError::DuplicatePop {
                        pop: pop.endpoint.name,
                    });
                }
                let probes = RegionHealth::new().with_baseline(pop.endpoint.baseline_ms);
                state.pops.push(PopState {
                    endpoint: pop,
                    probes,
                });
            }
            self.published.send_replace(Arc::new(snapshot(&state)));
        }
        Ok(self)
    }

    /// The POPs to probe.
    pub fn pop_endpoints(&self) -> Vec<PopEndpoint> {
        self.state
            .lock()
            .pops
            .iter()
            .map(|p| p.endpoint.clone())
            .collect()
    }

    /// Feeds a probe outcome for a POP.
    pub fn observe_pop(&self, pop: &RegionId, outcome: ProbeOutcome) -> Result<(), TableError> {
        let mut state = self.state.lock();
        let row = state
            .pops
            .iter_mut()
            .find(|p| &p.endpoint.endpoint.name == pop)
            .ok_or_else(|| TableError::UnknownPop { pop: pop.clone() })?;
        let from = row.probes.health();
        if row.probes.observe(outcome, &self.policy).is_none() {
            return Ok(());
        }
        let to = row.probes.health();
        if from == to {
            return Ok(());
        }
        state.version += 1;
        let (at_ms, version) = (now_ms(), state.version);
        let kind = EventKind::PopHealth {
            pop: pop.clone(),
            from,
            to,
        };
        tracing::info!(?kind, version, "routing change");
        state.events.push_back(Event {
            at_ms,
            version,
            kind,
        });
        while state.events.len() > MAX_EVENTS {
            state.events.pop_front();
        }
        self.metrics.record_table(&snapshot(&state));
        self.published.send_replace(Arc::new(snapshot(&state)));
        Ok(())
    }

    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// The routing layer's metrics (probes, health, table version).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The regions to probe.
    pub fn endpoints(&self) -> Vec<RegionEndpoint> {
        self.state
            .lock()
            .regions
            .iter()
            .map(|r| r.endpoint.clone())
            .collect()
    }

    /// The table now, with the latest probe latencies.
    pub fn snapshot(&self) -> RoutingTable {
        snapshot(&self.state.lock())
    }

    /// A receiver that sees every routing change (not latency-only ones).
    pub fn subscribe(&self) -> watch::Receiver<Arc<RoutingTable>> {
        self.published.subscribe()
    }

    /// The newest `limit` timeline entries, oldest first.
    pub fn events(&self, limit: usize) -> Vec<Event> {
        let state = self.state.lock();
        let skip = state.events.len().saturating_sub(limit);
        state.events.iter().skip(skip).cloned().collect()
    }

    /// Feeds a probe outcome for `region`.
    pub fn observe(&self, region: &RegionId, outcome: ProbeOutcome) -> Result<(), TableError> {
        self.change(region, |r, policy| {
            r.probes.observe(outcome, policy).is_some()
        })
    }

    /// Takes a region out of (or back into) traffic.
    pub fn set_drained(&self, region: &RegionId, drained: bool) -> Result<(), TableError> {
        self.change(region, |r, _| {
            std::mem::replace(&mut r.drained, drained) != drained
        })
    }

    fn change(
        &self,
        region: &RegionId,
        apply: impl FnOnce(&mut RegionState, &HealthPolicy) -> bool,
    ) -> Result<(), TableError> {
        let mut state = self.state.lock();
        let before_routes = routes(&state);
        let index = state
            .regions
            .iter()
            .position(|r| &r.endpoint.name == region)
            .ok_or_else(|| TableError::UnknownRegion {
                region: region.clone(),
            })?;
        let from = state.regions[index].health();
        if !apply(&mut state.regions[index], &self.policy) {
            return Ok(());
        }
        let to = state.regions[index].health();
        if from == to {
            return Ok(());
        }
        state.version += 1;
        let (at_ms, version) = (now_ms(), state.version);
        let mut events = vec![EventKind::RegionHealth {
            region: region.clone(),
            from,
            to,
        }];
        for (before, after) in before_routes.iter().zip(routes(&state)) {
            if before.active != after.active {
                events.push(EventKind::ShardMoved {
                    shard: after.shard.clone(),
                    from: before.active.clone(),
                    to: after.active.clone(),
                });
            }
        }
        for kind in events {
            tracing::info!(?kind, version, "routing change");
            state.events.push_back(Event {
                at_ms,
                version,
                kind,
            });
        }
        while state.events.len() > MAX_EVENTS {
            state.events.pop_front();
        }
        self.metrics.record_table(&snapshot(&state));
        self.published.send_replace(Arc::new(snapshot(&state)));
        Ok(())
    }
}

/// The active region of a shard: home if it serves, else the first healthy
/// standby, else the first degraded one; never a drained or down region.
fn active(state: &State, home: &RegionId, standbys: &[RegionId]) -> Option<RegionId> {
    let health = |name: &RegionId| {
        state
            .regions
            .iter()
            .find(|r| &r.endpoint.name == name)
            .map_or(Health::Down, RegionState::health)
    };
    if health(home).serves() {
        return Some(home.clone());
    }
    [Health::Healthy, Health::Degraded]
        .iter()
        .find_map(|want| standbys.iter().find(|s| health(s) == *want))
        .cloned()
}

fn routes(state: &State) -> Vec<ShardRoute> {
    state
        .shards
        .iter()
        .map(|(shard, home, standbys)| ShardRoute {
            shard: shard.clone(),
            home: home.clone(),
            standbys: standbys.clone(),
            active: active(state, home, standbys),
        })
        .collect()
}

fn snapshot(state: &State) -> RoutingTable {
    RoutingTable {
        version: state.version,
        regions: state
            .regions
            .iter()
            .map(|r| RegionStatus {
                name: r.endpoint.name.clone(),
                latitude: r.latitude,
                longitude: r.longitude,
                health: r.health(),
                base_url: r.endpoint.base_url.clone(),
                addresses: r.endpoint.addresses.clone(),
                probe_latency_ms: r.probes.latency_ms(),
            })
            .collect(),
        shards: routes(state),
        pops: state
            .pops
            .iter()
            .map(|p| RegionStatus {
                name: p.endpoint.endpoint.name.clone(),
                latitude: p.endpoint.latitude,
                longitude: p.endpoint.longitude,
                health: p.probes.health(),
                base_url: p.endpoint.endpoint.base_url.clone(),
                addresses: p.endpoint.endpoint.addresses.clone(),
                probe_latency_ms: p.probes.latency_ms(),
            })
            .collect(),
    }
}
