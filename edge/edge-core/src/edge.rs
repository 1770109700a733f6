//! The edge's request flow over the platform's capabilities ([`Host`]):
//! rate limit, classify, serve static assets, answer cacheable reads from
//! the cache (fresh, stale-while-revalidate, stale-if-error, 304), forward
//! writes and private reads to the region that owns the data with the
//! edge signature, fail over once to the next serving region, and keep
//! the shopper's cart version token.

use topology::routing::RoutingTable;

use regional_api::Delivery;
use regional_api::headers::IDEMPOTENCY_KEY;

use crate::classify::{Repeat, Route, Target, classify, session_shard};
use crate::entry::{Entry, Freshness, MAX_BODY_BYTES};
use crate::http::{Request, Response};
use crate::origin::{self, Failure};
use crate::policy::{self, CachePolicy};
use crate::ratelimit::{Bucket, Class, RateLimit, RateLimits};
use crate::token;

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

/// The edge's settings (from Spin variables, Worker vars, or the host's
/// config).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// This POP's name, reported in `x-edge-pop`.
    pub pop: String,
    pub latitude: f64,
    pub longitude: f64,
    /// The HMAC key edge calls are signed with.
    pub edge_key: Vec<u8>,
    /// The routing API, e.g. `http://127.0.0.1:7000`.
    pub routing_url: String,
    /// A stored routing table older than this is fetched again (a POP
    /// with a long-poll watcher keeps it current well before).
    pub table_max_age_ms: u64,
    pub rate_limits: RateLimits,
}

/// `table_max_age_ms` when a platform does not set it (every platform's
/// default, edge-host's config included).
pub const DEFAULT_TABLE_MAX_AGE_MS: u64 = 1_000;

