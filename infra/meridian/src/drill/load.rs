//! The shopper load a drill drives through the edge POPs: shoppers homed
//! in every shard, each on a client address of its own (127.x.y.z) with a
//! session, walking Online Boutique's load profile (index 1, browse a
//! product 10, add to cart 2, view the cart 3, check out 1), paced to a
//! total rate, for a bounded time. Every request and its outcome is
//! recorded. Writes carry an Idempotency-Key and an unknown outcome (a
//! transport error, a 5xx) is retried with the same key, a bounded number
//! of times, as a real client would.
//!
//! Written here rather than on a load-testing crate (goose): the drill
//! needs each request's own outcome (ids, keys, versions) to check the
//! business invariants against the data afterwards, and one source
//! address per shopper; goose's own reporting gives neither.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Longest a drill's load runs.
pub const MAX_SECS: u64 = 3_600;
/// Most shoppers.
pub const MAX_SHOPPERS: usize = 512;
/// Highest rate, requests per second over all shoppers.
pub const MAX_RATE: f64 = 10_000.0;
/// Attempts of one write (the first and the retries with its key).
const WRITE_ATTEMPTS: u32 = 3;
/// One request's deadline, as patient as a browser: a keyed checkout
/// retry may wait (server side) up to the region's `checkout_wait_ms`
/// (10 s by default) for a saga a dead runner left, before its 202; a
/// shorter deadline would record that answer as none.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the load does.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub shoppers: usize,
    /// Requests per second over all shoppers.
    pub rate: f64,
    pub duration: Duration,
    pub seed: u64,
    /// The SKUs to browse and buy.
    pub skus: Vec<String>,
    /// Each shopper's POP, by the shard it is homed in: (shard, POP name,
    /// its address).
    pub pops: Vec<(String, String, SocketAddr)>,
    /// Where each record also goes as it is made, for whoever follows the
    /// load live (the drill's poster takes them every second).
    pub live: Option<LiveLog>,
}

/// Records as they are made, taken by whoever follows the load.
pub type LiveLog = Arc<std::sync::Mutex<Vec<Record>>>;

/// Takes the records made since the last take.
pub fn take(log: &LiveLog) -> Vec<Record> {
    std::mem::take(
        &mut *log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// One shopper action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Session,
    NewCart,
    Index,
    Browse,
    AddToCart,
    ViewCart,
    Checkout,
}

impl Action {
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Action::Session | Action::NewCart | Action::AddToCart | Action::Checkout
        )
    }
}

/// One request and its outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    /// Since the load started.
    pub at_ms: u64,
    pub latency_ms: f64,
    pub shopper: usize,
    pub shard: String,
    pub pop: String,
    pub action: Action,
    /// 0: no answer (transport error).
    pub status: u16,
    /// The write's key, when it has one.
    pub key: Option<String>,
    /// What an acknowledged write made: a cart's version, an order's id.
    pub cart_id: Option<String>,
    pub cart_version: Option<u64>,
    pub order_id: Option<String>,
    pub order_status: Option<String>,
    pub shopper_id: Option<String>,
}

impl Record {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether the request failed from the shopper's side: no answer, a 5xx
    /// or a 429. (A 409 checkout failure, out of stock or declined, is an
    /// answer.)
    pub fn error(&self) -> bool {
        self.status == 0 || self.status >= 500 || self.status == 429
    }
}

