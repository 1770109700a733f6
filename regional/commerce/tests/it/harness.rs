//! One region's `Commerce` over fresh embedded stores (every shard of the
//! local topology), a manual clock, and the simulated payment provider
//! over a store of its own; and the parts for regions over memory stores
//! (no thread, no disk), whose runs a paused tokio clock decides.

use std::sync::Arc;

use commerce::catalog::{CategoryInput, Money, ProductInput};
use commerce::{Clock, Commerce, CommerceParts, ManualClock, Settings, SimulatedGateway};
use topology::{ShardId, ShardedId, Topology};

pub struct World {
    pub commerce: Commerce,
    pub clock: Arc<ManualClock>,
    pub gateway: Arc<SimulatedGateway>,
    /// Every shard's store, as opened (no link in front).
    pub shards: db::ShardMap,
    pub topology: Arc<Topology>,
    _dir: tempfile::TempDir,
}

pub fn shard(name: &str) -> ShardId {
    name.parse().expect("shard")
}

impl World {
    pub async fn start() -> World {
        Self::start_with(Settings::default()).await
    }

    pub async fn start_with(settings: Settings) -> World {
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
        let gateway = Arc::new(SimulatedGateway::new(
            Default::default(),
            db_embedded::EmbeddedDatabase::open_database(
                dir.path().join("payments"),
                options,
                db::RetryPolicy::default(),
            )
            .expect("provider store"),
        ));
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let topology = Arc::new(topology);
        let commerce = region_over(
            "us-east",
            shards.clone(),
            &topology,
            settings,
            clock.clone(),
            gateway.clone(),
        );
        World {
            commerce,
            clock,
            gateway,
            shards,
            topology,
            _dir: dir,
        }
    }

    /// Another region over the same stores and clock, reaching each shard
    /// through `view` (e.g. a link in front of some).
    pub fn region(
        &self,
        name: &str,
        view: impl Fn(&ShardId, &db::Database) -> db::Database,
    ) -> Commerce {
        let mut shards = db::ShardMap::default();
        for (id, database) in self.shards.iter() {
            shards.insert(id.clone(), view(id, database));
        }
        region_over(
            name,
            shards,
            &self.topology,
            self.commerce.settings().clone(),
            self.clock.clone(),
            self.gateway.clone(),
        )
    }

    /// Another region over the same stores, on a clock of its own (one
    /// running ahead, say).
    pub fn region_on(&self, name: &str, clock: Arc<ManualClock>) -> Commerce {
        region_over(
            name,
            self.shards.clone(),
            &self.topology,
            self.commerce.settings().clone(),
            clock,
            self.gateway.clone(),
        )
    }

    /// Products `(sku, price)` in one category, with `stock` units each in
    /// warehouse `us`.
    pub async fn catalog(&self, products: &[(&str, i64)], stock: i64) {
        seed_catalog(&self.commerce, products, stock).await;
    }

    /// A shopper in `shard` with a cart holding `lines`.
    pub async fn cart(&self, shard_name: &str, lines: &[(&str, i64)]) -> (ShardedId, ShardedId) {
        new_cart(&self.commerce, shard_name, lines).await
    }
}

/// Products `(sku, price)` in one category, with `stock` units each in
/// warehouse `us`.
pub async fn seed_catalog(c: &Commerce, products: &[(&str, i64)], stock: i64) {
    c.upsert_category(
        "test",
        &CategoryInput {
            name: "Test".into(),
            parent: None,
        },
    )
    .await
    .expect("category");
    for (sku, price) in products {
        c.upsert_product(
            sku,
            &ProductInput {
                title: format!("Product {sku}"),
                description: String::new(),
                category: "test".into(),
                price: Money {
                    amount_minor: *price,
                    currency: "USD".into(),
                },
                attributes: Default::default(),
                images: vec![],
            },
        )
        .await
        .expect("product");
        if stock > 0 {
            c.restock(&shard("us"), sku, stock).await.expect("stock");
        }
    }
}

/// A shopper in `shard` with a cart holding `lines`.
pub async fn new_cart(
    c: &Commerce,
    shard_name: &str,
    lines: &[(&str, i64)],
) -> (ShardedId, ShardedId) {
    let owner = c.new_id(&shard(shard_name));
    let cart = c.create_cart(&owner, None).await.expect("cart");
    let cart: ShardedId = cart.id.parse().expect("cart id");
    for (sku, qty) in lines {
        c.change_cart(
            &owner,
            &cart,
            &commerce::cart::CartChange::Add {
                sku: (*sku).into(),
                qty: *qty,
            },
            None,
        )
        .await
        .expect("add");
    }
    (owner, cart)
}

/// eu-west over the same stores, with its link to the catalog shard (`us`)
/// in the test's hands: cut it and only the replica can answer.
pub fn eu_west(world: &World) -> (Commerce, Arc<db::Link>) {
    let link = db::Link::new(std::time::Duration::ZERO);
    let region = world.region("eu-west", |id, database| {
        if id == &shard("us") {
            database.over_link(&link)
        } else {
            database.clone()
        }
    });
    (region, link)
}

/// Pulls until the replica holds everything; from then on the region
/// reads it.
pub async fn pull_all(c: &Commerce) {
    for _ in 0..100 {
        if c.pull_replica(0).await.expect("pull") == 0 {
            assert!(c.refresh_replica().await.expect("refresh"));
            return;
        }
    }
    panic!("the replica never caught up");
}

/// A store in memory, committed in the committing task.
pub fn memory_db() -> db::Database {
    db_embedded::EmbeddedDatabase::open_memory_database(
        db_embedded::EmbeddedOptions::default(),
        db::RetryPolicy::default(),
    )
}

/// A memory store for every shard of `topology`.
pub fn memory_shards(topology: &Topology) -> db::ShardMap {
    let mut shards = db::ShardMap::default();
    for s in topology.shards() {
        shards.insert(s.id().clone(), memory_db());
    }
    shards
}

/// Milliseconds on tokio's clock (paused in a test, so it moves only when
/// every task waits), from a fixed epoch.
#[derive(Debug)]
pub struct TokioClock(tokio::time::Instant);

impl TokioClock {
    pub fn new() -> Self {
        TokioClock(tokio::time::Instant::now())
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        1_800_000_000_000 + u64::try_from(self.0.elapsed().as_millis()).expect("ms")
    }
}

/// Region `name` over `shards`, on `clock`.
pub fn region_over(
    name: &str,
    shards: db::ShardMap,
    topology: &Arc<Topology>,
    settings: Settings,
    clock: Arc<dyn Clock>,
    gateway: Arc<SimulatedGateway>,
) -> Commerce {
    let served = topology.shards().iter().map(|s| s.id().clone()).collect();
    Commerce::new(CommerceParts {
        shards,
        topology: topology.clone(),
        region: name.parse().expect("region"),
        served,
        catalog_shard: shard("us"),
        settings,
        clock,
        entropy: Arc::new(commerce::OsEntropy),
        gateway,
        search: Arc::new(search::SearchIndex::open_or_create(None).expect("index")),
    })
    .expect("commerce")
}