/// A required edge setting that is not set (named as in
/// [`EdgeConfig::SETTINGS`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} setting is not set")]
pub struct MissingSetting(pub &'static str);

impl EdgeConfig {
    /// The settings every platform gives the edge, by name: Spin variables
    /// and the local host's variables use these names, the Worker the same
    /// in upper case.
    pub const SETTINGS: [&'static str; 13] = [
        "pop",
        "latitude",
        "longitude",
        "edge_key",
        "routing_url",
        "table_max_age_ms",
        "rate_per_s",
        "rate_burst",
        "write_rate_per_s",
        "write_rate_burst",
        "session_rate_per_s",
        "session_rate_burst",
        "address_rate_factor",
    ];

    /// Reads the settings through `lookup`, the one parser all platforms
    /// share (the local host's fast path relies on reading exactly what
    /// its component reads). An empty value counts as unset; an unset or
    /// unparsable number takes its default; an unset `pop` is
    /// `default_pop`. `edge_key` and `routing_url` are required.
    pub fn from_lookup(
        default_pop: &str,
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<Self, MissingSetting> {
        let mut text = |name: &str| lookup(name).filter(|v| !v.is_empty());
        fn number<T: std::str::FromStr>(value: Option<String>, default: T) -> T {
            value.and_then(|v| v.trim().parse().ok()).unwrap_or(default)
        }
        let pop = text("pop").unwrap_or_else(|| default_pop.to_owned());
        let latitude = number(text("latitude"), 0.0);
        let longitude = number(text("longitude"), 0.0);
        let edge_key = text("edge_key")
            .ok_or(MissingSetting("edge_key"))?
            .into_bytes();
        let routing_url = text("routing_url").ok_or(MissingSetting("routing_url"))?;
        let table_max_age_ms = number(text("table_max_age_ms"), DEFAULT_TABLE_MAX_AGE_MS);
        let defaults = RateLimits::default();
        let mut limit = |per_s: &str, burst: &str, default: RateLimit| RateLimit {
            per_s: number(text(per_s), default.per_s),
            burst: number(text(burst), default.burst),
        };
        let read = limit("rate_per_s", "rate_burst", defaults.read);
        let write = limit("write_rate_per_s", "write_rate_burst", defaults.write);
        let session = limit("session_rate_per_s", "session_rate_burst", defaults.session);
        let address_factor = number(text("address_rate_factor"), defaults.address_factor);
        Ok(EdgeConfig {
            pop,
            latitude,
            longitude,
            edge_key,
            routing_url,
            table_max_age_ms,
            rate_limits: RateLimits {
                read,
                write,
                session,
                address_factor,
            },
        })
    }
}

/// Work to do after the response is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// Fetch this read again and store it (stale-while-revalidate).
    Revalidate(Request),
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

/// The edge's key-value store, as every platform keeps it: one
/// definition of its keys, of which may be evicted, and of its bound.
///
/// Cache entries, rate-limit buckets and tag generations live in a fixed
/// number of slots each (a stable hash of their logical key), so the store
/// holds at most [`kv::MAX_KEYS`] keys however many distinct URLs and
/// clients arrive (a Spin key-value store never evicts). A slot shared by
/// two logical keys is safe: an entry records its full key and a lookup
/// of another key misses; a shared bucket limits both clients together; a
/// shared tag generation only purges more than needed.
pub mod kv {
    /// The stored routing table.
    pub const TABLE: &str = "rt1";
    /// The purge feed cursor.
    pub const PURGE_CURSOR: &str = "pc1";
    /// Slots for cache entries, rate-limit buckets and tag generations.
    pub const CACHE_SLOTS: u64 = 65_536;
    pub const BUCKET_SLOTS: u64 = 16_384;
    pub const TAG_SLOTS: u64 = 65_536;
    /// Keys the edge ever writes, at most.
    pub const MAX_KEYS: u64 = CACHE_SLOTS + BUCKET_SLOTS + TAG_SLOTS + 2;

    /// What a key holds, and whether a store may drop it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Class {
        /// A cached response: may be dropped (a later miss).
        Cache,
        /// A rate-limit bucket: may be dropped (the client starts afresh).
        Bucket,
        /// A tag's purge generation: may be dropped (it then reads as 0,
        /// which no entry stored after a purge carries: misses, not stale
        /// hits).
        Tag,
        /// The routing table or the purge cursor: must be kept.
        Pinned,
    }

    impl Class {
        pub fn evictable(self) -> bool {
            self != Class::Pinned
        }
    }

    /// The class of a key the edge wrote.
    pub fn class(key: &str) -> Class {
        if key.starts_with("c1:") {
            Class::Cache
        } else if key.starts_with("r1:") {
            Class::Bucket
        } else if key.starts_with("t1:") {
            Class::Tag
        } else {
            Class::Pinned
        }
    }

    /// FNV-1a: stable across processes and platforms (unlike std's
    /// randomly seeded hasher), so every instance of a POP finds the slot.
    fn slot(text: &str, slots: u64) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % slots
    }

    /// The slot a cached response for the logical cache key lives in.
    pub fn cache(key: &str) -> String {
        format!("c1:{:x}", slot(key, CACHE_SLOTS))
    }
    /// A tag's purge generation.
    pub fn tag(tag: &str) -> String {
        format!("t1:{:x}", slot(tag, TAG_SLOTS))
    }
    /// A client's rate-limit bucket.
    pub fn bucket(client: &str) -> String {
        format!("r1:{:x}", slot(client, BUCKET_SLOTS))
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
}

impl<H: Host> Edge<H> {
    pub fn new(host: H, config: EdgeConfig) -> Self {
        Edge { host, config }
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
        handled
    }

    fn rate_limited(&self, retry_after_s: u64) -> Response {
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
    async fn lookup(&self, req: &Request, route: &Route, key: &str) -> Option<Entry> {
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
        }
    }

    /// Takes a token of `class` for the request's subject (its session's
    /// shopper when it carries unexpired session claims, else its address),
    /// and for a session also from its address's larger bucket; the
    /// seconds until one is free when none is.
    async fn admit(&self, req: &Request, class: Class) -> Result<(), u64> {
        let now_ms = self.host.now_ms();
        let limits = self.config.rate_limits;
        let limit = limits.of(class);
        let address = format!("{}|a:{}", class.name(), req.client);
        let shopper = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(regional_api::session::unverified_claims)
            .filter(|claims| claims.exp_ms > now_ms)
            .map(|claims| format!("{}|s:{}", class.name(), claims.sub));
        match shopper {
            Some(shopper) => {
                self.take(&shopper, limit, now_ms).await?;
                let wider = RateLimit {
                    per_s: limit.per_s * limits.address_factor,
                    burst: limit.burst * limits.address_factor,
                };
                self.take(&address, wider, now_ms).await
            }
            None => self.take(&address, limit, now_ms).await,
        }
    }

    async fn take(&self, subject: &str, limit: RateLimit, now_ms: u64) -> Result<(), u64> {
        let key = kv::bucket(subject);
        let mut bucket = self
            .host
            .get(&key)
            .await
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| Bucket::decode(&t))
            .unwrap_or_else(|| Bucket::full(&limit, now_ms));
        let outcome = bucket.take(&limit, now_ms);
        self.host.set(&key, bucket.encode().as_bytes()).await;
        outcome
    }

    /// A tag's purge generation (0 before any purge).
    async fn generation(&self, tag: &str) -> u64 {
        self.host
            .get(&kv::tag(tag))
            .await
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    }

    /// Purges every entry carrying any of `tags` (bumps their generations).
    pub async fn purge(&self, tags: &[String]) {
        for tag in tags {
            let next = self.generation(tag).await + 1;
            self.host
                .set(&kv::tag(tag), next.to_string().as_bytes())
                .await;
        }
    }

    /// Purges entries carrying `tag` stored before catalog version
    /// `version`: the tag's generation becomes that version (never lower),
    /// and later fills ask the origin for at least it.
    pub async fn purge_to_version(&self, tag: &str, version: u64) {
        if version > self.generation(tag).await {
            self.host
                .set(&kv::tag(tag), version.to_string().as_bytes())
                .await;
        }
    }

    async fn generations(&self, route: &Route, req: &Request) -> Vec<(String, u64)> {
        let mut tags = policy::tags(route, req);
        tags.push(ALL_TAG.to_owned());
        let mut out = Vec::with_capacity(tags.len());
        for tag in tags {
            let generation = self.generation(&tag).await;
            out.push((tag, generation));
        }
        out
    }

    /// A cached read: hit, stale, or filled from the origin.
    async fn cached(&self, req: &Request, route: &Route) -> Handled {
        let (Some(policy), Some(key)) = (policy::policy(route), policy::cache_key(route, req))
        else {
            return match self.admit(req, Class::Read).await {
                Ok(()) => self.forward(req, &read_target(route), None).await.into(),
                Err(retry_after_s) => self.rate_limited(retry_after_s).into(),
            };
        };
        let now_ms = self.host.now_ms();
        let entry = self.lookup(req, route, &key).await;
        let freshness = entry.as_ref().map(|e| e.freshness(now_ms));
        match (entry, freshness) {
            (Some(e), Some(Freshness::Fresh)) => self.entry_response(req, &e, "HIT", now_ms).into(),
            (Some(e), Some(Freshness::StaleWhileRevalidate)) => Handled {
                response: self.entry_response(req, &e, "STALE", now_ms),
                deferred: vec![Deferred::Revalidate(req.clone())],
            },
            (stale, _) => {
                let usable = stale.filter(|e| e.freshness(now_ms) != Freshness::Expired);
                if let Err(retry_after_s) = self.admit(req, Class::Read).await {
                    // Limited: what is still usable beats a refusal.
                    return match usable {
                        Some(e) => self
                            .entry_response(req, &e, "STALE-IF-ERROR", now_ms)
                            .into(),
                        None => self.rate_limited(retry_after_s).into(),
                    };
                }
                match self.fill(req, route, policy, &key).await {
                    Ok(response) => self.conditional(req, response).into(),
                    Err(error) => match usable {
                        Some(e) => self
                            .entry_response(req, &e, "STALE-IF-ERROR", now_ms)
                            .into(),
                        None => error.into(),
                    },
                }
            }
        }
    }

    /// Fetches a cacheable read from its origin and stores a 200. An error
    /// (no answer, 5xx) is `Err` with the response to give if nothing stale
    /// can be served instead.
    async fn fill(
        &self,
        req: &Request,
        route: &Route,
        policy: CachePolicy,
        key: &str,
    ) -> Result<Response, Response> {
        // Generations are read before the fetch: a purge during it makes
        // the stored entry invalid at once.
        let generations = self.generations(route, req).await;
        // The newest catalog version a purge named for these tags: the
        // origin must not answer from a cache older than that.
        let min_version = generations
            .iter()
            .filter(|(tag, _)| tag != ALL_TAG)
            .map(|(_, g)| *g)
            .max()
            .unwrap_or(0);
        let mut req = req.clone();
        // The origin is asked exactly what the key names: a parameter the
        // key leaves out (`utm_source`, …) must not shape what is stored
        // under it.
        req.query = key.split_once('?').map(|(_, q)| q.to_owned());
        if min_version > 0 {
            req.headers.push((
                regional_api::headers::MIN_VERSION.into(),
                min_version.to_string(),
            ));
        }
        let response = self.forward(&req, &read_target(route), None).await;
        if response.status >= 500 {
            return Err(response);
        }
        if response.status != 200 || response.body.len() > MAX_BODY_BYTES {
            return Ok(response);
        }
        let now_ms = self.host.now_ms();
        let entry = Entry {
            key: key.to_owned(),
            status: 200,
            content_type: response
                .header("content-type")
                .unwrap_or("application/json")
                .to_owned(),
            etag: policy::etag(&response.body),
            stored_ms: now_ms,
            policy,
            tags: generations,
            cart_version: match route {
                Route::CartRead { .. } => token::version_of(&response.body),
                _ => None,
            },
            body: response.body,
        };
        self.host.set(&kv::cache(key), &entry.encode()).await;
        Ok(self.entry_response(&req, &entry, "MISS", now_ms))
    }

    fn entry_response(&self, req: &Request, e: &Entry, state: &str, now_ms: u64) -> Response {
        let mut response = Response::new(e.status);
        response.set_header("content-type", e.content_type.clone());
        response.set_header("etag", e.etag.clone());
        response.set_header("cache-control", e.policy.cache_control());
        response.set_header("age", e.age_s(now_ms).to_string());
        response.set_header("x-cache", state);
        if let Some(version) = e.cart_version {
            response.set_header(token::HEADER, version.to_string());
        }
        response.body = e.body.clone();
        self.conditional(req, response)
    }

    /// Turns a 200 into a 304 when the shopper's validator matches.
    fn conditional(&self, req: &Request, mut response: Response) -> Response {
        if response.status == 200
            && let Some(etag) = response.header("etag").map(str::to_owned)
            && policy::not_modified(req, &etag)
        {
            response.status = 304;
            response.body.clear();
        }
        response
    }

    /// After a cart write: give the shopper the new version (cookie and
    /// header) and store the new cart in this POP's cache.
    async fn after_cart_write(
        &self,
        req: &Request,
        cart: &topology::ShardedId,
        mut response: Response,
    ) -> Response {
        if !(200..300).contains(&response.status) {
            return response;
        }
        let Some(version) = token::version_of(&response.body) else {
            return response;
        };
        response.set_header(token::HEADER, version.to_string());
        response.set_header("set-cookie", token::set_cookie(&cart.to_string(), version));
        let read = Request {
            method: "GET".into(),
            path: format!("/v1/carts/{cart}"),
            query: None,
            headers: req.headers.clone(),
            body: Vec::new(),
            client: req.client.clone(),
        };
        let route = Route::CartRead { cart: cart.clone() };
        if let (Some(policy), Some(key)) =
            (policy::policy(&route), policy::cache_key(&route, &read))
        {
            let entry = Entry {
                key: key.clone(),
                status: 200,
                content_type: "application/json".into(),
                etag: policy::etag(&response.body),
                stored_ms: self.host.now_ms(),
                policy,
                tags: self.generations(&route, &read).await,
                cart_version: Some(version),
                body: response.body.clone(),
            };
            self.host.set(&kv::cache(&key), &entry.encode()).await;
        }
        response
    }

    /// The routing table: the stored one while young enough, else fetched
    /// (and stored); a stale one when the routing API does not answer.
    pub async fn table(&self) -> Option<RoutingTable> {
        let now_ms = self.host.now_ms();
        let stored: Option<StoredTable> = self
            .host
            .get(kv::TABLE)
            .await
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(s) = &stored
            && now_ms.saturating_sub(s.fetched_ms) < self.config.table_max_age_ms
        {
            return stored.map(|s| s.table);
        }
        let fetched = self
            .host
            .fetch(Outbound {
                method: "GET".into(),
                url: format!("{}/v1/table", self.config.routing_url.trim_end_matches('/')),
                headers: vec![("accept".into(), "application/json".into())],
                body: Vec::new(),
            })
            .await;
        match fetched {
            Ok(r) if r.status == 200 => match serde_json::from_slice::<RoutingTable>(&r.body) {
                Ok(table) => {
                    self.store_table(&table).await;
                    Some(table)
                }
                Err(_) => stored.map(|s| s.table),
            },
            _ => stored.map(|s| s.table),
        }
    }

    /// Stores a routing table (from a fetch or a long-poll watcher).
    pub async fn store_table(&self, table: &RoutingTable) {
        let stored = StoredTable {
            fetched_ms: self.host.now_ms(),
            table: table.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&stored) {
            self.host.set(kv::TABLE, &bytes).await;
        }
    }

    /// One long poll of the routing API: waits (up to `timeout_ms`) for a
    /// table newer than the stored one and stores it. A POP's watcher calls
    /// it in a loop, so a failover reaches the edge within milliseconds.
    /// Returns the stored version.
    pub async fn watch_table(&self, timeout_ms: u64) -> Option<u64> {
        let since = self.table().await.map_or(0, |t| t.version);
        let fetched = self
            .host
            .fetch(Outbound {
                method: "GET".into(),
                url: format!(
                    "{}/v1/table/watch?since={since}&timeout_ms={}",
                    self.config.routing_url.trim_end_matches('/'),
                    timeout_ms.min(topology::routing::MAX_WATCH_MS)
                ),
                headers: vec![("accept".into(), "application/json".into())],
                body: Vec::new(),
            })
            .await;
        match fetched {
            Ok(r) if r.status == 200 => {
                let table: RoutingTable = serde_json::from_slice(&r.body).ok()?;
                // Versions only grow; a table older than the stored one
                // (another watcher was faster) is not stored over it.
                if table.version >= since {
                    self.store_table(&table).await;
                }
                Some(table.version.max(since))
            }
            _ => None,
        }
    }

    /// One long poll of the purge feed (catalog change events) from the
    /// nearest serving region: applies the events' tags and stores the
    /// cursor. A reset (the edge fell behind the feed) purges everything.
    /// Returns the events applied, `None` when no region answered.
    pub async fn sync_purge(&self, wait_ms: u64) -> Option<usize> {
        let table = self.table().await?;
        let cursor = self
            .host
            .get(kv::PURGE_CURSOR)
            .await
            .and_then(|c| String::from_utf8(c).ok())
            .unwrap_or_default();
        let request = Request {
            method: "GET".into(),
            path: regional_api::purge::PATH.into(),
            query: Some(regional_api::purge::query(&cursor, wait_ms)),
            ..Default::default()
        };
        for base in origin::nearest(&table, self.config.latitude, self.config.longitude) {
            let Ok(response) = self.host.fetch(self.signed(&request, &base)).await else {
                continue;
            };
            if response.status != 200 {
                continue;
            }
            let page: regional_api::purge::Page = serde_json::from_slice(&response.body).ok()?;
            if page.reset {
                self.purge(&[ALL_TAG.to_owned()]).await;
            }
            for event in &page.events {
                for tag in &event.tags {
                    self.purge_to_version(tag, event.version).await;
                }
            }
            self.host
                .set(kv::PURGE_CURSOR, page.cursor.as_bytes())
                .await;
            return Some(page.events.len());
        }
        None
    }

    /// Sends `req` to the region(s) for `target`, signed; fails over once,
    /// by the contract's rule: a call that certainly was not applied may go
    /// to the next region, one that may have been applied only when
    /// repeating it is harmless (`repeat` is `None` for reads).
    async fn forward(&self, req: &Request, target: &Target, repeat: Option<Repeat>) -> Response {
        let Some(table) = self.table().await else {
            return Response::problem(
                503,
                "no-routing-table",
                "Service unavailable",
                "the edge has no routing table yet",
            );
        };
        let urls = match target {
            Target::Shard(shard) => origin::for_shard(&table, shard),
            Target::SessionShard => match session_shard(req) {
                Some(shard) => origin::for_shard(&table, &shard),
                // No session: the region answers 401 whichever it is.
                None => origin::nearest(&table, self.config.latitude, self.config.longitude),
            },
            Target::Nearest => origin::nearest(&table, self.config.latitude, self.config.longitude),
        };
        let safe_to_repeat = repeat.is_none_or(|r| r.safe(req.header(IDEMPOTENCY_KEY).is_some()));
        let mut outcome = Err(Failure::NotSent);
        for (i, base) in urls.iter().enumerate() {
            if i > 0 && !origin::may_resend(origin::delivery(&outcome), safe_to_repeat) {
                break;
            }
            outcome = self.host.fetch(self.signed(req, base)).await;
            if origin::delivery(&outcome) == Delivery::Answered {
                break;
            }
        }
        match outcome {
            Ok(response) => response,
            Err(_) if urls.is_empty() => Response::problem(
                503,
                "no-region",
                "Service unavailable",
                "no region serves this data right now",
            ),
            Err(Failure::NotSent) => Response::problem(
                503,
                regional_api::problem::kinds::UNAVAILABLE,
                "Service unavailable",
                "no region could be reached; nothing was applied",
            ),
            Err(Failure::Lost) if repeat.is_some() => Response::problem(
                504,
                regional_api::problem::kinds::MAYBE_APPLIED,
                "Outcome unknown",
                "the region's answer was lost: the request may have been applied; \
                 retry with the same Idempotency-Key",
            ),
            Err(Failure::Lost) => Response::problem(
                504,
                "origin-timeout",
                "Gateway timeout",
                "the region did not answer in time",
            ),
        }
    }

    fn signed(&self, req: &Request, base: &str) -> Outbound {
        let path = req.path_and_query();
        let now_s = self.host.now_ms() / 1000;
        let nonce = self.host.nonce();
        let signature = topology::signing::sign(
            &self.config.edge_key,
            &req.method,
            &path,
            now_s,
            &nonce,
            &req.body,
        );
        let mut headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(n, _)| FORWARDED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
            .cloned()
            .collect();
        headers.push((
            topology::signing::TIMESTAMP_HEADER.into(),
            now_s.to_string(),
        ));
        headers.push((topology::signing::NONCE_HEADER.into(), nonce));
        headers.push((topology::signing::SIGNATURE_HEADER.into(), signature));
        Outbound {
            method: req.method.clone(),
            url: format!("{}{path}", base.trim_end_matches('/')),
            headers,
            body: req.body.clone(),
        }
    }
}

