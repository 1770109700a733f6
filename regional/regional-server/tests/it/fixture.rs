//! A region served on 127.0.0.1:0 over fresh embedded stores, with a manual
//! clock and the simulated gateway, and a client that signs like an edge.

use std::sync::Arc;

use commerce::catalog::{Money, ProductInput};
use commerce::{Clock, ManualClock, Settings, SimulatedGateway, SimulatedGatewayConfig};
use regional_server::config::{HttpConfig, Secrets, WorkerConfig};
use regional_server::{Region, RegionParts, auth};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;
use topology::{ShardId, Topology};

pub const EDGE_KEY: &str = "test-edge-key-0123456789";
pub const ADMIN: &str = "test-admin-token";

pub struct Options {
    pub workers: bool,
    pub settings: Settings,
    pub payments: SimulatedGatewayConfig,
    /// Faults in front of every shard's commits, with this many retries of
    /// a transaction (the default policy's when `None`).
    pub faults: Option<(Arc<db::Faults>, Option<u32>)>,
    /// The region's secrets; [`Fixture::edge_key`] and
    /// [`Fixture::admin_token`] start as their primaries.
    pub secrets: Secrets,
}

/// The secrets of a fixture's region unless a test chooses others.
pub fn test_secrets() -> Secrets {
    Secrets {
        edge_key: EDGE_KEY.into(),
        session_key: "test-session-key-0123456789".into(),
        admin_token: ADMIN.into(),
        ..Secrets::default()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: true,
            settings: Settings::default(),
            payments: SimulatedGatewayConfig::default(),
            faults: None,
            secrets: test_secrets(),
        }
    }
}

pub struct Fixture {
    pub region: Region,
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub gateway: Arc<SimulatedGateway>,
    /// Every shard's store as opened (behind the faults, if any).
    pub shards: db::ShardMap,
    pub topology: Arc<Topology>,
    /// The key [`Fixture::signed`] signs with.
    pub edge_key: String,
    /// The token [`Fixture::admin`] sends.
    pub admin_token: String,
    shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// Another region served over the fixture's stores, until dropped.
pub struct OtherRegion {
    pub region: Region,
    pub base: String,
    shutdown: watch::Sender<bool>,
}

impl Drop for OtherRegion {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

pub fn shard(name: &str) -> ShardId {
    name.parse().expect("shard")
}

impl Fixture {
    pub async fn start() -> Fixture {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let topology = Topology::from_toml_str(topology::LOCAL_TOPOLOGY).expect("topology");
        let shards = db_embedded::open_shard_map(
            dir.path(),
            &topology,
            &db_embedded::EmbeddedOptions::default(),
            db::RetryPolicy::default(),
        )
        .expect("open stores");
        let shards = match &options.faults {
            None => shards,
            Some((faults, retries)) => {
                let mut faulty = db::ShardMap::default();
                for (id, db) in shards.iter() {
                    let mut policy = db.retry_policy();
                    policy.max_retries = retries.unwrap_or(policy.max_retries);
                    faulty.insert(id.clone(), db.with_faults(faults).with_retry_policy(policy));
                }
                faulty
            }
        };
        let clock = Arc::new(ManualClock::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis() as u64,
        ));
        // The provider keeps its books in a store of its own.
        let gateway = Arc::new(SimulatedGateway::new(
            options.payments,
            db_embedded::EmbeddedDatabase::open_database(
                dir.path().join("payments"),
                db_embedded::EmbeddedOptions::default(),
                db::RetryPolicy::default(),
            )
            .expect("payment provider store"),
        ));
        let topology = Arc::new(topology);
        let edge_key = options.secrets.edge_key.clone();
        let admin_token = options.secrets.admin_token.clone();
        let (region, base, shutdown) = serve(
            "us-east",
            &topology,
            shards.clone(),
            options.settings,
            clock.clone(),
            gateway.clone(),
            options.workers,
            Vec::new(),
            options.secrets,
        )
        .await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Fixture {
            region,
            base,
            client,
            clock,
            gateway,
            shards,
            topology,
            edge_key,
            admin_token,
            shutdown,
            _dir: dir,
        }
    }

