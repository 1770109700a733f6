//! The routing server's config file (`infra/local/routing.toml`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::health::HealthPolicy;
use crate::table::RegionEndpoint;

/// Environment variable that overrides `admin_token`.
pub const ADMIN_TOKEN_ENV: &str = "MERIDIAN_ROUTING_ADMIN_TOKEN";

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
    #[serde(default)]
    pub health: HealthPolicy,
    pub regions: Vec<RegionConfig>,
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
}

fn default_readyz() -> String {
    "/readyz".into()
}

impl RoutingConfig {
    pub fn from_toml_str(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn endpoints(&self) -> Vec<RegionEndpoint> {
        self.regions
            .iter()
            .map(|r| RegionEndpoint {
                name: r.name.clone(),
                base_url: r.base_url.trim_end_matches('/').to_owned(),
                readyz_url: format!("{}{}", r.base_url.trim_end_matches('/'), r.readyz_path),
                addresses: r.addresses.clone(),
            })
            .collect()
    }
}
