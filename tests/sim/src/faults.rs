//! The faults a seed chooses, their schedule, and the routing layer's
//! invariant watched while they happen.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use topology::Topology;
use topology::routing::RoutingTable;

use crate::world::{Hooks, POPS, Trace, all_hosts, edge_host, region_host, store_host};

/// One fault: what, on what, from when, until when (simulated time).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    pub kind: Kind,
    pub from: Duration,
    pub until: Duration,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// No message crosses between `a` and `b` (either way, or only from
    /// `a` to `b`).
    Partition {
        a: String,
        b: String,
        oneway: bool,
    },
    /// Messages between `a` and `b` are lost at this rate.
    Loss {
        a: String,
        b: String,
        rate: f64,
    },
    /// Messages between `a` and `b` take this long more.
    Latency {
        a: String,
        b: String,
        extra: Duration,
    },
    /// The host's process dies (its memory lost) and starts again.
    Crash {
        host: String,
    },
    /// The host's clock runs this far ahead (or behind).
    Skew {
        host: String,
        skew_ms: i64,
    },
    /// The payment provider times out (after taking effect) this many
    /// calls, or declines this many authorizations.
    GatewayTimeouts {
        calls: u32,
    },
    GatewayDeclines {
        calls: u32,
    },
    /// An operator drains the region.
    Drain {
        region: String,
    },
    /// The region's answers to the POPs are lost (requests still arrive and
    /// are applied).
    Unanswered {
        region: String,
    },
    /// Every commit the regions send the storage host reports an unknown
    /// outcome, applied or not (a cluster losing its answers).
    UnknownCommits {
        store: String,
        applied: bool,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = format!("{}–{} ms", self.from.as_millis(), self.until.as_millis());
        match &self.kind {
            Kind::Partition { a, b, oneway } => {
                let arrow = if *oneway { "→" } else { "↔" };
                write!(f, "partition {a} {arrow} {b}, {span}")
            }
            Kind::Loss { a, b, rate } => write!(f, "loss {:.0}% {a} ↔ {b}, {span}", rate * 100.0),
            Kind::Latency { a, b, extra } => {
                write!(f, "latency +{} ms {a} ↔ {b}, {span}", extra.as_millis())
            }
            Kind::Crash { host } => write!(f, "crash {host}, restarted after {span}"),
            Kind::Skew { host, skew_ms } => {
                write!(f, "clock skew {skew_ms:+} ms on {host}, {span}")
            }
            Kind::GatewayTimeouts { calls } => {
                write!(f, "payment provider times out {calls} calls, from {span}")
            }
            Kind::GatewayDeclines { calls } => {
                write!(
                    f,
                    "payment provider declines {calls} authorizations, from {span}"
                )
            }
            Kind::Drain { region } => write!(f, "drain {region}, {span}"),
            Kind::Unanswered { region } => {
                write!(f, "answers of {region} to the POPs lost, {span}")
            }
            Kind::UnknownCommits { store, applied } => write!(
                f,
                "commits to {store} with unknown outcome ({}), {span}",
                if *applied { "applied" } else { "not applied" }
            ),
        }
    }
}

/// The links that carry traffic: edge–region, edge–routing,
/// routing–region, region–storage host.
fn links(topology: &Topology) -> Vec<(String, String)> {
    let regions: Vec<String> = topology
        .regions()
        .iter()
        .map(|r| region_host(r.name().as_str()))
        .collect();
    let mut stores: Vec<String> = topology
        .shards()
        .iter()
        .map(|s| store_host(s.id().as_str()))
        .collect();
    stores.push(store_host("pay"));
    let mut links = Vec::new();
    for (pop, _, _) in POPS {
        links.push((edge_host(pop), "routing".to_owned()));
        for region in &regions {
            links.push((edge_host(pop), region.clone()));
        }
    }
    for region in &regions {
        links.push(("routing".to_owned(), region.clone()));
        for store in &stores {
            links.push((region.clone(), store.clone()));
        }
    }
    links
}

