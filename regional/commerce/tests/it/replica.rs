//! The catalog's regional replicas: the feed shipped as a log of changes,
//! each with the state it left, applied in order whoever delivers it and
//! however often; a region reads its own replica without reaching the
//! catalog shard; a replica behind the trimmed feed is copied anew.

use commerce::catalog::{CategoryInput, Money, ProductInput};
use commerce::feed::{Cursor, State};
use commerce::replica::ReplicaBatch;
use commerce::{Commerce, CommerceError, Settings};

use crate::harness::{World, eu_west, pull_all, shard};

fn input(title: &str, category: &str) -> ProductInput {
    ProductInput {
        title: title.into(),
        description: "a product".into(),
        category: category.into(),
        price: Money {
            amount_minor: 1_000,
            currency: "EUR".into(),
        },
        attributes: Default::default(),
        images: vec![],
    }
}

async fn feed(c: &Commerce) -> commerce::feed::FeedPage {
    c.read_feed(Cursor::START, 1_000, 0).await.expect("feed")
}

#[tokio::test]
async fn every_change_reaches_a_replica_and_its_region_reads_it_without_the_catalog() {
    let world = World::start().await;
    let us = &world.commerce;
    world
        .catalog(&[("A-1", 100), ("A-2", 200), ("A-3", 300)], 0)
        .await;
    let (eu, link) = eu_west(&world);
    assert_eq!(eu.replica_shard(), Some(&shard("eu")));
    assert_eq!(
        us.replica_shard(),
        None,
        "the catalog's home reads the catalog"
    );
    // No copy yet: eu-west reads the catalog shard.
    assert!(!eu.refresh_replica().await.expect("refresh"));
    assert_eq!(eu.replica_position().await.expect("position"), None);

    // Its puller makes the first full copy.
    pull_all(&eu).await;
    assert!(eu.refresh_replica().await.expect("refresh"));
    assert_eq!(
        eu.replica_position().await.expect("position"),
        Some(us.feed_tail().await.expect("tail"))
    );

    // Changes: a new title, a product moved to a new category, one deleted.
    us.upsert_category(
        "new",
        &CategoryInput {
            name: "New".into(),
            parent: None,
        },
    )
    .await
    .expect("category");
    us.upsert_product("A-1", &input("Renamed", "test"))
        .await
        .expect("rename");
    us.upsert_product("A-2", &input("Moved", "new"))
        .await
        .expect("move");
    us.delete_product("A-3").await.expect("delete");
    // A product created a moment ago, not yet in the replica, is not
    // "unknown": that is the catalog's to say.
    us.upsert_product("A-9", &input("Brand new", "test"))
        .await
        .expect("new");
    assert!(eu.product_uncached("A-9").await.is_err(), "not pulled yet");
    assert_eq!(eu.product("A-9").await.expect("known").title, "Brand new");
    pull_all(&eu).await;

    // From here eu-west cannot reach the catalog shard at all.
    link.set_partitioned(true);
    for sku in ["A-1", "A-2", "A-9"] {
        assert_eq!(
            eu.product_uncached(sku).await.expect("replica read"),
            us.product_from_catalog(sku).await.expect("catalog read")
        );
    }
    assert!(matches!(
        eu.product_uncached("A-3").await,
        Err(CommerceError::UnknownSku { .. })
    ));
    assert_eq!(
        eu.list_categories().await.expect("categories"),
        us.list_categories().await.expect("categories")
    );
    // The same events under the same cursors.
    assert_eq!(feed(&eu).await, feed(us).await);
    assert_eq!(
        eu.feed_tail().await.expect("tail"),
        us.feed_tail().await.expect("tail")
    );
    // A product newer than the replica holds is the catalog's to give:
    // with the catalog unreachable that is an error, never a stale copy.
    let a1 = us.product_from_catalog("A-1").await.expect("a1");
    assert_eq!(
        eu.product_at_least("A-1", a1.version)
            .await
            .expect("fresh enough")
            .title,
        "Renamed"
    );
    assert!(eu.product_at_least("A-1", a1.version + 1).await.is_err());
    assert_eq!(link.failed(), 1, "only the read that needed the catalog");
}

