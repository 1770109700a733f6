//! The local platform, in one process: every region's service over one
//! shared storage (one embedded store per shard), the demo catalog, the
//! routing layer (health checks, routing API, DNS) probing the regions and
//! the POPs, and the edge POPs (the Spin component in edge-host) in front
//! of the regions, each server on its own loopback address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use regional_server::Region;
use tokio::sync::watch;
use tokio::task::JoinSet;
use topology::RegionId;

use crate::config::Loaded;

/// How `start` binds and what it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// Bind every server on an ephemeral port of its configured address
    /// instead of the configured port (tests).
    pub ephemeral_ports: bool,
    /// The edge component to run instead of the edge config's (what `up`
    /// has just built).
    pub component: Option<PathBuf>,
}

/// A running platform; dropping it does not stop it, [`Platform::stop`] does.
#[derive(Debug)]
pub struct Platform {
    pub regions: Vec<(RegionId, SocketAddr, Region)>,
    /// The operator's view: commerce over the shards themselves (no links,
    /// no faults), as an operator reads each cluster directly. The seed
    /// writes through it and a drill checks its invariants with it.
    pub operator: commerce::Commerce,
    /// With geography: the link from each region to each shard (zero time
    /// to the shards homed in it); faults act on them.
    pub links: Vec<Link>,
    /// With geography: the link from a region pushing the catalog to each
    /// region it pushes to; faults act on them too.
    pub peer_links: Vec<PeerLink>,
    /// Each region's readiness URL as the routing layer probes it, with the
    /// probe's modelled round trip.
    probe_urls: Vec<(RegionId, String, std::time::Duration)>,
    /// With geography: the routing layer's prober, which pays each
    /// region's and POP's modelled round trip from where routing runs.
    pub prober: Option<std::sync::Arc<routing::checker::DelayedProber>>,
    /// Each edge POP's name and address.
    pub pops: Vec<(String, SocketAddr)>,
    /// Each POP's name and place (the latency model's).
    pop_places: Vec<(String, f64, f64)>,
    topology: topology::Topology,
    pub routing_api: Option<SocketAddr>,
    /// The routing API's admin token (drain, posting drills), as the
    /// routing layer resolves it.
    pub routing_admin_token: Option<String>,
    pub dns: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
    edges: Option<edge_host::Running>,
    /// Each region's service, on a runtime of its own.
    processes: Vec<RegionProcess>,
    /// The simulated payment provider every region calls (its ledger is
    /// what a drill checks charges against).
    pub payments: std::sync::Arc<commerce::SimulatedGateway>,
    stop_regions: watch::Receiver<bool>,
    /// A region's serve loop that ended in error reports here.
    failures: tokio::sync::mpsc::Sender<anyhow::Error>,
    failed: tokio::sync::mpsc::Receiver<anyhow::Error>,
}

