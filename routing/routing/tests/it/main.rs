//! Routing's integration tests: hysteresis as a pure state machine, the
//! table's failover rules, and the checker and API against real HTTP
//! regions on 127.0.0.1.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed step is a failed test"
)]

mod checker;
mod dns;
mod geoip;
mod health;
mod table;

use topology::{LOCAL_TOPOLOGY, RegionId, Topology};

use routing::table::{RegionEndpoint, RegionTable};

pub(crate) fn region(name: &str) -> RegionId {
    name.parse().unwrap()
}

pub(crate) fn local_topology() -> Topology {
    Topology::from_toml_str(LOCAL_TOPOLOGY).unwrap()
}

/// Endpoints for the local topology with the given readyz URLs.
pub(crate) fn endpoints(urls: &[(&str, String)]) -> Vec<RegionEndpoint> {
    urls.iter()
        .enumerate()
        .map(|(i, (name, base))| RegionEndpoint {
            name: region(name),
            base_url: base.clone(),
            readyz_url: format!("{base}/readyz"),
            addresses: vec![format!("127.0.0.{}", i + 1).parse().unwrap()],
            baseline_ms: 0.0,
        })
        .collect()
}

pub(crate) fn table_with(policy: routing::health::HealthPolicy) -> RegionTable {
    let urls: Vec<(&str, String)> = ["us-east", "eu-west", "ap-southeast"]
        .iter()
        .map(|n| (*n, format!("http://127.0.0.1:9/{n}")))
        .collect();
    RegionTable::new(&local_topology(), endpoints(&urls), policy).unwrap()
}

/// A region's `/readyz` on 127.0.0.1:0 that answers 200 while `ready` is
/// set and 503 otherwise; returns its base URL.
pub(crate) async fn readyz_server(ready: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/readyz",
        axum::routing::get(move || {
            let ready = ready.clone();
            async move {
                if ready.load(std::sync::atomic::Ordering::SeqCst) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// `dig` for an A record of `name` at 127.0.0.1:`port`, with `extra`
/// options (`+tcp`, `+subnet=...`): the answers, one per line.
pub(crate) fn dig(port: u16, name: &str, extra: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            name,
            "A",
            "+short",
            "+norecurse",
            "+time=2",
            "+tries=1",
        ])
        .args(extra)
        .output()
        .expect("`dig` runs (Debian's dnsutils; `cargo xtask test` installs it)");
    assert!(
        out.status.success(),
        "dig failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