/// Request headers passed on to the origin (others stay at the edge).
const FORWARDED_HEADERS: &[&str] = &[
    regional_api::headers::MIN_VERSION,
    "authorization",
    "content-type",
    "accept",
    IDEMPOTENCY_KEY,
    "if-match",
];

fn read_target(route: &Route) -> Target {
    match route {
        Route::CartRead { cart } => Target::Shard(cart.shard().clone()),
        _ => Target::Nearest,
    }
}

impl Response {
    fn with_body_json(mut self, value: &serde_json::Value) -> Self {
        self.body = serde_json::to_vec(value).unwrap_or_default();
        self
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use futures::executor::block_on;
    use topology::routing::{Health, RegionStatus, ShardRoute};

    use super::*;

    type Origin = Box<dyn FnMut(&Outbound) -> Result<Response, Failure>>;

    struct FakeHost {
        now_ms: Cell<u64>,
        kv: RefCell<HashMap<String, Vec<u8>>>,
        origin: RefCell<Origin>,
        calls: RefCell<Vec<Outbound>>,
        nonces: Cell<u64>,
    }

    impl Host for FakeHost {
        fn now_ms(&self) -> u64 {
            self.now_ms.get()
        }
        fn nonce(&self) -> String {
            self.nonces.set(self.nonces.get() + 1);
            format!("nonce-{:016}", self.nonces.get())
        }
        async fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.kv.borrow().get(key).cloned()
        }
        async fn set(&self, key: &str, value: &[u8]) {
            self.kv.borrow_mut().insert(key.to_owned(), value.to_vec());
        }
        async fn fetch(&self, request: Outbound) -> Result<Response, Failure> {
            if request.url.ends_with("/v1/table") {
                let body = serde_json::to_vec(&table()).unwrap();
                return Ok(Response {
                    status: 200,
                    headers: vec![],
                    body,
                });
            }
            self.calls.borrow_mut().push(request.clone());
            (self.origin.borrow_mut())(&request)
        }
    }

