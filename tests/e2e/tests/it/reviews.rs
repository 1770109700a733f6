//! Reviews across the whole topology: a shopper at each POP writes a
//! review (acknowledged by their own home region), and every POP shows it
//! in the product's summary within a bounded, measured time, through the
//! author's outbox, the projection in the catalog shard, every region's
//! replica and the purge feed. A helpful vote at another POP and a
//! moderator's hiding reach every POP the same way; the summary equals the
//! visible reviews in the catalog shard and in every region's replica.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ADMIN, call, client, local_platform_with, session, until_healthy};

/// Reads `url` until `holds` is true of its JSON, for at most 10 s (a
/// measurement of propagation, polled every 10 ms).
async fn until(client: &reqwest::Client, url: &str, holds: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, _, body) = call(client.get(url)).await;
        if holds(&body) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url} never became what was awaited: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_written_at_any_pop_reaches_every_pop_and_every_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = local_platform_with(&dir, 20, |_| {}).await;
    until_healthy(platform.routing_api.expect("routing")).await;
    let sku = commerce::seed::demo_sku(3);
    let client = client();

    // One review written through each POP, each timed to every POP.
    let journeys = meridian::drill::journey::measure_reviews(
        &platform,
        platform.pops.len(),
        &sku,
        Duration::from_millis(200),
    )
    .await
    .expect("reviews' journeys");
    for j in &journeys {
        let seen: Vec<f64> = j.times_ms.iter().map(|t| t.unwrap_or(f64::NAN)).collect();
        println!(
            "METRIC review journey to {}: {:?} ms (target {:.0} ms)",
            j.pop, seen, j.target_ms
        );
        assert!(
            j.times_ms.iter().all(Option::is_some),
            "a review never reached {}: {:?}",
            j.pop,
            j.times_ms
        );
    }
    let reviews = platform.pops.len() as u64;

    // A vote at Ashburn for a review written elsewhere; its count reaches
    // Dublin.
    let pop = |name: &str| {
        let (_, addr) = platform
            .pops
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("POP {name}"));
        format!("http://{addr}")
    };
    let (dub, iad) = (pop("dub"), pop("iad"));
    let list = format!("{dub}/v1/products/{sku}/reviews?sort=newest&limit=10");
    let (status, headers, page) = call(client.get(&list)).await;
    assert_eq!(status, 200, "{page}");
    assert!(headers.contains_key(regional_api::headers::REGION));
    assert_eq!(
        page["reviews"].as_array().map(Vec::len),
        Some(reviews as usize)
    );
    let target = page["reviews"][0]["id"].as_str().expect("id").to_owned();
    let voter = session(&client, &iad, "us").await;
    let (status, _, voted) = call(
        client
            .post(format!("{iad}/v1/reviews/{target}/helpful"))
            .bearer_auth(&voter),
    )
    .await;
    assert_eq!(status, 200, "{voted}");
    let helpful = format!("{dub}/v1/products/{sku}/reviews?sort=helpful&limit=10");
    until(&client, &helpful, |p| {
        p["reviews"][0]["id"] == target.as_str() && p["reviews"][0]["helpful"] == 1
    })
    .await;

    // A moderator hides it at the region the review's author lives in;
    // every POP's summary drops it.
    let (_, region_addr, _) = &platform.regions[0];
    let (status, _, hidden) = call(
        client
            .put(format!(
                "http://{region_addr}/v1/admin/reviews/{target}/visibility"
            ))
            .bearer_auth(ADMIN)
            .json(&json!({ "hidden": true })),
    )
    .await;
    assert_eq!(status, 200, "{hidden}");
    for (_, addr) in &platform.pops {
        until(
            &client,
            &format!("http://{addr}/v1/products/{sku}/reviews/summary"),
            |s| s["count"].as_u64() == Some(reviews - 1),
        )
        .await;
    }

    // The counters equal the visible reviews, in the catalog shard and in
    // each region's copy.
    let audit = platform.operator.audit_reviews(&sku).await.expect("audit");
    assert!(audit.holds(), "{audit:?}");
    for (name, _, region) in &platform.regions {
        let local = region
            .commerce
            .audit_local_reviews(&sku)
            .await
            .expect("a region's audit");
        assert!(local.holds(), "{name}: {local:?}");
        assert_eq!(local.stored, audit.stored, "{name}");
    }
}
