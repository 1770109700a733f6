//! The whole routing server (checker, API, DNS authority) against real HTTP
//! regions, queried with the real `dig`: a shard's DNS answer moves to its
//! standby when its home region dies, and back when it recovers.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use routing::config::{RegionConfig, RoutingConfig};
use routing::health::HealthPolicy;
use routing::server::{Loaded, Sockets};

use crate::local_topology;

const MUST_HAPPEN: Duration = Duration::from_secs(10);

fn dig(port: u16, name: &str, tcp: bool) -> Vec<String> {
    let mut cmd = Command::new("dig");
    cmd.args([
        "@127.0.0.1",
        "-p",
        &port.to_string(),
        name,
        "A",
        "+short",
        "+norecurse",
        "+time=2",
        "+tries=1",
    ]);
    if tcp {
        cmd.arg("+tcp");
    }
    let out = cmd
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_answer_follows_failover_over_udp_and_tcp() {
    let flags: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(true))).collect();
    let mut regions = Vec::new();
    for (i, name) in ["us-east", "eu-west", "ap-southeast"].iter().enumerate() {
        regions.push(RegionConfig {
            name: name.parse().unwrap(),
            base_url: crate::readyz_server(flags[i].clone()).await,
            readyz_path: "/readyz".into(),
            addresses: vec![format!("127.0.1.{}", i + 1).parse().unwrap()],
        });
    }
    let config = RoutingConfig {
        topology: "unused".into(),
        dns: "unused".into(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        dns_listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: None,
        health: HealthPolicy {
            interval_ms: 20,
            timeout_ms: 200,
            fall: 3,
            rise: 2,
            ..HealthPolicy::default()
        },
        regions,
    };
    let dns_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/local/dns.toml"
    ))
    .unwrap();
    let loaded = Loaded {
        config,
        topology: local_topology(),
        dns: dns_authority::DnsConfig::from_toml_str(&dns_text).unwrap(),
    };
    let sockets = Sockets::bind_ephemeral([127, 0, 0, 1].into())
        .await
        .unwrap();
    let port = sockets.dns_port().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(routing::server::run(loaded, sockets, None, async {
        let _ = stopped.await;
    }));

    let wait_for = |name: &'static str, want: &'static str, tcp: bool| async move {
        let deadline = Instant::now() + MUST_HAPPEN;
        loop {
            let got = tokio::task::spawn_blocking(move || dig(port, name, tcp))
                .await
                .unwrap();
            if got == [want] {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} answered {got:?}, never {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for("us.shard.shop.example.", "127.0.1.1", false).await;
    wait_for("us.shard.shop.example.", "127.0.1.1", true).await;

    let killed = Instant::now();
    flags[0].store(false, Ordering::SeqCst);
    wait_for("us.shard.shop.example.", "127.0.1.2", false).await;
    let moved = killed.elapsed();
    assert!(
        moved < Duration::from_secs(2),
        "DNS took {moved:?} to fail over"
    );
    wait_for("us.shard.shop.example.", "127.0.1.2", true).await;

    flags[0].store(true, Ordering::SeqCst);
    wait_for("us.shard.shop.example.", "127.0.1.1", false).await;

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
