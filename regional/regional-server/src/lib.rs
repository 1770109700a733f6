//! The regional service: the commerce domain behind an HTTP API, with its
//! background workers. One process (or one [`Region`]) per region.
//!
//! Tests and the local stack build a [`Region`] in-process with
//! [`Region::build`] and serve it on a listener bound to port 0 with
//! [`run`]; the binary does the same from a config file.

pub mod api;
pub mod auth;
pub mod config;
pub mod extract;
pub mod metrics;
pub mod problem;
pub mod replication;
pub mod storage;
pub mod workers;

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;
use commerce::{Clock, Commerce, CommerceParts, Entropy, PaymentGateway, Settings};
use db::ShardMap;
use tokio::sync::watch;
use topology::{RegionId, ShardId, Topology};

pub use api::{AppState, app};
use auth::{EdgeVerifier, Sessions};
use config::{HttpConfig, Secrets, WorkerConfig};

/// What a region is built from (the parts of a config, opened).
#[derive(Debug)]
pub struct RegionParts {
    pub region: RegionId,
    pub topology: Arc<Topology>,
    pub shards: ShardMap,
    pub served: BTreeSet<ShardId>,
    pub catalog_shard: ShardId,
    pub search: Arc<search::SearchIndex>,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub secrets: Secrets,
    pub http: HttpConfig,
    pub workers: WorkerConfig,
    /// Where this region pushes the catalog's changes (the catalog's home
    /// region names every other region).
    pub peers: Vec<replication::Peer>,
}

/// One region's service, ready to serve.
#[derive(Debug, Clone)]
pub struct Region {
    pub commerce: Commerce,
    pub state: AppState,
    pub workers: WorkerConfig,
    pub peers: Vec<replication::Peer>,
}

impl Region {
    pub fn build(parts: RegionParts) -> anyhow::Result<Region> {
        let metrics = metrics::Metrics::new(parts.region.as_str());
        let commerce = Commerce::new(CommerceParts {
            shards: parts.shards,
            topology: parts.topology,
            region: parts.region,
            served: parts.served,
            catalog_shard: parts.catalog_shard,
            settings: parts.settings,
            clock: parts.clock,
            entropy: parts.entropy,
            gateway: parts.gateway,
            search: parts.search,
        })
        .context("building the commerce domain")?;
        let edge = parts.http.require_edge_signature.then(|| {
            Arc::new(EdgeVerifier::new(
                parts.secrets.edge_keys(),
                parts.http.signature_window_s,
                parts.http.max_remembered_signatures,
            ))
        });
        let sessions = Arc::new(Sessions::new(
            parts.secrets.session_keys(),
            parts.http.session_ttl_s.saturating_mul(1000),
        ));
        let admin_tokens = parts.secrets.admin_tokens().into();
        let state = AppState {
            metrics,
            searches: api::SearchPermits::new(
                parts.http.max_concurrent_searches,
                parts.http.max_queued_searches,
            ),
            checkouts: Arc::new(tokio::sync::Semaphore::new(
                parts.http.max_running_checkouts.max(1),
            )),
            imports: Arc::new(tokio::sync::Semaphore::new(
                commerce::import::MAX_RUNNING_IMPORTS,
            )),
            commerce: commerce.clone(),
            edge,
            sessions,
            admin_tokens,
            http: parts.http,
        };
        Ok(Region {
            commerce,
            state,
            workers: parts.workers,
            peers: parts.peers,
        })
    }

    /// Builds a region from a loaded config, opening its search index, over
    /// the opened `shards` and payment `gateway` (see
    /// [`storage::open_gateway`]).
    pub fn from_config(
        loaded: &config::Loaded,
        shards: ShardMap,
        gateway: Arc<dyn PaymentGateway>,
    ) -> anyhow::Result<Region> {
        let c = &loaded.config;
        let search = search::SearchIndex::open_or_create(c.search_dir.as_deref())
            .context("opening the search index")?;
        Region::build(RegionParts {
            region: c.region.clone(),
            topology: Arc::new(loaded.topology.clone()),
            shards,
            served: loaded.served.clone(),
            catalog_shard: c.catalog_shard.clone(),
            search: Arc::new(search),
            settings: c.commerce.clone(),
            clock: Arc::new(commerce::SystemClock),
            entropy: Arc::new(commerce::OsEntropy),
            gateway,
            secrets: c.secrets.clone(),
            http: c.http.clone(),
            workers: c.workers.clone(),
            peers: c
                .replication
                .peers
                .iter()
                .map(|(region, url)| replication::Peer {
                    region: region.clone(),
                    url: url.clone(),
                    link: None,
                })
                .collect(),
        })
    }
}

/// Serves `region` on `listener` with its workers until `shutdown` turns
/// true; then stops accepting, lets requests finish and stops the workers.
/// Any [`axum::serve::Listener`]: a tokio `TcpListener` in production, a
/// simulated network's listener under the deterministic simulator.
pub async fn run<L>(
    region: Region,
    listener: L,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let mut workers = workers::spawn(
        &region.commerce,
        &region.workers,
        &region.state.metrics,
        shutdown.clone(),
    );
    replication::spawn(
        &mut workers,
        &region.commerce,
        &region.peers,
        region.state.admin_tokens.first().map_or("", |t| t),
        region.workers.feed_wait_ms,
        &region.state.metrics,
        &shutdown,
    );
    let router = app(region.state.clone());
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    });
    let result = serve.await.context("serving the regional API");
    // The workers watch the same signal; wait for them (bounded).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    result
}
