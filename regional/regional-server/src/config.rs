//! The regional service's configuration: a TOML file (`deny_unknown_fields`)
//! plus environment overrides for what differs per deployment (region,
//! listen address, secrets).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::storage::StorageConfig;
use anyhow::Context;
use commerce::{Settings, SimulatedGatewayConfig};
use topology::{RegionId, ShardId, Topology};

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionalConfig {
    /// The region this process serves (`MERIDIAN_REGION`).
    pub region: RegionId,
    /// Where the API listens (`MERIDIAN_LISTEN`).
    pub listen: SocketAddr,
    /// The topology file, relative to this file.
    pub topology: PathBuf,
    /// The shard holding the writable catalog.
    pub catalog_shard: ShardId,
    /// Shards whose carts and orders this region accepts writes for; by
    /// default every shard whose home or standby is this region.
    #[serde(default)]
    pub served_shards: Option<BTreeSet<ShardId>>,
    pub storage: StorageConfig,
    /// Where this region keeps its search index, relative to this file; in
    /// memory (rebuilt at start) when absent.
    #[serde(default)]
    pub search_dir: Option<PathBuf>,
    #[serde(default)]
    pub secrets: Secrets,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub payments: SimulatedGatewayConfig,
    #[serde(default)]
    pub commerce: Settings,
    #[serde(default)]
    pub workers: WorkerConfig,
    #[serde(default)]
    pub replication: ReplicationConfig,
}

/// Where this region pushes the catalog's changes: set in the catalog's
/// home region, naming every other region's service (each applies them
/// to its replica of the catalog; each also pulls what it misses).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// Region name → the base URL of its regional API, e.g.
    /// `eu-west = "http://127.0.1.2:8102"`.
    pub peers: std::collections::BTreeMap<RegionId, String>,
}

/// Shared secrets. Prefer the environment over the file:
/// `MERIDIAN_EDGE_KEY`, `MERIDIAN_SESSION_KEY`, `MERIDIAN_ADMIN_TOKEN`, and
/// each one's `_SECONDARY`.
///
/// Each secret has a primary and an optional secondary: both are accepted,
/// only the primary is used to issue (session tokens) or to call (the admin
/// token of the catalog push). A rotation without downtime adds the new
/// secret as secondary everywhere, then makes it primary with the old one as
/// secondary, then drops the old one (infra/README.md, "Rotating secrets").
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// HMAC key edges sign requests with.
    pub edge_key: String,
    /// Another edge key accepted during a rotation; none when empty.
    pub edge_key_secondary: String,
    /// HMAC key of session tokens.
    pub session_key: String,
    /// Another session key accepted (never issued with) during a rotation.
    pub session_key_secondary: String,
    /// Bearer token of the admin endpoints; admin is off when empty.
    pub admin_token: String,
    /// Another admin token accepted during a rotation.
    pub admin_token_secondary: String,
}

impl Secrets {
    /// The edge keys accepted, primary first.
    pub fn edge_keys(&self) -> Vec<Vec<u8>> {
        accepted(&self.edge_key, &self.edge_key_secondary)
            .map(|k| k.as_bytes().to_vec())
            .collect()
    }

    /// The session keys accepted, primary (the one that issues) first.
    pub fn session_keys(&self) -> Vec<Vec<u8>> {
        accepted(&self.session_key, &self.session_key_secondary)
            .map(|k| k.as_bytes().to_vec())
            .collect()
    }

    /// The admin tokens accepted, primary first; none when admin is off.
    pub fn admin_tokens(&self) -> Vec<std::sync::Arc<str>> {
        if self.admin_token.is_empty() {
            return Vec::new();
        }
        accepted(&self.admin_token, &self.admin_token_secondary)
            .map(std::sync::Arc::from)
            .collect()
    }
}

