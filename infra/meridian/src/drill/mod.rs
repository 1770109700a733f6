//! `meridian drill <scenario>`: a failure rehearsed on the whole platform
//! under shopper load. A hypothesis, a fault injected at a set time and
//! removed after a set duration, a timeline of what the platform did (the
//! routing table's changes, the first write for the failed region's shard
//! that succeeded again), figures before, during and after, and the
//! business invariants checked against the data itself afterwards: no
//! acknowledged order lost, no saga left open, charges equal to confirmed
//! orders, no unit oversold, no acknowledged cart write lost. A broken
//! invariant fails the drill.

pub mod html;
pub mod journey;
pub mod live;
pub mod load;
pub mod report;

use std::time::{Duration, Instant};

use anyhow::Context;
use topology::RegionId;
use topology::routing::{Health, RoutingTable};

use crate::platform::Platform;
use load::{Action, LoadOptions, Record};

/// What fails.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The region's service stops as a process dies; its shard's data
    /// stays available (its cluster's remote DC takes over).
    RegionOutage,
    /// The region is cut off from its clusters, the edges and the probes.
    Partition,
    /// Every round trip into and out of the region takes 500 ms longer.
    Latency,
    /// 30 % of the region's calls to its clusters are lost.
    Brownout,
}

impl Scenario {
    pub fn hypothesis(self, region: &RegionId) -> String {
        match self {
            Scenario::RegionOutage => format!(
                "When {region}'s service dies, the routing layer sees it within its probe policy, its shard fails over to a standby, writes for that shard succeed again within seconds, and no acknowledged order, charge, stock unit or cart write is lost or doubled."
            ),
            Scenario::Partition => format!(
                "When {region} is cut off from its clusters, the edges and the probes, it fails over as if dead; the cut-off region acknowledges nothing the rest of the platform cannot see, and no invariant breaks."
            ),
            Scenario::Latency => format!(
                "When every round trip to {region} takes 500 ms longer, shoppers see slower answers for that region's shard but no errors beyond the deadline, and no invariant breaks."
            ),
            Scenario::Brownout => format!(
                "When 30 % of {region}'s storage calls are lost, its writes are refused as not applied (never reported as failed when they may have applied), retries with their keys succeed, and no invariant breaks."
            ),
        }
    }
}

/// A drill's parameters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillOptions {
    pub scenario: Scenario,
    pub region: RegionId,
    /// The whole load's length.
    pub duration: Duration,
    /// When the fault starts, from the load's start.
    pub fault_at: Duration,
    /// How long the fault lasts.
    pub fault_for: Duration,
    /// Requests per second over all shoppers.
    pub rate: f64,
    pub shoppers: usize,
    pub seed: u64,
    /// In a region outage, how long the dead region's shard's cluster takes
    /// to recover in its remote DC (no region reaches it meanwhile); zero:
    /// at once.
    pub cluster_recovery: Duration,
    /// Catalog changes timed to every POP after the load (0: none).
    pub catalog_changes: usize,
}

impl DrillOptions {
    /// Checks the options are within the drill's bounds.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.fault_at + self.fault_for < self.duration,
            "the fault must end before the load does"
        );
        anyhow::ensure!(
            self.duration <= Duration::from_secs(load::MAX_SECS),
            "a drill's load runs at most {} s",
            load::MAX_SECS
        );
        anyhow::ensure!(
            (1..=load::MAX_SHOPPERS).contains(&self.shoppers),
            "shoppers must be 1..={}",
            load::MAX_SHOPPERS
        );
        anyhow::ensure!(
            self.rate.is_finite() && self.rate > 0.0 && self.rate <= load::MAX_RATE,
            "the load's rate must be above 0 and at most {} requests/s",
            load::MAX_RATE
        );
        anyhow::ensure!(
            self.catalog_changes <= journey::MAX_CHANGES,
            "at most {} catalog changes",
            journey::MAX_CHANGES
        );
        Ok(())
    }

    /// What the drill says of itself to the routing layer.
    pub fn start(&self) -> routing::drills::DrillStart {
        routing::drills::DrillStart {
            scenario: crate::wire_name(self.scenario),
            region: self.region.clone(),
            hypothesis: self.scenario.hypothesis(&self.region),
            duration_s: self.duration.as_secs(),
            fault_at_s: self.fault_at.as_secs(),
            fault_for_s: self.fault_for.as_secs(),
        }
    }
}

