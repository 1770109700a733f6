//! `meridian up` killed with SIGKILL under checkout load, then started
//! again on the same data: no acknowledged order is lost, every checkout
//! whose outcome was unknown at the kill settles (confirmed or failed) when
//! retried with its Idempotency-Key, the payment provider charged exactly
//! the confirmed orders, and every SKU's stock audits clean.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

const ADMIN: &str = "crash-test-admin-token";
const SHOPPERS: usize = 36;
const PRODUCTS: usize = 12;

/// A platform config in `dir`: three regions on 127.0.0.1:0, no routing,
/// a small catalog, short saga leases, a slow and sometimes-lost payment
/// provider (so checkouts are in flight when the process dies).
fn write_config(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("topology.toml"), topology::LOCAL_TOPOLOGY).expect("topology");
    std::fs::create_dir_all(dir.join("regions")).expect("regions dir");
    let mut regions = Vec::new();
    for region in ["us-east", "eu-west", "ap-southeast"] {
        std::fs::write(
            dir.join(format!("regions/{region}.toml")),
            format!(
                r#"region = "{region}"
listen = "127.0.0.1:0"
topology = "../topology.toml"
catalog_shard = "us"

[storage]
engine = "embedded"
dir = "../data"

[secrets]
edge_key = "crash-test-edge-key-0123"
session_key = "crash-test-session-key-0123"
admin_token = "{ADMIN}"

[http]
require_edge_signature = false

[commerce]
saga_lease_ms = 1000

[workers]
recovery_interval_ms = 50
"#
            ),
        )
        .expect("region config");
        regions.push(format!("\"regions/{region}.toml\""));
    }
    let path = dir.join("meridian.toml");
    std::fs::write(
        &path,
        format!(
            r#"topology = "topology.toml"
regions = [{}]

[storage]
engine = "embedded"
dir = "data"
durability = "sync"

[seed]
products = {PRODUCTS}
seed = 42
max_stock = 1000

[payments]
latency_ms = 40
timeout_rate = 0.05
seed = 11
"#,
            regions.join(", ")
        ),
    )
    .expect("meridian.toml");
    path
}

/// A running `meridian up` and the base URL of each region by name.
struct Up {
    child: Child,
    regions: BTreeMap<String, (String, Vec<String>)>,
}

