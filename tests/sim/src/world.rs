//! One simulated run: the whole platform on turmoil, decided by one seed.
//!
//! Hosts: a storage host per shard and one for the payment provider's books
//! (`store-us`, `store-eu`, `store-ap`, `store-pay`), the three regions
//! (`region-us-east`, …: the real regional service over those storage
//! hosts), the routing layer (`routing`: the real table, checker and API),
//! two edge POPs (`edge-dub`, `edge-iad`: edge-core's request flow) and
//! the shoppers (clients), which go through the POPs only. Geography sets
//! the links' latency (the topology's latency model); the seed picks the
//! shoppers' choices, every id the platform draws, the provider's dice, the
//! network's jitter and the fault schedule.
//!
//! Phases: seed the catalog through the catalog's region's storage; start
//! the platform and let routing bring every region up; shop while faults
//! come and go; heal everything and let recovery run; check the invariants
//! through an operator's view of the shards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use commerce::invariants::{Acknowledged, Check};
use commerce::{Commerce, CommerceParts, SeededEntropy, Settings, SimulatedGateway};
use db_embedded::{EmbeddedDatabase, EmbeddedOptions};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;
use topology::{RegionId, ShardId, Topology};

use crate::faults::{self, Fault};
use crate::hosts::{self, SimClock};
use crate::shopper;
use crate::storage::{self, RemoteDatabase};

/// The simulation's step: every host runs this much simulated time per
/// step, and a message is delivered at a step's end at the earliest.
pub const TICK_MS: u64 = 5;

pub const REGION_PORT: u16 = 8100;
pub const ROUTING_PORT: u16 = 8200;
pub const EDGE_PORT: u16 = 8300;
pub const EDGE_KEY: &str = "sim-edge-key";
pub const ADMIN_TOKEN: &str = "sim-admin-token";

/// The POPs: name, latitude, longitude.
pub const POPS: [(&str, f64, f64); 2] = [("dub", 53.35, -6.26), ("iad", 38.95, -77.45)];
/// The catalog every run sells from.
pub const SKUS: [&str; 3] = ["SIM-1", "SIM-2", "SIM-3"];
/// Units of each SKU in each warehouse: fewer than the shoppers want.
pub const STOCK: i64 = 3;

/// The routing layer's health policy in the simulation.
pub fn health_policy() -> routing::health::HealthPolicy {
    routing::health::HealthPolicy {
        interval_ms: 250,
        timeout_ms: 500,
        fall: 3,
        rise: 2,
        degraded_latency_ms: 1_000.0,
        degraded_error_ratio: 0.5,
        window: 20,
    }
}

/// A known bug the simulator must find, planted for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Planted {
    /// A cart change applied again when repeated with its key.
    SkipCartIdempotency,
    /// A compensation gives reserved stock back twice.
    DoubleReleaseOnCompensation,
    /// The edge resends a write whose outcome is unknown as a new write.
    EdgeResendsAsNew,
}

impl Planted {
    pub const ALL: [Planted; 3] = [
        Planted::SkipCartIdempotency,
        Planted::DoubleReleaseOnCompensation,
        Planted::EdgeResendsAsNew,
    ];

    /// Plants `bug` (or none) for the process; the returned guard removes
    /// it. One run at a time while a bug is planted.
    fn plant(bug: Option<Planted>) -> PlantGuard {
        commerce::planted::plant(match bug {
            Some(Planted::SkipCartIdempotency) => Some(commerce::planted::Bug::SkipCartIdempotency),
            Some(Planted::DoubleReleaseOnCompensation) => {
                Some(commerce::planted::Bug::DoubleReleaseOnCompensation)
            }
            _ => None,
        });
        edge_core::planted::plant(bug == Some(Planted::EdgeResendsAsNew));
        PlantGuard(bug.is_some())
    }
}

struct PlantGuard(bool);

impl Drop for PlantGuard {
    fn drop(&mut self) {
        if self.0 {
            commerce::planted::plant(None);
            edge_core::planted::plant(false);
        }
    }
}

