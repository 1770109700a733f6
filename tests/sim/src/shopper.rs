//! A shopper: a session, a cart, a few items, a checkout, through one POP,
//! each write with an Idempotency-Key and resent with the same key while
//! its outcome is unknown (the delivery rule of `regional-api`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use commerce::invariants::Acknowledged;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regional_api::delivery::{may_resend, of_status};
use regional_api::headers::IDEMPOTENCY_KEY;
use serde_json::{Value, json};

use crate::net;
use crate::world::{EDGE_PORT, SKUS, Trace};

/// Sends of one write at most (the first and the resends).
const ATTEMPTS: u32 = 6;
/// One call's bound: past the edge's own bound on a call to a region
/// (35 s), so the edge's failover finishes before the shopper gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Debug)]
pub struct Shopper {
    n: usize,
    rng: StdRng,
    pop: String,
    trace: Trace,
    acknowledged: Arc<Mutex<Acknowledged>>,
    /// The longest any shopper's call took, in simulated ms.
    slowest_ms: Arc<AtomicU64>,
    token: Option<String>,
    shopper_id: Option<String>,
    keys: u32,
}

impl Shopper {
    pub fn new(
        n: usize,
        seed: u64,
        pop: String,
        trace: Trace,
        acknowledged: Arc<Mutex<Acknowledged>>,
        slowest_ms: Arc<AtomicU64>,
    ) -> Shopper {
        Shopper {
            n,
            rng: StdRng::seed_from_u64(seed),
            pop,
            trace,
            acknowledged,
            slowest_ms,
            token: None,
            shopper_id: None,
            keys: 0,
        }
    }

    fn note(&self, what: String) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        self.trace.push(at, format!("shopper {}: {what}", self.n));
    }

    /// A fresh key: a shopper's own, never reused for another write.
    fn key(&mut self, what: &str) -> String {
        self.keys += 1;
        format!(
            "sim-{}-{what}-{}-{:08x}",
            self.n,
            self.keys,
            self.rng.random::<u32>()
        )
    }

    pub async fn run(mut self) {
        // Arrive at a moment of the seed's choosing.
        let arrive = self.rng.random_range(0..3_000);
        tokio::time::sleep(Duration::from_millis(arrive)).await;
        let home = ["us", "eu", "ap"][self.rng.random_range(0..3)];
        let key = self.key("session");
        let (status, body) = self
            .write(
                "session",
                "/v1/sessions",
                json!({ "shard": home }),
                Some(&key),
            )
            .await;
        if status != 201 {
            return;
        }
        self.token = body["token"].as_str().map(str::to_owned);
        self.shopper_id = body["shopper_id"].as_str().map(str::to_owned);
        let sku = SKUS[self.rng.random_range(0..SKUS.len())];
        self.read(&format!("/v1/products/{sku}")).await;
        for _ in 0..self.rng.random_range(1..=2) {
            self.purchase().await;
        }
    }

    async fn purchase(&mut self) {
        let key = self.key("cart");
        let (status, body) = self
            .write("new cart", "/v1/carts", Value::Null, Some(&key))
            .await;
        let Some(cart) = body["id"]
            .as_str()
            .map(str::to_owned)
            .filter(|_| status == 201)
        else {
            return;
        };
        for _ in 0..self.rng.random_range(1..=3) {
            let sku = SKUS[self.rng.random_range(0..SKUS.len())];
            let qty = self.rng.random_range(1..=2);
            if let Some(owner) = &self.shopper_id {
                self.acknowledged.lock().add_sent(&cart, owner, sku, qty);
            }
            // Half the adds carry no key of the shopper's: the edge gives
            // them one (as it does a browser's).
            let key = self.rng.random_bool(0.5).then(|| self.key("add"));
            let (status, body) = self
                .write(
                    "add",
                    &format!("/v1/carts/{cart}/items"),
                    json!({ "sku": sku, "qty": qty }),
                    key.as_deref(),
                )
                .await;
            if (200..300).contains(&status)
                && let (Some(version), Some(owner)) = (body["version"].as_u64(), &self.shopper_id)
            {
                self.acknowledged.lock().cart_write(&cart, owner, version);
            }
            let pause = self.rng.random_range(10..500);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let key = self.key("checkout");
        let (status, body) = self
            .write(
                "checkout",
                "/v1/checkout",
                json!({ "cart_id": cart }),
                Some(&key),
            )
            .await;
        if (200..300).contains(&status)
            && let (Some(order), Some(owner)) = (
                body["id"].as_str().or(body["order_id"].as_str()),
                &self.shopper_id,
            )
        {
            let mut acknowledged = self.acknowledged.lock();
            acknowledged.orders.insert(order.to_owned(), owner.clone());
            acknowledged
                .order_carts
                .insert(order.to_owned(), cart.clone());
        }
    }

    fn headers(&self, key: Option<&str>) -> Vec<(String, String)> {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(token) = &self.token {
            headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        if let Some(key) = key {
            headers.push((IDEMPOTENCY_KEY.into(), key.to_owned()));
        }
        headers
    }

    /// One call to the shopper's POP, its time kept in `slowest_ms`.
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<net::Answer, net::CallError> {
        let started = turmoil::sim_elapsed().unwrap_or_default();
        let answer = net::call(
            &self.pop,
            EDGE_PORT,
            method,
            path,
            headers,
            body,
            CALL_TIMEOUT,
        )
        .await;
        let took = turmoil::sim_elapsed()
            .unwrap_or_default()
            .saturating_sub(started);
        self.slowest_ms.fetch_max(
            u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        answer
    }

    async fn read(&mut self, path: &str) {
        let answer = self
            .call("GET", path, &self.headers(None), Vec::new())
            .await;
        let status = answer.map_or(0, |a| a.status);
        self.note(format!("GET {path} → {status}"));
    }

    /// A write, resent while it certainly was not applied, or while its
    /// outcome is unknown if it has a key (the same key); the last answer.
    async fn write(
        &mut self,
        what: &str,
        path: &str,
        body: Value,
        key: Option<&str>,
    ) -> (u16, Value) {
        let payload = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let mut backoff = Duration::from_millis(200);
        let mut last = (0, Value::Null);
        for attempt in 1..=ATTEMPTS {
            let answer = self
                .call("POST", path, &self.headers(key), payload.clone())
                .await;
            let (status, answer) = match answer {
                Ok(a) => (a.status, a.json()),
                // Lost on the way: maybe applied.
                Err(_) => (0, Value::Null),
            };
            let id = answer["id"]
                .as_str()
                .or(answer["order_id"].as_str())
                .or(answer["shopper_id"].as_str())
                .map(|id| format!(" {id}"))
                .unwrap_or_default();
            let state = answer["status"]
                .as_str()
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            let slug = answer["type"]
                .as_str()
                .and_then(|t| t.rsplit('/').next())
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            self.note(format!("{what} #{attempt} → {status}{id}{state}{slug}"));
            last = (status, answer);
            let delivery = if status == 0 {
                regional_api::delivery::Delivery::MaybeApplied
            } else {
                of_status(status)
            };
            if !may_resend(delivery, key.is_some()) {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(3));
        }
        last
    }
}
