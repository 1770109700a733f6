//! What the edge must do, end to end.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::world::{Shopper, World, WorldOptions};

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
    let Shopper { token, cart_id, .. } = world.session_and_cart(&dub).await;
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

/// The cart and checkout writes that reached a region's front (new
/// sessions go to the nearest region, whichever it is).
fn shop_writes(region: &crate::world::RegionHandle) -> Vec<String> {
    region
        .front
        .writes()
        .into_iter()
        .filter(|w| w != "POST /v1/sessions")
        .collect()
}

/// The cart `cart_id` of `shopper_id` as the stores hold it.
async fn stored_cart(world: &World, shopper_id: &str, cart_id: &str) -> commerce::cart::Cart {
    world.regions[1]
        .region
        .commerce
        .cart(
            &shopper_id.parse().expect("id"),
            &cart_id.parse().expect("id"),
        )
        .await
        .expect("cart")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fails_over_to_the_standby_once_when_the_home_region_dies_mid_request() {
    let world = World::start().await;
    let dub = world.pop("dub");
    let Shopper {
        token,
        shopper_id,
        cart_id,
    } = world.session_and_cart(&dub).await;
    // us-east (the home of shard us) takes the write and dies before it
    // answers; it stays healthy for the routing layer (reads pass), so the
    // edge must try it first.
    world.regions[0].front.die_on_writes();
    let write = world
        .client
        .post(format!("{dub}/v1/carts/{cart_id}/items"))
        .bearer_auth(&token)
        .json(&json!({ "sku": "PEN-1", "qty": 1 }))
        .send()
        .await
        .expect("send");
    assert_eq!(write.status().as_u16(), 200, "{:?}", write.text().await);
    let items = format!("POST /v1/carts/{cart_id}/items");
    let creates = "POST /v1/carts".to_owned();
    // Home first, once; then the standby, once.
    assert_eq!(
        shop_writes(&world.regions[0]),
        [creates.clone(), items.clone()]
    );
    assert_eq!(shop_writes(&world.regions[1]), [items]);
    // Applied exactly once, by the standby.
    let cart = stored_cart(&world, &shopper_id, &cart_id).await;
    assert_eq!(cart.lines.len(), 1);
    assert_eq!(cart.lines[0].qty, 1);

    // A new cart, which the shopper sent without a key: the edge gave it
    // one, so it too goes to the standby once, and one cart exists.
    let created = world
        .client
        .post(format!("{dub}/v1/carts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(shop_writes(&world.regions[0]).len(), 3);
    assert_eq!(shop_writes(&world.regions[1]).len(), 2);
    let owner = shopper_id.parse().expect("id");
    let carts = world.regions[1]
        .region
        .commerce
        .carts_of(&owner, 1000)
        .await
        .expect("carts");
    assert_eq!(carts.len(), 2, "the first cart and one new one");

    // A checkout without the shopper's key is never resent: the shopper
    // learns its outcome is unknown, and the standby never sees it.
    let checkout = world
        .client
        .post(format!("{dub}/v1/checkout"))
        .bearer_auth(&token)
        .json(&json!({ "cart_id": cart_id }))
        .send()
        .await
        .expect("send");
    assert_eq!(checkout.status().as_u16(), 504);
    let body: Value = checkout.json().await.expect("problem");
    assert_eq!(body["type"], "urn:meridian:problem:maybe-applied");
    assert_eq!(shop_writes(&world.regions[0]).len(), 4);
    assert_eq!(shop_writes(&world.regions[1]).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_home_region_applied_but_could_not_confirm_is_applied_once() {
    // No retries inside a region: an unknown commit result is its answer
    // (504 maybe-applied).
    let world = World::start_with(WorldOptions {
        max_retries: Some(0),
        ..Default::default()
    })
    .await;
    let dub = world.pop("dub");
    let Shopper {
        token,
        shopper_id,
        cart_id,
    } = world.session_and_cart(&dub).await;
    world.regions[0].faults.unknown_after_apply(1);
    let write = world
        .client
        .post(format!("{dub}/v1/carts/{cart_id}/items"))
        .bearer_auth(&token)
        .json(&json!({ "sku": "PEN-1", "qty": 1 }))
        .send()
        .await
        .expect("send");
    assert_eq!(write.status().as_u16(), 200, "{:?}", write.text().await);
    assert_eq!(write.headers()["x-cart-version"], "2");
    assert_eq!(world.regions[0].faults.injected(), 1, "home applied it");
    let items = format!("POST /v1/carts/{cart_id}/items");
    assert_eq!(shop_writes(&world.regions[0]).last(), Some(&items));
    assert_eq!(shop_writes(&world.regions[1]), [items]);
    let cart = stored_cart(&world, &shopper_id, &cart_id).await;
    assert_eq!(cart.lines[0].qty, 1, "applied once");
    assert_eq!(cart.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_goes_to_the_standby_when_the_home_region_is_dead() {
    let world = World::start().await;
    let dub = world.pop("dub");
    let Shopper {
        token,
        shopper_id,
        cart_id,
    } = world.session_and_cart(&dub).await;
    // Dead for real: connecting is refused (kill fails the test otherwise).
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
    assert_eq!(
        shop_writes(&world.regions[1]),
        [format!("POST /v1/carts/{cart_id}/items")]
    );
    let cart = stored_cart(&world, &shopper_id, &cart_id).await;
    assert_eq!(cart.lines.len(), 1);
    assert_eq!(cart.lines[0].qty, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_assets_and_per_client_rate_limits_at_the_edge() {
    // Cache misses: a burst of 5, then 1 per second, per client and POP.
    let world = World::start_with(WorldOptions {
        rate_limit: edge_host::config::RateLimitConfig {
            per_s: 1.0,
            burst: 5.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let dub = world.pop("dub");
    let css = world
        .client
        .get(format!(
            "{dub}{}",
            edge_core::assets::path_of("app.css").expect("the style sheet")
        ))
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
    // Static assets and health cost the origin nothing: never limited.
    for _ in 0..20 {
        let r = world
            .client
            .get(format!("{dub}/healthz"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 200);
    }
    // Misses (each search a new one) exhaust the burst faster than one
    // second refills it.
    let mut limited = None;
    for i in 0..20 {
        let r = world
            .client
            .get(format!("{dub}/v1/search?q=limit{i}"))
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
        .get(format!("{iad}/v1/search?q=limit0"))
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
    // So is one that does not say its length (chunked): the component reads
    // it up to the bound and refuses the rest.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(iad.trim_start_matches("http://"))
            .await
            .expect("connect");
        let chunk = vec![b' '; 64 * 1024];
        let mut request = b"POST /v1/checkout HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
        for _ in 0..=edge_core::http::MAX_REQUEST_BODY_BYTES / chunk.len() {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(&chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        // The edge may answer (and close) before it has read everything.
        let _ = stream.write_all(&request).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.contains("urn:meridian:problem:body-too-large"),
            "{answer}"
        );
    }
}

/// Status, header fields (sorted; without `date`, `age` apart, and
/// without the framing, `content-length` or `transfer-encoding`, which
/// differ by how the body was produced, not by what it is) and body.
type Answer = (u16, Vec<(String, String)>, u64, Vec<u8>);

async fn answer(world: &World, url: &str, headers: &[(&str, String)]) -> Answer {
    let mut request = world.client.get(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let mut age = 0;
    let mut length = None;
    let mut pairs = Vec::new();
    for (name, value) in response.headers() {
        let value = value.to_str().expect("ascii header").to_owned();
        match name.as_str() {
            "date" | "transfer-encoding" => {}
            "content-length" => length = Some(value.parse::<usize>().expect("length")),
            "age" => age = value.parse().expect("age"),
            _ => pairs.push((name.as_str().to_owned(), value)),
        }
    }
    pairs.sort();
    let body = response.bytes().await.expect("body").to_vec();
    if let Some(length) = length {
        assert_eq!(length, body.len(), "{url}: content-length");
    }
    (status, pairs, age, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_hits_answered_in_front_of_the_component_are_identical_to_its_own() {
    use std::sync::atomic::Ordering;
    let world = World::start().await;
    let dub = world.pop("dub");
    let (state, _) = world
        .edge
        .pops
        .iter()
        .find(|(p, _)| p.name == "dub")
        .expect("pop");
    // A shopper with a cart holding one line, written through dub.
    let Shopper { token, cart_id, .. } = world.session_and_cart(&dub).await;
    let write = world
        .client
        .post(format!("{dub}/v1/carts/{cart_id}/items"))
        .bearer_auth(&token)
        .json(&json!({ "sku": "MUG-1", "qty": 1 }))
        .send()
        .await
        .expect("send");
    let cookie = write
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_owned();
    // Fill the cache through the component.
    let product = format!("{dub}/v1/products/MUG-1");
    let (_, _, headers) = get(&world, product.clone(), &[]).await;
    let etag = header(&headers, "etag").to_owned();
    let search = format!("{dub}/v1/search?q=mug&sort=price_asc&utm_source=x");
    let categories = format!("{dub}/v1/categories");
    for url in [&search, &categories] {
        let (status, _, _) = get(&world, url.clone(), &[]).await;
        assert_eq!(status, 200);
    }
    let cart_url = format!("{dub}/v1/carts/{cart_id}");
    let auth = format!("Bearer {token}");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (&product, vec![]),
        (&product, vec![("if-none-match", etag.clone())]),
        (&search, vec![]),
        (&categories, vec![("accept", "application/json".into())]),
        (
            &cart_url,
            vec![("authorization", auth.clone()), ("cookie", cookie.clone())],
        ),
    ];
    for (url, headers) in &cases {
        state.fast_path.store(true, Ordering::Relaxed);
        let before = state.fast_hits.load(Ordering::Relaxed);
        let fast = answer(&world, url, headers).await;
        assert_eq!(
            state.fast_hits.load(Ordering::Relaxed),
            before + 1,
            "{url} was not answered in front of the component"
        );
        state.fast_path.store(false, Ordering::Relaxed);
        let component = answer(&world, url, headers).await;
        assert_eq!(state.fast_hits.load(Ordering::Relaxed), before + 1);
        assert_eq!(fast.0, component.0, "{url}: status");
        assert_eq!(fast.1, component.1, "{url}: headers");
        assert!(fast.2.abs_diff(component.2) <= 1, "{url}: age");
        assert_eq!(fast.3, component.3, "{url}: body");
        assert!(fast.0 == 200 || fast.0 == 304, "{url}: {}", fast.0);
        assert!(
            fast.1.contains(&("x-cache".into(), "HIT".into())),
            "{url}: {:?}",
            fast.1
        );
    }
    // A miss is never answered in front.
    state.fast_path.store(true, Ordering::Relaxed);
    let before = state.fast_hits.load(Ordering::Relaxed);
    let (_, _, headers) = get(&world, format!("{dub}/v1/products/PEN-1"), &[]).await;
    assert_eq!(header(&headers, "x-cache"), "MISS");
    assert_eq!(state.fast_hits.load(Ordering::Relaxed), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_the_old_copy_once_then_the_refreshed_one() {
    let world = World::start().await;
    let url = format!("{}/v1/products/PEN-1/availability", world.pop("dub"));
    let available = |body: &Value| {
        body.as_array()
            .and_then(|ws| ws.iter().find(|w| w["warehouse"] == "us"))
            .and_then(|w| w["available"].as_i64())
            .expect("us availability")
    };
    let (status, body, headers) = get(&world, url.clone(), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-cache"), "MISS");
    assert_eq!(available(&body), 100);
    let filled = Instant::now();
    // Stock moves in the region; availability has no purge event, only a
    // 5 s TTL and 10 s of stale-while-revalidate.
    world.regions[0]
        .region
        .commerce
        .restock(&"us".parse().expect("shard"), "PEN-1", 5)
        .await
        .expect("restock");
    let (_, body, headers) = get(&world, url.clone(), &[]).await;
    assert_eq!(header(&headers, "x-cache"), "HIT");
    assert_eq!(available(&body), 100);
    // Time passes: the entry outlives its TTL (this wait is the TTL, not a
    // stand-in for an event).
    tokio::time::sleep(Duration::from_millis(5_300).saturating_sub(filled.elapsed())).await;
    // Past the TTL: the old copy, at once, marked stale, while the refresh
    // it triggered is still held at the region's door...
    // (dub's reads go to its nearest region, eu-west.)
    let front = &world.regions[1].front;
    let before = front.hold_reads("/v1/products/");
    // (A safety bound only: an edge that refreshes before it answers
    // would wait here for the held refresh forever.)
    let (status, body, headers) =
        tokio::time::timeout(Duration::from_secs(60), get(&world, url.clone(), &[]))
            .await
            .expect("the stale copy waited for the refresh");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cache"), "STALE");
    assert_eq!(available(&body), 100);
    assert!(header(&headers, "age").parse::<u64>().expect("age") >= 5);
    // ...(the refresh did start, and is waiting)...
    front.reads_arrived("/v1/products/", before + 1).await;
    front.release_reads();
    // ...and the refreshed entry is what the next shopper gets, once the
    // refresh has stored it (a bounded wait for that event).
    let mut refreshed = None;
    for _ in 0..100 {
        let (_, body, headers) = get(&world, url.clone(), &[]).await;
        if header(&headers, "x-cache") == "HIT" && available(&body) == 105 {
            refreshed = Some((body, headers));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (body, headers) = refreshed.expect("the refresh never landed");
    assert_eq!(header(&headers, "x-cache"), "HIT");
    assert_eq!(available(&body), 105);
    assert!(
        filled.elapsed() < Duration::from_secs(15),
        "left the SWR window"
    );
}

/// A POP's calls to an origin pay the round trip set for it (the latency
/// model): a miss through the component waits it, a fresh hit answered at
/// the POP does not call the origin at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_pays_the_round_trip_to_its_origin() {
    let world = World::start().await;
    let delay = Duration::from_millis(300);
    let (dub, _) = world
        .edge
        .pops
        .iter()
        .find(|(p, _)| p.name == "dub")
        .expect("dub");
    for region in &world.regions {
        dub.set_origin_delay(&region.front.addr.to_string(), delay);
    }
    let reads_before: usize = world.regions.iter().map(|r| r.front.reads().len()).sum();
    let url = format!("{}/v1/products/MUG-1", world.pop("dub"));
    let started = Instant::now();
    let (status, _, headers) = get(&world, url.clone(), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cache"), "MISS");
    // A lower bound only: the modelled time was paid.
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    let reads_after_miss: usize = world.regions.iter().map(|r| r.front.reads().len()).sum();
    assert!(reads_after_miss > reads_before);
    let (_, _, headers) = get(&world, url, &[]).await;
    assert_eq!(header(&headers, "x-cache"), "HIT");
    // The iad POP has no delay set: its origin calls are not slowed (its
    // own table, not dub's).
    let (iad, _) = world
        .edge
        .pops
        .iter()
        .find(|(p, _)| p.name == "iad")
        .expect("iad");
    assert_eq!(
        iad.origin_delay(&world.regions[0].front.addr.to_string()),
        Duration::ZERO
    );
}
