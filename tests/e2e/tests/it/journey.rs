//! A shopper's journey through the edge, as a browser makes it: the
//! storefront's name resolved by the platform's DNS to the POP that
//! serves, categories, search, a product (a cache miss, then a hit), a
//! session, a cart, checkout, and the order in the shopper's order list.

use serde_json::json;

use crate::support::{call, client, dig, local_platform_with, until_healthy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_browses_searches_buys_and_finds_the_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No declined or lost payments: this journey ends in an order.
    let platform = local_platform_with(&dir, 200, |loaded| {
        loaded.payments.decline_rate = 0.0;
        loaded.payments.timeout_rate = 0.0;
    })
    .await;
    let client = client();
    until_healthy(platform.routing_api.expect("routing")).await;

    // The storefront's name answers a POP that really serves.
    let dns = platform.dns.expect("DNS");
    let answer = dig(dns, "www.shop.example.");
    let (pop_name, pop) = platform
        .pops
        .iter()
        .find(|(_, addr)| answer == [addr.ip().to_string()])
        .unwrap_or_else(|| panic!("www answers {answer:?}, no POP there"))
        .clone();
    let base = format!("http://{pop}");

    let (status, headers, categories) = call(client.get(format!("{base}/v1/categories"))).await;
    assert_eq!(status, 200, "{categories}");
    assert_eq!(headers["x-edge-pop"], pop_name.as_str());
    let category = categories[0]["slug"]
        .as_str()
        .expect("a category")
        .to_owned();

    let (status, _, page) = call(client.get(format!(
        "{base}/v1/search?category={category}&sort=price_asc&limit=5"
    )))
    .await;
    assert_eq!(status, 200, "{page}");
    let hit = &page["hits"][0];
    let sku = hit["sku"]
        .as_str()
        .unwrap_or_else(|| panic!("a hit: {page} for {category}"))
        .to_owned();
    let title = hit["title"].as_str().expect("a title").to_owned();
    let mut search = reqwest::Url::parse(&format!("{base}/v1/search")).expect("url");
    search
        .query_pairs_mut()
        .append_pair("q", &title)
        .append_pair("limit", "10");
    let (status, _, found) = call(client.get(search)).await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .any(|h| h["sku"] == sku.as_str()),
        "searching for {title:?} finds {sku}: {found}"
    );

    let (status, headers, product) = call(client.get(format!("{base}/v1/products/{sku}"))).await;
    assert_eq!(status, 200, "{product}");
    assert_eq!(product["sku"], sku.as_str());
    assert_eq!(headers["x-cache"], "MISS");
    let (_, headers, again) = call(client.get(format!("{base}/v1/products/{sku}"))).await;
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(again, product);

    let (status, _, session) =
        call(client.post(format!("{base}/v1/sessions")).json(&json!({}))).await;
    assert_eq!(status, 201, "{session}");
    let token = session["token"].as_str().expect("token").to_owned();
    let (status, _, cart) = call(
        client
            .post(format!("{base}/v1/carts"))
            .bearer_auth(&token)
            .header("idempotency-key", "journey-cart"),
    )
    .await;
    assert_eq!(status, 201, "{cart}");
    let cart_id = cart["id"].as_str().expect("cart id").to_owned();
    let (status, headers, added) = call(
        client
            .post(format!("{base}/v1/carts/{cart_id}/items"))
            .bearer_auth(&token)
            .header("idempotency-key", "journey-add")
            .json(&json!({ "sku": sku, "qty": 2 })),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    let version = headers["x-cart-version"]
        .to_str()
        .expect("version")
        .to_owned();
    let (status, _, viewed) = call(
        client
            .get(format!("{base}/v1/carts/{cart_id}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200, "{viewed}");
    assert_eq!(
        viewed["lines"],
        json!([{ "sku": sku, "qty": 2 }]),
        "{viewed}"
    );
    assert_eq!(viewed["version"].to_string(), version);

    // Checkout: 201, or 202 while the saga runs (the same key again).
    let mut order = serde_json::Value::Null;
    for _ in 0..10 {
        let (status, _, answer) = call(
            client
                .post(format!("{base}/v1/checkout"))
                .bearer_auth(&token)
                .header("idempotency-key", "journey-checkout")
                .json(&json!({ "cart_id": cart_id })),
        )
        .await;
        assert!(matches!(status, 201 | 202), "{status} {answer}");
        if status == 201 {
            order = answer;
            break;
        }
    }
    assert_eq!(order["status"], "confirmed", "{order}");
    let order_id = order["id"].as_str().expect("order id").to_owned();
    let price = product["price"]["amount_minor"].as_i64().expect("price");
    assert_eq!(order["total"]["amount_minor"], price * 2, "{order}");

    let (status, _, orders) =
        call(client.get(format!("{base}/v1/orders")).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{orders}");
    assert_eq!(orders["orders"][0]["id"], order_id.as_str(), "{orders}");
    let (status, _, read) = call(
        client
            .get(format!("{base}/v1/orders/{order_id}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["lines"][0]["sku"], sku.as_str());
    assert_eq!(read["lines"][0]["qty"], 2);
    platform.stop().await.expect("stop");
}
