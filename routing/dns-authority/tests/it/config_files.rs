//! The shipped configuration parses and builds an authority.

use std::sync::Arc;

use dns_authority::{Authority, DnsConfig};
use tokio::sync::watch;
use topology::routing::RoutingTable;

const LOCAL_DNS: &str = include_str!("../../../../infra/local/dns.toml");

#[test]
fn local_dns_toml_parses_and_builds() {
    let config = DnsConfig::from_toml_str(LOCAL_DNS).expect("infra/local/dns.toml");
    assert_eq!(config.zone, "shop.example.");
    let (_sender, receiver) = watch::channel(Arc::new(RoutingTable::default()));
    Authority::new(config, receiver).expect("authority from infra/local/dns.toml");
}