impl Up {
    /// Starts `meridian up` and reads its banner for the regions' URLs.
    fn start(config: &Path) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["up", "--config"])
            .arg(config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning meridian up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut regions = BTreeMap::new();
        // The banner ends with the "Try:" line; bounded by its length.
        for _ in 0..100 {
            let Some(Ok(line)) = lines.next() else {
                panic!("meridian up ended before it was up");
            };
            if line.starts_with("Try:") {
                break;
            }
            // "  region us-east        http://127.0.0.1:PORT  serves shards [us, eu]"
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["region", name, url, "serves", "shards", shards @ ..] = words.as_slice() {
                let shards = shards
                    .join(" ")
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(", ")
                    .map(str::to_owned)
                    .collect();
                regions.insert((*name).to_owned(), ((*url).to_owned(), shards));
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        assert_eq!(regions.len(), 3, "{regions:?}");
        Up { child, regions }
    }

    /// A region serving `shard`.
    fn serving(&self, shard: &str) -> String {
        self.regions
            .values()
            .find(|(_, shards)| shards.iter().any(|s| s == shard))
            .map(|(url, _)| url.clone())
            .expect("a region serves the shard")
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown path runs.
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

struct Shopper {
    shard: &'static str,
    token: String,
    cart: String,
    key: String,
}

/// What a checkout's first attempt got before the kill.
#[derive(Debug)]
enum First {
    Confirmed(String),
    Failed(String),
    Pending,
    Unknown,
}

async fn checkout(client: &reqwest::Client, base: &str, s: &Shopper) -> Option<(u16, Value)> {
    let response = client
        .post(format!("{base}/v1/checkout"))
        .bearer_auth(&s.token)
        .header("idempotency-key", &s.key)
        .json(&json!({ "cart_id": s.cart }))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_under_checkout_load_loses_no_order_and_every_saga_settles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let up = Up::start(&config);

    // Shoppers in every shard, each with a cart of one or two SKUs.
    let mut shoppers = Vec::new();
    for i in 0..SHOPPERS {
        let shard = ["us", "eu", "ap"][i % 3];
        let base = up.serving(shard);
        let session: Value = client
            .post(format!("{base}/v1/sessions"))
            .json(&json!({ "shard": shard }))
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("json");
        let token = session["token"].as_str().expect("token").to_owned();
        let cart: Value = client
            .post(format!("{base}/v1/carts"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("cart")
            .json()
            .await
            .expect("json");
        let cart = cart["id"].as_str().expect("cart id").to_owned();
        for sku in [i % PRODUCTS, (i * 7 + 3) % PRODUCTS] {
            let added = client
                .post(format!("{base}/v1/carts/{cart}/items"))
                .bearer_auth(&token)
                .json(&json!({ "sku": format!("MRD-{sku:06}"), "qty": 1 + i % 3 }))
                .send()
                .await
                .expect("add");
            assert_eq!(added.status().as_u16(), 200, "{:?}", added.text().await);
        }
        shoppers.push(Shopper {
            shard,
            token,
            cart,
            key: format!("crash-{i}"),
        });
    }

    // Every checkout at once; the process dies once a third have answered.
    let (answered_tx, mut answered) = tokio::sync::mpsc::channel(SHOPPERS);
    let mut tasks = Vec::new();
    for (i, s) in shoppers.iter().enumerate() {
        let (client, base, answered) = (client.clone(), up.serving(s.shard), answered_tx.clone());
        let s = Shopper {
            shard: s.shard,
            token: s.token.clone(),
            cart: s.cart.clone(),
            key: s.key.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let outcome = checkout(&client, &base, &s).await;
            let _ = answered.send(i).await;
            outcome
        }));
    }
    for _ in 0..SHOPPERS / 3 {
        answered.recv().await.expect("an answer");
    }
    up.kill();
    let mut first = Vec::new();
    for task in tasks {
        first.push(match task.await.expect("task") {
            Some((201, order)) => First::Confirmed(order["id"].as_str().expect("id").to_owned()),
            Some((409, problem)) => match problem["order_id"].as_str() {
                Some(id) => First::Failed(id.to_owned()),
                // Refused before an order existed (e.g. empty cart).
                None => First::Unknown,
            },
            Some((202, _)) => First::Pending,
            // No answer (the process died), or a 5xx: unknown.
            _ => First::Unknown,
        });
    }
    let acknowledged = first
        .iter()
        .filter(|f| matches!(f, First::Confirmed(_) | First::Failed(_)))
        .count();
    assert!(acknowledged >= SHOPPERS / 3, "{first:?}");

    // Start again on the same data: every checkout, retried with its key,
    // reaches its final outcome; no acknowledged one changed.
    let up = Up::start(&config);
    let mut confirmed = BTreeSet::new();
    for (s, before) in shoppers.iter().zip(&first) {
        let base = up.serving(s.shard);
        let mut last = None;
        // Each retry waits (server side, on a watch) for a running saga;
        // a few rounds cover a payment whose answer was lost again.
        for _ in 0..10 {
            let (status, body) = checkout(&client, &base, s).await.expect("retry answered");
            if status != 202 {
                last = Some((status, body));
                break;
            }
        }
        let (status, body) = last.unwrap_or_else(|| panic!("{} never settled", s.key));
        let id = match status {
            201 => body["id"].as_str().expect("id").to_owned(),
            409 => body["order_id"].as_str().unwrap_or_default().to_owned(),
            other => panic!("{}: {other} {body}", s.key),
        };
        match before {
            First::Confirmed(was) => {
                assert_eq!(status, 201, "{}: acknowledged order lost: {body}", s.key);
                assert_eq!(&id, was, "{}", s.key);
            }
            First::Failed(was) => {
                assert_eq!(status, 409, "{}: {body}", s.key);
                assert_eq!(&id, was, "{}", s.key);
            }
            First::Pending | First::Unknown => {}
        }
        if status == 201 {
            confirmed.insert(id);
        }
    }
    // Stock: the live numbers equal the event log's, in every warehouse.
    for sku in 0..PRODUCTS {
        for warehouse in ["us", "eu", "ap"] {
            let base = up.serving(warehouse);
            let audit: Value = client
                .get(format!("{base}/v1/admin/stock/{warehouse}/MRD-{sku:06}"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .expect("audit")
                .json()
                .await
                .expect("json");
            assert_eq!(audit["consistent"], true, "{audit}");
            assert_eq!(audit["live"]["reserved"], 0, "{audit}");
        }
    }
    up.kill();

    // The provider's books, read from its own store: one charge per
    // confirmed order and no other.
    let gateway = regional_server::storage::open_gateway(
        &commerce::SimulatedGatewayConfig::default(),
        Some(&dir.path().join("data/payments")),
    )
    .expect("provider store");
    let ledger = gateway.ledger(10_000).await.expect("ledger");
    let charged: BTreeSet<String> = ledger.captured().map(|c| c.reference.clone()).collect();
    assert_eq!(charged, confirmed, "charges == confirmed orders");
    let open: Vec<_> = ledger
        .authorizations
        .iter()
        .filter(|a| a.state == commerce::payments::AuthState::Open)
        .collect();
    assert!(open.is_empty(), "authorizations left open: {open:?}");
}