/// The seed's faults: two to five, each starting in the first 20 s of the
/// shopping and lasting 0.5 to 8 s.
pub fn plan(rng: &mut StdRng, topology: &Topology, start: Duration) -> Vec<Fault> {
    let hosts = all_hosts(topology);
    let regions: Vec<String> = topology
        .regions()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    let links = links(topology);
    let pick = |rng: &mut StdRng, from: &[String]| from[rng.random_range(0..from.len())].clone();
    // A link that carries traffic, either way round.
    let pair = |rng: &mut StdRng| {
        let (a, b) = links[rng.random_range(0..links.len())].clone();
        if rng.random_bool(0.5) { (a, b) } else { (b, a) }
    };
    let n = rng.random_range(2..=5);
    let mut faults = Vec::with_capacity(n);
    for _ in 0..n {
        let from = start + Duration::from_millis(rng.random_range(500..20_000));
        let until = from + Duration::from_millis(rng.random_range(500..8_000));
        // Weights: partitions and crashes most, then unknown commits.
        let kind = match rng.random_range(0..16) {
            0 | 1 => {
                let (a, b) = pair(rng);
                Kind::Partition {
                    a,
                    b,
                    oneway: false,
                }
            }
            2 | 3 => {
                let (a, b) = pair(rng);
                Kind::Partition { a, b, oneway: true }
            }
            10 => {
                let (a, b) = pair(rng);
                Kind::Loss {
                    a,
                    b,
                    rate: rng.random_range(0.05..0.5),
                }
            }
            11 => {
                let (a, b) = pair(rng);
                Kind::Latency {
                    a,
                    b,
                    extra: Duration::from_millis(rng.random_range(50..2_000)),
                }
            }
            4 | 12 => {
                // A region or a storage host (or the routing layer).
                let crashable: Vec<String> = hosts
                    .iter()
                    .filter(|h| {
                        h.starts_with("region-") || h.starts_with("store-") || *h == "routing"
                    })
                    .cloned()
                    .collect();
                Kind::Crash {
                    host: pick(rng, &crashable),
                }
            }
            5 => {
                let clocked: Vec<String> = hosts
                    .iter()
                    .filter(|h| h.starts_with("region-") || h.starts_with("edge-"))
                    .cloned()
                    .collect();
                Kind::Skew {
                    host: pick(rng, &clocked),
                    skew_ms: rng.random_range(-30_000..30_000),
                }
            }
            6 => Kind::GatewayTimeouts {
                calls: rng.random_range(1..4),
            },
            7 => Kind::GatewayDeclines {
                calls: rng.random_range(1..4),
            },
            8 => Kind::Drain {
                region: pick(rng, &regions),
            },
            14 | 15 => Kind::Unanswered {
                region: region_host(&pick(rng, &regions)),
            },
            _ => {
                let shard = &topology.shards()[rng.random_range(0..topology.shards().len())];
                Kind::UnknownCommits {
                    store: store_host(shard.id().as_str()),
                    applied: rng.random_bool(0.75),
                }
            }
        };
        let fault = Fault { kind, from, until };
        // Drawn and dropped (the draws of every other fault stay as they
        // were): one that acts on what another acts on at the same time.
        if !faults.iter().any(|f| fault.overlaps(f)) {
            faults.push(fault);
        }
    }
    faults.sort_by_key(|f| f.from);
    faults
}

impl Kind {
    /// What the fault acts on: two faults on one thing at once would undo
    /// each other (the first to end would restart a host, repair a link
    /// or reset a clock that the other still holds).
    fn acts_on(&self) -> Vec<String> {
        let link = |a: &str, b: &str| {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            format!("link {a} {b}")
        };
        match self {
            Kind::Partition { a, b, .. } | Kind::Loss { a, b, .. } | Kind::Latency { a, b, .. } => {
                vec![link(a, b)]
            }
            Kind::Crash { host } => vec![format!("host {host}")],
            Kind::Skew { host, .. } => vec![format!("clock {host}")],
            Kind::GatewayTimeouts { .. } | Kind::GatewayDeclines { .. } => Vec::new(),
            Kind::Drain { region } => vec![format!("drain {region}")],
            Kind::Unanswered { region } => POPS
                .iter()
                .map(|(pop, _, _)| link(region, &edge_host(pop)))
                .collect(),
            Kind::UnknownCommits { store, .. } => vec![format!("commits {store}")],
        }
    }
}

impl Fault {
    /// Whether the two act on one thing at overlapping (or touching)
    /// times.
    pub fn overlaps(&self, other: &Fault) -> bool {
        if self.from > other.until || other.from > self.until {
            return false;
        }
        let theirs = other.kind.acts_on();
        self.kind.acts_on().iter().any(|r| theirs.contains(r))
    }
}

/// Where each fault stands.
#[derive(Debug)]
pub struct Schedule {
    faults: Vec<Fault>,
    /// Per fault: started, ended.
    state: Vec<(bool, bool)>,
    /// Each link's latency at rest (the geography's), to put back after a
    /// latency fault.
    base: BTreeMap<(String, String), Duration>,
}

