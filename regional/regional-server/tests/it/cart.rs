//! Carts: concurrent writes lose nothing, versions count every write,
//! abandoned carts expire.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fixture::{Fixture, problem, shard};

#[tokio::test]
async fn fifty_concurrent_adds_to_one_cart_all_land() {
    let fx = Fixture::start().await;
    let skus: Vec<String> = (0..50).map(|i| format!("ADD-{i:02}")).collect();
    fx.category("test").await;
    for sku in &skus {
        fx.product(sku, "Thing", 100).await;
    }
    let (token, _) = fx.session("eu").await;
    let cart = fx.new_cart(&token).await;
    let mut tasks = Vec::new();
    for sku in &skus {
        let request = fx.signed(
            Method::POST,
            &format!("/v1/carts/{cart}/items"),
            Some(&json!({ "sku": sku, "qty": 1 })),
            Some(&token),
        );
        tasks.push(tokio::spawn(async move {
            request.send().await.expect("send").status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), StatusCode::OK);
    }
    let response = fx
        .signed(
            Method::GET,
            &format!("/v1/carts/{cart}"),
            None,
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(
        response
            .headers()
            .get("x-cart-version")
            .and_then(|v| v.to_str().ok()),
        Some("51")
    );
    let body: Value = response.json().await.expect("json");
    let mut present: Vec<String> = body["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            assert_eq!(l["qty"], 1);
            l["sku"].as_str().expect("sku").to_owned()
        })
        .collect();
    present.sort();
    assert_eq!(present, skus);
    assert_eq!(body["version"], 51);
}

#[tokio::test]
async fn set_remove_and_versions() {
    let fx = Fixture::start().await;
    fx.catalog(&[("A-1", "Apple", 100), ("B-2", "Banana", 50)])
        .await;
    let (token, cart) = fx.cart_with("us", "A-1", 2).await;
    let path = format!("/v1/carts/{cart}/items");
    let r = fx
        .signed(
            Method::POST,
            &path,
            Some(&json!({ "sku": "A-1", "qty": 3 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["lines"][0]["qty"], 5);
    let r = fx
        .signed(
            Method::PUT,
            &format!("{path}/B-2"),
            Some(&json!({ "qty": 7 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["lines"][1], json!({ "sku": "B-2", "qty": 7 }));
    let r = fx
        .signed(Method::DELETE, &format!("{path}/A-1"), None, Some(&token))
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["lines"], json!([{ "sku": "B-2", "qty": 7 }]));
    assert_eq!(body["version"], 5);
    let r = fx
        .signed(Method::DELETE, &format!("{path}/A-1"), None, Some(&token))
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::NOT_FOUND).await;
    let r = fx
        .signed(
            Method::PUT,
            &format!("{path}/B-2"),
            Some(&json!({ "qty": 0 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["lines"], json!([]));
}

#[tokio::test]
async fn abandoned_carts_expire_through_the_sweep() {
    let fx = Fixture::start_with(crate::fixture::Options {
        workers: false,
        settings: commerce::Settings {
            cart_ttl_s: 3_600,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    fx.catalog(&[("A-1", "Apple", 100)]).await;
    let (token, cart) = fx.cart_with("ap", "A-1", 1).await;
    let (token2, fresh) = fx.cart_with("ap", "A-1", 1).await;
    let ttl_ms = fx.region.commerce.settings().cart_ttl_s * 1000;
    fx.clock.advance_ms(ttl_ms / 2);
    // Touching a cart pushes its expiry out.
    let r = fx
        .signed(
            Method::POST,
            &format!("/v1/carts/{fresh}/items"),
            Some(&json!({ "sku": "A-1", "qty": 1 })),
            Some(&token2),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    fx.clock.advance_ms(ttl_ms / 2 + 1);
    let swept = fx
        .region
        .commerce
        .sweep_expired_carts(&shard("ap"))
        .await
        .expect("sweep");
    assert_eq!(swept, 1);
    let r = fx
        .signed(
            Method::GET,
            &format!("/v1/carts/{cart}"),
            None,
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::NOT_FOUND).await;
    let r = fx
        .signed(
            Method::GET,
            &format!("/v1/carts/{fresh}"),
            None,
            Some(&token2),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_write_repeated_with_its_idempotency_key_applies_once() {
    let fx = Fixture::start_with(crate::fixture::Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("A-1", "Apple", 100)]).await;
    let (token, cart) = fx.cart_with("eu", "A-1", 1).await;
    let path = format!("/v1/carts/{cart}/items");
    let mut versions = Vec::new();
    for _ in 0..3 {
        // As an edge retrying on the standby after a timeout would.
        let r = fx
            .signed(
                Method::POST,
                &path,
                Some(&json!({ "sku": "A-1", "qty": 2 })),
                Some(&token),
            )
            .header("idempotency-key", "edge-retry-1")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["lines"][0]["qty"], 3, "{body}");
        assert!(
            body.get("recent_ops").is_none(),
            "internal ids leaked: {body}"
        );
        versions.push(body["version"].clone());
    }
    assert!(versions.iter().all(|v| *v == versions[0]), "{versions:?}");
    // Another key is another write.
    let r = fx
        .signed(
            Method::POST,
            &path,
            Some(&json!({ "sku": "A-1", "qty": 2 })),
            Some(&token),
        )
        .header("idempotency-key", "edge-retry-2")
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["lines"][0]["qty"], 5);
}
