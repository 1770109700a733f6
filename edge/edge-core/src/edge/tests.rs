use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use futures::executor::block_on;
use topology::routing::{Health, RegionStatus, ShardRoute};

use super::*;
use crate::ratelimit::RateLimits;

type Origin = Box<dyn FnMut(&Outbound) -> Result<Response, Failure>>;

struct FakeHost {
    now_ms: Cell<u64>,
    kv: RefCell<HashMap<String, Vec<u8>>>,
    origin: RefCell<Origin>,
    calls: RefCell<Vec<Outbound>>,
    nonces: Cell<u64>,
    /// What the routing API answers (`None`: it does not answer).
    routing: RefCell<Option<RoutingTable>>,
    table_fetches: Cell<u32>,
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
            self.table_fetches.set(self.table_fetches.get() + 1);
            let Some(table) = self.routing.borrow().clone() else {
                return Err(Failure::Lost);
            };
            let body = serde_json::to_vec(&table).unwrap();
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
        pops: Vec::new(),
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
            routing: RefCell::new(Some(table())),
            table_fetches: Cell::new(0),
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
    let config = EdgeConfig::from_lookup("spin", |n| vars.get(n).map(|v| (*v).to_owned())).unwrap();
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
    let only =
        |k: &'static str| move |n: &str| (n != k).then(|| "v".to_owned()).or(Some(String::new()));
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

/// Every answer names the region that gave it, a cached one too; one
/// for a shard from a region other than the shard's home says whose home
/// it is (the storefront's "your region is failing over").
#[test]
fn the_answering_region_is_named_and_a_standby_answer_flagged() {
    use regional_api::headers::{FAILOVER, REGION};
    let home_up = std::rc::Rc::new(Cell::new(true));
    let up = home_up.clone();
    let e = edge(Box::new(move |req| {
        let region = if req.url.starts_with("http://us") {
            if !up.get() {
                return Err(Failure::NotSent);
            }
            "us-east"
        } else {
            "eu-west"
        };
        let mut r = json(200, "{\"version\":3}")?;
        r.set_header(REGION, region);
        Ok(r)
    }));
    let mut write = get("/v1/carts/us.01ARZ3NDEKTSV4RRFFQ69G5FAV/items");
    write.method = "POST".into();
    write.body = b"{\"sku\":\"A-1\",\"qty\":1}".to_vec();
    let r = block_on(e.handle(write.clone())).response;
    assert_eq!(r.header(REGION), Some("us-east"));
    assert_eq!(r.header(FAILOVER), None, "the home answered");
    home_up.set(false);
    let r = block_on(e.handle(write)).response;
    assert_eq!(r.status, 200);
    assert_eq!(r.header(REGION), Some("eu-west"));
    assert_eq!(r.header(FAILOVER), Some("us-east"));
    // The cart the standby wrote is cached with the region that wrote it.
    let read = block_on(e.handle(get("/v1/carts/us.01ARZ3NDEKTSV4RRFFQ69G5FAV"))).response;
    assert_eq!(read.header("x-cache"), Some("HIT"));
    assert_eq!(read.header(REGION), Some("eu-west"));
    // A catalog read any region answers is never a failover.
    let product = block_on(e.handle(get("/v1/products/A-1"))).response;
    assert_eq!(product.header(REGION), Some("eu-west"));
    assert_eq!(product.header(FAILOVER), None);
    let again = block_on(e.handle(get("/v1/products/A-1"))).response;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.header(REGION), Some("eu-west"));
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
        kv.keys().all(|k| kv::class(k).evictable()
            || [kv::TABLE, kv::TABLE_REFRESH, kv::PURGE_CURSOR].contains(&k.as_str())),
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
        block_on(e.handle(get(crate::assets::path_of("app.css").unwrap())))
            .response
            .status,
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
    let css = block_on(e.handle(get(crate::assets::path_of("app.css").unwrap()))).response;
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

/// A POP with a stale routing table answers from it at once and refreshes
/// it after the response, one refresh per lease however many requests saw
/// it stale; a POP with no table fetches one on the request's path. (A
/// lossy link to the routing layer held shoppers' writes for the call
/// bound when the stale table was refetched on the path: the simulator's
/// finding.)
#[test]
fn a_stale_routing_table_is_used_and_refreshed_after_the_response() {
    let e = edge(Box::new(|_| json(200, "{\"version\":1}")));
    let mut write = get("/v1/carts/us.01ARZ3NDEKTSV4RRFFQ69G5FAV/items");
    write.method = "POST".into();
    write.body = b"{\"sku\":\"A-1\",\"qty\":1}".to_vec();

    // No table yet: fetched on the path; a fresh one asks nothing more.
    let handled = block_on(e.handle(write.clone()));
    assert_eq!(handled.response.status, 200);
    assert_eq!(e.host.table_fetches.get(), 1);
    assert!(handled.deferred.is_empty());
    block_on(e.handle(write.clone()));
    assert_eq!(e.host.table_fetches.get(), 1);

    // The routing layer stops answering and the table ages: the write
    // still goes out at once, by the stale table, with a refresh deferred.
    *e.host.routing.borrow_mut() = None;
    e.host.now_ms.set(e.host.now_ms.get() + 5_000);
    let handled = block_on(e.handle(write.clone()));
    assert_eq!(handled.response.status, 200);
    assert_eq!(
        e.host.table_fetches.get(),
        1,
        "no fetch on the request's path"
    );
    assert_eq!(handled.deferred, vec![Deferred::RefreshTable]);
    // Both requests' refreshes: only the first starts within the lease.
    let second = block_on(e.handle(write.clone()));
    assert_eq!(second.deferred, vec![Deferred::RefreshTable]);
    block_on(e.run_deferred(Deferred::RefreshTable));
    block_on(e.run_deferred(Deferred::RefreshTable));
    assert_eq!(e.host.table_fetches.get(), 2);
    // The refresh failed: the stale table keeps serving.
    assert_eq!(block_on(e.table()).map(|t| t.version), Some(1));
    e.host
        .now_ms
        .set(e.host.now_ms.get() + TABLE_REFRESH_LEASE_MS);
    block_on(e.run_deferred(Deferred::RefreshTable));
    assert_eq!(e.host.table_fetches.get(), 3, "a refresh per lease");

    // The routing layer answers again: the refresh stores its table, and
    // the requests after it use it fresh.
    let mut newer = table();
    newer.version = 7;
    *e.host.routing.borrow_mut() = Some(newer);
    e.host
        .now_ms
        .set(e.host.now_ms.get() + TABLE_REFRESH_LEASE_MS);
    let handled = block_on(e.handle(write.clone()));
    for deferred in handled.deferred {
        block_on(e.run_deferred(deferred));
    }
    assert_eq!(e.host.table_fetches.get(), 4);
    assert_eq!(block_on(e.table()).map(|t| t.version), Some(7));
    assert!(block_on(e.handle(write.clone())).deferred.is_empty());
}