/// A drill that cannot run as asked (its options, or a region the
/// platform does not have): the caller's mistake, not the platform's.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidDrill(pub String);

impl std::fmt::Display for InvalidDrill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidDrill {}

/// One timeline entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Moment {
    /// Since the load started.
    pub at_ms: u64,
    pub what: String,
}

/// An invariant and whether it held (one definition, in commerce).
pub use commerce::invariants::Check;

/// What a drill found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub options: DrillOptions,
    pub hypothesis: String,
    pub timeline: Vec<Moment>,
    pub records: Vec<Record>,
    pub checks: Vec<Check>,
    /// From the fault to the routing table showing the region not serving.
    pub detection_ms: Option<u64>,
    /// From the fault to the first write for the region's shard that
    /// succeeded.
    pub first_write_ms: Option<u64>,
    /// A catalog change's journey to every POP.
    pub journeys: Vec<journey::PopJourney>,
    /// The drill's id at the routing layer, when it was posted there.
    pub posted_as: Option<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.holds)
    }
}

/// Runs a drill against `platform` (already up, every region healthy).
/// When the drill is posted to the routing layer, its id there goes to
/// `posted` as the load starts (so whoever started it can follow it live).
pub async fn run(
    platform: &mut Platform,
    options: DrillOptions,
    posted: Option<tokio::sync::oneshot::Sender<String>>,
) -> anyhow::Result<Outcome> {
    options.validate()?;
    let api = format!(
        "http://{}",
        platform
            .routing_api
            .context("a drill needs the routing layer")?
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("an HTTP client")?;
    let at_rest = routing::client::table_when(&client, &api, 40, RoutingTable::all_healthy)
        .await
        .context("the platform is not healthy before the drill")?;
    let shard = platform
        .topology()
        .shards()
        .iter()
        .find(|s| s.home() == &options.region)
        .map(|s| s.id().clone())
        .ok_or_else(|| {
            InvalidDrill(format!(
                "{} is home to no shard of this platform's topology",
                options.region
            ))
        })?;
    let pops = shopper_pops(platform, &at_rest);
    anyhow::ensure!(!pops.is_empty(), "a drill needs the edge POPs");
    // A probe of the region's shard's writes, through its shoppers' POP:
    // its session is made at rest.
    let probe_base = pops
        .iter()
        .find(|(s, _, _)| s == shard.as_str())
        .map(|(_, _, addr)| format!("http://{addr}"))
        .context("no POP for the region's shard")?;
    let probe_token = probe_session(&probe_base, shard.as_str())
        .await
        .context("a session for the write probe")?;
    let shopped = skus(platform, 50).await?;

    // Posted live to the routing layer, when its admin token is known.
    let started = Instant::now();
    let log = load::LiveLog::default();
    let live = match &platform.routing_admin_token {
        Some(token) => {
            let target = live::Target {
                api: api.clone(),
                token: token.clone(),
            };
            match live::Live::start(target, options.start(), log.clone(), started).await {
                Ok(live) => {
                    if let Some(posted) = posted {
                        let _ = posted.send(live.id.clone());
                    }
                    Some(live)
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the drill is not posted to the routing layer");
                    None
                }
            }
        }
        None => None,
    };
    let mut timeline = Vec::new();
    let note = |timeline: &mut Vec<Moment>, moment: Moment| {
        if let Some(live) = &live {
            live.moment(&moment);
        }
        timeline.push(moment);
    };

    // The routing table's changes, as they happen.
    let describe = {
        let (region, shard) = (options.region.clone(), shard.clone());
        move |table: &RoutingTable| {
            let health = table.region(&region).map(|r| r.health);
            let active = table
                .shard(&shard)
                .and_then(|s| s.active.as_ref())
                .map(|r| r.to_string());
            format!(
                "table v{}: {region} {}, shard {shard} at {}",
                table.version,
                health.map_or("?".into(), crate::wire_name),
                active.unwrap_or_else(|| "none".into())
            )
        }
    };
    let watcher = tokio::spawn(watch_table(
        client.clone(),
        api.clone(),
        started,
        options.duration,
        live.as_ref().map(|l| (l.moment_sender(), describe.clone())),
    ));
    let load = tokio::spawn(load::run(LoadOptions {
        shoppers: options.shoppers,
        rate: options.rate,
        duration: options.duration,
        seed: options.seed,
        skus: shopped,
        pops,
        live: live.as_ref().map(|_| log.clone()),
    }));

    tokio::time::sleep(options.fault_at).await;
    let fault_ms = started.elapsed().as_millis() as u64;
    inject(platform, &options, true).await?;
    let probe = tokio::spawn(probe_first_write(
        probe_base,
        probe_token,
        format!("drill-{}-probe", options.seed),
        started,
        options.duration,
    ));
    note(
        &mut timeline,
        Moment {
            at_ms: fault_ms,
            what: format!(
                "fault injected: {:?} of {}",
                options.scenario, options.region
            ),
        },
    );
    let mut waited = Duration::ZERO;
    if options.scenario == Scenario::RegionOutage && !options.cluster_recovery.is_zero() {
        // The shard's cluster lost its primary with the region: no region
        // reaches it until its remote DC has taken over.
        platform.cut_shard(&shard, true)?;
        let pause = options.cluster_recovery.min(options.fault_for);
        tokio::time::sleep(pause).await;
        platform.cut_shard(&shard, false)?;
        waited = pause;
        note(
            &mut timeline,
            Moment {
                at_ms: started.elapsed().as_millis() as u64,
                what: format!("shard {shard}'s cluster recovered in its remote DC"),
            },
        );
    }
    tokio::time::sleep(options.fault_for.saturating_sub(waited)).await;
    inject(platform, &options, false).await?;
    let healed_ms = started.elapsed().as_millis() as u64;
    note(
        &mut timeline,
        Moment {
            at_ms: healed_ms,
            what: "fault removed".into(),
        },
    );
    let records = load.await.context("the load task")??;
    let changes = watcher.await.context("the table watcher")?;

    let mut detection_ms = None;
    for (at_ms, table) in &changes {
        let region = table.region(&options.region).map(|r| r.health);
        timeline.push(Moment {
            at_ms: *at_ms,
            what: describe(table),
        });
        if detection_ms.is_none()
            && *at_ms >= fault_ms
            && region.is_some_and(|h| !h.serves() || h == Health::Degraded)
        {
            detection_ms = Some(at_ms - fault_ms);
        }
    }
    // The probe's first acknowledged write, else the load's first.
    let probed = probe.await.unwrap_or(None);
    let first_write = records.iter().find(|r| {
        r.at_ms >= fault_ms && r.shard == shard.as_str() && r.action.is_write() && r.ok()
    });
    let first_write_ms = probed
        .map(|at_ms| at_ms.saturating_sub(fault_ms))
        .or_else(|| first_write.map(|r| (r.at_ms + r.latency_ms as u64).saturating_sub(fault_ms)));
    if let Some(ms) = first_write_ms {
        timeline.push(Moment {
            at_ms: fault_ms + ms,
            what: format!("first write for shard {shard} succeeded after the fault"),
        });
    }
    timeline.sort_by_key(|m| m.at_ms);

    let mut checks = invariants(platform, &records).await?;
    let mut journeys = Vec::new();
    if options.catalog_changes > 0 {
        let sku = skus(platform, 1)
            .await?
            .into_iter()
            .next()
            .context("no product to change")?;
        journeys = journey::measure(platform, options.catalog_changes, &sku).await?;
        let missed: usize = journeys
            .iter()
            .map(|j| j.times_ms.iter().filter(|t| t.is_none()).count())
            .sum();
        checks.push(Check {
            name: "every POP served every catalog change".into(),
            expected: format!(
                "{} changes at {} POPs within {} s",
                options.catalog_changes,
                journeys.len(),
                journey::MAX_WAIT.as_secs()
            ),
            found: format!("{missed} missed"),
            holds: missed == 0,
        });
    }
    let mut outcome = Outcome {
        hypothesis: options.scenario.hypothesis(&options.region),
        options,
        timeline,
        records,
        checks,
        detection_ms,
        first_write_ms,
        journeys,
        posted_as: None,
    };
    if let Some(live) = live {
        match live.finish(&outcome).await {
            Ok(id) => outcome.posted_as = Some(id),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "posting the drill's report to the routing layer")
            }
        }
    }
    Ok(outcome)
}