impl Schedule {
    pub fn new(faults: Vec<Fault>, base: BTreeMap<(String, String), Duration>) -> Schedule {
        let state = vec![(false, false); faults.len()];
        Schedule {
            faults,
            state,
            base,
        }
    }

    /// The link's latency at rest.
    fn base_latency(&self, a: &str, b: &str) -> Duration {
        self.base
            .get(&(a.to_owned(), b.to_owned()))
            .or_else(|| self.base.get(&(b.to_owned(), a.to_owned())))
            .copied()
            .unwrap_or(Duration::from_millis(1))
    }

    pub fn is_over(&self) -> bool {
        self.state.iter().all(|(_, ended)| *ended)
    }

    /// Region crashes in force: (host, since).
    pub fn crashed_regions(&self, now: Duration) -> Vec<(String, Duration)> {
        self.active(now)
            .filter_map(|f| match &f.kind {
                Kind::Crash { host } if host.starts_with("region-") => Some((host.clone(), f.from)),
                _ => None,
            })
            .collect()
    }

    /// Regions drained now.
    pub fn drained(&self, now: Duration) -> Vec<String> {
        self.active(now)
            .filter_map(|f| match &f.kind {
                Kind::Drain { region } => Some(region.clone()),
                _ => None,
            })
            .collect()
    }

    fn active(&self, now: Duration) -> impl Iterator<Item = &Fault> {
        self.faults
            .iter()
            .zip(&self.state)
            .filter(move |(f, (started, ended))| *started && !*ended && f.from <= now)
            .map(|(f, _)| f)
    }

    /// Starts and ends what is due at the simulation's time.
    pub fn apply_due(&mut self, sim: &mut turmoil::Sim<'_>, hooks: &Hooks<'_>, trace: &Trace) {
        let now = sim.elapsed();
        for i in 0..self.faults.len() {
            let (started, ended) = self.state[i];
            let fault = self.faults[i].clone();
            if !started && fault.from <= now {
                self.state[i].0 = true;
                trace.push(now, format!("fault on: {fault}"));
                self.start(sim, hooks, &fault.kind);
            }
            if let (Kind::Drain { region }, true, false) = (&fault.kind, self.state[i].0, ended) {
                // Held on whichever table routing has now (a restarted
                // routing layer starts from its config, undrained).
                if let (Some(table), Ok(region)) = (hooks.table.lock().as_ref(), region.parse()) {
                    let _ = table.set_drained(&region, true);
                }
            }
            if self.state[i].0 && !ended && fault.until <= now {
                self.state[i].1 = true;
                trace.push(now, format!("fault off: {fault}"));
                self.end(sim, hooks, &fault.kind);
            }
        }
    }

    /// Ends every fault still on.
    pub fn heal(&mut self, sim: &mut turmoil::Sim<'_>, hooks: &Hooks<'_>, trace: &Trace) {
        let now = sim.elapsed();
        for i in 0..self.faults.len() {
            if !self.state[i].1 {
                let fault = self.faults[i].clone();
                if self.state[i].0 {
                    trace.push(now, format!("fault off: {fault}"));
                    self.end(sim, hooks, &fault.kind);
                }
                self.state[i] = (true, true);
            }
        }
    }

