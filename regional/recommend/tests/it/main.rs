//! The batch job end to end: a generated history written to core-db's
//! sales log, exported to Parquet, computed on DataFusion in this process
//! and on an in-process Ballista cluster (the same plan, the same
//! answers), written back as a versioned set readers switch to whole, and
//! its quality measured on held-out orders against a popularity-only
//! baseline.

use std::sync::Arc;

use commerce::recommend::{PublishSet, Recommended, SaleLine, SetPage, TogetherRecord};
use commerce::seed::SeedOptions;
use commerce::{Commerce, CommerceParts, ManualClock, SimulatedGateway};
use recommend::history::{self, Item};
use recommend::{Engine, JobOptions, Stage};
use topology::{ShardId, Topology};

const NOW_MS: u64 = 1_800_000_000_000;

struct World {
    commerce: Commerce,
    clock: Arc<ManualClock>,
    topology: Arc<Topology>,
    dir: tempfile::TempDir,
}

async fn world(products: usize) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let topology = Arc::new(Topology::from_toml_str(topology::LOCAL_TOPOLOGY).expect("topology"));
    let options = db_embedded::EmbeddedOptions {
        durability: db_embedded::Durability::Buffer,
        ..Default::default()
    };
    let shards = db_embedded::open_shard_map(
        &dir.path().join("db"),
        &topology,
        &options,
        db::RetryPolicy::default(),
    )
    .expect("stores");
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let gateway = Arc::new(SimulatedGateway::new(
        Default::default(),
        db_embedded::EmbeddedDatabase::open_database(
            dir.path().join("payments"),
            options,
            db::RetryPolicy::default(),
        )
        .expect("provider store"),
    ));
    let commerce = Commerce::new(CommerceParts {
        shards,
        topology: topology.clone(),
        region: "us-east".parse().expect("region"),
        served: topology.shards().iter().map(|s| s.id().clone()).collect(),
        catalog_shard: "us".parse().expect("shard"),
        settings: Default::default(),
        clock: clock.clone(),
        entropy: Arc::new(commerce::OsEntropy),
        gateway,
        search: Arc::new(search::SearchIndex::open_or_create(None).expect("index")),
    })
    .expect("commerce");
    commerce
        .seed_demo(
            SeedOptions {
                products,
                seed: 42,
                max_stock: 0,
            },
            |_| {},
        )
        .await
        .expect("seed");
    World {
        commerce,
        clock,
        topology,
        dir,
    }
}

impl World {
    async fn items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        self.commerce
            .for_each_product(1_000, |products| {
                items.extend(products.into_iter().map(|p| Item {
                    sku: p.sku,
                    category: p.category,
                }));
                Ok(())
            })
            .await
            .expect("products");
        items
    }

    fn shards(&self) -> Vec<ShardId> {
        self.topology
            .shards()
            .iter()
            .map(|s| s.id().clone())
            .collect()
    }

    async fn write(&self, history: &history::History) {
        for (shard, lines) in &history.lines {
            for page in lines.chunks(commerce::recommend::MAX_WRITE_PAGE) {
                self.commerce
                    .record_sales(shard, page)
                    .await
                    .expect("sales");
            }
        }
    }

    fn region_of(&self, shard: &str) -> String {
        let shard: ShardId = shard.parse().expect("shard");
        self.topology
            .shard(&shard)
            .map(|s| s.home().to_string())
            .expect("a shard's home")
    }
}

fn quiet(_: Stage) {}

/// One run on DataFusion in this process over `w`'s stores.
async fn run_embedded(
    w: &World,
    export: &std::path::Path,
    full: bool,
    options: &JobOptions,
) -> anyhow::Result<recommend::Outcome> {
    recommend::run(
        &w.commerce,
        &Engine::Embedded,
        export,
        full,
        options,
        recommend::DEFAULT_LEASE_MS,
        &quiet,
    )
    .await
}

