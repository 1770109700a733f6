//! Two regions (us-east, eu-west) over shared embedded stores, the routing
//! layer probing them, and an edge host with two POPs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use commerce::catalog::{CategoryInput, Money, ProductInput};
use edge_host::{HostConfig, PopConfig};
use regional_server::config::{HttpConfig, Secrets, WorkerConfig};
use regional_server::{Region, RegionParts};
use tokio::sync::watch;
use topology::Topology;

use crate::front::Front;

pub const EDGE_KEY: &str = "edge-host-test-key-0123456789";

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The component, built once per test process (a no-op when `cargo xtask
/// test` built it already).
pub fn component() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| build_wasm("edge-spin"));
    target_dir().join("wasm32-wasip2/release/edge_spin.wasm")
}

/// The guest that loops forever (`edge/bad-guest`), built once.
pub fn bad_guest() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| build_wasm("bad-guest"));
    target_dir().join("wasm32-wasip2/release/bad_guest.wasm")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn build_wasm(krate: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "-p",
            krate,
            "--target",
            "wasm32-wasip2",
            "--release",
        ])
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .expect("running cargo build for a component");
    assert!(status.success(), "building {krate} failed");
}

pub struct RegionHandle {
    pub name: String,
    /// In front of the region's own listener: the routing layer and the
    /// edges reach the region through it.
    pub front: Front,
    pub region: Region,
    /// Faults in front of this region's commits (its own handles on the
    /// shared stores: the other region is unaffected).
    pub faults: Arc<db::Faults>,
    stop: watch::Sender<bool>,
}

impl RegionHandle {
    /// Kills the region: its address refuses connections after this (or
    /// the test fails), and its server stops.
    pub async fn kill(&self) {
        self.front.kill().await;
        let _ = self.stop.send(true);
    }
}

/// How a [`World`] is built.
#[derive(Debug, Default)]
pub struct WorldOptions {
    /// Per client at each POP.
    pub rate_limit: edge_host::config::RateLimitConfig,
    /// Retries of a transaction inside each region (the default policy's
    /// when `None`); 0 makes an injected unknown commit result the
    /// region's answer.
    pub max_retries: Option<u32>,
    /// Connections each POP holds at once (1024 when `None`).
    pub max_connections_per_pop: Option<usize>,
    /// How long a client may take to send headers (10 s when `None`).
    pub header_read_timeout_ms: Option<u64>,
    /// Instances running at once across the POPs (64 when `None`).
    pub max_instances: Option<u32>,
}

pub struct World {
    pub regions: Vec<RegionHandle>,
    pub edge: edge_host::Running,
    pub client: reqwest::Client,
    /// The routing API's base URL.
    pub routing_url: String,
    stop_routing: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.stop_routing.send(true);
        for r in &self.regions {
            let _ = r.stop.send(true);
        }
    }
}

/// A shopper as [`World::session_and_cart`] creates one.
pub struct Shopper {
    /// The session's bearer token.
    pub token: String,
    pub shopper_id: String,
    pub cart_id: String,
}

impl World {
    pub async fn start() -> World {
        Self::start_with(Default::default()).await
    }

