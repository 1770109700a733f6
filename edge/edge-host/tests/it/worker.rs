//! The edge as a Cloudflare Worker, run by `wrangler dev` (workerd from
//! npm, no account) against the same real regions and routing layer: a
//! catalog read (miss, hit, purge by the feed's long poll) and a cart
//! write, whose version the Spin component's POP then honours.

use std::time::Duration;

use edge_host::wrangler::{Wrangler, WranglerOptions};

use serde_json::{Value, json};

use crate::world::{EDGE_KEY, Shopper, World, workspace};

/// `wrangler dev` of the local config (POP `wrk`), or of a stage
/// (`--env`), which sets no POP or location; after its state directory
/// (bound first, so it outlives the Worker).
fn wrangler(routing_url: &str, stage: Option<&str>) -> (tempfile::TempDir, Wrangler) {
    let state = tempfile::tempdir().expect("tempdir");
    let mut vars = vec![("SYNC_STALE_MS".to_owned(), "500".to_owned())];
    if stage.is_none() {
        vars.push(("POP".to_owned(), "wrk".to_owned()));
    }
    let wrangler = Wrangler::start(&WranglerOptions {
        workspace: workspace(),
        routing_url: routing_url.to_owned(),
        edge_key: EDGE_KEY.to_owned(),
        stage: stage.map(str::to_owned),
        vars,
        persist_to: state.path().to_path_buf(),
    })
    .expect("wrangler dev starts");
    (state, wrangler)
}