    /// Another region (with its workers) over the same stores and clock,
    /// reaching each shard through `view`, pushing the catalog to `peers`.
    pub async fn other_region(
        &self,
        name: &str,
        view: impl Fn(&ShardId, &db::Database) -> db::Database,
        peers: Vec<regional_server::replication::Peer>,
    ) -> OtherRegion {
        let mut shards = db::ShardMap::default();
        for (id, database) in self.shards.iter() {
            shards.insert(id.clone(), view(id, database));
        }
        let (region, base, shutdown) = serve(
            name,
            &self.topology,
            shards,
            self.region.commerce.settings().clone(),
            self.clock.clone(),
            self.gateway.clone(),
            true,
            peers,
            test_secrets(),
        )
        .await;
        OtherRegion {
            region,
            base,
            shutdown,
        }
    }

    /// The OpenAPI document the region serves.
    pub async fn openapi(&self) -> Value {
        self.client
            .get(format!("{}/v1/openapi.json", self.base))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    /// A request signed as an edge would sign it.
    pub fn signed(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        session: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("json"))
            .unwrap_or_default();
        self.signed_raw(method, path, bytes, session)
    }

    pub fn signed_raw(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        session: Option<&str>,
    ) -> reqwest::RequestBuilder {
        self.signed_typed(method, path, body, session, "application/json")
    }

    pub fn signed_typed(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        session: Option<&str>,
        content_type: &str,
    ) -> reqwest::RequestBuilder {
        // The region checks the signature's time on its own clock (the
        // test's manual one), as a simulated edge shares the simulator's.
        let now_s = self.clock.now_ms() / 1000;
        let nonce = nonce();
        let signature = auth::sign_edge_request(
            self.edge_key.as_bytes(),
            method.as_str(),
            path,
            now_s,
            &nonce,
            &body,
        );
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(auth::TIMESTAMP_HEADER, now_s.to_string())
            .header(auth::NONCE_HEADER, nonce)
            .header(auth::SIGNATURE_HEADER, signature);
        if !body.is_empty() {
            request = request.header("content-type", content_type).body(body);
        }
        if let Some(token) = session {
            request = request.bearer_auth(token);
        }
        request
    }

    pub fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request
    }

    /// A new shopper session in `shard`: (token, shopper id).
    pub async fn session(&self, shard: &str) -> (String, String) {
        let response = self
            .signed(
                Method::POST,
                "/v1/sessions",
                Some(&json!({ "shard": shard })),
                None,
            )
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        (
            body["token"].as_str().expect("token").to_owned(),
            body["shopper_id"].as_str().expect("id").to_owned(),
        )
    }

