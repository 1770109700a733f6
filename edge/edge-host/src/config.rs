//! The edge host's configuration (`infra/local/edge.toml`): the component
//! file, the routing API, the edge signing key, and the POPs.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use edge_core::EdgeConfig;
use edge_core::ratelimit::RateLimits;

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The component (`edge_spin.wasm`), relative to the config file.
    pub component: PathBuf,
    /// The routing API, e.g. `http://127.0.0.1:7000`.
    pub routing_url: String,
    /// The key edges sign region calls with (`MERIDIAN_EDGE_KEY` overrides).
    pub edge_key: String,
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Entries each POP's store keeps at most.
    #[serde(default = "default_max_kv_entries")]
    pub max_kv_entries: usize,
    #[serde(default = "default_table_max_age_ms")]
    pub table_max_age_ms: u64,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Answer fresh cache hits in front of the component, with the same
    /// edge-core code over the same store (a CDN's cache in front of its
    /// compute); `false` runs every request in an instance.
    #[serde(default = "default_fast_path")]
    pub fast_path: bool,
    /// Connections each POP holds open at once; past it the POP stops
    /// accepting (they wait in the kernel's backlog).
    #[serde(default = "default_max_connections")]
    pub max_connections_per_pop: usize,
    /// A client has this long to send a request's headers (on a new or an
    /// idle kept-alive connection) before the connection is closed.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Wasm execution one request's instance may use, in milliseconds of
    /// running (time spent waiting on I/O does not count); past it the
    /// instance is stopped and the request answered 503.
    #[serde(default = "default_guest_cpu_ms")]
    pub guest_cpu_ms: u64,
    pub pops: Vec<PopConfig>,
}

/// The edge's rate limits (`[rate_limit]`): what costs the origin, per
/// class and per session (else per address); fresh cache hits are never
/// limited. Defaults are edge-core's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Reads the cache cannot answer (misses, private reads).
    pub per_s: f64,
    pub burst: f64,
    pub write_per_s: f64,
    pub write_burst: f64,
    pub session_per_s: f64,
    pub session_burst: f64,
    /// An address may do this many times what one session may.
    pub address_factor: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let d = RateLimits::default();
        RateLimitConfig {
            per_s: d.read.per_s,
            burst: d.read.burst,
            write_per_s: d.write.per_s,
            write_burst: d.write.burst,
            session_per_s: d.session.per_s,
            session_burst: d.session.burst,
            address_factor: d.address_factor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopConfig {
    pub name: String,
    pub listen: SocketAddr,
    pub latitude: f64,
    pub longitude: f64,
    /// Extra Spin variables for this POP.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Round trips to origins, in milliseconds, by authority (`host:port`):
    /// each call this POP makes to one waits its round trip first (the
    /// latency model: `meridian up` fills it from the topology).
    #[serde(default)]
    pub origin_rtt_ms: BTreeMap<String, f64>,
}

fn default_fast_path() -> bool {
    true
}
fn default_max_connections() -> usize {
    1024
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_guest_cpu_ms() -> u64 {
    1_000
}
fn default_max_instances() -> u32 {
    256
}
fn default_max_kv_entries() -> usize {
    100_000
}
fn default_table_max_age_ms() -> u64 {
    edge_core::edge::DEFAULT_TABLE_MAX_AGE_MS
}

impl HostConfig {
    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        let config: HostConfig = toml::from_str(text).context("parsing the edge host config")?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `path` (component path resolved against its directory) and
    /// applies `MERIDIAN_EDGE_KEY` from `env`.
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let text = config_file::read(path)?;
        let mut config =
            Self::from_toml_str(&text).with_context(|| format!("in {}", path.display()))?;
        if let Some(key) = env("MERIDIAN_EDGE_KEY") {
            config.edge_key = key;
        }
        config.component = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&config.component);
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.pops.is_empty(), "no POP configured");
        anyhow::ensure!(
            self.edge_key.len() >= 16,
            "edge_key must be at least 16 bytes"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.max_instances),
            "max_instances must be 1..=10000"
        );
        anyhow::ensure!(
            self.max_kv_entries >= 16,
            "max_kv_entries must be at least 16"
        );
        anyhow::ensure!(
            (1..=100_000).contains(&self.max_connections_per_pop),
            "max_connections_per_pop must be 1..=100000"
        );
        anyhow::ensure!(
            (100..=120_000).contains(&self.header_read_timeout_ms),
            "header_read_timeout_ms must be 100..=120000"
        );
        anyhow::ensure!(
            (10..=60_000).contains(&self.guest_cpu_ms),
            "guest_cpu_ms must be 10..=60000"
        );
        let mut names = std::collections::BTreeSet::new();
        for pop in &self.pops {
            anyhow::ensure!(names.insert(&pop.name), "POP {} appears twice", pop.name);
        }
        Ok(())
    }

    /// The Spin variables a POP's component reads.
    pub fn variables_for(&self, pop: &PopConfig) -> HashMap<String, String> {
        let mut v: HashMap<String, String> = HashMap::from([
            ("pop".into(), pop.name.clone()),
            ("latitude".into(), pop.latitude.to_string()),
            ("longitude".into(), pop.longitude.to_string()),
            ("routing_url".into(), self.routing_url.clone()),
            ("edge_key".into(), self.edge_key.clone()),
            ("table_max_age_ms".into(), self.table_max_age_ms.to_string()),
            ("rate_per_s".into(), self.rate_limit.per_s.to_string()),
            ("rate_burst".into(), self.rate_limit.burst.to_string()),
            (
                "write_rate_per_s".into(),
                self.rate_limit.write_per_s.to_string(),
            ),
            (
                "write_rate_burst".into(),
                self.rate_limit.write_burst.to_string(),
            ),
            (
                "session_rate_per_s".into(),
                self.rate_limit.session_per_s.to_string(),
            ),
            (
                "session_rate_burst".into(),
                self.rate_limit.session_burst.to_string(),
            ),
            (
                "address_rate_factor".into(),
                self.rate_limit.address_factor.to_string(),
            ),
        ]);
        v.extend(pop.variables.clone());
        v
    }

    /// The settings the POP's component reads from its variables, parsed
    /// by the same code (edge-core's `EdgeConfig::from_lookup`, as
    /// edge-spin's `config`), for the native side.
    pub fn edge_config(&self, pop: &PopConfig) -> anyhow::Result<EdgeConfig> {
        let variables = self.variables_for(pop);
        EdgeConfig::from_lookup("spin", |name| variables.get(name).cloned())
            .with_context(|| format!("POP {}", pop.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A POP whose edge.toml leaves the setting out reads edge-core's
    /// default, as every other platform does.
    #[test]
    fn defaults_are_edge_cores() {
        let config = HostConfig::from_toml_str(
            "component = \"c.wasm\"\nrouting_url = \"http://r\"\nedge_key = \"edge-host-test-key-0123\"\n\
             [[pops]]\nname = \"p\"\nlisten = \"127.0.0.1:1\"\nlatitude = 0.0\nlongitude = 0.0\n",
        )
        .expect("config");
        let edge = config.edge_config(&config.pops[0]).expect("settings");
        let core = EdgeConfig::from_lookup("x", |name| match name {
            "edge_key" => Some("k".into()),
            "routing_url" => Some("http://r".into()),
            _ => None,
        })
        .expect("defaults");
        assert_eq!(edge.table_max_age_ms, core.table_max_age_ms);
        assert_eq!(edge.rate_limits, core.rate_limits);
    }
}