/// Waits (bounded: wrangler runs the build command first) until the
/// Worker answers; the POP it names.
async fn ready(wrangler: &mut Wrangler, client: &reqwest::Client) -> String {
    wrangler
        .ready(client, Duration::from_secs(300))
        .await
        .expect("wrangler dev serves")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_serves_catalog_reads_and_cart_writes_under_wrangler_dev() {
    let world = World::start().await;
    let (_state, mut wrangler) = wrangler(&world.routing_url, None);
    assert_eq!(ready(&mut wrangler, &world.client).await, "wrk");
    let wrk = wrangler.url.clone();

    // A catalog read: a miss filled from the nearest region, then a hit
    // from the colo's Cache API.
    let first = world
        .client
        .get(format!("{wrk}/v1/products/MUG-1"))
        .send()
        .await
        .expect("send");
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(header(&first, "x-cache"), "MISS");
    assert_eq!(header(&first, "x-edge-pop"), "wrk");
    let etag = header(&first, "etag");
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["title"], "Blue mug", "{body}");
    let second = world
        .client
        .get(format!("{wrk}/v1/products/MUG-1"))
        .send()
        .await
        .expect("send");
    assert_eq!(header(&second, "x-cache"), "HIT");
    assert_eq!(header(&second, "etag"), etag);
    let revalidated = world
        .client
        .get(format!("{wrk}/v1/products/MUG-1"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(revalidated.status().as_u16(), 304);

    // A catalog change reaches the Worker through its long poll of the
    // purge feed: the next read is a miss with the new title.
    let c = &world.regions[0].region.commerce;
    let input = commerce::catalog::ProductInput {
        title: "Green mug".into(),
        description: String::new(),
        category: "test".into(),
        price: commerce::catalog::Money {
            amount_minor: 700,
            currency: "USD".into(),
        },
        attributes: Default::default(),
        images: vec![],
    };
    let feed_cursor = || async {
        c.read_feed(commerce::feed::Cursor::START, 1_000, 0)
            .await
            .expect("feed")
            .cursor
    };
    let before = feed_cursor().await;
    let reads_before: Vec<usize> = world
        .regions
        .iter()
        .map(|r| r.front.reads().len())
        .collect();
    c.upsert_product("MUG-1", &input).await.expect("update");
    // Reads until the change shows (bounded: it comes within a long poll).
    let mut seen = None;
    for _ in 0..150 {
        let r = world
            .client
            .get(format!("{wrk}/v1/products/MUG-1"))
            .send()
            .await
            .expect("send");
        let state = header(&r, "x-cache");
        let body: Value = r.json().await.expect("json");
        if body["title"] == "Green mug" {
            seen = Some(state);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen.as_deref(),
        Some("MISS"),
        "the purge never reached the Worker, or a stale entry was served"
    );
    // It came by the Worker's long poll: no request fetched the feed from
    // before the change (a request's own sync asks with wait_ms=0; while a
    // long poll is in flight the Worker makes none, and after it the
    // cursor has moved on).
    let request_sync = format!("/v1/purge?after={before}&limit=1000&wait_ms=0");
    for (region, from) in world.regions.iter().zip(reads_before) {
        assert!(
            !region.front.reads()[from..].contains(&request_sync),
            "a request, not the long poll, fetched the change"
        );
    }

    // A cart write through the Worker, signed and sent to the cart's home
    // region; the shopper gets the version token.
    let Shopper {
        token,
        shopper_id,
        cart_id,
    } = world.session_and_cart(&wrk).await;
    // The Spin POP caches the empty cart first.
    let iad = world.pop("iad");
    let cached = world
        .client
        .get(format!("{iad}/v1/carts/{cart_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(cached.status().as_u16(), 200);
    let write = world
        .client
        .post(format!("{wrk}/v1/carts/{cart_id}/items"))
        .bearer_auth(&token)
        .header("idempotency-key", "worker-test-write-1")
        .json(&json!({ "sku": "PEN-1", "qty": 3 }))
        .send()
        .await
        .expect("send");
    assert_eq!(write.status().as_u16(), 200);
    let version = header(&write, "x-cart-version");
    assert!(!version.is_empty(), "no cart version from the Worker");
    let cookie = header(&write, "set-cookie");
    assert!(
        cookie.starts_with(&format!("mrd_cv={cart_id}:{version};")),
        "{cookie}"
    );
    // Stored in the region, once.
    let stored = world.regions[0]
        .region
        .commerce
        .cart(
            &shopper_id.parse().expect("id"),
            &cart_id.parse().expect("id"),
        )
        .await
        .expect("cart");
    assert_eq!(stored.lines.len(), 1);
    assert_eq!(stored.lines[0].qty, 3);
    // The Worker serves the shopper's own write back...
    let read = world
        .client
        .get(format!("{wrk}/v1/carts/{cart_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(header(&read, "x-cart-version"), version);
    let body: Value = read.json().await.expect("json");
    assert_eq!(body["lines"], json!([{ "sku": "PEN-1", "qty": 3 }]));
    // ...and so does the Spin POP, which held an older copy: the token is
    // the same across both edge platforms.
    let cookie_pair = cookie.split(';').next().expect("pair").to_owned();
    let read = world
        .client
        .get(format!("{iad}/v1/carts/{cart_id}"))
        .bearer_auth(&token)
        .header("cookie", cookie_pair)
        .send()
        .await
        .expect("send");
    let body: Value = read.json().await.expect("json");
    assert_eq!(body["lines"], json!([{ "sku": "PEN-1", "qty": 3 }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_worker_takes_its_pop_and_location_from_the_request() {
    let world = World::start().await;
    // wrangler.toml's staging Worker: no POP, LATITUDE or LONGITUDE.
    let (_state, mut wrangler) = wrangler(&world.routing_url, Some("staging"));
    let pop = ready(&mut wrangler, &world.client).await;
    // The colo's airport code (miniflare's stand-in `request.cf` offline),
    // not the "worker" an unset POP would give.
    assert!(
        pop.len() == 3 && pop.bytes().all(|b| b.is_ascii_uppercase()),
        "POP {pop:?} is not the request's colo"
    );
    let reads_before: Vec<usize> = world
        .regions
        .iter()
        .map(|r| r.front.reads().len())
        .collect();
    let read = world
        .client
        .get(format!("{}/v1/products/MUG-1", wrangler.url))
        .send()
        .await
        .expect("send");
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(header(&read, "x-edge-pop"), pop);
    // Filled from the region nearest to the request's coordinates
    // (miniflare's stand-in is Austin, Texas: us-east), where a Worker
    // without a location (0°, 0°) would pick eu-west.
    let filled: Vec<String> = world
        .regions
        .iter()
        .zip(reads_before)
        .filter(|(r, from)| {
            r.front.reads()[*from..]
                .iter()
                .any(|p| p.starts_with("/v1/products/MUG-1"))
        })
        .map(|(r, _)| r.name.clone())
        .collect();
    assert_eq!(filled, ["us-east"]);
}