#[tokio::test]
async fn a_replica_is_the_catalog_as_of_its_position_whoever_delivers_and_in_whatever_order() {
    let world = World::start().await;
    let us = &world.commerce;
    world.catalog(&[("B-1", 100)], 0).await;
    let (eu, _link) = eu_west(&world);
    pull_all(&eu).await;
    let start = eu
        .replica_position()
        .await
        .expect("position")
        .expect("copied");
    for n in 1..=3 {
        us.upsert_product("B-1", &input(&format!("Version {n}"), "test"))
            .await
            .expect("change");
    }
    let read = us.replica_batch(start, 0).await.expect("batch");
    assert_eq!(read.batch.changes.len(), 3);
    assert!(matches!(&read.batch.changes[0].state, State::Product(p) if p.title == "Version 1"));

    // The first change alone: the replica holds the product as that change
    // left it, not as the catalog holds it now.
    let first = ReplicaBatch {
        changes: read.batch.changes[..1].to_vec(),
        ..read.batch.clone()
    };
    let rest = ReplicaBatch {
        after: read.batch.changes[0].cursor.clone(),
        changes: read.batch.changes[1..].to_vec(),
        ..read.batch.clone()
    };
    // Sent at once, the later batch arrives first: it waits for the one
    // before it, then applies.
    let later = {
        let (eu, rest) = (eu.clone(), rest.clone());
        tokio::spawn(async move { eu.apply_replica_batch(&rest).await })
    };
    let standing = eu.apply_replica_batch(&first).await.expect("first");
    assert_eq!(standing.applied, 1);
    let standing = later.await.expect("join").expect("later");
    assert_eq!(standing.applied, 2);
    assert_eq!(standing.position, Some(read.to.to_string()));
    assert_eq!(
        eu.product_uncached("B-1").await.expect("replica").title,
        "Version 3"
    );
    // Delivered again (a retried push, the puller): nothing changes.
    assert_eq!(
        eu.apply_replica_batch(&read.batch)
            .await
            .expect("again")
            .applied,
        0
    );
    assert_eq!(
        eu.apply_replica_batch(&first).await.expect("again").applied,
        0
    );
    assert_eq!(feed(&eu).await, feed(us).await);

    // One change alone on a fresh replica: the state it left.
    let world = World::start().await;
    world.catalog(&[("B-1", 100)], 0).await;
    let (ap, _) = eu_west(&world);
    pull_all(&ap).await;
    let start = ap
        .replica_position()
        .await
        .expect("position")
        .expect("copied");
    for n in 1..=2 {
        world
            .commerce
            .upsert_product("B-1", &input(&format!("Version {n}"), "test"))
            .await
            .expect("change");
    }
    let mut read = world.commerce.replica_batch(start, 0).await.expect("batch");
    read.batch.changes.truncate(1);
    assert_eq!(
        ap.apply_replica_batch(&read.batch)
            .await
            .expect("one")
            .applied,
        1
    );
    assert_eq!(
        ap.product_uncached("B-1").await.expect("replica").title,
        "Version 1"
    );
}

