//! The whole routing server (checker, API, DNS authority) against real HTTP
//! regions, queried with the real `dig`: a shard's DNS answer moves to its
//! standby when its home region dies, and back when it recovers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use routing::config::{RegionConfig, RoutingConfig};
use routing::health::HealthPolicy;
use routing::server::{Loaded, Sockets};

use crate::{dig, local_topology};

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
            baseline_ms: 0.0,
        });
    }
    let config = RoutingConfig {
        topology: "unused".into(),
        dns: "unused".into(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        dns_listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: None,
        admin_token_secondary: None,
        health: HealthPolicy {
            interval_ms: 20,
            timeout_ms: 200,
            fall: 3,
            rise: 2,
            ..HealthPolicy::default()
        },
        regions,
        pops: Vec::new(),
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
    let api = format!("http://{}", sockets.api_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(routing::server::run(loaded, sockets, None, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let us = |want: &'static str| {
        move |table: &topology::routing::RoutingTable| {
            table.shards.iter().any(|s| {
                s.shard.as_str() == "us" && s.active.as_ref().map(|r| r.as_str()) == Some(want)
            })
        }
    };
    // The DNS authority answers from the table the API serves (the same
    // watch), so once the table says where `us` is served, one query of
    // each transport must say so too: no retry, no clock.
    let answers = |want: &'static str| {
        let dig_udp = tokio::task::spawn_blocking(move || dig(port, "us.shard.shop.example.", &[]));
        let dig_tcp =
            tokio::task::spawn_blocking(move || dig(port, "us.shard.shop.example.", &["+tcp"]));
        async move {
            assert_eq!(dig_udp.await.unwrap(), [want], "UDP");
            assert_eq!(dig_tcp.await.unwrap(), [want], "TCP");
        }
    };
    routing::client::table_when(&client, &api, 20, us("us-east"))
        .await
        .unwrap();
    answers("127.0.1.1").await;

    flags[0].store(false, Ordering::SeqCst);
    routing::client::table_when(&client, &api, 20, us("eu-west"))
        .await
        .unwrap();
    answers("127.0.1.2").await;

    flags[0].store(true, Ordering::SeqCst);
    routing::client::table_when(&client, &api, 20, us("us-east"))
        .await
        .unwrap();
    answers("127.0.1.1").await;

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
