//! The routing server's config file (`infra/local/routing.toml`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::health::HealthPolicy;
use crate::table::{PopEndpoint, RegionEndpoint};

/// Environment variable that overrides `admin_token`.
pub const ADMIN_TOKEN_ENV: &str = "MERIDIAN_ROUTING_ADMIN_TOKEN";
/// Environment variable that overrides `admin_token_secondary`.
pub const ADMIN_TOKEN_SECONDARY_ENV: &str = "MERIDIAN_ROUTING_ADMIN_TOKEN_SECONDARY";

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The topology file, relative to this file.
    pub topology: PathBuf,
    /// The DNS authority's config file, relative to this file.
    pub dns: PathBuf,
    /// Where the routing API listens.
    pub api_listen: SocketAddr,
    /// Where the DNS authority listens (UDP and TCP).
    pub dns_listen: SocketAddr,
    /// Bearer token for drain/undrain (overridden by the environment).
    pub admin_token: Option<String>,
    /// Another token accepted beside it during a rotation (overridden by
    /// the environment); only with `admin_token`.
    #[serde(default)]
    pub admin_token_secondary: Option<String>,
    #[serde(default)]
    pub health: HealthPolicy,
    pub regions: Vec<RegionConfig>,
    /// The edge POPs: probed like the regions, answered by the storefront's
    /// DNS name (`www.<zone>`: the nearest serving POP to the client).
    #[serde(default)]
    pub pops: Vec<PopConfig>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopConfig {
    /// The POP's name (the rules of a region's name), e.g. `dub`.
    pub name: topology::RegionId,
    /// Where the POP serves, e.g. `http://127.0.2.1:8201`.
    pub base_url: String,
    #[serde(default = "default_healthz")]
    pub healthz_path: String,
    /// What DNS answers for the POP.
    pub addresses: Vec<IpAddr>,
    pub latitude: f64,
    pub longitude: f64,
    /// As a region's `baseline_ms`.
    #[serde(default)]
    pub baseline_ms: f64,
}

fn default_healthz() -> String {
    "/healthz".into()
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: topology::RegionId,
    /// The region's HTTP API, e.g. `http://127.0.0.1:8101`.
    pub base_url: String,
    #[serde(default = "default_readyz")]
    pub readyz_path: String,
    /// What DNS answers for the region.
    pub addresses: Vec<IpAddr>,
    /// The probe's round trip at rest from where the routing layer runs
    /// (its distance to the region): only latency above it makes the
    /// region degraded.
    #[serde(default)]
    pub baseline_ms: f64,
}

fn default_readyz() -> String {
    "/readyz".into()
}

impl RoutingConfig {
    pub fn from_toml_str(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn pop_endpoints(&self) -> Vec<PopEndpoint> {
        self.pops
            .iter()
            .map(|p| PopEndpoint {
                endpoint: RegionEndpoint {
                    name: p.name.clone(),
                    base_url: p.base_url.trim_end_matches('/').to_owned(),
                    readyz_url: format!("{}{}", p.base_url.trim_end_matches('/'), p.healthz_path),
                    addresses: p.addresses.clone(),
                    baseline_ms: p.baseline_ms,
                },
                latitude: p.latitude,
                longitude: p.longitude,
            })
            .collect()
    }

    pub fn endpoints(&self) -> Vec<RegionEndpoint> {
        self.regions
            .iter()
            .map(|r| RegionEndpoint {
                name: r.name.clone(),
                base_url: r.base_url.trim_end_matches('/').to_owned(),
                readyz_url: format!("{}{}", r.base_url.trim_end_matches('/'), r.readyz_path),
                addresses: r.addresses.clone(),
                baseline_ms: r.baseline_ms,
            })
            .collect()
    }
}