/// Runs the load; the records of every shopper, in time order.
pub async fn run(options: LoadOptions) -> anyhow::Result<Vec<Record>> {
    anyhow::ensure!(
        (1..=MAX_SHOPPERS).contains(&options.shoppers),
        "shoppers must be 1..={MAX_SHOPPERS}"
    );
    anyhow::ensure!(
        options.rate.is_finite() && options.rate > 0.0 && options.rate <= MAX_RATE,
        "the load's rate must be above 0 and at most {MAX_RATE} requests/s"
    );
    anyhow::ensure!(
        options.duration <= Duration::from_secs(MAX_SECS),
        "a drill's load runs at most {MAX_SECS} s"
    );
    anyhow::ensure!(!options.skus.is_empty(), "no SKUs to shop for");
    anyhow::ensure!(!options.pops.is_empty(), "no POPs to shop at");
    let started = Instant::now();
    let options = Arc::new(options);
    let mut tasks = tokio::task::JoinSet::new();
    for shopper in 0..options.shoppers {
        let options = options.clone();
        tasks.spawn(async move { shop(shopper, &options, started).await });
    }
    let mut records = Vec::new();
    while let Some(result) = tasks.join_next().await {
        records.extend(result.context("a shopper task")??);
    }
    records.sort_by_key(|r| r.at_ms);
    Ok(records)
}

/// The client address of shopper `n`: 127.10.x.y, one per shopper.
fn client_address(n: usize) -> IpAddr {
    let n = n + 1;
    IpAddr::V4(Ipv4Addr::new(127, 10, (n / 250) as u8, (n % 250) as u8 + 1))
}

struct Shopper<'a> {
    n: usize,
    shard: String,
    pop_name: String,
    base: String,
    client: reqwest::Client,
    started: Instant,
    records: Vec<Record>,
    token: Option<String>,
    shopper_id: Option<String>,
    cart: Option<String>,
    rng: StdRng,
    options: &'a LoadOptions,
    writes: u64,
}