/// What one run is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Options {
    pub seed: u64,
    pub shoppers: usize,
    /// Inject the seed's faults (off: the same run with a healthy network).
    pub faults: bool,
    /// A bug planted for this run (the planted-bug test).
    pub bug: Option<Planted>,
    /// These faults instead of the seed's (times from the start of the
    /// shopping): a regression's scenario, kept whatever the seed's plan
    /// becomes.
    pub plan: Option<Vec<Fault>>,
}

impl Options {
    pub fn new(seed: u64) -> Options {
        Options {
            seed,
            shoppers: 12,
            faults: true,
            bug: None,
            plan: None,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub seed: u64,
    /// Every event, in order: the replay's fingerprint.
    pub trace: Vec<String>,
    pub faults: Vec<Fault>,
    pub checks: Vec<Check>,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Steps of the simulation.
    pub steps: u64,
    /// The longest any shopper's call to a POP took (simulated time).
    pub slowest_call: Duration,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.holds)
    }

    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.holds).collect()
    }

    /// The broken invariants and the command that replays the seed.
    pub fn failure_report(&self) -> String {
        format!(
            "seed {}: {}; replay: {}",
            self.seed,
            self.failures()
                .iter()
                .map(|c| format!("{}: {}", c.name, c.found))
                .collect::<Vec<_>>()
                .join("; "),
            crate::replay_command(self.seed)
        )
    }
}