    fn region(name: &str, url: &str) -> RegionStatus {
        RegionStatus {
            name: name.parse().unwrap(),
            latitude: 50.0,
            longitude: 0.0,
            health: Health::Healthy,
            base_url: url.into(),
            addresses: vec![],
            probe_latency_ms: None,
        }
    }

    fn table() -> RoutingTable {
        RoutingTable {
            version: 1,
            regions: vec![
                region("us-east", "http://us"),
                region("eu-west", "http://eu"),
            ],
            shards: vec![ShardRoute {
                shard: "us".parse().unwrap(),
                home: "us-east".parse().unwrap(),
                standbys: vec!["eu-west".parse().unwrap()],
                active: Some("us-east".parse().unwrap()),
            }],
        }
    }

    fn edge(origin: Origin) -> Edge<FakeHost> {
        Edge::new(
            FakeHost {
                now_ms: Cell::new(1_000_000),
                kv: RefCell::default(),
                origin: RefCell::new(origin),
                calls: RefCell::default(),
                nonces: Cell::new(0),
            },
            EdgeConfig {
                pop: "test-pop".into(),
                latitude: 50.0,
                longitude: 0.0,
                edge_key: b"edge-key".to_vec(),
                routing_url: "http://routing".into(),
                table_max_age_ms: 1_000,
                rate_limits: RateLimits {
                    read: RateLimit {
                        per_s: 1_000.0,
                        burst: 1_000.0,
                    },
                    write: RateLimit {
                        per_s: 1_000.0,
                        burst: 1_000.0,
                    },
                    session: RateLimit {
                        per_s: 1_000.0,
                        burst: 1_000.0,
                    },
                    address_factor: 20.0,
                },
            },
        )
    }