    pub async fn category(&self, slug: &str) {
        let response = self
            .admin(
                Method::PUT,
                &format!("/v1/admin/categories/{slug}"),
                Some(&json!({ "name": slug })),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    pub async fn product(&self, sku: &str, title: &str, amount_minor: i64) {
        let input = ProductInput {
            title: title.into(),
            description: format!("{title}, described"),
            category: "test".into(),
            price: Money {
                amount_minor,
                currency: "USD".into(),
            },
            attributes: Default::default(),
            images: vec![],
        };
        let response = self
            .admin(
                Method::PUT,
                &format!("/v1/admin/products/{sku}"),
                Some(&serde_json::to_value(&input).expect("json")),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    pub async fn restock(&self, warehouse: &str, sku: &str, qty: i64) {
        let response = self
            .admin(
                Method::POST,
                &format!("/v1/admin/stock/{warehouse}/{sku}"),
                Some(&json!({ "qty": qty })),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    /// A cart with `qty` of `sku` for a new shopper of `shard`:
    /// (token, cart id).
    pub async fn cart_with(&self, shard: &str, sku: &str, qty: i64) -> (String, String) {
        let (token, _) = self.session(shard).await;
        let cart = self.new_cart(&token).await;
        let response = self
            .signed(
                Method::POST,
                &format!("/v1/carts/{cart}/items"),
                Some(&json!({ "sku": sku, "qty": qty })),
                Some(&token),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
        (token, cart)
    }

    pub async fn new_cart(&self, token: &str) -> String {
        let response = self
            .signed(Method::POST, "/v1/carts", None, Some(token))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn checkout(&self, token: &str, cart: &str, key: &str) -> (StatusCode, Value) {
        let response = self
            .signed(
                Method::POST,
                "/v1/checkout",
                Some(&json!({ "cart_id": cart })),
                Some(token),
            )
            .header("idempotency-key", key)
            .send()
            .await
            .expect("send");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    /// A catalog with one category `test` and the given products.
    pub async fn catalog(&self, products: &[(&str, &str, i64)]) {
        self.category("test").await;
        for (sku, title, price) in products {
            self.product(sku, title, *price).await;
        }
    }

    /// Applies the catalog feed to this region until it is caught up.
    pub async fn catch_up(&self) {
        for _ in 0..100 {
            if self
                .region
                .commerce
                .apply_feed(0)
                .await
                .expect("apply feed")
                == 0
                && self.region.commerce.search_index().cursor().is_some()
            {
                // One more pass to be sure nothing was left.
                if self
                    .region
                    .commerce
                    .apply_feed(0)
                    .await
                    .expect("apply feed")
                    == 0
                {
                    return;
                }
            }
        }
        panic!("the feed never caught up");
    }
}

/// A fresh request nonce.
pub fn nonce() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut a = std::collections::hash_map::RandomState::new().build_hasher();
    a.write_u8(1);
    let mut b = std::collections::hash_map::RandomState::new().build_hasher();
    b.write_u8(2);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut rx: watch::Receiver<bool>,
) {
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = rx.changed().await;
        })
        .await;
}

/// Asserts a problem+json response of `status` and gives its body.
pub async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"].as_u64(), Some(u64::from(status.as_u16())));
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:meridian:problem:")),
        "{body}"
    );
    body
}

/// Builds a region over `shards` and serves it on 127.0.0.1:0 (with its
/// workers when `workers`), until the returned sender turns true.
#[allow(clippy::too_many_arguments)]
async fn serve(
    name: &str,
    topology: &Arc<Topology>,
    shards: db::ShardMap,
    settings: Settings,
    clock: Arc<ManualClock>,
    gateway: Arc<SimulatedGateway>,
    workers: bool,
    peers: Vec<regional_server::replication::Peer>,
    secrets: Secrets,
) -> (Region, String, watch::Sender<bool>) {
    let search = search::SearchIndex::open_or_create(None).expect("search index");
    let served = topology.shards().iter().map(|s| s.id().clone()).collect();
    let region = Region::build(RegionParts {
        region: name.parse().expect("region"),
        topology: topology.clone(),
        shards,
        served,
        catalog_shard: shard("us"),
        search: Arc::new(search),
        settings,
        clock,
        entropy: Arc::new(commerce::OsEntropy),
        gateway,
        secrets,
        http: HttpConfig {
            request_timeout_ms: 60_000,
            ..HttpConfig::default()
        },
        workers: WorkerConfig {
            outbox_interval_ms: 20,
            recovery_interval_ms: 50,
            sweep_interval_ms: 100,
            feed_wait_ms: 1_000,
        },
        peers,
    })
    .expect("build region");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (shutdown, rx) = watch::channel(false);
    if workers {
        tokio::spawn(regional_server::run(region.clone(), listener, rx));
    } else {
        let router = regional_server::app(region.state.clone());
        tokio::spawn(async move { axum_serve(listener, router, rx).await });
    }
    (region, base, shutdown)
}