/// The shared, append-only event trace.
#[derive(Debug, Clone, Default)]
pub struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    pub fn push(&self, at: Duration, what: impl Into<String>) {
        self.0
            .lock()
            .push(format!("{:>7} {}", at.as_millis(), what.into()));
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// Everything the hosts share, built once per run.
struct World {
    seed: u64,
    topology: Arc<Topology>,
    gateway: Arc<SimulatedGateway>,
    clocks: BTreeMap<String, Arc<SimClock>>,
    /// Starts of each region, so a restarted region draws fresh ids.
    incarnations: Mutex<BTreeMap<String, u64>>,
    table: Mutex<Option<routing::table::RegionTable>>,
    /// Per storage host: commits whose outcome the regions' calls to it
    /// report unknown (the fault of that name).
    commit_faults: BTreeMap<String, Arc<db::Faults>>,
}

fn retry() -> db::RetryPolicy {
    db::RetryPolicy {
        max_retries: 20,
        timeout_ms: 8_000,
        initial_backoff_ms: 2,
        max_backoff_ms: 200,
    }
}

pub fn store_host(shard: &str) -> String {
    format!("store-{shard}")
}

pub fn region_host(region: &str) -> String {
    format!("region-{region}")
}

pub fn edge_host(pop: &str) -> String {
    format!("edge-{pop}")
}

fn mix(seed: u64, salt: &str) -> u64 {
    salt.bytes().fold(seed ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl World {
    /// A `Commerce` for `region` over the storage hosts: what a region
    /// runs, and (as `operator`) what the setup and the audit read with.
    fn commerce(&self, region: &RegionId, salt: &str) -> anyhow::Result<Commerce> {
        Ok(Commerce::new(self.commerce_parts(region, salt, salt)?)?)
    }

    /// Each shard over its storage host, as `host` reaches it: a region
    /// with the storage hosts' commit faults in front, the setup and the
    /// audit without.
    fn shards(&self, host: &str, salt: &str) -> db::ShardMap {
        let mut shards = db::ShardMap::default();
        for s in self.topology.shards() {
            let store = store_host(s.id().as_str());
            let db = RemoteDatabase::database(
                &store,
                retry(),
                mix(self.seed, &format!("{salt}/{}", s.id())),
            );
            let db = match self.commit_faults.get(&store) {
                Some(faults) if host.starts_with("region-") => db.with_faults(faults),
                _ => db,
            };
            shards.insert(s.id().clone(), db);
        }
        shards
    }

    /// The parts of a `Commerce` for `region` running on the simulated
    /// `host` (its clock, its commit faults).
    fn commerce_parts(
        &self,
        region: &RegionId,
        host: &str,
        salt: &str,
    ) -> anyhow::Result<CommerceParts> {
        Ok(CommerceParts {
            shards: self.shards(host, salt),
            topology: self.topology.clone(),
            region: region.clone(),
            served: self
                .topology
                .shards()
                .iter()
                .map(|s| s.id().clone())
                .collect(),
            catalog_shard: catalog_shard(),
            settings: settings(),
            clock: self.clock(host),
            entropy: Arc::new(SeededEntropy::new(mix(self.seed, salt))),
            gateway: self.gateway.clone(),
            search: Arc::new(search::SearchIndex::open_or_create(None)?.inline()),
        })
    }

    fn clock(&self, host: &str) -> Arc<SimClock> {
        self.clocks.get(host).cloned().unwrap_or_default()
    }

    fn region(&self, name: &RegionId) -> anyhow::Result<regional_server::Region> {
        let host = region_host(name.as_str());
        let incarnation = {
            let mut incarnations = self.incarnations.lock();
            let n = incarnations.entry(host.clone()).or_default();
            *n += 1;
            *n
        };
        let salt = format!("{host}#{incarnation}");
        let parts = self.commerce_parts(name, &host, &salt)?;
        regional_server::Region::build(regional_server::RegionParts {
            region: name.clone(),
            topology: parts.topology,
            shards: parts.shards,
            served: parts.served,
            catalog_shard: parts.catalog_shard,
            search: parts.search,
            settings: parts.settings,
            clock: parts.clock,
            entropy: parts.entropy,
            gateway: parts.gateway,
            secrets: regional_server::config::Secrets {
                edge_key: EDGE_KEY.into(),
                session_key: "sim-session-key".into(),
                admin_token: ADMIN_TOKEN.into(),
                ..Default::default()
            },
            http: regional_server::config::HttpConfig {
                max_concurrent_searches: 2,
                ..Default::default()
            },
            workers: regional_server::config::WorkerConfig {
                outbox_interval_ms: 500,
                recovery_interval_ms: 1_000,
                sweep_interval_ms: 2_000,
                feed_wait_ms: 5_000,
            },
            peers: Vec::new(),
        })
    }
}

pub fn catalog_shard() -> ShardId {
    "us".parse().expect("shard id")
}

fn settings() -> Settings {
    Settings {
        saga_lease_ms: 3_000,
        checkout_wait_ms: 5_000,
        ..Settings::default()
    }
}

/// Runs one seed to the end and checks the invariants.
pub fn run(options: &Options) -> anyhow::Result<Outcome> {
    let seed = options.seed;
    if let Some(plan) = &options.plan {
        for (i, a) in plan.iter().enumerate() {
            if let Some(b) = plan[i + 1..].iter().find(|b| a.overlaps(b)) {
                anyhow::bail!("the plan's faults `{a}` and `{b}` act on one thing at once");
            }
        }
    }
    let _planted = Planted::plant(options.bug);
    let topology = Arc::new(Topology::from_toml_str(topology::LOCAL_TOPOLOGY)?);
    let trace = Trace::default();
    let mut rng = StdRng::seed_from_u64(seed);

    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(3_600))
        .tick_duration(Duration::from_millis(TICK_MS))
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(2))
        .tcp_capacity(4096)
        .build();

    // Storage: one host per shard and the provider's, each over a memory
    // store that outlives the host (what it made durable survives a crash).
    let mut stores = BTreeMap::new();
    for name in topology
        .shards()
        .iter()
        .map(|s| s.id().as_str().to_owned())
        .chain(["pay".to_owned()])
    {
        let store = Arc::new(EmbeddedDatabase::open_memory(EmbeddedOptions::default()));
        let served = store.clone();
        sim.host(store_host(&name), move || storage::serve(served.clone()));
        stores.insert(store_host(&name), store);
    }

    let mut clocks = BTreeMap::new();
    for r in topology.regions() {
        clocks.insert(
            region_host(r.name().as_str()),
            Arc::new(SimClock::default()),
        );
    }
    for (pop, _, _) in POPS {
        clocks.insert(edge_host(pop), Arc::new(SimClock::default()));
    }
    clocks.insert("pay".into(), Arc::new(SimClock::default()));
    let gateway = Arc::new(
        SimulatedGateway::new(
            commerce::SimulatedGatewayConfig {
                latency_ms: 5,
                decline_rate: 0.05,
                timeout_rate: 0.05,
                seed,
                ..Default::default()
            },
            RemoteDatabase::database(&store_host("pay"), retry(), mix(seed, "pay")),
        )
        .with_clock(clocks["pay"].clone()),
    );
    let commit_faults = topology
        .shards()
        .iter()
        .map(|s| (store_host(s.id().as_str()), db::Faults::new()))
        .collect();
    let world = Arc::new(World {
        seed,
        topology: topology.clone(),
        gateway: gateway.clone(),
        clocks,
        incarnations: Mutex::default(),
        table: Mutex::default(),
        commit_faults,
    });
    let us_east: RegionId = "us-east".parse()?;

    // Phase 1: the catalog, written through the storage hosts.
    {
        let world = world.clone();
        let region = us_east.clone();
        sim.client("setup", async move {
            let commerce = world.commerce(&region, "setup").map_err(boxed)?;
            seed_catalog(&commerce).await.map_err(boxed)?;
            Ok(())
        });
    }
    while !step(&mut sim)? {}
    trace.push(sim.elapsed(), "catalog seeded");

    // Phase 2: the platform.
    for r in topology.regions() {
        let world = world.clone();
        let name = r.name().clone();
        sim.host(region_host(name.as_str()), move || {
            let world = world.clone();
            let name = name.clone();
            async move {
                let region = world.region(&name).map_err(boxed)?;
                let listener = crate::net::Listener::bind(REGION_PORT).await?;
                let (_stop, stopped) = tokio::sync::watch::channel(false);
                regional_server::run(region, listener, stopped)
                    .await
                    .map_err(boxed)?;
                Ok(())
            }
        });
    }
    {
        let world = world.clone();
        sim.host("routing", move || {
            let world = world.clone();
            async move {
                let endpoints = world
                    .topology
                    .regions()
                    .iter()
                    .map(|r| {
                        let base =
                            format!("http://{}:{REGION_PORT}", region_host(r.name().as_str()));
                        routing::table::RegionEndpoint {
                            name: r.name().clone(),
                            readyz_url: format!("{base}/readyz"),
                            base_url: base,
                            addresses: Vec::new(),
                            baseline_ms: 0.0,
                        }
                    })
                    .collect();
                let table =
                    routing::table::RegionTable::new(&world.topology, endpoints, health_policy())
                        .map_err(|e| boxed(anyhow::anyhow!("{e}")))?;
                *world.table.lock() = Some(table.clone());
                let _checker = routing::checker::Checker::spawn(
                    table.clone(),
                    Arc::new(hosts::SimProber::default()),
                );
                let listener = crate::net::Listener::bind(ROUTING_PORT).await?;
                axum::serve(
                    listener,
                    routing::api::app(routing::api::ApiState {
                        table,
                        admin_token: Some(ADMIN_TOKEN.into()),
                        admin_token_secondary: None,
                        drills: routing::drills::Drills::default(),
                    }),
                )
                .await?;
                Ok(())
            }
        });
    }
    for (pop, latitude, longitude) in POPS {
        let world = world.clone();
        let trace = trace.clone();
        sim.host(edge_host(pop), move || {
            let world = world.clone();
            let trace = trace.clone();
            async move {
                let config = edge_core::EdgeConfig::from_lookup(pop, |name| match name {
                    "edge_key" => Some(EDGE_KEY.into()),
                    "routing_url" => Some(format!("http://routing:{ROUTING_PORT}")),
                    "latitude" => Some(latitude.to_string()),
                    "longitude" => Some(longitude.to_string()),
                    "rate_per_s" | "write_rate_per_s" | "session_rate_per_s" => {
                        Some("10000".into())
                    }
                    "rate_burst" | "write_rate_burst" | "session_rate_burst" => {
                        Some("10000".into())
                    }
                    _ => None,
                })
                .map_err(|e| boxed(anyhow::anyhow!("{e:?}")))?;
                let host = edge_host(pop);
                let edge = Arc::new(edge_core::Edge::new(
                    hosts::EdgeHost {
                        clock: world.clock(&host),
                        store: Arc::default(),
                        nonces: Arc::new(SeededEntropy::new(mix(world.seed, &host))),
                        pool: crate::net::Pool::default(),
                        trace: trace.clone(),
                        name: host.clone(),
                    },
                    config,
                ));
                hosts::serve_edge(edge, EDGE_PORT).await
            }
        });
    }
    let base = set_geography(&sim, &topology);

    // Every region up in the table before the shoppers come.
    let mut waited = 0u64;
    loop {
        step(&mut sim)?;
        waited += 1;
        let all_up = world.table.lock().as_ref().is_some_and(|t| {
            let snapshot = t.snapshot();
            snapshot.regions.iter().all(|r| r.health.serves())
        });
        if all_up {
            break;
        }
        anyhow::ensure!(waited < 60_000, "the regions never all came up");
    }
    trace.push(sim.elapsed(), "every region serving");

    // Phase 3: shoppers, under the seed's faults.
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let slowest_ms = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    for n in 0..options.shoppers {
        let pop = POPS[n % POPS.len()].0;
        let shopper = shopper::Shopper::new(
            n,
            mix(seed, &format!("shopper-{n}")),
            edge_host(pop),
            trace.clone(),
            acknowledged.clone(),
            slowest_ms.clone(),
        );
        let done = done.clone();
        sim.client(format!("shopper-{n}"), async move {
            shopper.run().await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    let start = sim.elapsed();
    let plan = match (&options.plan, options.faults) {
        (Some(plan), _) => plan
            .iter()
            .map(|f| Fault {
                kind: f.kind.clone(),
                from: start + f.from,
                until: start + f.until,
            })
            .collect(),
        (None, true) => faults::plan(&mut rng, &topology, start),
        (None, false) => Vec::new(),
    };
    let mut schedule = faults::Schedule::new(plan.clone(), base);
    let mut monitor = faults::RoutingMonitor::new(health_policy());
    let mut steps: u64 = 0;
    loop {
        let finished = done.load(Ordering::SeqCst) == options.shoppers;
        if finished && schedule.is_over() {
            break;
        }
        schedule.apply_due(&mut sim, &world_hooks(&world, &stores), &trace);
        step(&mut sim)?;
        steps += 1;
        if let Some(table) = world.table.lock().as_ref() {
            monitor.observe(sim.elapsed(), &table.snapshot(), &schedule);
        }
        anyhow::ensure!(
            sim.elapsed() < Duration::from_secs(1_800),
            "the shoppers did not finish within 30 simulated minutes"
        );
    }
    schedule.heal(&mut sim, &world_hooks(&world, &stores), &trace);
    trace.push(sim.elapsed(), "faults healed");

    // Phase 4: recovery runs, then the audit through an operator's view.
    let checks = Arc::new(Mutex::new(Vec::new()));
    {
        let world = world.clone();
        let checks = checks.clone();
        let acknowledged = acknowledged.lock().clone();
        let region = us_east.clone();
        sim.client("auditor", async move {
            // A moment for the healed network to settle; the check itself
            // waits for each pending saga (up to its lease and a few
            // recovery passes).
            tokio::time::sleep(Duration::from_secs(1)).await;
            let operator = world.commerce(&region, "auditor").map_err(boxed)?;
            let skus: Vec<String> = SKUS.iter().map(|s| (*s).to_owned()).collect();
            let found =
                commerce::invariants::check(&operator, &world.gateway, &acknowledged, &skus)
                    .await
                    .map_err(|e| boxed(anyhow::anyhow!("reading the ledger: {e}")))?;
            *checks.lock() = found;
            Ok(())
        });
    }
    while !step(&mut sim)? {
        steps += 1;
    }
    let mut checks = std::mem::take(&mut *checks.lock());
    checks.push(monitor.check());
    for c in &checks {
        trace.push(
            sim.elapsed(),
            format!(
                "check {}: {} (expected {}, found {})",
                c.name,
                if c.holds { "holds" } else { "BROKEN" },
                c.expected,
                c.found
            ),
        );
    }
    Ok(Outcome {
        seed,
        trace: trace.take(),
        faults: plan,
        checks,
        simulated: sim.elapsed(),
        steps,
        slowest_call: Duration::from_millis(slowest_ms.load(Ordering::SeqCst)),
    })
}

/// What faults act on besides the network: the stores, the clocks, the
/// payment provider and the routing table.
#[derive(Debug)]
pub struct Hooks<'a> {
    pub stores: &'a BTreeMap<String, Arc<EmbeddedDatabase>>,
    pub clocks: &'a BTreeMap<String, Arc<SimClock>>,
    pub gateway: &'a SimulatedGateway,
    pub table: &'a Mutex<Option<routing::table::RegionTable>>,
    pub commit_faults: &'a BTreeMap<String, Arc<db::Faults>>,
}

fn world_hooks<'a>(
    world: &'a World,
    stores: &'a BTreeMap<String, Arc<EmbeddedDatabase>>,
) -> Hooks<'a> {
    Hooks {
        stores,
        clocks: &world.clocks,
        gateway: &world.gateway,
        table: &world.table,
        commit_faults: &world.commit_faults,
    }
}

/// Every server host of a run (the shoppers are clients).
pub fn all_hosts(topology: &Topology) -> Vec<String> {
    let mut hosts: Vec<String> = topology
        .regions()
        .iter()
        .map(|r| region_host(r.name().as_str()))
        .collect();
    hosts.extend(
        topology
            .shards()
            .iter()
            .map(|s| store_host(s.id().as_str())),
    );
    hosts.push(store_host("pay"));
    hosts.push("routing".into());
    hosts.extend(POPS.iter().map(|(p, _, _)| edge_host(p)));
    hosts
}

/// One step of the simulation; whether every client is done.
fn step(sim: &mut turmoil::Sim<'_>) -> anyhow::Result<bool> {
    sim.step()
        .map_err(|e| anyhow::anyhow!("a simulated host failed: {e}"))
}

/// Links between places pay the latency model's one-way time; the
/// latencies set, by pair of hosts.
fn set_geography(
    sim: &turmoil::Sim<'_>,
    topology: &Topology,
) -> BTreeMap<(String, String), Duration> {
    let mut set = BTreeMap::new();
    let place_of = |host: &str| -> Option<RegionId> {
        if let Some(r) = host.strip_prefix("region-") {
            return r.parse().ok();
        }
        if let Some(shard) = host.strip_prefix("store-") {
            let shard: ShardId = shard.parse().ok()?;
            return topology.shard(&shard).map(|s| s.home().clone());
        }
        match host {
            "edge-dub" => "eu-west".parse().ok(),
            "edge-iad" | "routing" | "store-pay" => "us-east".parse().ok(),
            _ => None,
        }
    };
    let hosts = all_hosts(topology);
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let (Some(pa), Some(pb)) = (place_of(a), place_of(b)) else {
                continue;
            };
            if let Some(rtt) = topology.region_rtt(&pa, &pb)
                && !rtt.is_zero()
            {
                sim.set_link_latency(a.as_str(), b.as_str(), rtt / 2);
                set.insert((a.clone(), b.clone()), rtt / 2);
            }
        }
    }
    set
}

/// The demo catalog of a run: a category, the SKUs, stock in every
/// warehouse.
async fn seed_catalog(commerce: &Commerce) -> anyhow::Result<()> {
    use commerce::catalog::{CategoryInput, Money, ProductInput};
    commerce
        .upsert_category(
            "sim",
            &CategoryInput {
                name: "Simulation".into(),
                parent: None,
            },
        )
        .await
        .context("category")?;
    for sku in SKUS {
        commerce
            .upsert_product(
                sku,
                &ProductInput {
                    title: format!("Product {sku}"),
                    description: String::new(),
                    category: "sim".into(),
                    price: Money {
                        amount_minor: 1_000,
                        currency: "USD".into(),
                    },
                    attributes: Default::default(),
                    images: vec![],
                },
            )
            .await
            .context("product")?;
        for warehouse in commerce.warehouses() {
            commerce
                .restock(&warehouse, sku, STOCK)
                .await
                .context("stock")?;
        }
    }
    Ok(())
}

pub fn boxed(e: anyhow::Error) -> Box<dyn std::error::Error> {
    e.into()
}