async fn shop(n: usize, options: &LoadOptions, started: Instant) -> anyhow::Result<Vec<Record>> {
    let (shard, pop_name, pop) = options.pops[n % options.pops.len()].clone();
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(client_address(n))
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(2)
        .build()
        .context("a shopper's client")?;
    let mut shopper = Shopper {
        n,
        shard,
        pop_name,
        base: format!("http://{pop}"),
        client,
        started,
        records: Vec::new(),
        token: None,
        shopper_id: None,
        cart: None,
        rng: StdRng::seed_from_u64(options.seed ^ (n as u64).wrapping_mul(0x9E37_79B9)),
        options,
        writes: 0,
    };
    // Each shopper's share of the rate, with jitter, so the total is paced.
    let gap = Duration::from_secs_f64(options.shoppers as f64 / options.rate);
    let first = gap.mul_f64(shopper.rng.random_range(0.0..1.0));
    tokio::time::sleep(first).await;
    while started.elapsed() < options.duration {
        let step = Instant::now();
        shopper.step().await;
        let pause = gap.mul_f64(shopper.rng.random_range(0.5..1.5));
        if let Some(rest) = pause.checked_sub(step.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    Ok(shopper.records)
}

impl Shopper<'_> {
    async fn step(&mut self) {
        if self.token.is_none() {
            self.session().await;
            return;
        }
        if self.cart.is_none() {
            self.new_cart().await;
            return;
        }
        // Online Boutique's weights.
        let pick = self.rng.random_range(0..17);
        match pick {
            0 => self.read(Action::Index, "/v1/categories".into()).await,
            1..=10 => {
                let sku = self.sku();
                self.read(Action::Browse, format!("/v1/products/{sku}"))
                    .await;
            }
            11..=12 => self.add_to_cart().await,
            13..=15 => {
                let cart = self.cart.clone().unwrap_or_default();
                self.read(Action::ViewCart, format!("/v1/carts/{cart}"))
                    .await;
            }
            _ => self.checkout().await,
        }
    }

    fn sku(&mut self) -> String {
        let skus = &self.options.skus;
        skus[self.rng.random_range(0..skus.len())].clone()
    }

    fn key(&mut self, what: &str) -> String {
        self.writes += 1;
        format!(
            "drill-{}-{}-{what}-{}",
            self.options.seed, self.n, self.writes
        )
    }

    fn record(&self, action: Action, at: Instant, status: u16, key: Option<String>) -> Record {
        Record {
            at_ms: at.duration_since(self.started).as_millis() as u64,
            latency_ms: at.elapsed().as_secs_f64() * 1e3,
            shopper: self.n,
            shard: self.shard.clone(),
            pop: self.pop_name.clone(),
            action,
            status,
            key,
            cart_id: self.cart.clone(),
            cart_version: None,
            order_id: None,
            order_status: None,
            shopper_id: self.shopper_id.clone(),
        }
    }

    fn keep(&mut self, record: Record) {
        if let Some(live) = &self.options.live {
            live.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(record.clone());
        }
        self.records.push(record);
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json().await.unwrap_or(Value::Null);
                (status, body)
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn read(&mut self, action: Action, path: String) {
        let at = Instant::now();
        let (status, _) = self
            .send(self.client.get(format!("{}{path}", self.base)))
            .await;
        let record = self.record(action, at, status, None);
        self.keep(record);
    }

    /// A write, retried with its key while its outcome is unknown.
    async fn write(
        &mut self,
        action: Action,
        path: &str,
        body: Option<Value>,
        key: &str,
    ) -> (u16, Value) {
        let mut last = (0, Value::Null);
        for _ in 0..WRITE_ATTEMPTS {
            let at = Instant::now();
            let mut request = self
                .client
                .post(format!("{}{path}", self.base))
                .header(regional_api::headers::IDEMPOTENCY_KEY, key);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let (status, answer) = self.send(request).await;
            let mut record = self.record(action, at, status, Some(key.to_owned()));
            record.cart_version = answer["version"].as_u64();
            if action == Action::Checkout {
                record.order_id = answer["id"]
                    .as_str()
                    .or(answer["order_id"].as_str())
                    .map(str::to_owned);
                record.order_status = answer["status"].as_str().map(str::to_owned);
            }
            if action == Action::NewCart {
                record.cart_id = answer["id"].as_str().map(str::to_owned);
            }
            self.keep(record);
            last = (status, answer);
            // Answered, or refused for good: done. Unknown: again, same key.
            if status != 0 && status < 500 {
                break;
            }
        }
        last
    }

    async fn session(&mut self) {
        let key = self.key("session");
        let (status, body) = self
            .write(
                Action::Session,
                "/v1/sessions",
                Some(json!({ "shard": self.shard })),
                &key,
            )
            .await;
        if status == 201 {
            self.token = body["token"].as_str().map(str::to_owned);
            self.shopper_id = body["shopper_id"].as_str().map(str::to_owned);
        }
    }

    async fn new_cart(&mut self) {
        let key = self.key("cart");
        let (status, body) = self.write(Action::NewCart, "/v1/carts", None, &key).await;
        if status == 201 {
            self.cart = body["id"].as_str().map(str::to_owned);
        }
    }

    async fn add_to_cart(&mut self) {
        let Some(cart) = self.cart.clone() else {
            return;
        };
        let sku = self.sku();
        let key = self.key("add");
        self.write(
            Action::AddToCart,
            &format!("/v1/carts/{cart}/items"),
            Some(json!({ "sku": sku, "qty": 1 })),
            &key,
        )
        .await;
    }

    async fn checkout(&mut self) {
        let Some(cart) = self.cart.clone() else {
            return;
        };
        let key = self.key("checkout");
        let (status, _) = self
            .write(
                Action::Checkout,
                "/v1/checkout",
                Some(json!({ "cart_id": cart })),
                &key,
            )
            .await;
        // Checked out (or failed for good): the next purchase is a new cart.
        if matches!(status, 201 | 202 | 409) {
            self.cart = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shopper_has_an_address_of_its_own() {
        let addresses: std::collections::BTreeSet<IpAddr> =
            (0..MAX_SHOPPERS).map(client_address).collect();
        assert_eq!(addresses.len(), MAX_SHOPPERS);
        assert!(addresses.iter().all(|a| a.is_loopback()));
    }
}
