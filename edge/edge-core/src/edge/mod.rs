//! The edge's request flow over the platform's capabilities ([`Host`]):
//! rate limit, classify, serve static assets, answer cacheable reads from
//! the cache (fresh, stale-while-revalidate, stale-if-error, 304), forward
//! writes and private reads to the region that owns the data with the
//! edge signature, fail over once to the next serving region, and keep
//! the shopper's cart version token.

use std::sync::atomic::AtomicBool;

use topology::routing::RoutingTable;

use regional_api::Delivery;
use regional_api::headers::IDEMPOTENCY_KEY;

use crate::classify::{Repeat, Route, Target, classify, session_shard};
use crate::entry::{Entry, Freshness, MAX_BODY_BYTES};
use crate::http::{Request, Response};
use crate::origin::{self, Failure};
use crate::policy::{self, CachePolicy};
use crate::ratelimit::{Bucket, Class, RateLimit};
use crate::token;

mod cache;
mod config;
mod forward;
pub mod kv;
mod sync;
#[cfg(test)]
mod tests;

pub use config::{DEFAULT_TABLE_MAX_AGE_MS, EdgeConfig, MissingSetting};
use forward::read_target;
pub use sync::TABLE_REFRESH_LEASE_MS;

/// What the platform gives the edge. Implemented by each adapter (Spin's
/// key-value store and outbound HTTP, a Worker's KV and fetch, the local
/// host); edge-core does no I/O of its own.
#[expect(
    async_fn_in_trait,
    reason = "edge-core runs inside single-threaded wasm components and Workers: no Send bound is wanted"
)]
pub trait Host {
    fn now_ms(&self) -> u64;
    /// A fresh random nonce (16 to 64 of `A-Z a-z 0-9 - _`).
    fn nonce(&self) -> String;
    async fn get(&self, key: &str) -> Option<Vec<u8>>;
    async fn set(&self, key: &str, value: &[u8]);
    async fn fetch(&self, request: Outbound) -> Result<Response, Failure>;
}

/// A request to an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Work to do after the response is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// Fetch this read again and store it (stale-while-revalidate).
    Revalidate(Request),
    /// Fetch the routing table again: the request used a stale one.
    RefreshTable,
}

/// A response and what to do after sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub response: Response,
    pub deferred: Vec<Deferred>,
}

impl From<Response> for Handled {
    fn from(response: Response) -> Self {
        Handled {
            response,
            deferred: Vec::new(),
        }
    }
}

/// Every entry carries this tag, so one purge of it drops everything (a
/// purge feed reset).
pub const ALL_TAG: &str = "all";

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredTable {
    fetched_ms: u64,
    table: RoutingTable,
}

/// The edge: configuration over a host.
#[derive(Debug)]
pub struct Edge<H> {
    pub host: H,
    pub config: EdgeConfig,
    /// A request used a stale routing table: the next [`Handled`] carries
    /// [`Deferred::RefreshTable`].
    refresh_due: AtomicBool,
}

impl<H: Host> Edge<H> {
    pub fn new(host: H, config: EdgeConfig) -> Self {
        Edge {
            host,
            config,
            refresh_due: AtomicBool::new(false),
        }
    }