async fn inject(platform: &mut Platform, options: &DrillOptions, on: bool) -> anyhow::Result<()> {
    let region = &options.region;
    match options.scenario {
        Scenario::RegionOutage if on => platform.kill_region(region).await,
        Scenario::RegionOutage => platform.restart_region(region).await,
        Scenario::Partition => platform.partition(region, on),
        Scenario::Latency => platform.slow(
            region,
            if on {
                Duration::from_millis(500)
            } else {
                Duration::ZERO
            },
        ),
        Scenario::Brownout => platform.brownout(region, if on { 0.3 } else { 0.0 }, options.seed),
    }
}

/// Every change of the routing table until `duration` has passed, each
/// also posted live (described by `live`'s function) when given.
async fn watch_table(
    client: reqwest::Client,
    api: String,
    started: Instant,
    duration: Duration,
    live: Option<(live::MomentSender, impl Fn(&RoutingTable) -> String)>,
) -> Vec<(u64, RoutingTable)> {
    let mut changes = Vec::new();
    let Ok(mut table) = routing::client::table(&client, &api).await else {
        return changes;
    };
    // Bounded by the load's length: each poll waits at most until then.
    while started.elapsed() < duration {
        let left = duration.saturating_sub(started.elapsed()).as_millis() as u64;
        let Ok(next) = routing::client::watch(&client, &api, table.version, left).await else {
            break;
        };
        if next.version > table.version {
            let at_ms = started.elapsed().as_millis() as u64;
            if let Some((sender, describe)) = &live {
                let _ = sender.try_send(routing::drills::DrillMoment {
                    at_ms,
                    what: describe(&next),
                });
            }
            changes.push((at_ms, next.clone()));
        }
        table = next;
    }
    changes
}

