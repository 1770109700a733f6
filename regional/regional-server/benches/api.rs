//! The regional service's benchmark, with PostgreSQL in the same run as the
//! reference for the hot-SKU case.
//!
//! 1. HTTP API, closed loop: `--clients` concurrent clients (default 64),
//!    each sending its next request when the last one answered, for
//!    `--secs` seconds per scenario (default 10), against one in-process
//!    [`Region`] (embedded stores in a tempdir, fsync-durable defaults, the
//!    real clock, the simulated gateway, the production HTTP and worker
//!    settings) seeded with the demo catalog (`--products`, default 10,000).
//!    Every request is signed as an edge signs it. Scenarios: catalog read
//!    (`GET /v1/products/{sku}`, random SKUs), search (`GET /v1/search`,
//!    words of the demo titles), cart write (alternating `POST` of one unit
//!    and `PUT` back to one unit, over 20 SKUs per cart, so a cart stays
//!    bounded), checkout (add one unit of an in-stock SKU, then
//!    `POST /v1/checkout` with a fresh `Idempotency-Key`), review write
//!    (`PUT /v1/products/{sku}/reviews/mine`, each client cycling over 20
//!    SKUs: a new review, then edits) and review read (a page of the most
//!    helpful reviews or the summary of a SKU the writers reviewed, in
//!    turn; the projection runs in the region's workers meanwhile). The load
//!    generator shares the machine's cores with the server, as `wrk` would.
//! 2. Hot-SKU reservations at the library level (no HTTP): one SKU with
//!    10,000,000 units in one warehouse, `--clients` tasks calling
//!    `Commerce::reserve` (durable, qty 1, unique ids) for `--secs`; then
//!    the invariants: live stock equals the stock rebuilt from the SKU's
//!    log, `available + reserved + sold == received`, reserved == the
//!    successful reservations. A small-stock variant (5,000 units) runs
//!    until exhausted and checks that exactly 5,000 succeed and no more.
//!    A short diagnostic run with retries off measures how often a first
//!    attempt conflicts.
//! 3. The PostgreSQL baseline: a private cluster (initdb in a tempdir, as
//!    the `postgres` user when running as root) on a free 127.0.0.1 port,
//!    `fsync=on`, `synchronous_commit=on`, no Unix socket; `--clients`
//!    connections each looping `BEGIN; SELECT … FOR UPDATE; UPDATE;
//!    INSERT; COMMIT` on one row. The cluster is stopped and deleted at the
//!    end, also on error (a guard's `Drop`).
//!
//! Run: `cargo xtask bench-regional` (installs postgresql if missing), or
//! `cargo bench -p regional-server --bench api -- [--secs N] [--clients N]
//! [--products N] [--skip-pg]`. Every wait, request and child process is
//! bounded in time; everything binds 127.0.0.1.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use commerce::catalog::{CategoryInput, Money, ProductInput};
use commerce::inventory::{MAX_QTY, StockLevel};
use commerce::seed::{SeedOptions, demo_product, demo_sku, demo_stock};
use commerce::{
    Commerce, CommerceError, CommerceParts, Settings, SimulatedGateway, SimulatedGatewayConfig,
    SystemClock,
};
use db::{Database, RetryPolicy, ShardMap};
use db_embedded::{EmbeddedDatabase, EmbeddedOptions, EmbeddedStats};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regional_server::config::{HttpConfig, Secrets, WorkerConfig};
use regional_server::{Region, RegionParts, auth};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Barrier, watch};
use tokio::task::JoinSet;
use topology::{ShardId, Topology};

const EDGE_KEY: &str = "bench-edge-key-0123456789abcdef";
const SESSION_KEY: &str = "bench-session-key-0123456789abcdef";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
/// The demo catalog's seed (and the clients' random streams derive from it).
const SEED: u64 = 42;
/// Units per SKU per warehouse are drawn from `0..=SEED_MAX_STOCK` when
/// seeding: generous, so checkouts (a few thousand over 10,000 SKUs) rarely
/// find a SKU sold out.
const SEED_MAX_STOCK: i64 = 1_000;
/// The warehouse (shard) the shoppers live in and the hot SKU is stocked in.
const WAREHOUSE: &str = "us";
const HOT_SKU: &str = "BENCH-HOT-1";
const SMALL_SKU: &str = "BENCH-SMALL-1";
const HOT_STOCK: i64 = 10_000_000;
const SMALL_STOCK: i64 = 5_000;
/// Long enough that nothing expires during a run.
const RESERVATION_TTL_MS: u64 = 3_600_000;
/// SKUs a cart-write client cycles through (a cart holds at most 100 lines).
const CART_SKUS: usize = 20;
/// Titles the search words are taken from.
const WORD_SOURCE_PRODUCTS: usize = 2_000;
/// One request, or one storage call, at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Preparing the clients of one scenario (sessions, carts, connections).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long past `--secs` the clients of a scenario may take to stop.
const RUN_GRACE: Duration = Duration::from_secs(30);
/// Seeding and indexing the demo catalog.
const SEED_TIMEOUT: Duration = Duration::from_secs(900);
/// Reading back stock and its log for the invariant checks.
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);
/// The region's server and workers stopping.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest latency recorded, in µs.
const MAX_LATENCY_US: u64 = 60_000_000;
/// The diagnostic run with retries off, at most.
const PROBE_SECS: u64 = 3;
/// What the issue measured for PostgreSQL 15 with 64 clients on this
/// machine kind, and the target (5×).
const ISSUE_PG_PER_S: f64 = 1_365.0;
const TARGET_PER_S: f64 = 6_800.0;

/// `cargo bench -p regional-server --bench api -- [options]`.
#[derive(Debug, clap::Parser)]
#[command(about = "The regional HTTP API and hot-SKU reservations against PostgreSQL")]
struct Options {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    secs: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64, value_parser = clients)]
    clients: usize,
    /// Products seeded (the demo catalog).
    #[arg(long, default_value_t = 10_000, value_parser = products)]
    products: usize,
    /// Leave PostgreSQL out.
    #[arg(long)]
    skip_pg: bool,
    /// Passed by `cargo bench` to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

fn clients(text: &str) -> Result<usize, String> {
    bounded(text, 1, 512)
}

fn products(text: &str) -> Result<usize, String> {
    bounded(text, 1, commerce::seed::MAX_PRODUCTS)
}

fn bounded(text: &str, min: usize, max: usize) -> Result<usize, String> {
    let value: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be {min}..={max}"))
    }
}

