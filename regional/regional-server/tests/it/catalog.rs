//! Catalog changes reach this region's cache and search index through the
//! change feed, and edges through the purge feed (long poll).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fixture::{Fixture, Options};

async fn get_json(fx: &Fixture, path: &str) -> (StatusCode, Value) {
    let r = fx
        .signed(Method::GET, path, None, None)
        .send()
        .await
        .expect("send");
    let status = r.status();
    (status, r.json().await.expect("json"))
}

#[tokio::test]
async fn a_read_after_an_applied_change_never_sees_the_old_product() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("MUG-1", "Blue mug", 1200)]).await;
    fx.catch_up().await;
    // Cached now.
    let (_, first) = get_json(&fx, "/v1/products/MUG-1").await;
    assert_eq!(first["title"], "Blue mug");
    assert_eq!(fx.region.commerce.cache().len(), 1);
    fx.product("MUG-1", "Red mug", 1300).await;
    fx.catch_up().await;
    let (_, second) = get_json(&fx, "/v1/products/MUG-1").await;
    assert_eq!(second["title"], "Red mug");
    assert_eq!(second["price"]["amount_minor"], 1300);
    // Search sees the change too, and not the old title.
    let (_, hits) = get_json(&fx, "/v1/search?q=red").await;
    assert_eq!(hits["total"], 1);
    let (_, hits) = get_json(&fx, "/v1/search?q=blue").await;
    assert_eq!(hits["total"], 0);
    // Deleting removes it from the cache and the index.
    let r = fx
        .admin(Method::DELETE, "/v1/admin/products/MUG-1", None)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    fx.catch_up().await;
    let (status, _) = get_json(&fx, "/v1/products/MUG-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, hits) = get_json(&fx, "/v1/search?q=mug").await;
    assert_eq!(hits["total"], 0);
}

#[tokio::test]
async fn search_filters_sorts_and_pages_the_demo_catalog() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    let report = fx
        .region
        .commerce
        .seed_demo(
            commerce::seed::SeedOptions {
                products: 600,
                seed: 7,
                max_stock: 20,
            },
            |_| {},
        )
        .await
        .expect("seed");
    assert_eq!(report.products, 600);
    fx.catch_up().await;
    assert_eq!(fx.region.commerce.search_index().num_docs(), 600);
    // Every product of a category, by price, in pages that cover them all.
    let (_, all) = get_json(&fx, "/v1/search?category=kitchen&limit=1").await;
    let total = all["total"].as_u64().expect("total") as usize;
    assert!(total > 10, "{all}");
    let mut seen = Vec::new();
    let mut offset = 0;
    while offset < total {
        let (status, page) = get_json(
            &fx,
            &format!("/v1/search?category=kitchen&sort=price_asc&limit=25&offset={offset}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        for hit in page["hits"].as_array().expect("hits") {
            assert_eq!(hit["category"], "kitchen");
            seen.push((
                hit["price"]["amount_minor"].as_i64().expect("price"),
                hit["sku"].as_str().expect("sku").to_owned(),
            ));
        }
        offset += 25;
    }
    assert_eq!(seen.len(), total);
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "not sorted by price"
    );
    let mut skus: Vec<_> = seen.iter().map(|s| s.1.clone()).collect();
    skus.sort();
    skus.dedup();
    assert_eq!(skus.len(), total, "pages overlap");
    // By title.
    let (_, titled) = get_json(&fx, "/v1/search?category=kitchen&sort=title_asc&limit=50").await;
    let titles: Vec<String> = titled["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["title"].as_str().expect("title").to_owned())
        .collect();
    assert!(titles.windows(2).all(|w| w[0] <= w[1]), "{titles:?}");
    // Price range, inclusive.
    let (_, ranged) = get_json(
        &fx,
        "/v1/search?price_min_minor=1000&price_max_minor=5000&limit=100",
    )
    .await;
    for hit in ranged["hits"].as_array().expect("hits") {
        let price = hit["price"]["amount_minor"].as_i64().expect("price");
        assert!((1000..=5000).contains(&price), "{price}");
    }
    // Full text: a word of a title finds that product.
    let product = fx
        .region
        .commerce
        .product("MRD-000123")
        .await
        .expect("product");
    let word = product
        .title
        .split(' ')
        .next_back()
        .expect("word")
        .to_lowercase();
    let (_, found) = get_json(&fx, &format!("/v1/search?q={word}&limit=100")).await;
    assert!(found["total"].as_u64().expect("total") >= 1);
    // The generator is deterministic.
    assert_eq!(
        commerce::seed::demo_product(7, 123),
        commerce::seed::demo_product(7, 123)
    );
    assert_ne!(
        commerce::seed::demo_product(7, 123),
        commerce::seed::demo_product(8, 123)
    );
}