    /// Handles one request.
    pub async fn handle(&self, req: Request) -> Handled {
        let route = classify(&req);
        let handled = match &route {
            Route::Health => Response::new(200)
                .with_header("content-type", "application/json")
                .with_body_json(&serde_json::json!({ "status": "ok", "pop": self.config.pop }))
                .into(),
            Route::NotFound => {
                Response::problem(404, "not-found", "Not found", "no such route at the edge").into()
            }
            Route::MethodNotAllowed => Response::problem(
                405,
                "method-not-allowed",
                "Method not allowed",
                "this route does not take that method",
            )
            .into(),
            Route::Static { path } => match crate::assets::serve(path) {
                Some(response) => self.conditional(&req, response).into(),
                None => Response::problem(404, "not-found", "Not found", "no such asset").into(),
            },
            Route::Write {
                target,
                cart,
                repeat,
            } => {
                let class = match target {
                    Target::Nearest => Class::Session,
                    _ => Class::Write,
                };
                if let Err(retry_after_s) = self.admit(&req, class).await {
                    return self.rate_limited(retry_after_s).into();
                }
                let mut req = req.clone();
                if *repeat == Repeat::EdgeKeyed && req.header(IDEMPOTENCY_KEY).is_none() {
                    // The region deduplicates these writes by key: with
                    // one, a write whose answer was lost may safely be
                    // sent to the standby.
                    let key = regional_api::idempotency::edge_key(&self.host.nonce());
                    req.headers.push((IDEMPOTENCY_KEY.into(), key));
                }
                let response = self.forward(&req, target, Some(*repeat)).await;
                if let Some(cart) = cart {
                    self.after_cart_write(&req, cart, response).await.into()
                } else {
                    response.into()
                }
            }
            Route::PrivateRead { target } => match self.admit(&req, Class::Read).await {
                Ok(()) => self.forward(&req, target, None).await.into(),
                Err(retry_after_s) => self.rate_limited(retry_after_s).into(),
            },
            _ => self.cached(&req, &route).await,
        };
        let mut handled = handled;
        handled
            .response
            .set_header("x-edge-pop", self.config.pop.clone());
        if self.take_refresh_due() {
            handled.deferred.push(Deferred::RefreshTable);
        }
        handled
    }

    pub(super) fn rate_limited(&self, retry_after_s: u64) -> Response {
        Response::problem(
            429,
            "rate-limited",
            "Too many requests",
            "slow down and retry",
        )
        .with_header("retry-after", retry_after_s.to_string())
        .with_header("x-edge-pop", self.config.pop.clone())
    }

    /// The answer [`Edge::handle`] would give `req` when it is a fresh
    /// cache hit, with the same effects on the store; `None` (and no effect) for anything else. A host may call it
    /// in front of the full handler, as a CDN's cache sits in front of its
    /// compute.
    pub async fn fresh_hit(&self, req: &Request) -> Option<Response> {
        let route = classify(req);
        let key = policy::cache_key(&route, req)?;
        policy::policy(&route)?;
        let now_ms = self.host.now_ms();
        let entry = self.lookup(req, &route, &key).await?;
        if entry.freshness(now_ms) != Freshness::Fresh {
            return None;
        }
        // A fresh hit costs the origin nothing: never rate limited.
        let mut response = self.entry_response(req, &entry, "HIT", now_ms);
        response.set_header("x-edge-pop", self.config.pop.clone());
        Some(response)
    }

    /// The stored entry for `key`, if still valid: no purge of its tags
    /// since it was stored, and (for a cart) not older than the shopper's
    /// own last write.
    pub(super) async fn lookup(&self, req: &Request, route: &Route, key: &str) -> Option<Entry> {
        let current = self.generations(route, req).await;
        self.host
            .get(&kv::cache(key))
            .await
            .and_then(|bytes| Entry::decode(&bytes).ok())
            // The slot may hold another key's entry.
            .filter(|e| e.key == key)
            .filter(|e| current.iter().all(|t| e.tags.contains(t)))
            .filter(|e| match route {
                Route::CartRead { cart } => {
                    e.cart_version.unwrap_or(0) >= token::required_version(req, cart)
                }
                _ => true,
            })
    }

    /// Runs work deferred by [`Edge::handle`].
    pub async fn run_deferred(&self, deferred: Deferred) {
        match deferred {
            Deferred::Revalidate(req) => {
                let route = classify(&req);
                if let (Some(policy), Some(key)) =
                    (policy::policy(&route), policy::cache_key(&route, &req))
                {
                    let _ = self.fill(&req, &route, policy, &key).await;
                }
            }
            Deferred::RefreshTable => self.refresh_table().await,
        }
    }
}

impl Response {
    fn with_body_json(mut self, value: &serde_json::Value) -> Self {
        self.body = serde_json::to_vec(value).unwrap_or_default();
        self
    }
}