impl Options {
    fn from_args() -> anyhow::Result<Self> {
        Ok(<Options as clap::Parser>::parse())
    }

    /// The command that reproduces this run.
    fn command(&self) -> String {
        format!(
            "cargo bench -p regional-server --bench api -- --secs {} --clients {} --products {}{}",
            self.secs,
            self.clients,
            self.products,
            if self.skip_pg { " --skip-pg" } else { "" }
        )
    }
}

// ---- measuring ----

/// What one iteration of a client's loop came to.
#[derive(Debug)]
struct Step {
    kind: Cow<'static, str>,
    ok: bool,
    detail: Option<String>,
    /// The client stops after this iteration (stock exhausted, or a broken
    /// connection).
    stop: bool,
    /// The latency of one part of the iteration, kept apart (checkout's
    /// `POST /v1/checkout` without the add before it).
    part: Option<Duration>,
}

impl Step {
    fn ok(kind: impl Into<Cow<'static, str>>) -> Self {
        Step {
            kind: kind.into(),
            ok: true,
            detail: None,
            stop: false,
            part: None,
        }
    }

    fn failed(kind: impl Into<Cow<'static, str>>, detail: String) -> Self {
        Step {
            kind: kind.into(),
            ok: false,
            detail: Some(detail),
            stop: false,
            part: None,
        }
    }

