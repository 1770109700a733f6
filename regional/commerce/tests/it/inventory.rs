//! Reservations over stock split into sub-counters: one takes from as many
//! slots as it needs (read in one range after its first slot), never more
//! than there is, and the live numbers always equal the event log's.

use commerce::CommerceError;

use crate::harness::{World, shard};

#[tokio::test]
async fn a_reservation_takes_from_every_slot_it_needs_and_never_oversells() {
    let w = World::start().await;
    let slots = w.commerce.settings().stock_slots as i64;
    // Fewer units than slots: most slots hold one unit, the rest none, so
    // a reservation of several units spans slots, and its first slot may
    // be empty.
    let stock = slots / 2 + 3;
    w.catalog(&[("A-1", 100)], stock).await;
    let us = shard("us");
    let first = w
        .commerce
        .reserve(&us, "r-1", "A-1", stock - 3, 60_000)
        .await
        .expect("reserve across slots");
    assert_eq!(first.takes.iter().map(|(_, n)| n).sum::<i64>(), stock - 3);
    assert!(first.takes.len() >= 2, "{first:?}");
    match w.commerce.reserve(&us, "r-2", "A-1", 4, 60_000).await {
        Err(CommerceError::OutOfStock { available, .. }) => assert_eq!(available, 3),
        other => panic!("{other:?}"),
    }
    w.commerce
        .reserve(&us, "r-3", "A-1", 3, 60_000)
        .await
        .expect("the last units");
    // A repeat of a reservation is the same one, taking nothing more.
    let again = w
        .commerce
        .reserve(&us, "r-1", "A-1", stock - 3, 60_000)
        .await
        .expect("repeat");
    assert_eq!(again, first);
    let level = w.commerce.stock(&us, "A-1").await.expect("stock");
    assert_eq!((level.available, level.reserved), (0, stock));
    assert_eq!(
        w.commerce.rebuild_stock(&us, "A-1").await.expect("log"),
        level
    );
}