    fn json(status: u16, body: &str) -> Result<Response, Failure> {
        Ok(Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        })
    }

    fn get(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            client: "1.2.3.4".into(),
            ..Default::default()
        }
    }

    #[test]
    fn settings_parse_the_same_everywhere() {
        let vars: HashMap<&str, &str> = [
            ("pop", "fra"),
            ("latitude", "50.1"),
            ("longitude", " 8.7 "),
            ("edge_key", "k"),
            ("routing_url", "http://r"),
            ("table_max_age_ms", "nonsense"),
            ("rate_per_s", ""),
            ("rate_burst", "7"),
        ]
        .into_iter()
        .collect();
        let config =
            EdgeConfig::from_lookup("spin", |n| vars.get(n).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(config.pop, "fra");
        assert_eq!((config.latitude, config.longitude), (50.1, 8.7));
        assert_eq!(config.edge_key, b"k");
        assert_eq!(config.routing_url, "http://r");
        // Unparsable or empty numbers take their defaults.
        assert_eq!(config.table_max_age_ms, 1_000);
        assert_eq!(config.rate_limits.read.per_s, RateLimit::default().per_s);
        assert_eq!(config.rate_limits.read.burst, 7.0);
        assert_eq!(config.rate_limits.write, RateLimits::default().write);
        // Every name read is one of SETTINGS.
        let mut asked = Vec::new();
        let _ = EdgeConfig::from_lookup("spin", |n| {
            asked.push(n.to_owned());
            Some("x".into())
        });
        assert_eq!(asked, EdgeConfig::SETTINGS);
        // Required settings: unset and empty alike.
        let only = |k: &'static str| {
            move |n: &str| (n != k).then(|| "v".to_owned()).or(Some(String::new()))
        };
        assert_eq!(
            EdgeConfig::from_lookup("spin", only("edge_key")),
            Err(MissingSetting("edge_key"))
        );
        assert_eq!(
            EdgeConfig::from_lookup("spin", |n| (n != "routing_url").then(|| "v".to_owned())),
            Err(MissingSetting("routing_url"))
        );
        assert_eq!(
            EdgeConfig::from_lookup("worker", |n| (n != "pop").then(|| "v".to_owned()))
                .unwrap()
                .pop,
            "worker"
        );
    }

    #[test]
    fn miss_then_hit_then_304_and_purge() {
        let served = std::rc::Rc::new(Cell::new(0));
        let counter = served.clone();
        let e = edge(Box::new(move |_| {
            counter.set(counter.get() + 1);
            json(200, &format!("{{\"sku\":\"A-1\",\"n\":{}}}", counter.get()))
        }));
        let first = block_on(e.handle(get("/v1/products/A-1"))).response;
        assert_eq!(first.header("x-cache"), Some("MISS"));
        let second = block_on(e.handle(get("/v1/products/A-1"))).response;
        assert_eq!(second.header("x-cache"), Some("HIT"));
        assert_eq!(second.body, first.body);
        assert_eq!(served.get(), 1);
        let mut conditional = get("/v1/products/A-1");
        conditional
            .headers
            .push(("if-none-match".into(), first.header("etag").unwrap().into()));
        let not_modified = block_on(e.handle(conditional)).response;
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.body.is_empty());
        // A purge of the product's tag makes the next read a miss.
        block_on(e.purge(&["product:A-1".to_owned()]));
        let third = block_on(e.handle(get("/v1/products/A-1"))).response;
        assert_eq!(third.header("x-cache"), Some("MISS"));
        assert_eq!(served.get(), 2);
        // The signature covers what was sent.
        let call = e.host.calls.borrow()[0].clone();
        let header = |n: &str| call.headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
        let sig = header("x-meridian-signature");
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&sig[3 + 2 * i..5 + 2 * i], 16).unwrap())
            .collect();
        assert!(topology::signing::verify(
            b"edge-key",
            "GET",
            "/v1/products/A-1",
            header("x-meridian-timestamp").parse().unwrap(),
            &header("x-meridian-nonce"),
            b"",
            &raw
        ));
    }

    #[test]
    fn fresh_hit_answers_exactly_what_handle_would_and_nothing_else() {
        let e = edge(Box::new(|_| json(200, "{\"sku\":\"A-1\"}")));
        // A miss is not its business, and it leaves no trace.
        assert_eq!(block_on(e.fresh_hit(&get("/v1/products/A-1"))), None);
        assert!(e.host.calls.borrow().is_empty());
        assert!(!e.host.kv.borrow().contains_key(&kv::bucket("1.2.3.4")));
        block_on(e.handle(get("/v1/products/A-1")));
        let fast = block_on(e.fresh_hit(&get("/v1/products/A-1"))).expect("a fresh hit");
        let full = block_on(e.handle(get("/v1/products/A-1"))).response;
        assert_eq!(fast, full);
        assert_eq!(fast.header("x-cache"), Some("HIT"));
        // Writes, uncacheable reads and stale entries go to the handler.
        let mut write = get("/v1/carts");
        write.method = "POST".into();
        assert_eq!(block_on(e.fresh_hit(&write)), None);
        e.host.now_ms.set(e.host.now_ms.get() + 301_000);
        assert_eq!(block_on(e.fresh_hit(&get("/v1/products/A-1"))), None);
    }

    #[test]
    fn a_fill_asks_the_origin_only_what_the_cache_key_names() {
        let e = edge(Box::new(|_| json(200, "{\"hits\":[]}")));
        let mut req = get("/v1/search");
        req.query = Some("utm_source=mail&q=mug&sort=price_asc".into());
        block_on(e.handle(req));
        let url = e.host.calls.borrow()[0].url.clone();
        assert!(url.ends_with("/v1/search?q=mug&sort=price_asc"), "{url}");
    }

    #[test]
    fn fresh_hits_are_never_rate_limited_on_either_path() {
        let mut e = edge(Box::new(|_| json(200, "{\"sku\":\"A-1\"}")));
        e.config.rate_limits.read = RateLimit {
            per_s: 0.001,
            burst: 1.0,
        };
        // The miss takes the one token; the hits after it cost nothing.
        block_on(e.handle(get("/v1/products/A-1")));
        for _ in 0..100 {
            let fast = block_on(e.fresh_hit(&get("/v1/products/A-1"))).expect("hit");
            assert_eq!(fast.status, 200);
            assert_eq!(fast, block_on(e.handle(get("/v1/products/A-1"))).response);
        }
        // The next miss is limited.
        assert_eq!(
            block_on(e.handle(get("/v1/products/B-2"))).response.status,
            429
        );
    }

    #[test]
    fn stale_while_revalidate_and_stale_if_error() {
        let fail = std::rc::Rc::new(Cell::new(false));
        let failing = fail.clone();
        let e = edge(Box::new(move |_| {
            if failing.get() {
                Err(Failure::NotSent)
            } else {
                json(200, "{\"q\":1}")
            }
        }));
        assert_eq!(
            block_on(e.handle(get("/v1/search")))
                .response
                .header("x-cache"),
            Some("MISS")
        );
        // Past the 30 s TTL, inside the 60 s stale-while-revalidate window.
        e.host.now_ms.set(e.host.now_ms.get() + 31_000);
        let stale = block_on(e.handle(get("/v1/search")));
        assert_eq!(stale.response.header("x-cache"), Some("STALE"));
        assert_eq!(stale.deferred.len(), 1);
        for d in stale.deferred {
            block_on(e.run_deferred(d));
        }
        assert_eq!(
            block_on(e.handle(get("/v1/search")))
                .response
                .header("x-cache"),
            Some("HIT")
        );
        // Past stale-while-revalidate, the origin down: stale-if-error.
        e.host.now_ms.set(e.host.now_ms.get() + 120_000);
        fail.set(true);
        let r = block_on(e.handle(get("/v1/search"))).response;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-cache"), Some("STALE-IF-ERROR"));
        // Past stale-if-error too: the error.
        e.host.now_ms.set(e.host.now_ms.get() + 4_000_000);
        let r = block_on(e.handle(get("/v1/search"))).response;
        assert_eq!(r.status, 503, "nothing was applied: unavailable");
    }

    #[test]
    fn a_cached_cart_older_than_the_shoppers_token_is_not_served() {
        let version = std::rc::Rc::new(Cell::new(3u64));
        let v = version.clone();
        let e = edge(Box::new(move |_| {
            json(200, &format!("{{\"version\":{}}}", v.get()))
        }));
        let path = "/v1/carts/us.01ARZ3NDEKTSV4RRFFQ69G5FAV";
        assert_eq!(
            block_on(e.handle(get(path))).response.header("x-cache"),
            Some("MISS")
        );
        assert_eq!(
            block_on(e.handle(get(path))).response.header("x-cache"),
            Some("HIT")
        );
        // The shopper wrote version 4 through another POP.
        version.set(4);
        let mut with_token = get(path);
        with_token
            .headers
            .push(("x-cart-version".into(), "4".into()));
        let r = block_on(e.handle(with_token.clone())).response;
        assert_eq!(r.header("x-cache"), Some("MISS"));
        assert_eq!(r.header("x-cart-version"), Some("4"));
        assert_eq!(
            block_on(e.handle(with_token)).response.header("x-cache"),
            Some("HIT")
        );
    }

    #[test]
    fn writes_fail_over_once_and_only_when_safe() {
        let e = edge(Box::new(|req| {
            if req.url.starts_with("http://us") {
                Err(Failure::NotSent)
            } else {
                json(200, "{\"version\":2}")
            }
        }));
        let mut write = get("/v1/carts/us.01ARZ3NDEKTSV4RRFFQ69G5FAV/items");
        write.method = "POST".into();
        write.body = b"{\"sku\":\"A-1\",\"qty\":1}".to_vec();
        let r = block_on(e.handle(write.clone())).response;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-cart-version"), Some("2"));
        assert!(
            r.header("set-cookie")
                .unwrap()
                .starts_with("mrd_cv=us.01ARZ3NDEKTSV4RRFFQ69G5FAV:2;")
        );
        let urls: Vec<String> = e
            .host
            .calls
            .borrow()
            .iter()
            .map(|c| c.url.clone())
            .collect();
        assert_eq!(urls.len(), 2);
        assert!(urls[0].starts_with("http://us") && urls[1].starts_with("http://eu"));
        // The write is now in this POP's cache: a read is a hit.
        let read = block_on(e.handle(get("/v1/carts/us.01ARZ3NDEKTSV4RRFFQ69G5FAV"))).response;
        assert_eq!(read.header("x-cache"), Some("HIT"));

        // A cart write that timed out goes to the standby once, with the
        // idempotency key the edge gave it (the cart's shard dedups it).
        let e = edge(Box::new(|req| {
            if req.url.starts_with("http://us") {
                Err(Failure::Lost)
            } else {
                json(200, "{\"version\":2}")
            }
        }));
        let r = block_on(e.handle(write.clone())).response;
        assert_eq!(r.status, 200);
        let calls = e.host.calls.borrow().clone();
        assert_eq!(calls.len(), 2);
        let key = |c: &Outbound| {
            c.headers
                .iter()
                .find(|(n, _)| n == "idempotency-key")
                .map(|(_, v)| v.clone())
        };
        assert!(key(&calls[0]).is_some());
        assert_eq!(
            key(&calls[0]),
            key(&calls[1]),
            "the retry carries the same key"
        );
        // A checkout without a key (the shopper's to give) is not retried
        // after a timeout: it may have been applied.
        let mut checkout = get("/v1/checkout");
        checkout.method = "POST".into();
        checkout.body = b"{}".to_vec();
        let before = e.host.calls.borrow().len();
        let r = block_on(e.handle(checkout.clone())).response;
        assert_eq!(r.status, 504);
        assert_eq!(e.host.calls.borrow().len() - before, 1);
        // With the shopper's key it is, once.
        checkout
            .headers
            .push(("idempotency-key".into(), "k-1".into()));
        let r = block_on(e.handle(checkout)).response;
        assert_eq!(r.status, 200);
        assert_eq!(e.host.calls.borrow().len() - before, 3);
    }

    /// Every write route against every way its first call can end: what
    /// the shopper gets and how many calls were made. Regions are tried in
    /// the table's order (home `us`, then standby `eu`).
    #[test]
    fn maybe_applied_writes_are_resent_only_when_safe() {
        use regional_api::problem::kinds;
        #[derive(Clone, Copy, Debug)]
        enum First {
            Refused,
            Lost,
            Status(u16),
        }
        let token = {
            use base64::Engine;
            let claims = r#"{"sub":"us.01ARZ3NDEKTSV4RRFFQ69G5FAV","exp_ms":1}"#;
            format!(
                "Bearer {}.sig",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
            )
        };
        let write = |method: &str, path: &str, key: Option<&str>| {
            let mut r = get(path);
            r.method = method.into();
            r.body = b"{}".to_vec();
            r.headers.push(("authorization".into(), token.clone()));
            if let Some(k) = key {
                r.headers.push(("idempotency-key".into(), k.into()));
            }
            r
        };
        let cart_items = "/v1/carts/us.01ARZ3NDEKTSV4RRFFQ69G5FAV/items";
        // (request, first call's end, calls expected, final status)
        let cases = [
            // New cart: the edge keys it, so even a lost answer is resent.
            (write("POST", "/v1/carts", None), First::Lost, 2, 201),
            (write("POST", "/v1/carts", None), First::Status(504), 2, 201),
            (write("POST", "/v1/carts", None), First::Status(503), 2, 201),
            (write("POST", "/v1/carts", None), First::Status(409), 1, 409),
            (write("POST", cart_items, None), First::Status(504), 2, 201),
            // Checkout without the shopper's key: maybe applied stays so.
            (write("POST", "/v1/checkout", None), First::Lost, 1, 504),
            (
                write("POST", "/v1/checkout", None),
                First::Status(504),
                1,
                504,
            ),
            (write("POST", "/v1/checkout", None), First::Refused, 2, 201),
            (
                write("POST", "/v1/checkout", None),
                First::Status(503),
                2,
                201,
            ),
            (
                write("POST", "/v1/checkout", None),
                First::Status(421),
                2,
                201,
            ),
            (
                write("POST", "/v1/checkout", Some("k")),
                First::Lost,
                2,
                201,
            ),
            (
                write("POST", "/v1/checkout", Some("k")),
                First::Status(504),
                2,
                201,
            ),
        ];
        for (req, first, calls, status) in cases {
            let e = edge(Box::new(move |call| {
                if call.url.starts_with("http://us") {
                    match first {
                        First::Refused => Err(Failure::NotSent),
                        First::Lost => Err(Failure::Lost),
                        First::Status(s) => Ok(Response::problem(s, "x", "x", "x")),
                    }
                } else {
                    json(201, "{\"version\":2}")
                }
            }));
            let r = block_on(e.handle(req.clone())).response;
            let made = e.host.calls.borrow().clone();
            let what = format!("{} {} {first:?}", req.method, req.path);
            assert_eq!(made.len(), calls, "calls for {what}");
            assert_eq!(r.status, status, "status for {what}");
            assert!(
                made[0].url.starts_with("http://us"),
                "home first for {what}"
            );
            if calls == 2 {
                assert!(made[1].url.starts_with("http://eu"), "standby for {what}");
                let key = |c: &Outbound| {
                    c.headers
                        .iter()
                        .find(|(n, _)| n == "idempotency-key")
                        .map(|(_, v)| v.clone())
                };
                assert_eq!(key(&made[0]), key(&made[1]), "same key for {what}");
            }
            if status == 504 && matches!(first, First::Lost) {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(
                    body["type"],
                    format!("urn:meridian:problem:{}", kinds::MAYBE_APPLIED),
                    "{what}"
                );
            }
        }
    }

    /// However many distinct URLs and clients arrive, the store holds at
    /// most `kv::MAX_KEYS` keys; and a slot shared by two keys never
    /// serves one key's entry for the other.
    #[test]
    fn the_store_stays_bounded_and_shared_slots_never_mix_entries() {
        let e = edge(Box::new(|call| {
            json(200, &format!("{{\"url\":{:?}}}", call.url))
        }));
        for i in 0..100_000u32 {
            let mut req = get("/v1/search");
            req.query = Some(format!("q=w{i}"));
            req.client = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            let _ = block_on(e.handle(req));
        }
        let kv = e.host.kv.borrow();
        assert!(kv.len() as u64 <= kv::MAX_KEYS, "{} keys", kv.len());
        let count = |class| kv.keys().filter(|k| kv::class(k) == class).count() as u64;
        assert!(count(kv::Class::Cache) <= kv::CACHE_SLOTS);
        assert!(count(kv::Class::Bucket) <= kv::BUCKET_SLOTS);
        assert!(count(kv::Class::Tag) <= kv::TAG_SLOTS);
        assert!(
            kv.keys()
                .all(|k| kv::class(k).evictable() || k == kv::TABLE || k == kv::PURGE_CURSOR),
            "a key outside the store's classes"
        );
        drop(kv);
        // Two search keys that share a slot.
        let key = |i: u32| format!("c1:/v1/search?q=x{i}");
        let first = kv::cache(&key(0));
        let other = (1..1_000_000)
            .find(|i| kv::cache(&key(*i)) == first)
            .expect("a colliding key");
        let search = |i: u32| {
            let mut req = get("/v1/search");
            req.query = Some(format!("q=x{i}"));
            block_on(e.handle(req)).response
        };
        assert_eq!(search(0).header("x-cache"), Some("MISS"));
        let r = search(other);
        assert_eq!(r.header("x-cache"), Some("MISS"), "another key's entry");
        assert!(String::from_utf8_lossy(&r.body).contains(&format!("q=x{other}")));
    }

    fn session(shopper: &str) -> String {
        let claims = regional_api::session::Claims {
            sub: shopper.parse().unwrap(),
            exp_ms: u64::MAX,
        };
        format!("Bearer {}.c2ln", claims.encode_payload())
    }

    #[test]
    fn what_costs_the_origin_is_limited_per_class_and_subject() {
        let mut e = edge(Box::new(|_| json(200, "{\"version\":2}")));
        e.config.rate_limits = RateLimits {
            read: RateLimit {
                per_s: 1.0,
                burst: 2.0,
            },
            write: RateLimit {
                per_s: 1.0,
                burst: 1.0,
            },
            session: RateLimit {
                per_s: 1.0,
                burst: 1.0,
            },
            address_factor: 3.0,
        };
        let search = |q: &str, client: &str| {
            let mut r = get("/v1/search");
            r.query = Some(format!("q={q}"));
            r.client = client.into();
            block_on(e.handle(r)).response
        };
        // Misses: two, then 429 with Retry-After, as problem+json.
        assert_eq!(search("a", "1.2.3.4").status, 200);
        assert_eq!(search("b", "1.2.3.4").status, 200);
        let r = search("c", "1.2.3.4");
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        // Another address has its own bucket; the limited one still gets
        // fresh hits, static assets and health.
        assert_eq!(search("c", "5.6.7.8").status, 200);
        assert_eq!(search("a", "1.2.3.4").status, 200);
        assert_eq!(
            block_on(e.handle(get("/assets/app.css"))).response.status,
            200
        );
        assert_eq!(block_on(e.handle(get("/healthz"))).response.status, 200);
        // Writes: one per session; two sessions behind one address each
        // get theirs, up to the address's wider bucket (3 here).
        let write = |shopper: &str| {
            let mut r = get("/v1/carts/us.01ARZ3NDEKTSV4RRFFQ69G5FAV/items");
            r.method = "POST".into();
            r.body = b"{}".to_vec();
            r.client = "9.9.9.9".into();
            r.headers.push(("authorization".into(), session(shopper)));
            block_on(e.handle(r)).response.status
        };
        let shoppers = [
            "us.01ARZ3NDEKTSV4RRFFQ69G5FA1",
            "us.01ARZ3NDEKTSV4RRFFQ69G5FA2",
            "us.01ARZ3NDEKTSV4RRFFQ69G5FA3",
            "us.01ARZ3NDEKTSV4RRFFQ69G5FA4",
        ];
        assert_eq!(write(shoppers[0]), 200);
        assert_eq!(write(shoppers[0]), 429, "one write per session");
        assert_eq!(write(shoppers[1]), 200);
        assert_eq!(write(shoppers[2]), 200);
        assert_eq!(write(shoppers[3]), 429, "the address's ceiling holds");
        // New sessions are their own class, by address.
        let new_session = || {
            let mut r = get("/v1/sessions");
            r.method = "POST".into();
            r.body = b"{}".to_vec();
            block_on(e.handle(r)).response.status
        };
        assert_eq!(new_session(), 200);
        assert_eq!(new_session(), 429);
    }

    /// Fifty shoppers behind one address browsing cached pages at an
    /// ordinary pace are never refused (the issue that made hits free).
    #[test]
    fn fifty_shoppers_behind_one_address_browse_cached_pages_freely() {
        let mut e = edge(Box::new(|_| json(200, "{\"sku\":\"A-1\"}")));
        e.config.rate_limits = RateLimits::default();
        let mut refused = 0;
        for round in 0..20 {
            for shopper in 0..50 {
                let mut r = get(&format!("/v1/products/P-{}", (shopper + round) % 10));
                r.client = "10.0.0.1".into();
                if block_on(e.handle(r)).response.status == 429 {
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 0);
    }

    #[test]
    fn static_assets_and_unknown_routes() {
        let e = edge(Box::new(|_| json(200, "{}")));
        let css = block_on(e.handle(get("/assets/app.css"))).response;
        assert_eq!(css.status, 200);
        assert_eq!(
            css.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let missing = block_on(e.handle(get("/v1/admin/products/A")));
        assert_eq!(missing.response.status, 404);
        assert!(e.host.calls.borrow().is_empty());
    }

    #[test]
    fn purge_feed_sync_applies_tags_and_keeps_the_cursor() {
        let e = edge(Box::new(|req| {
            if req.url.contains("/v1/purge") {
                let body = if req.url.contains("after=&") {
                    r#"{"events":[{"cursor":"c1","version":7,"tags":["product:A-1","category:x"]}],"cursor":"c1","reset":false}"#
                } else {
                    r#"{"events":[],"cursor":"c1","reset":true}"#
                };
                json(200, body)
            } else {
                json(200, "{\"sku\":\"A-1\"}")
            }
        }));
        assert_eq!(
            block_on(e.handle(get("/v1/products/A-1")))
                .response
                .header("x-cache"),
            Some("MISS")
        );
        assert_eq!(
            block_on(e.handle(get("/v1/products/A-1")))
                .response
                .header("x-cache"),
            Some("HIT")
        );
        assert_eq!(block_on(e.sync_purge(0)), Some(1));
        assert_eq!(
            block_on(e.handle(get("/v1/products/A-1")))
                .response
                .header("x-cache"),
            Some("MISS")
        );
        assert_eq!(block_on(e.host.get(kv::PURGE_CURSOR)), Some(b"c1".to_vec()));
        // The next poll resumes after the cursor; a reset purges everything.
        assert_eq!(
            block_on(e.handle(get("/v1/categories")))
                .response
                .header("x-cache"),
            Some("MISS")
        );
        assert_eq!(block_on(e.sync_purge(0)), Some(0));
        assert_eq!(
            block_on(e.handle(get("/v1/categories")))
                .response
                .header("x-cache"),
            Some("MISS")
        );
        let last = e
            .host
            .calls
            .borrow()
            .iter()
            .rev()
            .find(|c| c.url.contains("/v1/purge"))
            .unwrap()
            .url
            .clone();
        assert!(last.contains("after=c1&"), "{last}");
    }
}
