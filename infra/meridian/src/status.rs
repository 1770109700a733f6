//! `meridian status`: the routing table as text an SRE reads at a glance.

use std::fmt::Write;

use topology::routing::{RegionStatus, RoutingTable};

/// The table as aligned text: regions, shards, POPs.
pub fn render(table: &RoutingTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "routing table version {}", table.version);
    let _ = writeln!(
        out,
        "\n{:<14} {:<9} {:>9}  ADDRESSES",
        "REGION", "HEALTH", "PROBE"
    );
    for region in &table.regions {
        row(&mut out, region);
    }
    let _ = writeln!(
        out,
        "\n{:<8} {:<14} {:<14} STANDBYS",
        "SHARD", "HOME", "ACTIVE"
    );
    for shard in &table.shards {
        let standbys: Vec<&str> = shard.standbys.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(
            out,
            "{:<8} {:<14} {:<14} {}",
            shard.shard.as_str(),
            shard.home.as_str(),
            shard.active.as_ref().map_or("NONE", |r| r.as_str()),
            standbys.join(", ")
        );
    }
    if !table.pops.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<14} {:<9} {:>9}  ADDRESSES",
            "POP", "HEALTH", "PROBE"
        );
        for pop in &table.pops {
            row(&mut out, pop);
        }
    }
    out
}

fn row(out: &mut String, status: &RegionStatus) {
    let health = crate::wire_name(status.health);
    let probe = status
        .probe_latency_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"));
    let addresses: Vec<String> = status.addresses.iter().map(|a| a.to_string()).collect();
    let _ = writeln!(
        out,
        "{:<14} {:<9} {:>9}  {}",
        status.name.as_str(),
        health,
        probe,
        addresses.join(", ")
    );
}