#[tokio::test]
async fn batches_that_do_not_fit_are_refused_or_left_for_the_puller() {
    let world = World::start().await;
    let us = &world.commerce;
    world.catalog(&[("E-1", 100)], 0).await;
    let (eu, _link) = eu_west(&world);
    let read = us.replica_batch(Cursor::START, 0).await.expect("batch");
    // No full copy yet: nothing applied, the region's puller copies.
    let standing = eu.apply_replica_batch(&read.batch).await.expect("offered");
    assert_eq!((standing.position, standing.applied), (None, 0));
    pull_all(&eu).await;

    // Malformed: out of order, a state that is not the event's record.
    let mut reversed = read.batch.clone();
    reversed.changes.reverse();
    assert!(matches!(
        eu.apply_replica_batch(&reversed).await,
        Err(CommerceError::BadReplicaBatch { .. })
    ));
    let mut mismatched = read.batch.clone();
    let product = mismatched
        .changes
        .iter()
        .find_map(|c| match &c.state {
            State::Product(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a product change");
    for change in &mut mismatched.changes {
        if matches!(change.state, State::Category(_)) {
            change.state = State::Product(product.clone());
        }
    }
    let answer = eu.apply_replica_batch(&mismatched).await;
    assert!(
        matches!(answer, Err(CommerceError::BadReplicaBatch { .. })),
        "{answer:?}"
    );

    // A batch that continues from a change the replica never got: after
    // waiting for it, nothing is applied and the replica says where it is.
    let held = eu
        .replica_position()
        .await
        .expect("position")
        .expect("copied");
    us.upsert_product("E-1", &input("One", "test"))
        .await
        .expect("1");
    let gap_from = us.feed_tail().await.expect("tail");
    us.upsert_product("E-1", &input("Two", "test"))
        .await
        .expect("2");
    let read = us.replica_batch(gap_from, 0).await.expect("batch");
    let standing = eu.apply_replica_batch(&read.batch).await.expect("gap");
    assert_eq!(standing.applied, 0);
    assert_eq!(standing.position, Some(held.to_string()));
}

#[tokio::test]
async fn a_replica_behind_the_trimmed_feed_is_copied_anew_and_its_readers_reset() {
    let world = World::start_with(Settings {
        feed_retention: 2,
        ..Settings::default()
    })
    .await;
    let us = &world.commerce;
    world.catalog(&[("C-1", 100), ("C-2", 100)], 0).await;
    let (eu, _link) = eu_west(&world);
    pull_all(&eu).await;
    assert!(eu.refresh_replica().await.expect("refresh"));
    let old = eu.feed_tail().await.expect("tail");

    // Many changes and a trim before the next pull: the replica's position
    // is behind what the catalog keeps.
    for n in 0..5 {
        us.upsert_product("C-1", &input(&format!("Change {n}"), "test"))
            .await
            .expect("change");
    }
    us.delete_product("C-2").await.expect("delete");
    while us.trim_feed().await.expect("trim") > 0 {}
    pull_all(&eu).await;

    assert_eq!(
        eu.product_uncached("C-1").await.expect("replica").title,
        "Change 4"
    );
    assert!(
        eu.product_uncached("C-2").await.is_err(),
        "deleted in the copy"
    );
    let page = eu.read_feed(old, 100, 0).await.expect("feed");
    assert!(page.reset, "a reader behind the trim mark resets");
    assert_eq!(feed(&eu).await, feed(us).await);
}

#[tokio::test]
async fn a_long_poll_on_a_replica_wakes_when_a_change_is_applied_to_it() {
    let world = World::start().await;
    let us = world.commerce.clone();
    world.catalog(&[("D-1", 100)], 0).await;
    let (eu, _link) = eu_west(&world);
    pull_all(&eu).await;
    assert!(eu.refresh_replica().await.expect("refresh"));
    let tail = eu.feed_tail().await.expect("tail");
    let mut waiters = eu.feed_waiters();
    let poll = {
        let eu = eu.clone();
        tokio::spawn(async move { eu.read_feed(tail, 100, 30_000).await })
    };
    waiters.wait_for(|n| *n == 1).await.expect("parked");
    us.upsert_product("D-1", &input("Changed", "test"))
        .await
        .expect("change");
    let read = us.replica_batch(tail, 0).await.expect("batch");
    eu.apply_replica_batch(&read.batch).await.expect("push");
    let page = poll.await.expect("join").expect("poll");
    assert_eq!(page.events.len(), 1);
    assert_eq!(
        eu.product_uncached("D-1").await.expect("replica").title,
        "Changed"
    );
}

#[test]
fn the_documented_batch_bound_is_the_one_enforced() {
    use utoipa::PartialSchema;
    let schema = serde_json::to_value(ReplicaBatch::schema()).expect("schema");
    assert_eq!(
        schema["properties"]["changes"]["maxItems"],
        serde_json::json!(commerce::replica::MAX_BATCH_CHANGES)
    );
}