    pub async fn start_with(world: WorldOptions) -> World {
        let component = component();
        let dir = tempfile::tempdir().expect("tempdir");
        let topology = Topology::from_toml_str(topology::LOCAL_TOPOLOGY).expect("topology");
        let options = db_embedded::EmbeddedOptions {
            durability: db_embedded::Durability::Buffer,
            ..Default::default()
        };
        let shards = db_embedded::open_shard_map(
            dir.path(),
            &topology,
            &options,
            db::RetryPolicy::default(),
        )
        .expect("stores");
        let topology = Arc::new(topology);
        // One payment provider for both regions, with books of its own.
        let gateway = Arc::new(commerce::SimulatedGateway::new(
            Default::default(),
            db_embedded::EmbeddedDatabase::open_database(
                dir.path().join("payments"),
                options.clone(),
                db::RetryPolicy::default(),
            )
            .expect("payment provider store"),
        ));
        let mut regions = Vec::new();
        for name in ["us-east", "eu-west"] {
            let faults = db::Faults::new();
            let mut own = db::ShardMap::default();
            for (id, db) in shards.iter() {
                let mut policy = db.retry_policy();
                policy.max_retries = world.max_retries.unwrap_or(policy.max_retries);
                own.insert(
                    id.clone(),
                    db.with_faults(&faults).with_retry_policy(policy),
                );
            }
            let region = Region::build(RegionParts {
                region: name.parse().expect("region"),
                topology: topology.clone(),
                shards: own,
                served: topology.shards().iter().map(|s| s.id().clone()).collect(),
                catalog_shard: "us".parse().expect("shard"),
                search: Arc::new(search::SearchIndex::open_or_create(None).expect("index")),
                settings: commerce::Settings::default(),
                clock: Arc::new(commerce::SystemClock),
                entropy: Arc::new(commerce::OsEntropy),
                gateway: gateway.clone(),
                secrets: Secrets {
                    edge_key: EDGE_KEY.into(),
                    session_key: "edge-host-test-session-key".into(),
                    admin_token: String::new(),
                    ..Secrets::default()
                },
                http: HttpConfig::default(),
                workers: WorkerConfig {
                    feed_wait_ms: 1_000,
                    ..Default::default()
                },
                peers: Vec::new(),
            })
            .expect("region");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (stop, rx) = watch::channel(false);
            tokio::spawn(regional_server::run(region.clone(), listener, rx));
            regions.push(RegionHandle {
                name: name.into(),
                front: Front::start(addr).await,
                region,
                faults,
                stop,
            });
        }
        let c = &regions[0].region.commerce;
        c.upsert_category(
            "test",
            &CategoryInput {
                name: "Test".into(),
                parent: None,
            },
        )
        .await
        .expect("category");
        for (sku, title) in [("MUG-1", "Blue mug"), ("PEN-1", "Pen")] {
            c.upsert_product(
                sku,
                &ProductInput {
                    title: title.into(),
                    description: String::new(),
                    category: "test".into(),
                    price: Money {
                        amount_minor: 500,
                        currency: "USD".into(),
                    },
                    attributes: Default::default(),
                    images: vec![],
                },
            )
            .await
            .expect("product");
            c.restock(&"us".parse().expect("shard"), sku, 100)
                .await
                .expect("stock");
        }

        // The real routing layer, probing the two regions; ap-southeast's
        // URL answers nothing, so it is down.
        let mut routing = routing::server::load(&workspace().join("infra/local/routing.toml"))
            .expect("routing config");
        for endpoint in &mut routing.config.regions {
            endpoint.base_url = match regions.iter().find(|r| r.name == endpoint.name.as_str()) {
                Some(r) => format!("http://{}", r.front.addr),
                None => "http://127.0.0.1:9".into(),
            };
        }
        let sockets = routing::server::Sockets::bind_ephemeral([127, 0, 0, 1].into())
            .await
            .expect("routing sockets");
        let routing_api = sockets.api.local_addr().expect("addr");
        let (stop_routing, mut rx) = watch::channel(false);
        tokio::spawn(routing::server::run(routing, sockets, None, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        wait_for_health(&client, routing_api, &["us-east", "eu-west"]).await;

        let config = HostConfig {
            component,
            routing_url: format!("http://{routing_api}"),
            edge_key: EDGE_KEY.into(),
            max_instances: world.max_instances.unwrap_or(64),
            max_kv_entries: 10_000,
            table_max_age_ms: 2_000,
            rate_limit: world.rate_limit,
            fast_path: true,
            max_connections_per_pop: world.max_connections_per_pop.unwrap_or(1024),
            header_read_timeout_ms: world.header_read_timeout_ms.unwrap_or(10_000),
            guest_cpu_ms: 1_000,
            pops: vec![
                PopConfig {
                    name: "dub".into(),
                    listen: "127.0.0.1:0".parse().expect("addr"),
                    latitude: 53.35,
                    longitude: -6.26,
                    variables: Default::default(),
                    origin_rtt_ms: Default::default(),
                },
                PopConfig {
                    name: "iad".into(),
                    listen: "127.0.0.1:0".parse().expect("addr"),
                    latitude: 39.04,
                    longitude: -77.49,
                    variables: Default::default(),
                    origin_rtt_ms: Default::default(),
                },
            ],
        };
        let edge = edge_host::start(&config, true).await.expect("edge host");
        // Each POP's purge watcher has caught up with the feed (what was
        // written above) before the tests look at hits and misses.
        for (pop, _) in &edge.pops {
            let mut caught_up = false;
            for _ in 0..200 {
                if pop.kv.contains(edge_core::edge::kv::PURGE_CURSOR) {
                    caught_up = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(caught_up, "POP {} never synced the purge feed", pop.name);
        }
        World {
            regions,
            edge,
            client,
            routing_url: format!("http://{routing_api}"),
            stop_routing,
            _dir: dir,
        }
    }

    /// A shopper's session on shard `us` and an empty cart, both created
    /// through the POP at `base`.
    pub async fn session_and_cart(&self, base: &str) -> Shopper {
        let session: serde_json::Value = self
            .client
            .post(format!("{base}/v1/sessions"))
            .json(&serde_json::json!({ "shard": "us" }))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let token = session["token"].as_str().expect("token").to_owned();
        let cart: serde_json::Value = self
            .client
            .post(format!("{base}/v1/carts"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        Shopper {
            token,
            shopper_id: session["shopper_id"].as_str().expect("id").to_owned(),
            cart_id: cart["id"].as_str().expect("cart id").to_owned(),
        }
    }

    pub fn pop(&self, name: &str) -> String {
        let (_, addr) = self
            .edge
            .pops
            .iter()
            .find(|(p, _)| p.name == name)
            .expect("pop");
        format!("http://{addr}")
    }
}

/// Waits (bounded) until the routing table shows `regions` healthy.
pub async fn wait_for_health(client: &reqwest::Client, api: SocketAddr, regions: &[&str]) {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("http://{api}/v1/table")).send().await
            && let Ok(table) = r.json::<serde_json::Value>().await
        {
            let healthy = table["regions"]
                .as_array()
                .map(|rs| {
                    regions.iter().all(|name| {
                        rs.iter()
                            .any(|r| r["name"] == *name && r["health"] == "healthy")
                    })
                })
                .unwrap_or(false);
            if healthy {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("regions {regions:?} never became healthy");
}
