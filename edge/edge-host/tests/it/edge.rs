//! What the edge must do, end to end.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::world::World;

async fn get(
    world: &World,
    url: String,
    headers: &[(&str, String)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = world.client.get(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_hit_and_a_catalog_change_purged_at_every_pop() {
    let world = World::start().await;
    for pop in ["dub", "iad"] {
        let url = format!("{}/v1/products/MUG-1", world.pop(pop));
        let (status, body, headers) = get(&world, url.clone(), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["title"], "Blue mug");
        assert_eq!(header(&headers, "x-cache"), "MISS");
        assert_eq!(header(&headers, "x-edge-pop"), pop);
        let (_, again, headers) = get(&world, url.clone(), &[]).await;
        assert_eq!(header(&headers, "x-cache"), "HIT");
        assert_eq!(again, body);
        // And a 304 for the shopper's validator.
        let etag = header(&headers, "etag").to_owned();
        let response = world
            .client
            .get(url)
            .header("if-none-match", etag)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 304);
    }
    // The catalog changes in the region: every POP drops its copy through
    // the purge feed, without waiting for the 300 s TTL.
    let c = &world.regions[0].region.commerce;
    let mut input = commerce::catalog::ProductInput {
        title: "Red mug".into(),
        description: String::new(),
        category: "test".into(),
        price: commerce::catalog::Money {
            amount_minor: 600,
            currency: "USD".into(),
        },
        attributes: Default::default(),
        images: vec![],
    };
    input.price.amount_minor = 600;
    let changed = Instant::now();
    c.upsert_product("MUG-1", &input).await.expect("change");
    for pop in ["dub", "iad"] {
        let url = format!("{}/v1/products/MUG-1", world.pop(pop));
        let mut seen = Value::Null;
        for _ in 0..200 {
            let (_, body, _) = get(&world, url.clone(), &[]).await;
            seen = body;
            if seen["title"] == "Red mug" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(seen["title"], "Red mug", "{pop} kept the old product");
    }
    eprintln!(
        "catalog change visible at both POPs after {:?}",
        changed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_reads_their_own_cart_writes_at_another_pop() {
    let world = World::start().await;
    let dub = world.pop("dub");
    let iad = world.pop("iad");
    let session: Value = world
        .client
        .post(format!("{dub}/v1/sessions"))
        .json(&json!({ "shard": "us" }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let token = session["token"].as_str().expect("token").to_owned();
    let cart: Value = world
        .client
        .post(format!("{dub}/v1/carts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let cart_id = cart["id"].as_str().expect("id").to_owned();
    // Both POPs cache the empty cart.
    for pop in [&dub, &iad] {
        let (status, body, _) = get(
            &world,
            format!("{pop}/v1/carts/{cart_id}"),
            &[("authorization", format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // A write at dub...
    let write = world
        .client
        .post(format!("{dub}/v1/carts/{cart_id}/items"))
        .bearer_auth(&token)
        .json(&json!({ "sku": "MUG-1", "qty": 2 }))
        .send()
        .await
        .expect("send");
    assert_eq!(write.status().as_u16(), 200);
    let version = write
        .headers()
        .get("x-cart-version")
        .and_then(|v| v.to_str().ok())
        .expect("version")
        .to_owned();
    let cookie = write
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.starts_with(&format!("mrd_cv={cart_id}:{version};")),
        "{cookie}"
    );
    // ...is read at iad, which holds an older copy, with the shopper's token.
    let cookie_pair = cookie.split(';').next().expect("pair").to_owned();
    let (status, body, headers) = get(
        &world,
        format!("{iad}/v1/carts/{cart_id}"),
        &[
            ("authorization", format!("Bearer {token}")),
            ("cookie", cookie_pair),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["lines"],
        json!([{ "sku": "MUG-1", "qty": 2 }]),
        "stale cart served at iad"
    );
    assert_eq!(header(&headers, "x-cache"), "MISS");
    assert_eq!(header(&headers, "x-cart-version"), version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fails_over_to_the_standby_once_when_the_home_region_dies() {
    let world = World::start().await;
    let dub = world.pop("dub");
    let session: Value = world
        .client
        .post(format!("{dub}/v1/sessions"))
        .json(&json!({ "shard": "us" }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let token = session["token"].as_str().expect("token").to_owned();
    let cart: Value = world
        .client
        .post(format!("{dub}/v1/carts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let cart_id = cart["id"].as_str().expect("id").to_owned();
    // us-east (the home of shard us) dies; the edge's table still names it
    // until the routing layer notices.
    world.regions[0].kill().await;
    let write = world
        .client
        .post(format!("{dub}/v1/carts/{cart_id}/items"))
        .bearer_auth(&token)
        .json(&json!({ "sku": "PEN-1", "qty": 1 }))
        .send()
        .await
        .expect("send");
    assert_eq!(write.status().as_u16(), 200, "{:?}", write.text().await);
    // Applied exactly once, by the standby.
    let cart = world.regions[1]
        .region
        .commerce
        .cart(
            &session["shopper_id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("id"),
            &cart_id.parse().expect("id"),
        )
        .await
        .expect("cart");
    assert_eq!(cart.lines.len(), 1);
    assert_eq!(cart.lines[0].qty, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_assets_and_per_client_rate_limits_at_the_edge() {
    // A burst of 5, then 1 per second, per client and POP.
    let world = World::start_with(edge_host::config::RateLimitConfig {
        per_s: 1.0,
        burst: 5.0,
    })
    .await;
    let dub = world.pop("dub");
    let css = world
        .client
        .get(format!("{dub}/assets/app.css"))
        .send()
        .await
        .expect("send");
    assert_eq!(css.status().as_u16(), 200);
    assert_eq!(
        css.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=31536000, immutable")
    );
    let page = world
        .client
        .get(format!("{dub}/"))
        .send()
        .await
        .expect("send");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.expect("text").contains("Meridian"));
    // Two requests above took two tokens; a few more exhaust the burst
    // faster than one second refills it.
    let mut limited = None;
    for _ in 0..20 {
        let r = world
            .client
            .get(format!("{dub}/healthz"))
            .send()
            .await
            .expect("send");
        if r.status().as_u16() == 429 {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("never rate limited");
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!(retry_after >= 1);
    assert_eq!(
        limited
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    // Another POP keeps its own buckets.
    let iad = world.pop("iad");
    let other = world
        .client
        .get(format!("{iad}/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(other.status().as_u16(), 200);
    // A request body over the edge's bound is refused before the
    // component runs (and before any rate limit).
    let huge = world
        .client
        .post(format!("{iad}/v1/carts/anything/items"))
        .header("content-type", "application/json")
        .body(vec![b' '; edge_core::http::MAX_REQUEST_BODY_BYTES + 1])
        .send()
        .await
        .expect("send");
    assert_eq!(huge.status().as_u16(), 413);
    let problem: Value = huge.json().await.expect("problem json");
    assert_eq!(problem["type"], "urn:meridian:problem:body-too-large");
}