/// The primary, then the secondary unless it is empty or the same.
fn accepted<'s>(primary: &'s str, secondary: &'s str) -> impl Iterator<Item = &'s str> {
    std::iter::once(primary)
        .chain((!secondary.is_empty() && secondary != primary).then_some(secondary))
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    /// How far an edge signature's timestamp may be from the server clock.
    pub signature_window_s: u64,
    /// Signatures remembered for replay detection at most.
    pub max_remembered_signatures: usize,
    /// Whether shopper and purge-feed calls must be edge-signed.
    pub require_edge_signature: bool,
    pub session_ttl_s: u64,
    /// Searches running at once (each on a blocking thread).
    pub max_concurrent_searches: usize,
    /// Searches waiting for one of those at most; past it a search is
    /// answered 503 with Retry-After. A search whose request ends while it
    /// waits never runs.
    pub max_queued_searches: usize,
    /// Checkout sagas running at once in this region. A saga runs apart
    /// from its request (a client hanging up does not stop it); past this
    /// bound a new checkout is refused with 503 before anything is written.
    pub max_running_checkouts: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 35_000,
            signature_window_s: 300,
            max_remembered_signatures: 1_000_000,
            require_edge_signature: true,
            session_ttl_s: 24 * 3600,
            max_running_checkouts: 1024,
            max_concurrent_searches: std::thread::available_parallelism()
                .map_or(2, |n| n.get() * 2)
                .clamp(2, 64),
            max_queued_searches: 256,
        }
    }
}

/// How often the background workers run (each pass handles at most one
/// batch, see `commerce.batch`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub outbox_interval_ms: u64,
    pub recovery_interval_ms: u64,
    pub sweep_interval_ms: u64,
    /// The catalog feed is long-polled; this is how long one poll waits.
    pub feed_wait_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            outbox_interval_ms: 200,
            recovery_interval_ms: 1_000,
            sweep_interval_ms: 5_000,
            feed_wait_ms: 5_000,
        }
    }
}

/// A loaded config: paths resolved, environment applied, validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: RegionalConfig,
    pub topology: Topology,
    pub served: BTreeSet<ShardId>,
}

pub fn parse(text: &str) -> anyhow::Result<RegionalConfig> {
    toml::from_str(text).context("parsing the regional config")
}

