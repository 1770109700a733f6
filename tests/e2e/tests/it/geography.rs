//! Geography is paid: a checkout whose stock is only in a warehouse homed
//! in another region crosses the modelled round trips, so it takes at
//! least the POP's round trip to the shopper's region plus two round trips
//! from there to the warehouse's region (the saga commits the reservation
//! and then the stock there). A lower bound from the model, never an upper
//! bound on time. The same checkout with the stock in the shopper's own
//! warehouse is shown beside it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{call, client, local_platform_with, new_shopper, until_healthy};

/// A shopper of `shard` at the POP `base` checks out one unit of `sku`:
/// the time from the first request to the confirmed order.
async fn checkout_once(client: &reqwest::Client, base: &str, shard: &str, sku: &str) -> Duration {
    let (token, cart_id) = new_shopper(client, base, shard, &format!("geo-cart-{sku}")).await;
    let (status, _, added) = call(
        client
            .post(format!("{base}/v1/carts/{cart_id}/items"))
            .bearer_auth(&token)
            .header("idempotency-key", format!("geo-add-{sku}"))
            .json(&json!({ "sku": sku, "qty": 1 })),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    let started = Instant::now();
    for _ in 0..10 {
        let (status, _, answer) = call(
            client
                .post(format!("{base}/v1/checkout"))
                .bearer_auth(&token)
                .header("idempotency-key", format!("geo-checkout-{sku}"))
                .json(&json!({ "cart_id": cart_id })),
        )
        .await;
        match status {
            201 => {
                assert_eq!(answer["status"], "confirmed", "{answer}");
                return started.elapsed();
            }
            202 => continue,
            other => panic!("checkout: {other} {answer}"),
        }
    }
    panic!("the checkout never settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_region_checkout_pays_the_round_trips_it_crosses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = local_platform_with(&dir, 50, |loaded| {
        assert!(loaded.geography, "the local config models geography");
        loaded.payments.decline_rate = 0.0;
        loaded.payments.timeout_rate = 0.0;
    })
    .await;
    let client = client();
    until_healthy(platform.routing_api.expect("routing")).await;
    let eu_west: topology::RegionId = "eu-west".parse().expect("region");
    let ap_southeast: topology::RegionId = "ap-southeast".parse().expect("region");
    let topology = platform.topology();
    assert_eq!(
        topology
            .shard(&"eu".parse().expect("shard"))
            .map(|s| s.home()),
        Some(&eu_west)
    );
    assert_eq!(
        topology
            .shard(&"ap".parse().expect("shard"))
            .map(|s| s.home()),
        Some(&ap_southeast)
    );

    // Two new products: one stocked only in the `ap` warehouse, one only
    // in `eu` (written by the operator, straight into the shards).
    let category = platform
        .operator
        .list_categories()
        .await
        .expect("categories")[0]
        .slug
        .clone();
    for (sku, warehouse) in [("GEO-AP-1", "ap"), ("GEO-EU-1", "eu")] {
        platform
            .operator
            .upsert_product(
                sku,
                &commerce::catalog::ProductInput {
                    title: format!("Geography probe {sku}"),
                    description: String::new(),
                    category: category.clone(),
                    price: commerce::catalog::Money {
                        amount_minor: 1_000,
                        currency: "EUR".into(),
                    },
                    attributes: Default::default(),
                    images: Vec::new(),
                },
            )
            .await
            .expect("product");
        platform
            .operator
            .restock(&warehouse.parse().expect("warehouse"), sku, 5)
            .await
            .expect("restock");
    }

    // A shopper of `eu` in Dublin.
    let pop = platform
        .pops
        .iter()
        .find(|(name, _)| name == "dub")
        .map(|(_, addr)| format!("http://{addr}"))
        .expect("the dub POP");
    let local = checkout_once(&client, &pop, "eu", "GEO-EU-1").await;
    let cross = checkout_once(&client, &pop, "eu", "GEO-AP-1").await;

    let to_region = platform.pop_rtt("dub", &eu_west).expect("dub → eu-west");
    let across = topology
        .region_rtt(&eu_west, &ap_southeast)
        .expect("eu-west ↔ ap-southeast");
    let bound = to_region + across * 2;
    eprintln!(
        "checkout at dub for an eu shopper: stock in eu {local:?}, stock in ap {cross:?} (bound {bound:?})"
    );
    assert!(
        cross >= bound,
        "a checkout reserving in ap-southeast took {cross:?}, under the modelled {bound:?}"
    );
    // The stock really moved where the model says it crossed to.
    let ap = platform
        .operator
        .stock(&"ap".parse().expect("warehouse"), "GEO-AP-1")
        .await
        .expect("stock");
    assert_eq!(ap.sold, 1, "{ap:?}");
    platform.stop().await.expect("stop");
}