#[tokio::test]
async fn the_purge_feed_long_poll_wakes_on_a_change() {
    let fx = Fixture::start().await;
    fx.catalog(&[("MUG-1", "Blue mug", 1200)]).await;
    let (_, page) = get_json(&fx, "/v1/purge?limit=1000").await;
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{page}");
    assert!(
        events[1]["tags"]
            .as_array()
            .expect("tags")
            .contains(&json!("product:MUG-1"))
    );
    let cursor = page["cursor"].as_str().expect("cursor").to_owned();
    // Nothing new: a long poll waits, and returns as soon as a change lands.
    let poll = fx.signed(
        Method::GET,
        &format!("/v1/purge?after={cursor}&wait_ms=20000"),
        None,
        None,
    );
    let mut waiting = fx.region.state.commerce.feed_waiters();
    let waiter = tokio::spawn(async move {
        poll.send()
            .await
            .expect("send")
            .json::<Value>()
            .await
            .expect("json")
    });
    // The poll is parked on the feed's watch (not merely sent) before the
    // change lands, so what follows tests the wake-up. A poll that
    // returned with nothing new, or was never woken (it would answer empty
    // after 20 s), fails on the events below.
    waiting.wait_for(|n| *n == 1).await.expect("waiters");
    assert!(
        !waiter.is_finished(),
        "the long poll returned with nothing new"
    );
    fx.product("MUG-1", "Green mug", 1200).await;
    let page = waiter.await.expect("task");
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["kind"], "product_upserted");
    assert!(
        events[0]["tags"]
            .as_array()
            .expect("tags")
            .contains(&json!("product:MUG-1"))
    );
    // An empty poll with no wait returns at once with the same cursor.
    let next = page["cursor"].as_str().expect("cursor");
    let (_, empty) = get_json(&fx, &format!("/v1/purge?after={next}")).await;
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["cursor"], next);
}

/// The purge feed as the edge asks for it (the contract's query, at its
/// limits) is answered in the contract's page shape; one past the limits
/// is refused. A drift between the region's page and the edge's reading
/// of it fails here.
#[tokio::test]
async fn the_purge_feed_speaks_the_edge_contract() {
    use regional_api::purge;
    let fx = Fixture::start().await;
    fx.catalog(&[("MUG-1", "Blue mug", 1200)]).await;
    let r = fx
        .signed(
            Method::GET,
            &format!("{}?{}", purge::PATH, purge::query("", 0)),
            None,
            None,
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let page: purge::Page = r.json().await.expect("the edge's page shape");
    assert_eq!(page.events.len(), 2);
    assert!(page.events[1].tags.contains(&"product:MUG-1".to_owned()));
    assert!(page.events[1].version > 0);
    assert!(!page.cursor.is_empty());
    for query in [
        format!("limit={}", purge::MAX_LIMIT + 1),
        format!("wait_ms={}", purge::MAX_WAIT_MS + 1),
    ] {
        let (status, body) = get_json(&fx, &format!("{}?{query}", purge::PATH)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
    }
}

/// The edge routes by the session token's claims without the session key:
/// a token the region issues must read, unverified, as its shopper.
#[tokio::test]
async fn a_session_token_reads_as_its_shopper_with_the_contracts_reader() {
    let fx = Fixture::start().await;
    let (token, shopper) = fx.session("eu").await;
    let claims = regional_api::session::unverified_claims(&token).expect("claims");
    assert_eq!(claims.sub.to_string(), shopper);
    assert!(token.len() <= regional_api::session::MAX_TOKEN_LEN);
}
