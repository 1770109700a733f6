//! Storage stops growing: finished reservations (tombstones included) and
//! seen analytics events are collected once their retention passes, and
//! nothing still needed is.

use commerce::inventory::ReservationState;
use commerce::outbox::Topic;

use crate::harness::{World, shard};

#[tokio::test]
async fn finished_reservations_and_tombstones_are_collected_after_their_retention() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 500)], 10).await;
    let c = &w.commerce;
    let us = shard("us");
    c.reserve(&us, "o1/0", "MUG-1", 1, 60_000)
        .await
        .expect("reserve");
    c.reserve(&us, "o2/0", "MUG-1", 1, 60_000)
        .await
        .expect("reserve");
    c.reserve(&us, "o3/0", "MUG-1", 1, 60_000)
        .await
        .expect("reserve");
    c.commit_reservation(&us, "o1/0").await.expect("commit");
    c.release_reservation(&us, "o2/0", "MUG-1", "test", false)
        .await
        .expect("release");
    // A tombstone: released before it was ever reserved.
    c.release_reservation(&us, "o4/0", "MUG-1", "test", false)
        .await
        .expect("tombstone");
    // Within the retention nothing goes: a late retry is still refused.
    assert_eq!(c.collect_reservations(&us).await.expect("gc"), 0);
    let late = c.reserve(&us, "o4/0", "MUG-1", 1, 60_000).await;
    assert!(
        matches!(
            late,
            Err(commerce::CommerceError::ReservationReleased { .. })
        ),
        "{late:?}"
    );
    w.clock.advance_ms(c.settings().retention_s * 1000 + 1);
    assert_eq!(c.collect_reservations(&us).await.expect("gc"), 3);
    for id in ["o1/0", "o2/0", "o4/0"] {
        assert!(
            c.reservation(&us, id).await.expect("read").is_none(),
            "{id}"
        );
    }
    // The one still held stays (its TTL sweep releases it, not the GC).
    let held = c
        .reservation(&us, "o3/0")
        .await
        .expect("read")
        .expect("held");
    assert_eq!(held.state, ReservationState::Reserved);
    assert_eq!(c.collect_reservations(&us).await.expect("gc"), 0);
    // The live numbers are untouched: stock = received - sold - reserved.
    let level = c.stock(&us, "MUG-1").await.expect("stock");
    assert_eq!((level.received, level.sold, level.reserved), (10, 1, 1));
    assert_eq!(level.available, 8);
    assert_eq!(c.rebuild_stock(&us, "MUG-1").await.expect("rebuild"), level);
}

#[tokio::test]
async fn seen_analytics_events_are_collected_after_their_retention() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 500)], 10).await;
    let (owner, cart) = w.cart("us", &[("MUG-1", 1)]).await;
    let order = w
        .commerce
        .checkout(&owner, &cart, "gc-1")
        .await
        .expect("checkout");
    assert_eq!(order.status, commerce::orders::OrderStatus::Confirmed);
    let us = shard("us");
    assert!(
        w.commerce
            .drain_outbox(&us, Topic::Analytics)
            .await
            .expect("drain")
            > 0
    );
    let counted = w.commerce.analytics(&us).await.expect("analytics");
    assert_eq!(w.commerce.collect_seen_events(&us).await.expect("gc"), 0);
    w.clock
        .advance_ms(w.commerce.settings().retention_s * 1000 + 1);
    assert!(w.commerce.collect_seen_events(&us).await.expect("gc") > 0);
    assert_eq!(w.commerce.collect_seen_events(&us).await.expect("gc"), 0);
    // The counters themselves stay.
    assert_eq!(w.commerce.analytics(&us).await.expect("analytics"), counted);
}