/// Between two attempts of the write probe.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// One probe attempt's deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn probe_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .build()
        .context("the write probe's client")
}

/// A shopper session for `shard` made through the POP at `base`: its token.
async fn probe_session(base: &str, shard: &str) -> anyhow::Result<String> {
    let client = probe_client()?;
    let response = client
        .post(format!("{base}/v1/sessions"))
        .json(&serde_json::json!({ "shard": shard }))
        .send()
        .await?
        .error_for_status()?;
    let body: serde_json::Value = response.json().await?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .context("a session without a token")
}

/// From the fault on, creates a cart for the probe's shopper every
/// [`PROBE_EVERY`] (each under a key of its own) until one is acknowledged:
/// when it was, since the load started. Bounded by `until`.
async fn probe_first_write(
    base: String,
    token: String,
    key: String,
    started: Instant,
    until: Duration,
) -> Option<u64> {
    let client = probe_client().ok()?;
    let mut attempt = 0u32;
    while started.elapsed() < until {
        attempt += 1;
        let sent = client
            .post(format!("{base}/v1/carts"))
            .bearer_auth(&token)
            .header(
                regional_api::headers::IDEMPOTENCY_KEY,
                format!("{key}-{attempt}"),
            )
            .send()
            .await;
        if sent.is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED) {
            return Some(started.elapsed().as_millis() as u64);
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    None
}

/// Each shard with the POP its shoppers reach: the storefront's DNS answer
/// near the shard's home region (the nearest serving POP).
fn shopper_pops(
    platform: &Platform,
    table: &RoutingTable,
) -> Vec<(String, String, std::net::SocketAddr)> {
    let topology = platform.topology();
    let mut out = Vec::new();
    for shard in topology.shards() {
        let Some(home) = topology.region(shard.home()) else {
            continue;
        };
        let Some(pop) = table.nearest_serving_pop(home.latitude(), home.longitude()) else {
            continue;
        };
        if let Some((name, addr)) = platform.pops.iter().find(|(n, _)| n == pop.name.as_str()) {
            out.push((shard.id().to_string(), name.clone(), *addr));
        }
    }
    out
}

/// Up to `n` SKUs with stock.
async fn skus(platform: &Platform, n: usize) -> anyhow::Result<Vec<String>> {
    let (_, _, region) = platform.regions.first().context("no region")?;
    let page = region
        .commerce
        .search_index()
        .search(&search::SearchQuery {
            limit: n.min(search::MAX_PAGE_LIMIT),
            ..search::SearchQuery::default()
        })
        .context("listing products")?;
    Ok(page.hits.into_iter().map(|h| h.id).collect())
}

/// The business invariants (`commerce::invariants`, the one definition the
/// simulator runs too), over what the load was told.
async fn invariants(platform: &Platform, records: &[Record]) -> anyhow::Result<Vec<Check>> {
    let mut acknowledged = commerce::invariants::Acknowledged::default();
    for r in records.iter().filter(|r| r.action == Action::Checkout) {
        if let (Some(order), Some(owner), true) = (&r.order_id, &r.shopper_id, r.ok()) {
            acknowledged.orders.insert(order.clone(), owner.clone());
        }
    }
    for r in records
        .iter()
        .filter(|r| r.ok() && r.action == Action::AddToCart)
    {
        if let (Some(cart), Some(owner), Some(version)) =
            (&r.cart_id, &r.shopper_id, r.cart_version)
        {
            acknowledged.cart_write(cart, owner, version);
        }
    }
    let skus = skus(platform, 50).await?;
    commerce::invariants::check(&platform.operator, &platform.payments, &acknowledged, &skus)
        .await
        .context("reading the provider's ledger")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small drill's outcome: two POPs shopping for 12 s, a fault from 4
    /// to 8 s with errors in it, and one invariant that holds or not.
    pub(crate) fn outcome(passed: bool) -> Outcome {
        let mut records = Vec::new();
        for at_ms in (0..12_000).step_by(100) {
            for pop in ["dub", "iad"] {
                let faulty = pop == "dub" && (4_000..5_000).contains(&at_ms);
                records.push(Record {
                    at_ms,
                    latency_ms: if faulty {
                        900.0
                    } else {
                        20.0 + (at_ms % 7) as f64
                    },
                    shopper: 0,
                    shard: "eu".into(),
                    pop: pop.into(),
                    action: if at_ms % 500 == 0 {
                        Action::AddToCart
                    } else {
                        Action::Browse
                    },
                    status: if faulty { 503 } else { 200 },
                    key: None,
                    cart_id: None,
                    cart_version: None,
                    order_id: None,
                    order_status: None,
                    shopper_id: None,
                });
            }
        }
        Outcome {
            options: DrillOptions {
                scenario: Scenario::RegionOutage,
                region: "eu-west".parse().expect("a region"),
                duration: Duration::from_secs(12),
                fault_at: Duration::from_secs(4),
                fault_for: Duration::from_secs(4),
                rate: 20.0,
                shoppers: 2,
                seed: 1,
                cluster_recovery: Duration::ZERO,
                catalog_changes: 0,
            },
            hypothesis: "a <hypothesis> & more".into(),
            timeline: vec![Moment {
                at_ms: 4_000,
                what: "fault injected: <eu-west>".into(),
            }],
            records,
            checks: vec![Check {
                name: "acknowledged orders found".into(),
                expected: "3".into(),
                found: if passed { "3" } else { "2" }.into(),
                holds: passed,
            }],
            detection_ms: Some(310),
            first_write_ms: None,
            journeys: Vec::new(),
            posted_as: None,
        }
    }
}
