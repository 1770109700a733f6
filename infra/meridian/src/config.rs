//! The platform's configuration file (`infra/local/meridian.toml` by
//! default): which topology to run and where each shard's data lives.

use std::path::{Path, PathBuf};

use anyhow::Context;
use regional_server::storage::StorageConfig;
use topology::Topology;

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeridianConfig {
    /// The topology file, relative to this file.
    pub topology: PathBuf,
    pub storage: StorageConfig,
    /// Each region's service config, relative to this file. `up` runs them
    /// all in this process over the one storage above.
    #[serde(default)]
    pub regions: Vec<PathBuf>,
    /// The routing layer's config, relative to this file.
    #[serde(default)]
    pub routing: Option<PathBuf>,
    /// The edge POPs' config (edge-host's), relative to this file. `up`
    /// runs them in this process in front of the regions, points them at
    /// its routing layer, and has the routing layer probe them (and DNS
    /// answer the storefront's name with them).
    #[serde(default)]
    pub edge: Option<PathBuf>,
    /// Geography: each region reaches a shard homed in another region over
    /// a link with the topology's modelled round trip (each read and each
    /// commit pays it, as with a remote FoundationDB cluster).
    #[serde(default)]
    pub geography: bool,
    #[serde(default)]
    pub seed: SeedConfig,
    /// The simulated payment provider every region of `up` calls (one, as
    /// a real provider is): its behaviour and its own store (by default
    /// `payments` beside the shards). The regions' own `[payments]` are not
    /// used by `up`.
    #[serde(default)]
    pub payments: commerce::SimulatedGatewayConfig,
    /// `up`'s control API (drills against the running stack, with the
    /// routing layer's admin token); default `127.0.0.1:7001`.
    #[serde(default)]
    pub control_listen: Option<std::net::SocketAddr>,
    #[serde(default)]
    pub recommend: RecommendConfig,
}

/// The recommendations' schedule in `up`: `meridian-recommend` run every
/// `every_s` seconds against this stack (the first run at start).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendConfig {
    /// Seconds between runs; 0 turns the schedule off.
    pub every_s: u64,
    /// `embedded`, `standalone` or a Ballista scheduler's `df://host:port`.
    pub engine: String,
    /// Where the Parquet export is kept, relative to this file (default:
    /// `recommend` in the embedded engine's data directory).
    pub dir: Option<PathBuf>,
}

impl Default for RecommendConfig {
    fn default() -> Self {
        RecommendConfig {
            every_s: 900,
            engine: "embedded".into(),
            dir: None,
        }
    }
}

/// The demo catalog `up` writes when the catalog is empty.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedConfig {
    /// Products to generate; 0 seeds nothing.
    pub products: usize,
    pub seed: u64,
    pub max_stock: i64,
    /// Order lines of the demo's order history (what the recommendations
    /// are computed from), written when every sales log is empty; 0
    /// writes none.
    pub order_lines: usize,
}

impl Default for SeedConfig {
    fn default() -> Self {
        SeedConfig {
            products: 10_000,
            seed: 42,
            max_stock: 200,
            order_lines: 50_000,
        }
    }
}

/// A loaded config with its paths resolved.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub topology: Topology,
    pub storage: StorageConfig,
    /// Region config files, resolved.
    pub regions: Vec<PathBuf>,
    /// The routing config file, resolved.
    pub routing: Option<PathBuf>,
    /// The edge config file, resolved.
    pub edge: Option<PathBuf>,
    pub geography: bool,
    pub seed: SeedConfig,
    pub payments: commerce::SimulatedGatewayConfig,
    /// Where `up`'s control API listens.
    pub control_listen: std::net::SocketAddr,
    /// The recommendations' schedule, its `dir` resolved.
    pub recommend: RecommendConfig,
}

pub fn parse(text: &str) -> anyhow::Result<MeridianConfig> {
    toml::from_str(text).context("parsing the meridian config")
}

/// Reads the config at `path` and the topology it names, resolving
/// relative paths against the config's directory.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let config =
        parse(&config_file::read(path)?).with_context(|| format!("in {}", path.display()))?;
    config
        .payments
        .validate()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("[payments] in {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let topology_path = base.join(&config.topology);
    let topology = Topology::from_toml_str(&config_file::read(&topology_path)?)
        .with_context(|| format!("in {}", topology_path.display()))?;
    let storage = config.storage.resolve(base);
    let mut recommend = config.recommend;
    recommend.dir = match (&recommend.dir, &storage) {
        (Some(dir), _) => Some(base.join(dir)),
        (None, StorageConfig::Embedded { dir, .. }) => Some(dir.join("recommend")),
        (None, _) => None,
    };
    Ok(Loaded {
        topology,
        storage,
        regions: config.regions.iter().map(|r| base.join(r)).collect(),
        routing: config.routing.as_ref().map(|r| base.join(r)),
        edge: config.edge.as_ref().map(|e| base.join(e)),
        geography: config.geography,
        control_listen: match config.control_listen {
            Some(addr) => addr,
            None => crate::control::DEFAULT_LISTEN
                .parse()
                .context("the control API's default address")?,
        },
        seed: config.seed,
        recommend,
        payments: {
            let mut payments = config.payments;
            if let Some(dir) = &mut payments.store {
                *dir = base.join(&*dir);
            }
            payments
        },
    })
}