/// A region's service on a tokio runtime of its own, so an outage stops it
/// the way a process dies: listener, connections, in-flight requests,
/// running sagas and workers, all at once, with no flag checked by any
/// handler. Its durable state is in the shards; a restart builds it anew
/// from its config (empty caches, search index rebuilt).
#[derive(Debug)]
struct RegionProcess {
    config: regional_server::config::Loaded,
    addr: SocketAddr,
    view: db::ShardMap,
    /// Where it pushes the catalog's changes (the regions of this platform,
    /// over their modelled links).
    peers: Vec<regional_server::replication::Peer>,
    /// `None` while the region is down.
    runtime: Option<tokio::runtime::Runtime>,
    /// Resolves when the region's serve loop has returned.
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Drop for RegionProcess {
    /// A runtime must not be dropped (blocking) inside another: let it go
    /// in the background.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Binds a listener for a region's runtime to take.
fn bind_std(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Starts a runtime serving `region` on `listener` until `stop`; the
/// receiver resolves when it has stopped.
fn serve_region(
    region: &Region,
    listener: std::net::TcpListener,
    stop: watch::Receiver<bool>,
    failures: tokio::sync::mpsc::Sender<anyhow::Error>,
) -> anyhow::Result<(tokio::runtime::Runtime, tokio::sync::oneshot::Receiver<()>)> {
    let name = region.commerce.region().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(format!("region-{name}"))
        .enable_all()
        .build()
        .with_context(|| format!("a runtime for region {name}"))?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let region = region.clone();
    let (done, finished) = tokio::sync::oneshot::channel();
    runtime.spawn(async move {
        if let Err(e) = regional_server::run(region, listener, stop).await {
            let _ = failures.send(e.context(format!("region {name}"))).await;
        }
        let _ = done.send(());
    });
    Ok((runtime, finished))
}

/// One region's link to a shard's cluster.
#[derive(Debug, Clone)]
pub struct Link {
    pub region: RegionId,
    pub shard: topology::ShardId,
    pub link: std::sync::Arc<db::Link>,
    /// The modelled round trip (what a latency fault adds to).
    pub base: std::time::Duration,
}

/// One region's link to another region's service (the catalog's push).
#[derive(Debug, Clone)]
pub struct PeerLink {
    pub from: RegionId,
    pub to: RegionId,
    pub link: std::sync::Arc<db::Link>,
    /// The modelled round trip (what a latency fault adds to).
    pub base: std::time::Duration,
}

/// Where `config`'s region pushes the catalog's changes: the peers its
/// config names, at the addresses this platform serves them on, each over
/// a link of the modelled round trip when geography is on.
fn peers_of(
    config: &regional_server::config::Loaded,
    addresses: &[(RegionId, SocketAddr)],
    topology: &topology::Topology,
    geography: bool,
    peer_links: &mut Vec<PeerLink>,
) -> Vec<regional_server::replication::Peer> {
    let from = &config.config.region;
    config
        .config
        .replication
        .peers
        .iter()
        .map(|(to, url)| {
            let url = addresses
                .iter()
                .find(|(name, _)| name == to)
                .map_or_else(|| url.clone(), |(_, addr)| format!("http://{addr}"));
            let link = geography.then(|| {
                let base = topology.region_rtt(from, to).unwrap_or_default();
                let link = db::Link::new(base);
                peer_links.push(PeerLink {
                    from: from.clone(),
                    to: to.clone(),
                    link: link.clone(),
                    base,
                });
                link
            });
            regional_server::replication::Peer {
                region: to.clone(),
                url,
                link,
            }
        })
        .collect()
}

/// `region`'s view of the shards: with geography, every shard's cluster is
/// behind a link of the modelled round trip (zero for the shards homed in
/// the region), so faults can slow or cut them.
fn view_from(
    region: &RegionId,
    shards: &db::ShardMap,
    topology: &topology::Topology,
    geography: bool,
    links: &mut Vec<Link>,
) -> db::ShardMap {
    if !geography {
        return shards.clone();
    }
    let mut view = db::ShardMap::default();
    for (id, database) in shards.iter() {
        let rtt = match topology.shard(id).map(|s| s.home()) {
            Some(home) if home != region => topology.region_rtt(region, home).unwrap_or_default(),
            _ => std::time::Duration::ZERO,
        };
        let link = db::Link::new(rtt);
        links.push(Link {
            region: region.clone(),
            shard: id.clone(),
            link: link.clone(),
            base: rtt,
        });
        view.insert(id.clone(), database.over_link(&link));
    }
    view
}

/// Environment overrides a region may take when several share a process:
/// secrets yes, but not one listen address or region name for all.
fn shared_env(name: &str) -> Option<String> {
    match name {
        "MERIDIAN_REGION" | "MERIDIAN_LISTEN" => None,
        _ => std::env::var(name).ok(),
    }
}

/// Opens storage, seeds the demo catalog if the catalog is empty, and
/// starts every region and the routing layer.
pub async fn start(loaded: &Loaded, options: StartOptions) -> anyhow::Result<Platform> {
    anyhow::ensure!(!loaded.regions.is_empty(), "the config names no region");
    let edge_config = match &loaded.edge {
        Some(path) => {
            let mut config =
                edge_host::config::HostConfig::load(path, |name| std::env::var(name).ok())
                    .with_context(|| format!("loading {}", path.display()))?;
            if let Some(component) = &options.component {
                config.component = component.clone();
            }
            // Before anything is opened or seeded.
            anyhow::ensure!(
                config.component.is_file(),
                "the edge component {} is missing: run `up` without --no-build, or build it with \
                 `cargo build -p edge-spin --target wasm32-wasip2 --release`",
                config.component.display()
            );
            Some(config)
        }
        None => None,
    };

    let shards = crate::open_storage(&loaded.storage, &loaded.topology)?;
    let gateway = regional_server::storage::open_gateway(
        &loaded.payments,
        regional_server::storage::default_gateway_dir(&loaded.storage).as_deref(),
    )?;
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut regions = Vec::new();
    let (mut links, mut seeder) = (Vec::new(), None);
    for path in &loaded.regions {
        let region_config = regional_server::config::load(path, shared_env)
            .with_context(|| format!("loading {}", path.display()))?;
        let view = view_from(
            &region_config.config.region,
            &shards,
            &loaded.topology,
            loaded.geography,
            &mut links,
        );
        let region = Region::from_config(&region_config, view.clone(), gateway.clone())?;
        if seeder.is_none() {
            // The demo seed is an operator's bulk load into each cluster,
            // not a region's calls: it writes over the shards themselves.
            // (Its own search index: the seed's documents reach every
            // region's index through the change feed.)
            let mut seeding = region_config.clone();
            seeding.config.search_dir = None;
            seeder = Some(Region::from_config(
                &seeding,
                shards.clone(),
                gateway.clone(),
            )?);
        }
        let addr = ephemeral(region_config.config.listen, options.ephemeral_ports);
        let listener = bind_std(addr)
            .with_context(|| format!("binding {addr} for {}", region_config.config.region))?;
        let local = listener.local_addr()?;
        regions.push((region_config, local, region.clone(), listener, view));
    }

    // The catalog's push goes to the regions as this platform serves them.
    let addresses: Vec<(RegionId, SocketAddr)> = regions
        .iter()
        .map(|(config, local, _, _, _)| (config.config.region.clone(), *local))
        .collect();
    let mut peer_links = Vec::new();
    for (config, _, region, _, _) in &mut regions {
        region.peers = peers_of(
            config,
            &addresses,
            &loaded.topology,
            loaded.geography,
            &mut peer_links,
        );
    }

    let operator = seeder.context("the config names no region")?;
    {
        let commerce = &operator.commerce;
        if loaded.seed.products > 0 && commerce.catalog_version().await? == 0 {
            seed(commerce, loaded).await?;
        }
        if loaded.seed.order_lines > 0 {
            seed_history(commerce, loaded).await?;
        }
    }
    // Index the catalog before serving, so search answers from the start.
    for (_, _, region, _, _) in &regions {
        region.commerce.rebuild_search().await?;
    }

    let (failures, failed) = tokio::sync::mpsc::channel(16);
    let mut running = Vec::new();
    let mut processes = Vec::new();
    for (config, local, region, listener, view) in regions {
        let (runtime, done) = serve_region(&region, listener, stop.clone(), failures.clone())?;
        let peers = region.peers.clone();
        running.push((config.config.region.clone(), local, region));
        processes.push(RegionProcess {
            config,
            addr: local,
            view,
            peers,
            runtime: Some(runtime),
            done: Some(done),
        });
    }

    let (mut routing_api, mut dns, mut routing_run) = (None, None, None);
    let mut routing_admin_token = None;
    if let Some(path) = &loaded.routing {
        let mut routing = routing::server::load(path)?;
        routing_admin_token = routing::server::admin_token(&routing);
        let sockets = if options.ephemeral_ports {
            // Point the health checks at where the regions really listen.
            for endpoint in &mut routing.config.regions {
                if let Some((_, addr, _)) = running.iter().find(|(n, _, _)| n == &endpoint.name) {
                    endpoint.base_url = format!("http://{addr}");
                }
            }
            routing::server::Sockets::bind_ephemeral(routing.config.api_listen.ip()).await?
        } else {
            routing::server::Sockets::bind(&routing.config).await?
        };
        let api = sockets.api_addr()?;
        routing_api = Some(api);
        dns = Some(SocketAddr::new(api.ip(), sockets.dns_port()?));
        routing_run = Some((routing, sockets));
    }

    // The POPs, pointed at this routing layer (bound above, so its address
    // is known before it runs).
    let (mut edges, mut pops, mut pop_places) = (None, Vec::new(), Vec::new());
    if let Some(mut config) = edge_config {
        if let Some(api) = routing_api {
            config.routing_url = format!("http://{api}");
        }
        if loaded.geography {
            // Each POP's calls to each region pay their modelled round trip.
            for pop in &mut config.pops {
                for (name, addr, _) in &running {
                    let rtt = pop_rtt(
                        &loaded.topology,
                        &pop.name,
                        pop.latitude,
                        pop.longitude,
                        name,
                    );
                    if let Some(rtt) = rtt {
                        pop.origin_rtt_ms
                            .insert(addr.to_string(), rtt.as_secs_f64() * 1_000.0);
                    }
                }
            }
        }
        let started = edge_host::start(&config, options.ephemeral_ports)
            .await
            .context("starting the edge POPs")?;
        for (state, addr) in &started.pops {
            pops.push((state.name.clone(), *addr));
        }
        pop_places = config
            .pops
            .iter()
            .map(|p| (p.name.clone(), p.latitude, p.longitude))
            .collect();
        // The routing layer probes the POPs it runs with (for the
        // storefront's DNS name), unless its config lists POPs itself.
        if let Some((routing, _)) = &mut routing_run
            && routing.config.pops.is_empty()
        {
            for (pop, (name, addr)) in config.pops.iter().zip(&pops) {
                routing.config.pops.push(routing::config::PopConfig {
                    name: name.parse().with_context(|| format!("POP name {name:?}"))?,
                    base_url: format!("http://{addr}"),
                    healthz_path: "/healthz".into(),
                    addresses: vec![addr.ip()],
                    latitude: pop.latitude,
                    longitude: pop.longitude,
                    baseline_ms: 0.0,
                });
            }
        }
        edges = Some(started);
    }

    let (mut prober, mut probe_urls) = (None, Vec::new());
    if let Some((mut routing, sockets)) = routing_run {
        if loaded.geography {
            prober = Some(far_prober(&mut routing.config, &loaded.topology)?);
        }
        probe_urls = routing
            .config
            .endpoints()
            .into_iter()
            .map(|e| {
                let base = std::time::Duration::from_secs_f64(e.baseline_ms / 1_000.0);
                (e.name, e.readyz_url, base)
            })
            .collect();
        let as_prober = prober
            .clone()
            .map(|p| p as std::sync::Arc<dyn routing::checker::Prober>);
        let mut stop = stop.clone();
        tasks.spawn(routing::server::run(
            routing,
            sockets,
            as_prober,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
    }
    Ok(Platform {
        operator: operator.commerce.clone(),
        regions: running,
        processes,
        payments: gateway,
        stop_regions: stop,
        failures,
        failed,
        links,
        peer_links,
        probe_urls,
        prober,
        pops,
        pop_places,
        topology: loaded.topology.clone(),
        routing_api,
        routing_admin_token,
        dns,
        shutdown,
        tasks,
        edges,
    })
}

/// The model's round trip from a POP at a place to `region`.
fn pop_rtt(
    topology: &topology::Topology,
    name: &str,
    latitude: f64,
    longitude: f64,
    region: &RegionId,
) -> Option<std::time::Duration> {
    let pop = topology::latency::Place {
        name,
        latitude,
        longitude,
    };
    Some(
        topology
            .latency()
            .rtt(pop, topology.region(region)?.place()),
    )
}

/// The routing layer runs in the topology's first region: its probes pay
/// the round trip from there, and each region and POP is judged against
/// that round trip as its baseline (so at rest none is degraded by its
/// distance alone).
fn far_prober(
    config: &mut routing::config::RoutingConfig,
    topology: &topology::Topology,
) -> anyhow::Result<std::sync::Arc<routing::checker::DelayedProber>> {
    let prober = routing::checker::DelayedProber::new(std::sync::Arc::new(
        routing::checker::HttpProber::new().context("building the HTTP prober")?,
    ));
    let Some(home) = topology.regions().first() else {
        return Ok(std::sync::Arc::new(prober));
    };
    let latency = topology.latency();
    for region in &mut config.regions {
        if let Some(place) = topology.region(&region.name) {
            let rtt = latency.rtt(home.place(), place.place());
            region.baseline_ms = rtt.as_secs_f64() * 1_000.0;
        }
    }
    for pop in &mut config.pops {
        let place = topology::latency::Place {
            name: pop.name.as_str(),
            latitude: pop.latitude,
            longitude: pop.longitude,
        };
        pop.baseline_ms = latency.rtt(home.place(), place).as_secs_f64() * 1_000.0;
    }
    for endpoint in config.endpoints() {
        prober.set_delay(
            &endpoint.readyz_url,
            std::time::Duration::from_secs_f64(endpoint.baseline_ms / 1_000.0),
        );
    }
    for pop in config.pop_endpoints() {
        prober.set_delay(
            &pop.endpoint.readyz_url,
            std::time::Duration::from_secs_f64(pop.endpoint.baseline_ms / 1_000.0),
        );
    }
    Ok(std::sync::Arc::new(prober))
}

/// Where to bind a server configured at `addr`: there, or (for tests) on a
/// port the kernel picks, keeping the address.
fn ephemeral(addr: SocketAddr, ephemeral_ports: bool) -> SocketAddr {
    if ephemeral_ports {
        SocketAddr::new(addr.ip(), 0)
    } else {
        addr
    }
}

async fn seed(commerce: &commerce::Commerce, loaded: &Loaded) -> anyhow::Result<()> {
    let total = loaded.seed.products;
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "seeding the demo catalog {bar:40} {pos}/{len} products",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = commerce
        .seed_demo(
            commerce::seed::SeedOptions {
                products: total,
                seed: loaded.seed.seed,
                max_stock: loaded.seed.max_stock,
            },
            |done| bar.set_position(done as u64),
        )
        .await
        .context("seeding the demo catalog")?;
    bar.finish_and_clear();
    println!(
        "seeded {} categories, {} products, {} units of stock (seed {})",
        report.categories, report.products, report.stock_units, loaded.seed.seed
    );
    Ok(())
}

/// The demo's order history (when every sales log is empty): what the
/// recommendations are computed from.
async fn seed_history(commerce: &commerce::Commerce, loaded: &Loaded) -> anyhow::Result<()> {
    let total = loaded.seed.order_lines;
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "seeding the order history {bar:40} {pos}/{len} order lines",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let written = commerce
        .seed_history(total, loaded.seed.seed, |done| {
            bar.set_position(done as u64)
        })
        .await
        .context("seeding the order history")?;
    bar.finish_and_clear();
    if written > 0 {
        println!(
            "seeded an order history of {written} order lines (seed {})",
            loaded.seed.seed
        );
    }
    Ok(())
}

impl Platform {
    /// Cuts `region` off (`true`) or heals it: it reaches none of the
    /// clusters (its transactions fail promptly, nothing applied), the
    /// POPs' calls to it are refused before anything is sent, and the
    /// routing layer's probes of it fail. Needs geography.
    pub fn partition(&self, region: &RegionId, cut: bool) -> anyhow::Result<()> {
        anyhow::ensure!(!self.links.is_empty(), "faults need geography = true");
        for link in self.links.iter().filter(|l| &l.region == region) {
            link.link.set_partitioned(cut);
        }
        for link in self
            .peer_links
            .iter()
            .filter(|l| &l.from == region || &l.to == region)
        {
            link.link.set_partitioned(cut);
        }
        let authority = self.authority(region)?;
        for (pop, _) in self.edges.iter().flat_map(|e| e.pops.iter()) {
            pop.set_origin_cut(&authority, cut);
        }
        if let Some(prober) = &self.prober {
            for (_, url, _) in self.probe_urls.iter().filter(|(r, _, _)| r == region) {
                prober.set_cut(url, cut);
            }
        }
        Ok(())
    }

    /// Cuts every region's link to `shard`'s cluster (`true`), as while the
    /// cluster recovers in its remote DC after losing its primary, or
    /// restores them.
    pub fn cut_shard(&self, shard: &topology::ShardId, cut: bool) -> anyhow::Result<()> {
        anyhow::ensure!(!self.links.is_empty(), "faults need geography = true");
        for link in self.links.iter().filter(|l| &l.shard == shard) {
            link.link.set_partitioned(cut);
        }
        Ok(())
    }

    /// Adds `extra` to every round trip into and out of `region` (its
    /// clusters, the POPs' calls to it, the probes); zero restores the
    /// model's.
    pub fn slow(&self, region: &RegionId, extra: std::time::Duration) -> anyhow::Result<()> {
        anyhow::ensure!(!self.links.is_empty(), "faults need geography = true");
        for link in self.links.iter().filter(|l| &l.region == region) {
            link.link.set_rtt(link.base + extra);
        }
        for link in self
            .peer_links
            .iter()
            .filter(|l| &l.from == region || &l.to == region)
        {
            link.link.set_rtt(link.base + extra);
        }
        let authority = self.authority(region)?;
        for (pop, _) in self.edges.iter().flat_map(|e| e.pops.iter()) {
            let base = self.pop_rtt(&pop.name, region).unwrap_or_default();
            pop.set_origin_delay(&authority, base + extra);
        }
        if let Some(prober) = &self.prober {
            for (_, url, base) in self.probe_urls.iter().filter(|(r, _, _)| r == region) {
                prober.set_delay(url, *base + extra);
            }
        }
        Ok(())
    }

    /// `share` (0 to 1) of `region`'s calls to its clusters fail (nothing
    /// applied); `seed` fixes which. Zero ends it.
    pub fn brownout(&self, region: &RegionId, share: f64, seed: u64) -> anyhow::Result<()> {
        anyhow::ensure!(!self.links.is_empty(), "faults need geography = true");
        for link in self.links.iter().filter(|l| &l.region == region) {
            link.link.set_brownout(share, seed);
        }
        for link in self.peer_links.iter().filter(|l| &l.from == region) {
            link.link.set_brownout(share, seed);
        }
        Ok(())
    }

    fn authority(&self, region: &RegionId) -> anyhow::Result<String> {
        self.regions
            .iter()
            .find(|(name, _, _)| name == region)
            .map(|(_, addr, _)| addr.to_string())
            .with_context(|| format!("no region {region} in this platform"))
    }

    /// The model's round trip from the POP named `pop` to `region`.
    pub fn pop_rtt(&self, pop: &str, region: &RegionId) -> Option<std::time::Duration> {
        let (name, latitude, longitude) = self.pop_places.iter().find(|(n, _, _)| n == pop)?;
        pop_rtt(&self.topology, name, *latitude, *longitude, region)
    }

    /// The topology the platform runs.
    pub fn topology(&self) -> &topology::Topology {
        &self.topology
    }

    /// Each POP's name and place.
    pub fn pop_places(&self) -> &[(String, f64, f64)] {
        &self.pop_places
    }

    /// A region outage: the region's service stops as a process dies
    /// (listener closed, connections and in-flight requests cut, workers
    /// and sagas gone); its data stays in its shards, which the other
    /// regions still reach.
    /// Returns once it is gone (nothing listens at its address).
    pub async fn kill_region(&mut self, region: &RegionId) -> anyhow::Result<()> {
        let process = self
            .processes
            .iter_mut()
            .find(|p| &p.config.config.region == region)
            .with_context(|| format!("no region {region} in this platform"))?;
        process.done = None;
        if let Some(runtime) = process.runtime.take() {
            // Every task dropped, sockets closed, before returning (bounded:
            // a blocking call the runtime cannot cut is left behind).
            tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(5)))
                .await
                .context("stopping the region's runtime")?;
        }
        Ok(())
    }

    /// Starts a killed region again at its address: a new service from its
    /// config over the same shards (empty caches, search rebuilt).
    pub async fn restart_region(&mut self, region: &RegionId) -> anyhow::Result<()> {
        let index = self
            .processes
            .iter()
            .position(|p| &p.config.config.region == region)
            .with_context(|| format!("no region {region} in this platform"))?;
        anyhow::ensure!(
            self.processes[index].runtime.is_none(),
            "region {region} is running"
        );
        let (config, addr, view, peers) = {
            let p = &self.processes[index];
            (p.config.clone(), p.addr, p.view.clone(), p.peers.clone())
        };
        let mut fresh = Region::from_config(&config, view, self.payments.clone())?;
        fresh.peers = peers;
        fresh.commerce.rebuild_search().await?;
        let listener =
            bind_std(addr).with_context(|| format!("binding {addr} for {region} again"))?;
        let (runtime, done) = serve_region(
            &fresh,
            listener,
            self.stop_regions.clone(),
            self.failures.clone(),
        )?;
        self.processes[index].runtime = Some(runtime);
        self.processes[index].done = Some(done);
        if let Some(entry) = self.regions.iter_mut().find(|(n, _, _)| n == region) {
            entry.2 = fresh;
        }
        Ok(())
    }

    /// Stops the POPs, then every server and worker, and waits for them
    /// (bounded).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(edges) = self.edges.take() {
            edges.stop().await;
        }
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(result) = self.tasks.join_next().await {
                result.context("platform task")??;
            }
            Ok::<_, anyhow::Error>(())
        })
        .await;
        // Each region finishes its requests and stops its workers on the
        // same signal; its runtime goes once it has (bounded).
        for process in &mut self.processes {
            if let Some(done) = process.done.take() {
                let _ = tokio::time::timeout(Duration::from_secs(15), done).await;
            }
            if let Some(runtime) = process.runtime.take() {
                runtime.shutdown_background();
            }
        }
        match drained {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the platform did not stop within 30 s"),
        }
    }

    /// Waits until a task or a region fails (or all end).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        let edges = async {
            match self.edges.as_mut() {
                Some(edges) => edges.wait().await,
                None => std::future::pending().await,
            }
        };
        let servers = async {
            while let Some(result) = self.tasks.join_next().await {
                result.context("platform task")??;
            }
            std::future::pending::<anyhow::Result<()>>().await
        };
        let regions = async {
            match self.failed.recv().await {
                Some(e) => Err(e),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = edges => result.context("an edge POP stopped"),
            result = servers => result,
            result = regions => result,
        }
    }
}