/// DataFusion's and Ballista's plans recurse deeply, and a debug build's
/// frames are large: the tests run on worker threads with 16 MiB stacks
/// (what `meridian-recommend` will use too), not tokio's default 2 MiB.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn the_job_finds_the_planted_pairs_far_better_than_popularity_and_ballista_agrees() {
    runtime().block_on(async {
        let w = world(300).await;
        let items = w.items().await;
        let history = history::generate(&items, &w.shards(), 60_000, 11, NOW_MS);
        w.write(&history).await;
        // The last 20 % of the history is held out.
        let until_ms = NOW_MS - history::DAYS * 24 * 3600 * 1000 / 5;
        let options = JobOptions {
            until_ms,
            ..JobOptions::default()
        };
        let export = w.dir.path().join("export");
        let outcome = run_embedded(&w, &export, true, &options)
            .await
            .expect("the job runs embedded");
        assert!(
            outcome.set.lines > 40_000 && outcome.set.lines < 60_000,
            "{:?}",
            outcome.set
        );
        let recall = recommend::quality::recall_at_10(&history, &outcome.computed, until_ms, |s| {
            w.region_of(s)
        });
        println!(
            "METRIC recall@10 over {} held-out planted pairs: {:.3} (popularity only: {:.3})",
            recall.cases, recall.ours, recall.popularity
        );
        assert!(recall.cases > 1_000, "{recall:?}");
        assert!(recall.ours >= 2.0 * recall.popularity, "{recall:?}");
        assert!(recall.ours > 0.5, "{recall:?}");

        // The set is what the regions serve.
        let (sku, top) = outcome
            .computed
            .bought_together
            .iter()
            .next()
            .expect("a product with recommendations");
        let served = w.commerce.bought_together(sku, 10).await.expect("served");
        assert_eq!(
            served.set.as_ref().map(|s| s.version),
            Some(outcome.set.version)
        );
        // As computed (scores through JSON: equal to a few ulps).
        assert_eq!(served.items.len(), top.len().min(10));
        for (stored, computed) in served.items.iter().zip(top) {
            assert_eq!(stored.sku, computed.sku);
            assert!(
                (stored.score - computed.score).abs() < 1e-12,
                "{stored:?} {computed:?}"
            );
        }
        let region = w.region_of("eu");
        let popular = w
            .commerce
            .popular(&region, None, 10)
            .await
            .expect("popular");
        assert_eq!(popular.items.len(), 10);

        // The same plan on Ballista (scheduler and executor in this process,
        // plans serialized, stages shuffled): the same answers.
        let ctx = Engine::Standalone.context().await.expect("Ballista starts");
        let path = format!("{}/", export.canonicalize().unwrap().display());
        let distributed = recommend::job::run(&ctx, &path, &options)
            .await
            .expect("the job runs on Ballista");
        assert_eq!(distributed.lines, outcome.computed.lines);
        assert_eq!(
            distributed.bought_together.keys().collect::<Vec<_>>(),
            outcome.computed.bought_together.keys().collect::<Vec<_>>()
        );
        for (sku, items) in &outcome.computed.bought_together {
            let other = &distributed.bought_together[sku];
            let names = |v: &Vec<commerce::recommend::Recommended>| {
                v.iter().map(|r| r.sku.clone()).collect::<Vec<_>>()
            };
            assert_eq!(names(items), names(other), "{sku}");
            for (a, b) in items.iter().zip(other) {
                assert!((a.score - b.score).abs() < 1e-9, "{sku}: {a:?} {b:?}");
            }
        }
        assert_eq!(
            distributed.popular.keys().collect::<Vec<_>>(),
            outcome.computed.popular.keys().collect::<Vec<_>>()
        );
    });
}