    fn stopping(mut self) -> Self {
        self.stop = true;
        self
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|_| unreachable!("the bounds are valid"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Counts and latencies of one scenario (one client's, or all merged).
#[derive(Debug)]
struct Tally {
    latency_us: Histogram<u64>,
    part_us: Histogram<u64>,
    ok: u64,
    not_ok: u64,
    kinds: BTreeMap<Cow<'static, str>, u64>,
    first_failure: Option<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency_us: histogram(),
            part_us: histogram(),
            ok: 0,
            not_ok: 0,
            kinds: BTreeMap::new(),
            first_failure: None,
        }
    }

    fn record(&mut self, elapsed: Duration, step: Step) {
        self.latency_us.saturating_record(micros(elapsed));
        if let Some(part) = step.part {
            self.part_us.saturating_record(micros(part));
        }
        if step.ok {
            self.ok += 1;
        } else {
            self.not_ok += 1;
            if self.first_failure.is_none() {
                self.first_failure = step.detail;
            }
        }
        *self.kinds.entry(step.kind).or_insert(0) += 1;
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.part_us.add(&other.part_us);
        self.ok += other.ok;
        self.not_ok += other.not_ok;
        for (kind, n) in other.kinds {
            *self.kinds.entry(kind).or_insert(0) += n;
        }
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    fn kinds_text(&self) -> String {
        self.kinds
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One scenario's result.
#[derive(Debug)]
struct Run {
    tally: Tally,
    elapsed: Duration,
}

impl Run {
    fn ops(&self) -> u64 {
        self.tally.ok + self.tally.not_ok
    }

    fn ops_per_s(&self) -> f64 {
        self.ops() as f64 / self.elapsed.as_secs_f64()
    }

    fn ok_per_s(&self) -> f64 {
        self.tally.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `clients` tasks: each prepares with `setup` (untimed), then all
/// start together and each loops `step` (the next iteration when the last
/// one finished) until `duration` has passed or a step says stop.
///
/// The state goes into `step` and comes back out, so the step's future
/// owns what it uses and can run on any worker thread.
async fn closed_loop<S, SetupFut, StepFn, StepFut>(
    clients: usize,
    duration: Duration,
    setup: impl Fn(usize) -> SetupFut,
    step: StepFn,
) -> anyhow::Result<Run>
where
    S: Send + 'static,
    SetupFut: Future<Output = anyhow::Result<S>> + Send + 'static,
    StepFn: Fn(S) -> StepFut + Clone + Send + 'static,
    StepFut: Future<Output = (S, Step)> + Send,
{
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = JoinSet::new();
    for i in 0..clients {
        let prepare = setup(i);
        let step = step.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            let prepared = tokio::time::timeout(SETUP_TIMEOUT, prepare).await;
            // Every task reaches the barrier, prepared or not, so that the
            // others are not left waiting for it.
            barrier.wait().await;
            let mut state = prepared.context("preparing a client timed out")??;
            let deadline = Instant::now() + duration;
            let mut tally = Tally::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let (next, outcome) = step(state).await;
                state = next;
                let stop = outcome.stop;
                tally.record(started.elapsed(), outcome);
                if stop {
                    break;
                }
            }
            anyhow::Ok(tally)
        });
    }
    tokio::time::timeout(SETUP_TIMEOUT + Duration::from_secs(5), barrier.wait())
        .await
        .context("the clients did not get ready in time")?;
    let started = Instant::now();
    let mut total = Tally::new();
    let joined = tokio::time::timeout(duration + RUN_GRACE, async {
        while let Some(result) = tasks.join_next().await {
            total.merge(result.context("a client task failed")??);
        }
        anyhow::Ok(())
    })
    .await;
    joined.context("the clients did not stop in time")??;
    Ok(Run {
        tally: total,
        elapsed: started.elapsed(),
    })
}

// ---- the embedded stores and the region ----

fn shard(name: &str) -> anyhow::Result<ShardId> {
    name.parse()
        .with_context(|| format!("{name:?} is not a shard name"))
}

/// One embedded store per shard of the local topology, in a tempdir, with
/// the default (fsync-durable) options; the engines are kept for their
/// commit counters.
#[derive(Debug)]
struct Stores {
    topology: Arc<Topology>,
    engines: BTreeMap<ShardId, Arc<EmbeddedDatabase>>,
    gateway: std::sync::OnceLock<Arc<SimulatedGateway>>,
    dir: tempfile::TempDir,
}

impl Stores {
    fn open() -> anyhow::Result<Stores> {
        let dir = tempfile::tempdir().context("creating the stores' tempdir")?;
        let topology = Topology::from_toml_str(topology::LOCAL_TOPOLOGY)?;
        let mut engines = BTreeMap::new();
        for s in topology.shards() {
            let engine = EmbeddedDatabase::open(
                dir.path().join(s.id().as_str()),
                EmbeddedOptions::default(),
            )
            .with_context(|| format!("opening the store of shard {}", s.id()))?;
            engines.insert(s.id().clone(), Arc::new(engine));
        }
        Ok(Stores {
            topology: Arc::new(topology),
            engines,
            gateway: std::sync::OnceLock::new(),
            dir,
        })
    }

    /// Databases over these stores with `retry` (several maps may share
    /// the stores, each with its own retry policy).
    fn shard_map(&self, retry: RetryPolicy) -> ShardMap {
        let mut map = ShardMap::default();
        for (shard, engine) in &self.engines {
            map.insert(
                shard.clone(),
                Database::new(engine.clone()).with_retry_policy(retry),
            );
        }
        map
    }

    fn stats(&self, shard: &ShardId) -> EmbeddedStats {
        self.engines.get(shard).map_or(
            EmbeddedStats {
                groups_committed: 0,
                transactions_committed: 0,
            },
            |e| e.stats(),
        )
    }

    fn served(&self) -> BTreeSet<ShardId> {
        self.topology
            .shards()
            .iter()
            .map(|s| s.id().clone())
            .collect()
    }

    /// A commerce domain over these stores (no HTTP, no workers).
    fn commerce(
        &self,
        retry: RetryPolicy,
        search: Arc<search::SearchIndex>,
    ) -> anyhow::Result<Commerce> {
        Ok(Commerce::new(CommerceParts {
            shards: self.shard_map(retry),
            topology: self.topology.clone(),
            region: "us-east".parse()?,
            served: self.served(),
            catalog_shard: shard(WAREHOUSE)?,
            settings: Settings::default(),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(commerce::OsEntropy),
            gateway: self.gateway()?,
            search,
        })?)
    }

    /// The simulated payment provider, over its own store in this
    /// directory (opened once; every caller shares it).
    fn gateway(&self) -> anyhow::Result<Arc<SimulatedGateway>> {
        if let Some(gateway) = self.gateway.get() {
            return Ok(gateway.clone());
        }
        let gateway = regional_server::storage::open_gateway(
            &SimulatedGatewayConfig::default(),
            Some(&self.dir.path().join("payments")),
        )?;
        Ok(self.gateway.get_or_init(|| gateway).clone())
    }

    /// A region over these stores with the production HTTP and worker
    /// settings and a search index on disk.
    fn region(&self) -> anyhow::Result<Region> {
        let search_dir = self.dir.path().join("search");
        std::fs::create_dir_all(&search_dir)?;
        let search = search::SearchIndex::open_or_create(Some(&search_dir))?;
        Region::build(RegionParts {
            region: "us-east".parse()?,
            topology: self.topology.clone(),
            shards: self.shard_map(RetryPolicy::default()),
            served: self.served(),
            catalog_shard: shard(WAREHOUSE)?,
            search: Arc::new(search),
            settings: Settings::default(),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(commerce::OsEntropy),
            gateway: self.gateway()?,
            secrets: Secrets {
                edge_key: EDGE_KEY.into(),
                session_key: SESSION_KEY.into(),
                admin_token: ADMIN_TOKEN.into(),
                ..Secrets::default()
            },
            http: HttpConfig::default(),
            workers: WorkerConfig::default(),
            peers: Vec::new(),
        })
    }
}

/// Seeds the demo catalog and indexes it for search.
async fn seed(commerce: &Commerce, products: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let report = commerce
        .seed_demo(
            SeedOptions {
                products,
                seed: SEED,
                max_stock: SEED_MAX_STOCK,
            },
            |_| {},
        )
        .await?;
    let seeded = started.elapsed();
    let deadline = Instant::now() + SEED_TIMEOUT;
    loop {
        let applied = commerce.apply_feed(0).await?;
        if applied == 0 && commerce.search_index().num_docs() == products as u64 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the search index did not catch up: {} of {products} documents",
            commerce.search_index().num_docs()
        );
    }
    eprintln!(
        "bench: seeded {} products ({} units of stock) in {:.1} s, indexed in {:.1} s",
        report.products,
        report.stock_units,
        seeded.as_secs_f64(),
        (started.elapsed() - seeded).as_secs_f64()
    );
    Ok(())
}

// ---- the HTTP client ----

/// A client that signs like an edge.
#[derive(Debug, Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

fn nonce(rng: &mut StdRng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn excerpt(text: &str) -> String {
    text.chars().take(300).collect()
}

impl Api {
    fn signed(
        &self,
        rng: &mut StdRng,
        method: Method,
        path: &str,
        body: Option<&Value>,
        session: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let bytes = body.map(Value::to_string).unwrap_or_default().into_bytes();
        let now_s = unix_s();
        let nonce = nonce(rng);
        let signature = auth::sign_edge_request(
            EDGE_KEY.as_bytes(),
            method.as_str(),
            path,
            now_s,
            &nonce,
            &bytes,
        );
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(auth::TIMESTAMP_HEADER, now_s.to_string())
            .header(auth::NONCE_HEADER, nonce)
            .header(auth::SIGNATURE_HEADER, signature);
        if !bytes.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(bytes);
        }
        if let Some(token) = session {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Sends `request` and reads the whole body (so the connection is
    /// reused): ok when the status is `expect`.
    async fn call(request: reqwest::RequestBuilder, expect: StatusCode) -> Step {
        Self::call_in(request, &[expect]).await
    }

    /// As [`Api::call`], ok when the status is any of `expect`.
    async fn call_in(request: reqwest::RequestBuilder, expect: &[StatusCode]) -> Step {
        match request.send().await {
            Err(e) => Step::failed(
                if e.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                },
                format!("{e:#}"),
            ),
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await;
                let kind = Cow::Owned(status.as_str().to_owned());
                match body {
                    Err(e) => Step::failed("body", format!("{status}: {e:#}")),
                    Ok(_) if expect.contains(&status) => Step::ok(kind),
                    Ok(body) => Step::failed(
                        kind,
                        format!("{status}: {}", excerpt(&String::from_utf8_lossy(&body))),
                    ),
                }
            }
        }
    }

    /// Sends `request` for setting up; its JSON answer.
    async fn json(request: reqwest::RequestBuilder, expect: StatusCode) -> anyhow::Result<Value> {
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status == expect, "{status}: {}", excerpt(&text));
        Ok(serde_json::from_str(&text)?)
    }

    /// A new shopper session (token) and an empty cart (id).
    async fn shopper(&self, rng: &mut StdRng) -> anyhow::Result<(String, String)> {
        let session = Self::json(
            self.signed(
                rng,
                Method::POST,
                "/v1/sessions",
                Some(&json!({ "shard": WAREHOUSE })),
                None,
            ),
            StatusCode::CREATED,
        )
        .await
        .context("creating a session")?;
        let token = session["token"]
            .as_str()
            .context("a session without a token")?
            .to_owned();
        let cart = self.new_cart(rng, &token).await?;
        Ok((token, cart))
    }

    async fn new_cart(&self, rng: &mut StdRng, token: &str) -> anyhow::Result<String> {
        let cart = Self::json(
            self.signed(rng, Method::POST, "/v1/carts", None, Some(token)),
            StatusCode::CREATED,
        )
        .await
        .context("creating a cart")?;
        Ok(cart["id"]
            .as_str()
            .context("a cart without an id")?
            .to_owned())
    }
}

/// One HTTP client's state.
#[derive(Debug)]
struct Shopper {
    api: Api,
    rng: StdRng,
    index: usize,
    token: String,
    cart: String,
    /// Iterations so far.
    n: u64,
    catalog: Arc<Catalog>,
    /// The SKUs this client's cart-write loop cycles through.
    cart_skus: Vec<String>,
}

/// What the clients pick from.
#[derive(Debug)]
struct Catalog {
    products: usize,
    words: Vec<String>,
    /// SKUs with stock in the shoppers' warehouse.
    in_stock: Vec<String>,
    /// Distinguishes this run's idempotency keys.
    run_id: u64,
}

impl Catalog {
    fn new(commerce: &Commerce, products: usize) -> anyhow::Result<Catalog> {
        let mut words = BTreeSet::new();
        for i in 0..products.min(WORD_SOURCE_PRODUCTS) {
            let (_, product) = demo_product(SEED, i);
            for word in product.title.split_whitespace() {
                if word.bytes().all(|b| b.is_ascii_alphabetic()) {
                    words.insert(word.to_lowercase());
                }
            }
        }
        let warehouse = shard(WAREHOUSE)?;
        let w = commerce
            .warehouses()
            .iter()
            .position(|s| s == &warehouse)
            .context("the shoppers' warehouse is not in the topology")?;
        let in_stock: Vec<String> = (0..products)
            .filter(|&i| demo_stock(SEED, i, w, SEED_MAX_STOCK) > 0)
            .map(demo_sku)
            .collect();
        ensure!(!words.is_empty(), "no search words in the demo titles");
        ensure!(!in_stock.is_empty(), "no SKU is in stock");
        Ok(Catalog {
            products,
            words: words.into_iter().collect(),
            in_stock,
            run_id: rand::random::<u32>().into(),
        })
    }
}

/// Prepares HTTP client `index`: a session, a cart, its random stream.
fn shopper_setup(
    api: &Api,
    catalog: &Arc<Catalog>,
    scenario: u64,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<Shopper>> + Send>> + use<>
{
    let (api, catalog) = (api.clone(), catalog.clone());
    move |index| {
        let (api, catalog) = (api.clone(), catalog.clone());
        Box::pin(async move {
            let mut rng = StdRng::seed_from_u64(SEED ^ (scenario << 32) ^ index as u64);
            let (token, cart) = api.shopper(&mut rng).await?;
            let cart_skus = (0..CART_SKUS)
                .map(|_| demo_sku(rng.random_range(0..catalog.products)))
                .collect();
            Ok(Shopper {
                api,
                rng,
                index,
                token,
                cart,
                n: 0,
                catalog,
                cart_skus,
            })
        })
    }
}

async fn catalog_read(mut c: Shopper) -> (Shopper, Step) {
    let sku = demo_sku(c.rng.random_range(0..c.catalog.products));
    let request = c.api.signed(
        &mut c.rng,
        Method::GET,
        &format!("/v1/products/{sku}"),
        None,
        None,
    );
    let step = Api::call(request, StatusCode::OK).await;
    (c, step)
}

async fn search(mut c: Shopper) -> (Shopper, Step) {
    let words = &c.catalog.words;
    let word = &words[c.rng.random_range(0..words.len())];
    let path = format!("/v1/search?q={word}&limit=20");
    let request = c.api.signed(&mut c.rng, Method::GET, &path, None, None);
    let step = Api::call(request, StatusCode::OK).await;
    (c, step)
}

/// Adds one unit of a SKU, then sets that line back to one unit: a cart
/// holds at most `CART_SKUS` lines of at most 2 units.
async fn cart_write(mut c: Shopper) -> (Shopper, Step) {
    let sku = c.cart_skus[(c.n / 2) as usize % c.cart_skus.len()].clone();
    let request = if c.n.is_multiple_of(2) {
        c.api.signed(
            &mut c.rng,
            Method::POST,
            &format!("/v1/carts/{}/items", c.cart),
            Some(&json!({ "sku": sku, "qty": 1 })),
            Some(&c.token),
        )
    } else {
        c.api.signed(
            &mut c.rng,
            Method::PUT,
            &format!("/v1/carts/{}/items/{sku}", c.cart),
            Some(&json!({ "qty": 1 })),
            Some(&c.token),
        )
    };
    c.n += 1;
    let step = Api::call(request, StatusCode::OK).await;
    (c, step)
}

/// Adds one unit of an in-stock SKU, then checks the cart out: ok on 201
/// (confirmed). A cart that did not check out is replaced by a new one.
async fn checkout(mut c: Shopper) -> (Shopper, Step) {
    let in_stock = &c.catalog.in_stock;
    let sku = in_stock[c.rng.random_range(0..in_stock.len())].clone();
    let add = c.api.signed(
        &mut c.rng,
        Method::POST,
        &format!("/v1/carts/{}/items", c.cart),
        Some(&json!({ "sku": sku, "qty": 1 })),
        Some(&c.token),
    );
    let added = Api::call(add, StatusCode::OK).await;
    if !added.ok {
        return (c, added);
    }
    c.n += 1;
    let key = format!("bench-{}-{}-{}", c.catalog.run_id, c.index, c.n);
    let request = c
        .api
        .signed(
            &mut c.rng,
            Method::POST,
            "/v1/checkout",
            Some(&json!({ "cart_id": c.cart })),
            Some(&c.token),
        )
        .header("idempotency-key", key);
    let started = Instant::now();
    let mut step = Api::call(request, StatusCode::CREATED).await;
    step.part = Some(started.elapsed());
    if !step.ok {
        // A failed or pending checkout leaves its cart as it was.
        let token = c.token.clone();
        match c.api.new_cart(&mut c.rng, &token).await {
            Ok(cart) => c.cart = cart,
            Err(e) => {
                step.detail = Some(format!("{:?}; then a new cart failed: {e:#}", step.detail));
                step.stop = true;
            }
        }
    }
    (c, step)
}

/// Writes this shopper's review of the next SKU of its list (a new one,
/// 201, or an edit, 200), each with a fresh `Idempotency-Key`: acknowledged
/// by the shopper's shard, projected for readers in the background.
async fn review_write(mut c: Shopper) -> (Shopper, Step) {
    let sku = c.cart_skus[c.n as usize % c.cart_skus.len()].clone();
    c.n += 1;
    let key = format!("bench-review-{}-{}-{}", c.catalog.run_id, c.index, c.n);
    let rating = c.rng.random_range(1..=5);
    let body = json!({
        "rating": rating,
        "title": "Does what it says",
        "body": "Written by the benchmark: arrived quickly, works well.",
        "lang": "en",
    });
    let request = c
        .api
        .signed(
            &mut c.rng,
            Method::PUT,
            &format!("/v1/products/{sku}/reviews/mine"),
            Some(&body),
            Some(&c.token),
        )
        .header("idempotency-key", key);
    let step = Api::call_in(request, &[StatusCode::CREATED, StatusCode::OK]).await;
    (c, step)
}

/// Reads a page of the reviews (most helpful first) or the summary of a
/// SKU the review writers wrote about, in turn.
async fn review_read(mut c: Shopper) -> (Shopper, Step) {
    let sku = c.cart_skus[c.rng.random_range(0..c.cart_skus.len())].clone();
    let path = if c.n.is_multiple_of(2) {
        format!("/v1/products/{sku}/reviews?sort=helpful&limit=10")
    } else {
        format!("/v1/products/{sku}/reviews/summary")
    };
    c.n += 1;
    let request = c.api.signed(&mut c.rng, Method::GET, &path, None, None);
    let step = Api::call(request, StatusCode::OK).await;
    (c, step)
}

/// The HTTP scenarios against one seeded region.
async fn http_scenarios(options: &Options) -> anyhow::Result<Vec<Row>> {
    let stores = Stores::open()?;
    let region = stores.region()?;
    tokio::time::timeout(SEED_TIMEOUT, seed(&region.commerce, options.products))
        .await
        .context("seeding timed out")??;
    let catalog = Arc::new(Catalog::new(&region.commerce, options.products)?);
    eprintln!(
        "bench: {} search words, {} SKUs in stock in {WAREHOUSE}",
        catalog.words.len(),
        catalog.in_stock.len()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (shutdown, stopped) = watch::channel(false);
    let server = tokio::spawn(regional_server::run(region.clone(), listener, stopped));
    let api = Api {
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()?,
        base,
    };

    let duration = Duration::from_secs(options.secs);
    let mut rows = Vec::new();
    type StepFn = fn(Shopper) -> std::pin::Pin<Box<dyn Future<Output = (Shopper, Step)> + Send>>;
    // Each with the seed of its clients' random streams: the review
    // readers read the SKUs the writers wrote about.
    let scenarios: [(&str, u64, StepFn); 6] = [
        ("GET /v1/products/{sku}", 0, |c| Box::pin(catalog_read(c))),
        ("GET /v1/search?q=…&limit=20", 1, |c| Box::pin(search(c))),
        ("cart write (POST/PUT items)", 2, |c| {
            Box::pin(cart_write(c))
        }),
        ("checkout (add 1 + checkout)", 3, |c| Box::pin(checkout(c))),
        ("review write (PUT …/reviews/mine)", 4, |c| {
            Box::pin(review_write(c))
        }),
        ("review read (page or summary)", 4, |c| {
            Box::pin(review_read(c))
        }),
    ];
    for (name, seed, step) in scenarios {
        eprintln!(
            "bench: HTTP {name}, {} clients, {} s",
            options.clients, options.secs
        );
        let setup = shopper_setup(&api, &catalog, seed);
        let run = closed_loop(options.clients, duration, setup, step).await?;
        let checkout_part = (!run.tally.part_us.is_empty()).then(|| {
            let mut tally = Tally::new();
            tally.latency_us = run.tally.part_us.clone();
            tally.ok = run.tally.ok;
            tally.not_ok = run.ops() - run.tally.ok;
            Run {
                tally,
                elapsed: run.elapsed,
            }
        });
        rows.push(Row::new("http", name, options.clients, run));
        if let Some(part) = checkout_part {
            rows.push(Row::new(
                "http",
                "  of which POST /v1/checkout",
                options.clients,
                part,
            ));
        }
    }

    let _ = shutdown.send(true);
    tokio::time::timeout(STOP_TIMEOUT, server)
        .await
        .context("the region did not stop in time")?
        .context("the region's task")??;
    drop(region);
    Ok(rows)
}

// ---- hot-SKU reservations ----

/// One reserving task's state.
#[derive(Debug)]
struct Reserver {
    commerce: Commerce,
    warehouse: ShardId,
    sku: &'static str,
    prefix: String,
    n: u64,
}

fn describe(e: &CommerceError) -> Cow<'static, str> {
    match e {
        CommerceError::OutOfStock { .. } => "out of stock".into(),
        CommerceError::Db(db::Error::RetryLimitReached { last, .. }) => match **last {
            db::Error::NotCommitted => "conflict (no retry left)".into(),
            _ => "gave up retrying".into(),
        },
        CommerceError::Db(db::Error::TimedOut { .. }) => "timed out".into(),
        CommerceError::Db(_) => "storage error".into(),
        _ => "other error".into(),
    }
}

async fn reserve(mut r: Reserver) -> (Reserver, Step) {
    r.n += 1;
    let id = format!("{}/{}", r.prefix, r.n);
    let reserved = tokio::time::timeout(
        REQUEST_TIMEOUT,
        r.commerce
            .reserve(&r.warehouse, &id, r.sku, 1, RESERVATION_TTL_MS),
    )
    .await;
    let step = match reserved {
        Err(_) => Step::failed(
            "timed out",
            format!("reserve {id} took over {REQUEST_TIMEOUT:?}"),
        ),
        Ok(Ok(_)) => Step::ok("reserved"),
        Ok(Err(e @ CommerceError::OutOfStock { .. })) => {
            Step::failed(describe(&e), e.to_string()).stopping()
        }
        Ok(Err(e)) => Step::failed(describe(&e), format!("{:#}", anyhow::Error::new(e))),
    };
    (r, step)
}

fn reservers(
    commerce: &Commerce,
    sku: &'static str,
    run: &'static str,
) -> anyhow::Result<impl Fn(usize) -> std::future::Ready<anyhow::Result<Reserver>> + use<>> {
    let (commerce, warehouse) = (commerce.clone(), shard(WAREHOUSE)?);
    Ok(move |i| {
        std::future::ready(Ok(Reserver {
            commerce: commerce.clone(),
            warehouse: warehouse.clone(),
            sku,
            prefix: format!("{run}/{i}"),
            n: 0,
        }))
    })
}

async fn bench_product(commerce: &Commerce, sku: &str) -> anyhow::Result<()> {
    commerce
        .upsert_product(
            sku,
            &ProductInput {
                title: format!("Bench item {sku}"),
                description: "A product only the benchmark buys.".into(),
                category: "bench".into(),
                price: Money {
                    amount_minor: 999,
                    currency: "USD".into(),
                },
                attributes: BTreeMap::new(),
                images: Vec::new(),
            },
        )
        .await?;
    Ok(())
}

async fn stock_and_log(commerce: &Commerce, sku: &str) -> anyhow::Result<(StockLevel, StockLevel)> {
    let warehouse = shard(WAREHOUSE)?;
    tokio::time::timeout(CHECK_TIMEOUT, async {
        let live = commerce.stock(&warehouse, sku).await?;
        let rebuilt = commerce.rebuild_stock(&warehouse, sku).await?;
        anyhow::Ok((live, rebuilt))
    })
    .await
    .context("reading stock back timed out")?
}

fn level_text(l: &StockLevel) -> String {
    format!(
        "available {} + reserved {} + sold {} = {} (received {})",
        l.available,
        l.reserved,
        l.sold,
        l.available + l.reserved + l.sold,
        l.received
    )
}

/// What the hot-SKU part measured and checked.
#[derive(Debug)]
struct HotResults {
    rows: Vec<Row>,
    hot_ok_per_s: f64,
    notes: Vec<String>,
    failures: Vec<String>,
}

async fn hot_sku(options: &Options) -> anyhow::Result<HotResults> {
    let stores = Stores::open()?;
    let search = Arc::new(search::SearchIndex::open_or_create(None)?);
    let commerce = stores.commerce(RetryPolicy::default(), search.clone())?;
    let warehouse = shard(WAREHOUSE)?;
    let duration = Duration::from_secs(options.secs);
    let mut notes = Vec::new();
    let mut failures = Vec::new();
    let mut rows = Vec::new();

    tokio::time::timeout(SETUP_TIMEOUT, async {
        commerce
            .upsert_category(
                "bench",
                &CategoryInput {
                    name: "Bench".into(),
                    parent: None,
                },
            )
            .await?;
        bench_product(&commerce, HOT_SKU).await?;
        bench_product(&commerce, SMALL_SKU).await?;
        // One restock moves at most MAX_QTY units.
        let mut left = HOT_STOCK;
        while left > 0 {
            let qty = left.min(MAX_QTY);
            commerce.restock(&warehouse, HOT_SKU, qty).await?;
            left -= qty;
        }
        commerce.restock(&warehouse, SMALL_SKU, SMALL_STOCK).await?;
        anyhow::Ok(())
    })
    .await
    .context("stocking the bench SKUs timed out")??;

    // The hot SKU, durable, for --secs.
    eprintln!(
        "bench: hot-SKU reserve, {} tasks, {} s, {HOT_STOCK} units, {} stock slots",
        options.clients,
        options.secs,
        commerce.settings().stock_slots
    );
    let before = stores.stats(&warehouse);
    let hot = closed_loop(
        options.clients,
        duration,
        reservers(&commerce, HOT_SKU, "hot")?,
        reserve,
    )
    .await?;
    let after = stores.stats(&warehouse);
    let groups = after.groups_committed - before.groups_committed;
    let txns = after.transactions_committed - before.transactions_committed;
    notes.push(format!(
        "hot SKU: {} committed transactions in {} commit groups (fsyncs): {:.1} per group, {:.0} fsyncs/s; outcomes: {}",
        txns,
        groups,
        txns as f64 / groups.max(1) as f64,
        groups as f64 / hot.elapsed.as_secs_f64(),
        hot.tally.kinds_text()
    ));
    if let Some(first) = &hot.tally.first_failure {
        notes.push(format!("hot SKU: first failure: {first}"));
    }
    let (live, rebuilt) = stock_and_log(&commerce, HOT_SKU).await?;
    let checks = [
        (
            live == rebuilt,
            "live stock equals the stock rebuilt from the log",
        ),
        (
            live.is_consistent(),
            "available + reserved + sold == received, each ≥ 0",
        ),
        (
            u64::try_from(live.reserved).ok() == Some(hot.tally.ok),
            "reserved == successful reservations",
        ),
        (
            live.received == HOT_STOCK && live.sold == 0,
            "received == restocked, none sold",
        ),
    ];
    for (ok, what) in checks {
        if !ok {
            failures.push(format!(
                "hot SKU: NOT {what}: live {}, rebuilt {}, {} successful reservations",
                level_text(&live),
                level_text(&rebuilt),
                hot.tally.ok
            ));
        }
    }
    notes.push(format!(
        "hot SKU after the run: {} (rebuilt from the log: {}); {} successful reservations{}",
        level_text(&live),
        if live == rebuilt {
            "equal"
        } else {
            "DIFFERENT"
        },
        hot.tally.ok,
        if failures.is_empty() {
            ": no oversell"
        } else {
            ""
        }
    ));
    let hot_ok_per_s = hot.ok_per_s();
    let hot_ok = hot.tally.ok;
    rows.push(Row::new(
        "meridian",
        "reserve, hot SKU (10M units)",
        options.clients,
        hot,
    ));

    // A small stock, until it is exhausted (or --secs).
    eprintln!("bench: small-stock reserve, {SMALL_STOCK} units, until exhausted");
    let small = closed_loop(
        options.clients,
        duration,
        reservers(&commerce, SMALL_SKU, "small")?,
        reserve,
    )
    .await?;
    let (live, rebuilt) = stock_and_log(&commerce, SMALL_SKU).await?;
    let exhausted = live.available == 0;
    // None beyond: once it is gone, every further attempt finds nothing.
    let mut beyond = 0;
    if exhausted {
        for i in 0..options.clients {
            let id = format!("small-after/{i}");
            match commerce
                .reserve(&warehouse, &id, SMALL_SKU, 1, RESERVATION_TTL_MS)
                .await
            {
                Ok(_) => beyond += 1,
                Err(CommerceError::OutOfStock { .. }) => {}
                Err(e) => failures.push(format!(
                    "small stock: a reserve after exhaustion failed: {e:#}"
                )),
            }
        }
    }
    let small_ok = i64::try_from(small.tally.ok).unwrap_or(i64::MAX);
    let small_checks = [
        (
            live == rebuilt,
            "live stock equals the stock rebuilt from the log",
        ),
        (
            live.is_consistent(),
            "available + reserved + sold == received, each ≥ 0",
        ),
        (
            live.reserved == small_ok,
            "reserved == successful reservations",
        ),
        (
            small_ok + live.available == SMALL_STOCK,
            "successful + available == stock",
        ),
        (
            !exhausted || small_ok == SMALL_STOCK,
            "exactly the stock succeeded",
        ),
        (beyond == 0, "no reservation succeeded after exhaustion"),
    ];
    for (ok, what) in small_checks {
        if !ok {
            failures.push(format!(
                "small stock: NOT {what}: live {}, rebuilt {}, {small_ok} successful, {beyond} beyond",
                level_text(&live),
                level_text(&rebuilt)
            ));
        }
    }
    let after_text = if exhausted {
        format!(
            "exhausted; then {beyond} of {} further attempts succeeded",
            options.clients
        )
    } else {
        format!(
            "NOT exhausted within {} s ({} left)",
            options.secs, live.available
        )
    };
    notes.push(format!(
        "small stock: {small_ok} of {SMALL_STOCK} reserved, {after_text}; live {} (rebuilt from the log: {}); outcomes: {}",
        level_text(&live),
        if live == rebuilt { "equal" } else { "DIFFERENT" },
        small.tally.kinds_text()
    ));
    rows.push(Row::new(
        "meridian",
        "reserve, small stock (5,000)",
        options.clients,
        small,
    ));

    // Diagnostic: the same load with retries off, to see how often a
    // first attempt conflicts (each failed attempt is simply counted).
    let probe_secs = options.secs.min(PROBE_SECS);
    eprintln!("bench: conflict probe (retries off), {probe_secs} s");
    let no_retry = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    let probing = stores.commerce(no_retry, search)?;
    let probe = closed_loop(
        options.clients,
        Duration::from_secs(probe_secs),
        reservers(&probing, HOT_SKU, "probe")?,
        reserve,
    )
    .await?;
    let conflicts = probe
        .tally
        .kinds
        .get("conflict (no retry left)")
        .copied()
        .unwrap_or(0);
    notes.push(format!(
        "conflict probe (retries off, {probe_secs} s): {conflicts} of {} first attempts conflicted ({:.1}%): {:.0} committed/s; outcomes: {}",
        probe.ops(),
        100.0 * conflicts as f64 / probe.ops().max(1) as f64,
        probe.ok_per_s(),
        probe.tally.kinds_text()
    ));
    let probe_ok = probe.tally.ok;
    rows.push(Row::new(
        "meridian",
        "  probe: reserve, no retries",
        options.clients,
        probe,
    ));
    let (live, rebuilt) = stock_and_log(&commerce, HOT_SKU).await?;
    let reserved_total = hot_ok + probe_ok;
    if live != rebuilt
        || !live.is_consistent()
        || u64::try_from(live.reserved).ok() != Some(reserved_total)
    {
        failures.push(format!(
            "hot SKU after the probe: live {}, rebuilt {}, {reserved_total} successful reservations",
            level_text(&live),
            level_text(&rebuilt)
        ));
    }
    drop(probing);
    drop(commerce);
    drop(stores);
    Ok(HotResults {
        rows,
        hot_ok_per_s,
        notes,
        failures,
    })
}

// ---- the PostgreSQL baseline ----

// The private cluster (shared with the recommendations' benchmark).
#[path = "pg/mod.rs"]
mod pg;
use pg::{PgCluster, output_of};

/// One PostgreSQL client's state.
#[derive(Debug)]
struct PgClient {
    client: tokio_postgres::Client,
    select: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    index: usize,
    n: u64,
}

/// One reservation as a row-locking transaction; `false`: out of stock.
async fn pg_reserve(c: &mut PgClient) -> Result<bool, tokio_postgres::Error> {
    let tx = c.client.transaction().await?;
    let row = tx.query_one(&c.select, &[&HOT_SKU]).await?;
    let qty: i64 = row.get(0);
    if qty < 1 {
        tx.commit().await?;
        return Ok(false);
    }
    tx.execute(&c.update, &[&HOT_SKU]).await?;
    c.n += 1;
    let id = format!("pg/{}/{}", c.index, c.n);
    tx.execute(&c.insert, &[&id, &HOT_SKU, &1i64]).await?;
    tx.commit().await?;
    Ok(true)
}

async fn pg_step(mut c: PgClient) -> (PgClient, Step) {
    let step = match tokio::time::timeout(REQUEST_TIMEOUT, pg_reserve(&mut c)).await {
        // The connection is mid-transaction: this client stops.
        Err(_) => Step::failed("timed out", format!("over {REQUEST_TIMEOUT:?}")).stopping(),
        Ok(Ok(true)) => Step::ok("reserved"),
        Ok(Ok(false)) => Step::failed("out of stock", "qty < 1".into()).stopping(),
        Ok(Err(e)) => {
            let step = Step::failed("error", format!("{e:#}"));
            // A broken connection would only fail again, at once.
            if c.client.is_closed() {
                step.stopping()
            } else {
                step
            }
        }
    };
    (c, step)
}

/// What the PostgreSQL part measured.
#[derive(Debug)]
struct PgResults {
    row: Row,
    settings: String,
    failures: Vec<String>,
}

async fn postgres_baseline(options: &Options) -> anyhow::Result<PgResults> {
    let cluster = Arc::new(PgCluster::start(options.clients + 10, &[]).await?);
    let admin = cluster.connect().await?;
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "shared_buffers",
    ] {
        let row = admin.query_one(&format!("SHOW {name}"), &[]).await?;
        settings.push(format!("{name}={}", row.get::<_, String>(0)));
    }
    admin
        .batch_execute(&format!(
            "CREATE TABLE stock (sku text PRIMARY KEY, qty bigint NOT NULL);
             CREATE TABLE reservations (id text PRIMARY KEY, sku text NOT NULL, qty bigint NOT NULL);
             INSERT INTO stock VALUES ('{HOT_SKU}', {HOT_STOCK});"
        ))
        .await?;
    eprintln!(
        "bench: PostgreSQL {} baseline on 127.0.0.1:{}, {} connections, {} s",
        cluster.version, cluster.port, options.clients, options.secs
    );
    let setup = {
        let cluster = cluster.clone();
        move |index: usize| {
            let cluster = cluster.clone();
            async move {
                let client = cluster.connect().await?;
                let select = client
                    .prepare("SELECT qty FROM stock WHERE sku = $1 FOR UPDATE")
                    .await?;
                let update = client
                    .prepare("UPDATE stock SET qty = qty - 1 WHERE sku = $1")
                    .await?;
                let insert = client
                    .prepare("INSERT INTO reservations (id, sku, qty) VALUES ($1, $2, $3)")
                    .await?;
                anyhow::Ok(PgClient {
                    client,
                    select,
                    update,
                    insert,
                    index,
                    n: 0,
                })
            }
        }
    };
    let run = closed_loop(
        options.clients,
        Duration::from_secs(options.secs),
        setup,
        pg_step,
    )
    .await?;
    let qty: i64 = admin
        .query_one("SELECT qty FROM stock WHERE sku = $1", &[&HOT_SKU])
        .await?
        .get(0);
    let count: i64 = admin
        .query_one("SELECT count(*) FROM reservations", &[])
        .await?
        .get(0);
    let mut failures = Vec::new();
    if qty + count != HOT_STOCK || u64::try_from(count).ok() != Some(run.tally.ok) {
        failures.push(format!(
            "postgres: qty {qty} + {count} reservations != {HOT_STOCK}, or != {} successful",
            run.tally.ok
        ));
    }
    if let Some(first) = &run.tally.first_failure {
        failures.push(format!("postgres: first failure: {first}"));
    }
    drop(admin);
    // Stops the server and deletes the cluster (every client is gone: the
    // client tasks have ended).
    drop(cluster);
    Ok(PgResults {
        row: Row::new(
            "postgres",
            "SELECT … FOR UPDATE, hot row",
            options.clients,
            run,
        ),
        settings: settings.join(", "),
        failures,
    })
}

// ---- reporting ----

#[derive(Debug)]
struct Row {
    system: &'static str,
    scenario: &'static str,
    clients: usize,
    run: Run,
}

impl Row {
    fn new(system: &'static str, scenario: &'static str, clients: usize, run: Run) -> Row {
        Row {
            system,
            scenario,
            clients,
            run,
        }
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0)
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<9} {:<32} {:>7} {:>9} {:>9} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "system",
        "scenario",
        "clients",
        "ops",
        "ok",
        "not ok",
        "ops/s",
        "ok/s",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    for row in rows {
        let h = &row.run.tally.latency_us;
        println!(
            "{:<9} {:<32} {:>7} {:>9} {:>9} {:>7} {:>9.0} {:>9.0} {:>8} {:>8} {:>8}",
            row.system,
            row.scenario,
            row.clients,
            row.run.ops(),
            row.run.tally.ok,
            row.run.tally.not_ok,
            row.run.ops_per_s(),
            row.run.ok_per_s(),
            ms(h, 0.50),
            ms(h, 0.99),
            ms(h, 1.0),
        );
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn main() -> anyhow::Result<()> {
    let options = Options::from_args()?;
    // Warnings only: per-request logs would measure the terminal.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,tantivy=error".into()),
        )
        .init();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let machine = format!(
        "{cores} cores (nproc), CPU {}, {}, tempdir {}",
        cpu_model(),
        output_of("uname", &["-sr"]).unwrap_or_else(|_| "?".into()),
        std::env::temp_dir().display()
    );
    eprintln!("bench: {machine}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .context("starting the runtime")?;

    let (http_rows, hot, pg) = runtime.block_on(async {
        let http_rows = http_scenarios(&options).await?;
        let hot = hot_sku(&options).await?;
        let pg = if options.skip_pg {
            None
        } else {
            Some(postgres_baseline(&options).await?)
        };
        anyhow::Ok((http_rows, hot, pg))
    })?;

    let mut rows = http_rows;
    rows.extend(hot.rows);
    let mut failures = hot.failures;
    let pg_ok_per_s = pg.as_ref().map(|p| p.row.run.ok_per_s());
    let pg_settings = pg.as_ref().map(|p| p.settings.clone());
    if let Some(pg) = pg {
        failures.extend(pg.failures);
        rows.push(pg.row);
    }

    println!();
    println!("Meridian regional benchmark");
    println!("machine: {machine}");
    println!("command: {}", options.command());
    println!(
        "binary:  {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "setup:   {} s per run, {} clients, {} demo products (seed {SEED}), embedded stores fsync-durable (EmbeddedOptions::default), {} stock slots per SKU",
        options.secs,
        options.clients,
        options.products,
        Settings::default().stock_slots
    );
    if let Some(settings) = &pg_settings {
        println!("postgres: {settings}");
    }
    println!();
    print_table(&rows);
    println!();
    for row in &rows {
        if row.run.tally.not_ok > 0 {
            println!(
                "{} {}: outcomes {}{}",
                row.system,
                row.scenario.trim(),
                row.run.tally.kinds_text(),
                row.run
                    .tally
                    .first_failure
                    .as_ref()
                    .map_or(String::new(), |f| format!("; first: {f}"))
            );
        }
    }
    for note in &hot.notes {
        println!("{note}");
    }
    println!();
    let verdict = if hot.hot_ok_per_s >= TARGET_PER_S {
        "meets"
    } else {
        "BELOW"
    };
    println!(
        "hot SKU: meridian {:.0} reservations/s ({verdict} the target of {TARGET_PER_S:.0}/s = 5 × the issue's PostgreSQL {ISSUE_PG_PER_S:.0}/s)",
        hot.hot_ok_per_s
    );
    match pg_ok_per_s {
        Some(pg) => println!(
            "hot SKU: postgres {pg:.0} reservations/s measured in this run; ratio meridian / postgres = {:.2}×",
            hot.hot_ok_per_s / pg.max(f64::MIN_POSITIVE)
        ),
        None => println!("hot SKU: postgres skipped (--skip-pg)"),
    }
    if !failures.is_empty() {
        for f in &failures {
            println!("FAILED: {f}");
        }
        bail!("{} check(s) failed", failures.len());
    }
    println!("invariants: all checks passed");
    Ok(())
}
