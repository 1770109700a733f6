//! Inventory through the domain API: hot-SKU reservations never oversell,
//! expiry gives stock back, the event log rebuilds the live state.

use std::sync::Arc;

use crate::fixture::{Fixture, Options, shard};

#[tokio::test]
async fn concurrent_reservations_of_a_hot_sku_never_oversell() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("HOT-2", "Hot thing", 100)]).await;
    fx.restock("us", "HOT-2", 300).await;
    let commerce = Arc::new(fx.region.commerce.clone());
    let mut tasks = Vec::new();
    for i in 0..500 {
        let c = commerce.clone();
        tasks.push(tokio::spawn(async move {
            c.reserve(&shard("us"), &format!("r-{i}"), "HOT-2", 1, 60_000)
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(commerce::CommerceError::OutOfStock { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 300);
    let live = commerce.stock(&shard("us"), "HOT-2").await.expect("stock");
    assert_eq!(
        (live.available, live.reserved, live.sold, live.received),
        (0, 300, 0, 300)
    );
    assert_eq!(
        live,
        commerce
            .rebuild_stock(&shard("us"), "HOT-2")
            .await
            .expect("rebuild")
    );
    // Idempotent: reserving an id that holds stock gives it back as it
    // is and takes nothing more (whichever ids won the race).
    let mut held = None;
    for i in 0..500 {
        let id = format!("r-{i}");
        if commerce
            .reservation(&shard("us"), &id)
            .await
            .expect("read")
            .is_some()
        {
            held = Some(id);
            break;
        }
    }
    let held = held.expect("a reservation that holds stock");
    let again = commerce
        .reserve(&shard("us"), &held, "HOT-2", 1, 60_000)
        .await
        .expect("an existing reservation is given back");
    assert_eq!(again.id, held);
    assert_eq!(again.qty, 1);
    assert_eq!(
        commerce
            .stock(&shard("us"), "HOT-2")
            .await
            .expect("stock")
            .reserved,
        300
    );
}

#[tokio::test]
async fn expired_reservations_give_their_stock_back() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("EXP-1", "Thing", 100)]).await;
    fx.restock("eu", "EXP-1", 10).await;
    let c = &fx.region.commerce;
    let eu = shard("eu");
    c.reserve(&eu, "short", "EXP-1", 4, 1_000)
        .await
        .expect("reserve");
    c.reserve(&eu, "long", "EXP-1", 3, 60_000)
        .await
        .expect("reserve");
    c.reserve(&eu, "sold", "EXP-1", 2, 1_000)
        .await
        .expect("reserve");
    c.commit_reservation(&eu, "sold").await.expect("commit");
    fx.clock.advance_ms(1_001);
    assert_eq!(c.sweep_expired_reservations(&eu).await.expect("sweep"), 1);
    assert_eq!(c.sweep_expired_reservations(&eu).await.expect("sweep"), 0);
    let live = c.stock(&eu, "EXP-1").await.expect("stock");
    assert_eq!(
        (live.available, live.reserved, live.sold, live.received),
        (5, 3, 2, 10)
    );
    assert!(live.is_consistent());
    assert_eq!(live, c.rebuild_stock(&eu, "EXP-1").await.expect("rebuild"));
    // A released reservation is never taken again under its id.
    assert!(matches!(
        c.reserve(&eu, "short", "EXP-1", 4, 1_000).await,
        Err(commerce::CommerceError::ReservationReleased { .. })
    ));
    // Asking for more than is there fails and takes nothing.
    assert!(matches!(
        c.reserve(&eu, "big", "EXP-1", 6, 1_000).await,
        Err(commerce::CommerceError::OutOfStock { available: 5, .. })
    ));
    assert_eq!(c.stock(&eu, "EXP-1").await.expect("stock").available, 5);
}