#[test]
fn runs_export_what_is_new_and_readers_switch_to_a_set_whole() {
    runtime().block_on(async {
        let w = world(40).await;
        let items = w.items().await;
        let history = history::generate(&items, &w.shards(), 3_000, 5, NOW_MS - 1_000_000);
        w.write(&history).await;
        let export = w.dir.path().join("export");
        let options = JobOptions::default();
        let first = run_embedded(&w, &export, true, &options)
            .await
            .expect("a full run");
        assert_eq!(first.set.lines as usize, history.line_count());
        // Nothing new: an incremental run exports nothing and reads the same.
        let exported = recommend::export::export(&w.commerce, &export, false, &|_| {})
            .await
            .expect("export");
        assert_eq!(exported.lines, 0);
        // New sales: only they are exported; the job reads everything.
        let order: Vec<SaleLine> = items
            .iter()
            .take(2)
            .map(|i| SaleLine {
                order_id: "eu.new-order".into(),
                at_ms: NOW_MS,
                sku: i.sku.clone(),
                qty: 1,
            })
            .collect();
        w.commerce
            .record_sales(&"eu".parse().unwrap(), &order)
            .await
            .unwrap();
        // A set being written is not seen until it is published, and
        // while its job's lease runs no other job starts one.
        let sku = &items[0].sku;
        let before = w.commerce.bought_together(sku, 10).await.unwrap();
        let stale = w
            .commerce
            .begin_recommendations("stale-job", 60_000)
            .await
            .unwrap();
        assert_eq!(stale, first.set.version + 1);
        let half = SetPage {
            job: "stale-job".into(),
            together: vec![TogetherRecord {
                sku: sku.clone(),
                items: vec![Recommended {
                    sku: "HALF-WRITTEN".into(),
                    score: 1.0,
                }],
            }],
            popular: Vec::new(),
        };
        w.commerce.write_set_page(stale, &half).await.unwrap();
        assert_eq!(w.commerce.bought_together(sku, 10).await.unwrap(), before);
        let refused = run_embedded(&w, &export, false, &options)
            .await
            .expect_err("another job holds the lease");
        assert!(
            format!("{refused:#}").contains("stale-job is writing set"),
            "{refused:#}"
        );
        let status = w.commerce.recommendation_status().await.unwrap();
        assert_eq!(status.running.map(|r| r.job), Some("stale-job".into()));
        // The lease runs out (the job died): another job takes the set
        // over, and the stale job, back, writes nothing into it.
        w.clock.advance_ms(60_001);
        let taken = w
            .commerce
            .begin_recommendations("new-job", 60_000)
            .await
            .unwrap();
        assert_eq!(taken, stale);
        assert!(w.commerce.write_set_page(stale, &half).await.is_err());
        // That one dies too: the next run takes over.
        w.clock.advance_ms(60_001);
        let second = run_embedded(&w, &export, false, &options)
            .await
            .expect("an incremental run");
        assert_eq!(second.set.lines as usize, history.line_count() + 2);
        assert!(second.set.version > first.set.version);
        // It took the dead job's version over, cleared.
        assert_eq!(second.set.version, stale);
        let now = w.commerce.bought_together(sku, 10).await.unwrap();
        assert_eq!(now.set.map(|s| s.version), Some(second.set.version));
        assert!(now.items.iter().all(|r| r.sku != "HALF-WRITTEN"));
        let status = w.commerce.recommendation_status().await.unwrap();
        assert_eq!(status.current, Some(second.set.clone()));
        assert_eq!(status.running, None);
        // The stale job, back, writes and publishes nothing.
        assert!(w.commerce.write_set_page(stale, &half).await.is_err());
        let publish = PublishSet {
            job: "stale-job".into(),
            sales_through_ms: 0,
            lines: 0,
            engine: "embedded".into(),
        };
        assert!(
            w.commerce
                .publish_recommendations(stale + 1, &publish)
                .await
                .is_err()
        );
        // A set older than the current one is refused.
        assert!(
            w.commerce
                .publish_recommendations(first.set.version, &publish)
                .await
                .is_err()
        );
        assert_eq!(
            w.commerce.recommendation_status().await.unwrap().current,
            Some(second.set.clone())
        );
        // Bad reads are refused, not served.
        assert!(w.commerce.bought_together("bad sku", 10).await.is_err());
        assert!(w.commerce.bought_together(sku, 0).await.is_err());
        assert!(
            w.commerce
                .popular("us-east", Some("Not A Slug"), 5)
                .await
                .is_err()
        );
    });
}