/// Reads `path`, applies `env` overrides (a lookup, so tests pass their
/// own), resolves relative paths and checks the result.
pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Loaded> {
    let mut config =
        parse(&config_file::read(path)?).with_context(|| format!("in {}", path.display()))?;
    if let Some(region) = env("MERIDIAN_REGION") {
        config.region = region.parse().context("MERIDIAN_REGION")?;
    }
    if let Some(listen) = env("MERIDIAN_LISTEN") {
        config.listen = listen.parse().context("MERIDIAN_LISTEN")?;
    }
    let secrets = &mut config.secrets;
    for (name, slot) in [
        ("MERIDIAN_EDGE_KEY", &mut secrets.edge_key),
        (
            "MERIDIAN_EDGE_KEY_SECONDARY",
            &mut secrets.edge_key_secondary,
        ),
        ("MERIDIAN_SESSION_KEY", &mut secrets.session_key),
        (
            "MERIDIAN_SESSION_KEY_SECONDARY",
            &mut secrets.session_key_secondary,
        ),
        ("MERIDIAN_ADMIN_TOKEN", &mut secrets.admin_token),
        (
            "MERIDIAN_ADMIN_TOKEN_SECONDARY",
            &mut secrets.admin_token_secondary,
        ),
    ] {
        if let Some(value) = env(name) {
            *slot = value;
        }
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let topology_path = base.join(&config.topology);
    let topology = Topology::from_toml_str(&config_file::read(&topology_path)?)
        .with_context(|| format!("in {}", topology_path.display()))?;
    config.storage = config.storage.resolve(base);
    if let Some(dir) = &mut config.search_dir {
        *dir = base.join(&*dir);
    }
    if let Some(dir) = &mut config.payments.store {
        *dir = base.join(&*dir);
    }
    let served = resolve(&config, &topology)?;
    Ok(Loaded {
        config,
        topology,
        served,
    })
}

/// Checks a config against its topology and gives the shards it serves.
pub fn resolve(config: &RegionalConfig, topology: &Topology) -> anyhow::Result<BTreeSet<ShardId>> {
    anyhow::ensure!(
        topology.region(&config.region).is_some(),
        "region {} is not in the topology",
        config.region
    );
    anyhow::ensure!(
        topology.shard(&config.catalog_shard).is_some(),
        "catalog_shard {} is not in the topology",
        config.catalog_shard
    );
    let served = match &config.served_shards {
        Some(shards) => {
            for shard in shards {
                anyhow::ensure!(
                    topology.shard(shard).is_some(),
                    "served shard {shard} is not in the topology"
                );
            }
            shards.clone()
        }
        None => topology
            .shards()
            .iter()
            .filter(|s| s.candidates().any(|r| r == &config.region))
            .map(|s| s.id().clone())
            .collect(),
    };
    anyhow::ensure!(
        !served.is_empty(),
        "region {} serves no shard",
        config.region
    );
    anyhow::ensure!(
        config.replication.peers.is_empty() || !config.secrets.admin_token.is_empty(),
        "replication.peers needs secrets.admin_token (the peers' intake takes it)"
    );
    for (peer, url) in &config.replication.peers {
        anyhow::ensure!(
            topology.region(peer).is_some() && peer != &config.region,
            "replication.peers: {peer} is not another region of the topology"
        );
        anyhow::ensure!(
            (url.starts_with("http://") || url.starts_with("https://")) && url.len() <= 2048,
            "replication.peers.{peer} must be an http:// or https:// URL"
        );
    }
    for (name, value) in [
        ("secrets.edge_key", &config.secrets.edge_key),
        ("secrets.session_key", &config.secrets.session_key),
    ] {
        anyhow::ensure!(
            value.len() >= 16,
            "{name} must be at least 16 bytes (set it in the file or the environment)"
        );
    }
    for (name, value) in [
        (
            "secrets.edge_key_secondary",
            &config.secrets.edge_key_secondary,
        ),
        (
            "secrets.session_key_secondary",
            &config.secrets.session_key_secondary,
        ),
    ] {
        anyhow::ensure!(
            value.is_empty() || value.len() >= 16,
            "{name} must be empty or at least 16 bytes"
        );
    }
    anyhow::ensure!(
        config.secrets.admin_token_secondary.is_empty() || !config.secrets.admin_token.is_empty(),
        "secrets.admin_token_secondary needs secrets.admin_token (admin is off without it)"
    );
    config
        .payments
        .validate()
        .map_err(anyhow::Error::msg)
        .context("[payments]")?;
    config.commerce.validate().context("[commerce]")?;
    anyhow::ensure!(
        (1024..=16 * 1024 * 1024).contains(&config.http.body_limit_bytes),
        "http.body_limit_bytes must be 1 KiB to 16 MiB"
    );
    anyhow::ensure!(
        (100..=commerce::feed::MAX_WAIT_MS).contains(&config.workers.feed_wait_ms),
        "workers.feed_wait_ms must be 100..={}",
        commerce::feed::MAX_WAIT_MS
    );
    for (name, ms) in [
        ("outbox_interval_ms", config.workers.outbox_interval_ms),
        ("recovery_interval_ms", config.workers.recovery_interval_ms),
        ("sweep_interval_ms", config.workers.sweep_interval_ms),
    ] {
        anyhow::ensure!(
            (10..=600_000).contains(&ms),
            "workers.{name} must be 10..=600000"
        );
    }
    anyhow::ensure!(
        (1..=1024).contains(&config.http.max_concurrent_searches),
        "http.max_concurrent_searches must be 1..=1024"
    );
    anyhow::ensure!(
        config.http.max_queued_searches <= 65_536,
        "http.max_queued_searches must be at most 65536"
    );
    anyhow::ensure!(
        (1..=65_536).contains(&config.http.max_running_checkouts),
        "http.max_running_checkouts must be 1..=65536"
    );
    anyhow::ensure!(
        (1_000..=300_000).contains(&config.http.request_timeout_ms),
        "http.request_timeout_ms must be 1000..=300000"
    );
    Ok(served)
}
