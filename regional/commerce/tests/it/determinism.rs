//! What the deterministic simulator stands on: with the memory store, a
//! paused clock, seeded entropy and a seeded provider on that clock, one
//! region's work under concurrent shoppers is a function of its seed. Two
//! runs of a seed give the same trace (ids, outcomes, stock); another seed
//! gives another. A random choice drawn from outside the seed (an id, a
//! stock slot, a lease token, the provider's authorization) breaks it.

use std::sync::Arc;

use commerce::cart::CartChange;
use commerce::catalog::{CategoryInput, Money, ProductInput};
use commerce::{
    Commerce, CommerceParts, ManualClock, SeededEntropy, Settings, SimulatedGateway,
    SimulatedGatewayConfig,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use topology::Topology;

use crate::harness::{memory_db, memory_shards, shard};

const SHOPPERS: usize = 12;
const SKUS: [&str; 3] = ["DET-1", "DET-2", "DET-3"];
/// Fewer units than the shoppers want: some checkouts must fail.
const STOCK: i64 = 4;

async fn region(seed: u64) -> (Commerce, Arc<SimulatedGateway>) {
    let topology = Arc::new(Topology::from_toml_str(topology::LOCAL_TOPOLOGY).expect("topology"));
    let shards = memory_shards(&topology);
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let gateway = Arc::new(
        SimulatedGateway::new(
            SimulatedGatewayConfig {
                latency_ms: 3,
                decline_rate: 0.2,
                seed,
                ..SimulatedGatewayConfig::default()
            },
            memory_db(),
        )
        .with_clock(clock.clone()),
    );
    let commerce = Commerce::new(CommerceParts {
        served: topology.shards().iter().map(|s| s.id().clone()).collect(),
        shards,
        topology,
        region: "us-east".parse().expect("region"),
        catalog_shard: shard("us"),
        settings: Settings::default(),
        clock,
        entropy: Arc::new(SeededEntropy::new(seed)),
        gateway: gateway.clone(),
        search: Arc::new(
            search::SearchIndex::open_or_create(None)
                .expect("index")
                .inline(),
        ),
    })
    .expect("commerce");
    commerce
        .upsert_category(
            "det",
            &CategoryInput {
                name: "Determinism".into(),
                parent: None,
            },
        )
        .await
        .expect("category");
    for sku in SKUS {
        commerce
            .upsert_product(
                sku,
                &ProductInput {
                    title: format!("Product {sku}"),
                    description: String::new(),
                    category: "det".into(),
                    price: Money {
                        amount_minor: 1_000,
                        currency: "USD".into(),
                    },
                    attributes: Default::default(),
                    images: vec![],
                },
            )
            .await
            .expect("product");
        commerce
            .restock(&shard("us"), sku, STOCK)
            .await
            .expect("stock");
    }
    (commerce, gateway)
}

/// One shopper: a cart of two SKUs the seed picks, then a checkout.
async fn shopper(commerce: Commerce, seed: u64, n: usize) -> String {
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9E37_79B9));
    let home = ["us", "eu", "ap"][n % 3];
    let owner = commerce.new_id(&shard(home));
    let mut trace = format!("shopper {n} ({owner}):");
    let cart = match commerce.create_cart(&owner, None).await {
        Ok(cart) => cart,
        Err(e) => return format!("{trace} cart refused: {e}"),
    };
    let cart_id = cart.id.parse().expect("cart id");
    for _ in 0..2 {
        let sku = SKUS[rng.random_range(0..SKUS.len())];
        let qty = rng.random_range(1..=2);
        // A yield point the scheduler orders: shoppers interleave here.
        tokio::task::yield_now().await;
        match commerce
            .change_cart(
                &owner,
                &cart_id,
                &CartChange::Add {
                    sku: sku.into(),
                    qty,
                },
                None,
            )
            .await
        {
            Ok(cart) => trace += &format!(" +{qty} {sku} (v{})", cart.version),
            Err(e) => trace += &format!(" add refused: {e}"),
        }
    }
    match commerce
        .checkout(&owner, &cart_id, &format!("det-{seed}-{n}"))
        .await
    {
        Ok(order) => {
            trace += &format!(
                " order {} {:?} {} {:?}",
                order.id, order.status, order.total.amount_minor, order.failure
            );
        }
        Err(e) => trace += &format!(" checkout: {e}"),
    }
    trace
}

async fn run(seed: u64) -> Vec<String> {
    let (commerce, gateway) = region(seed).await;
    // The catalog feed applied to the search index meanwhile, as the
    // region's worker does, inline.
    let feed = {
        let commerce = commerce.clone();
        tokio::spawn(async move {
            let mut applied = 0;
            for _ in 0..4 {
                applied += commerce.apply_feed(0).await.expect("apply the feed");
                tokio::task::yield_now().await;
            }
            applied
        })
    };
    let shoppers: Vec<_> = (0..SHOPPERS)
        .map(|n| tokio::spawn(shopper(commerce.clone(), seed, n)))
        .collect();
    let mut trace = Vec::new();
    for s in shoppers {
        trace.push(s.await.expect("shopper"));
    }
    for sku in SKUS {
        let level = commerce.stock(&shard("us"), sku).await.expect("stock");
        trace.push(format!("{sku}: {level:?}"));
    }
    trace.push(format!("provider: {:?}", gateway.stats()));
    trace.push(format!(
        "feed events applied: {}",
        feed.await.expect("feed")
    ));
    // Everything stored, shard by shard: ids, stock slots, logs, sagas.
    for (id, db) in commerce.shards().iter() {
        trace.push(format!("{id}: {}", digest(db).await));
    }
    trace
}

/// How many pairs a store holds and a digest of them all, in key order.
async fn digest(db: &db::Database) -> String {
    let pairs = db
        .run(|tx, _| async move {
            tx.get_range_all(db::RangeOption::new(vec![0x00], vec![0xff]), true)
                .await
        })
        .await
        .expect("read the store");
    let mut hasher = std::hash::DefaultHasher::new();
    for kv in &pairs {
        std::hash::Hash::hash(&(&kv.key, &kv.value), &mut hasher);
    }
    format!(
        "{} pairs, digest {:016x}",
        pairs.len(),
        std::hash::Hasher::finish(&hasher)
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn one_seed_gives_one_trace() {
    let first = run(7).await;
    let again = run(7).await;
    assert_eq!(first, again, "two runs of seed 7 differ");
    // The trace says something: orders were placed, and some failed.
    let text = first.join("\n");
    assert!(text.contains("order "), "{text}");
    assert_ne!(run(8).await, first, "another seed gave the same trace");
}

#[tokio::test(flavor = "current_thread")]
async fn inline_index_work_runs_in_the_calling_task() {
    let here = std::thread::current().id();
    let thread = |_: &search::SearchIndex| std::thread::current().id();
    let inline = Arc::new(
        search::SearchIndex::open_or_create(None)
            .expect("index")
            .inline(),
    );
    assert_eq!(
        commerce::off_task(inline, thread).await.expect("work"),
        here
    );
    let pooled = Arc::new(search::SearchIndex::open_or_create(None).expect("index"));
    assert_ne!(
        commerce::off_task(pooled, thread).await.expect("work"),
        here
    );
}