    fn start(&mut self, sim: &mut turmoil::Sim<'_>, hooks: &Hooks<'_>, kind: &Kind) {
        match kind {
            Kind::Partition { a, b, oneway } => {
                if *oneway {
                    sim.partition_oneway(a.as_str(), b.as_str());
                } else {
                    sim.partition(a.as_str(), b.as_str());
                }
            }
            Kind::Loss { a, b, rate } => sim.set_link_fail_rate(a.as_str(), b.as_str(), *rate),
            Kind::Latency { a, b, extra } => {
                let base = self.base_latency(a, b);
                sim.set_link_latency(a.as_str(), b.as_str(), base + *extra);
            }
            Kind::Crash { host } => {
                sim.crash(host.as_str());
                if host == "routing" {
                    *hooks.table.lock() = None;
                }
                if let Some(store) = hooks.stores.get(host) {
                    store.crash();
                }
            }
            Kind::Skew { host, skew_ms } => {
                if let Some(clock) = hooks.clocks.get(host) {
                    clock
                        .skew_ms
                        .store(*skew_ms, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Kind::GatewayTimeouts { calls } => hooks.gateway.force_timeouts(*calls),
            Kind::GatewayDeclines { calls } => hooks.gateway.decline_authorizations(*calls),
            Kind::Drain { .. } => {}
            Kind::Unanswered { region } => {
                for (pop, _, _) in POPS {
                    sim.partition_oneway(region.as_str(), edge_host(pop).as_str());
                }
            }
            Kind::UnknownCommits { store, applied } => {
                if let Some(faults) = hooks.commit_faults.get(store) {
                    // Every commit of the window (the count outlasts it).
                    if *applied {
                        faults.unknown_after_apply(u32::MAX);
                    } else {
                        faults.unknown_not_applied(u32::MAX);
                    }
                }
            }
        }
    }

    fn end(&mut self, sim: &mut turmoil::Sim<'_>, hooks: &Hooks<'_>, kind: &Kind) {
        match kind {
            Kind::Partition { a, b, oneway } => {
                if *oneway {
                    sim.repair_oneway(a.as_str(), b.as_str());
                } else {
                    sim.repair(a.as_str(), b.as_str());
                }
            }
            Kind::Loss { a, b, .. } => sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0),
            Kind::Latency { a, b, .. } => {
                sim.set_link_latency(a.as_str(), b.as_str(), self.base_latency(a, b));
            }
            Kind::Crash { host } => sim.bounce(host.as_str()),
            Kind::Skew { host, .. } => {
                if let Some(clock) = hooks.clocks.get(host) {
                    clock.skew_ms.store(0, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Kind::GatewayTimeouts { .. } | Kind::GatewayDeclines { .. } => {}
            Kind::Unanswered { region } => {
                for (pop, _, _) in POPS {
                    sim.repair_oneway(region.as_str(), edge_host(pop).as_str());
                }
            }
            Kind::UnknownCommits { store, .. } => {
                if let Some(faults) = hooks.commit_faults.get(store) {
                    faults.clear();
                }
            }
            Kind::Drain { region } => {
                if let (Some(table), Ok(region)) = (hooks.table.lock().as_ref(), region.parse()) {
                    let _ = table.set_drained(&region, false);
                }
            }
        }
    }
}

/// What the simulator's stepping adds to a bound on simulated time.
const STEP_SLACK_MS: u64 = 2 * crate::world::TICK_MS;

/// Watches the routing table while faults happen: no shard's active region
/// is a drained one, nor a crashed one later than fall × interval +
/// timeout after the crash.
#[derive(Debug)]
pub struct RoutingMonitor {
    bound: Duration,
    violations: Vec<String>,
    observed: u64,
}

impl RoutingMonitor {
    pub fn new(policy: routing::health::HealthPolicy) -> RoutingMonitor {
        RoutingMonitor {
            // Plus the simulator's step: a timer fires in the step that
            // passes it, and the table is read after the step.
            bound: Duration::from_millis(
                u64::from(policy.fall) * policy.interval_ms + policy.timeout_ms + STEP_SLACK_MS,
            ),
            violations: Vec::new(),
            observed: 0,
        }
    }

    /// The bound a crashed region may still be routed to after its crash.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    pub fn observe(&mut self, now: Duration, table: &RoutingTable, schedule: &Schedule) {
        self.observed += 1;
        let drained = schedule.drained(now);
        let crashed = schedule.crashed_regions(now);
        for route in &table.shards {
            let Some(active) = &route.active else {
                continue;
            };
            let name = active.to_string();
            if drained.contains(&name) {
                self.note(format!(
                    "{} ms: shard {} routed to drained {name}",
                    now.as_millis(),
                    route.shard
                ));
            }
            if let Some((_, since)) = crashed.iter().find(|(host, _)| *host == region_host(&name))
                && now > *since + self.bound
            {
                self.note(format!(
                    "{} ms: shard {} routed to {name}, crashed at {} ms",
                    now.as_millis(),
                    route.shard,
                    since.as_millis()
                ));
            }
        }
    }

    fn note(&mut self, violation: String) {
        if self.violations.len() < 20 {
            self.violations.push(violation);
        }
    }

    pub fn check(&self) -> commerce::invariants::Check {
        commerce::invariants::Check {
            name: "routing: no shard at a drained region, nor at a crashed one past fall × interval + timeout".into(),
            expected: format!("0 violations (bound {} ms)", self.bound.as_millis()),
            found: if self.violations.is_empty() {
                format!("0 in {} observations", self.observed)
            } else {
                self.violations.join("; ")
            },
            holds: self.violations.is_empty(),
        }
    }
}
