//! Bad input gets a problem+json error and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fixture::{EDGE_KEY, Fixture, problem};

async fn cart_state(fx: &Fixture, token: &str, cart: &str) -> Value {
    let response = fx
        .signed(Method::GET, &format!("/v1/carts/{cart}"), None, Some(token))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test]
async fn bad_inputs_get_problems_and_change_nothing() {
    let fx = Fixture::start().await;
    fx.catalog(&[("SKU-1", "Blue mug", 1200)]).await;
    let (token, cart) = fx.cart_with("us", "SKU-1", 2).await;
    let before = cart_state(&fx, &token, &cart).await;
    let items = format!("/v1/carts/{cart}/items");

    // Malformed JSON.
    let r = fx
        .signed_raw(
            Method::POST,
            &items,
            b"{\"sku\": \"SKU-1\", \"qty\": ".to_vec(),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::BAD_REQUEST).await;
    // Wrong shape, unknown field.
    let r = fx
        .signed(
            Method::POST,
            &items,
            Some(&json!({ "sku": "SKU-1", "qty": 1, "price": 0 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Negative, zero and huge quantities.
    for qty in [
        json!(-1),
        json!(0),
        json!(100),
        json!(1_000_000_000_000i64),
        json!(1e300),
    ] {
        let r = fx
            .signed(
                Method::POST,
                &items,
                Some(&json!({ "sku": "SKU-1", "qty": qty })),
                Some(&token),
            )
            .send()
            .await
            .expect("send");
        problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // A quantity that would take the line past its bound.
    let r = fx
        .signed(
            Method::POST,
            &items,
            Some(&json!({ "sku": "SKU-1", "qty": 98 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Unknown and malformed SKUs.
    let r = fx
        .signed(
            Method::POST,
            &items,
            Some(&json!({ "sku": "NOPE-9", "qty": 1 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["type"], "urn:meridian:problem:unknown-sku");
    let r = fx
        .signed(
            Method::POST,
            &items,
            Some(&json!({ "sku": "bad sku\u{0}", "qty": 1 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Oversized body (past the 64 KiB limit).
    let huge = json!({ "sku": "SKU-1", "qty": 1, "pad": "x".repeat(100 * 1024) });
    let r = fx
        .signed(Method::POST, &items, Some(&huge), Some(&token))
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Wrong content type.
    let r = fx
        .signed_typed(
            Method::POST,
            &items,
            b"sku=SKU-1".to_vec(),
            Some(&token),
            "application/x-www-form-urlencoded",
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // Malformed and foreign ids.
    for (id, status) in [
        ("not-an-id", StatusCode::BAD_REQUEST),
        ("us.01arz3ndektsv4rrffq69g5fav", StatusCode::BAD_REQUEST),
        ("US.01ARZ3NDEKTSV4RRFFQ69G5FAV", StatusCode::BAD_REQUEST),
        (&"x".repeat(300), StatusCode::BAD_REQUEST),
        ("mars.01ARZ3NDEKTSV4RRFFQ69G5FAV", StatusCode::NOT_FOUND),
        ("us.01ARZ3NDEKTSV4RRFFQ69G5FAV", StatusCode::NOT_FOUND),
    ] {
        let r = fx
            .signed(
                Method::POST,
                &format!("/v1/carts/{id}/items"),
                Some(&json!({ "sku": "SKU-1", "qty": 1 })),
                Some(&token),
            )
            .send()
            .await
            .expect("send");
        problem(r, status).await;
    }
    // Missing, forged and replayed signatures.
    let body = serde_json::to_vec(&json!({ "sku": "SKU-1", "qty": 1 })).expect("json");
    let r = fx
        .client
        .post(format!("{}{items}", fx.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    let p = problem(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(p["type"], "urn:meridian:problem:signature-missing");
    // The region's clock, which checks the signature's time.
    let now_s = commerce::Clock::now_ms(&*fx.clock) / 1000;
    let nonce = crate::fixture::nonce();
    let forged = regional_server::auth::sign_edge_request(
        b"not-the-edge-key-at-all",
        "POST",
        &items,
        now_s,
        &nonce,
        &body,
    );
    let r = fx
        .client
        .post(format!("{}{items}", fx.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header(regional_server::auth::TIMESTAMP_HEADER, now_s.to_string())
        .header(regional_server::auth::NONCE_HEADER, &nonce)
        .header(regional_server::auth::SIGNATURE_HEADER, forged)
        .body(body.clone())
        .send()
        .await
        .expect("send");
    let p = problem(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(p["type"], "urn:meridian:problem:signature-invalid");
    // A signature over another body does not cover this one.
    let other = regional_server::auth::sign_edge_request(
        EDGE_KEY.as_bytes(),
        "POST",
        &items,
        now_s,
        &nonce,
        b"{}",
    );
    let r = fx
        .client
        .post(format!("{}{items}", fx.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header(regional_server::auth::TIMESTAMP_HEADER, now_s.to_string())
        .header(regional_server::auth::NONCE_HEADER, &nonce)
        .header(regional_server::auth::SIGNATURE_HEADER, other)
        .body(body.clone())
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNAUTHORIZED).await;
    // Too old.
    let old_s = now_s - 3_600;
    let stale = regional_server::auth::sign_edge_request(
        EDGE_KEY.as_bytes(),
        "POST",
        &items,
        old_s,
        &nonce,
        &body,
    );
    let r = fx
        .client
        .post(format!("{}{items}", fx.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header(regional_server::auth::TIMESTAMP_HEADER, old_s.to_string())
        .header(regional_server::auth::NONCE_HEADER, &nonce)
        .header(regional_server::auth::SIGNATURE_HEADER, stale)
        .body(body.clone())
        .send()
        .await
        .expect("send");
    let p = problem(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(p["type"], "urn:meridian:problem:signature-expired");
    // Replayed: the first use counts, the second is refused and changes
    // nothing (the cart keeps the one unit the first added).
    let r = fx
        .signed(
            Method::PUT,
            &format!("{items}/SKU-1"),
            Some(&json!({ "qty": 3 })),
            Some(&token),
        )
        .build()
        .expect("build");
    let replay = r.try_clone().expect("clone");
    assert_eq!(
        fx.client.execute(r).await.expect("send").status(),
        StatusCode::OK
    );
    let restore = fx
        .signed(
            Method::PUT,
            &format!("{items}/SKU-1"),
            Some(&json!({ "qty": 2 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(restore.status(), StatusCode::OK);
    let p = problem(
        fx.client.execute(replay).await.expect("send"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(p["type"], "urn:meridian:problem:signature-replayed");
    let now = cart_state(&fx, &token, &cart).await;
    assert_eq!(now["lines"], json!([{ "sku": "SKU-1", "qty": 2 }]));
    let version_after_replay_test = now["version"].clone();
    // Missing, forged and foreign sessions.
    let r = fx
        .signed(Method::GET, &format!("/v1/carts/{cart}"), None, None)
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNAUTHORIZED).await;
    let mut forged_token = token.clone();
    forged_token.insert(3, 'A');
    let r = fx
        .signed(
            Method::GET,
            &format!("/v1/carts/{cart}"),
            None,
            Some(&forged_token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNAUTHORIZED).await;
    let (other_token, _) = fx.session("us").await;
    let r = fx
        .signed(
            Method::GET,
            &format!("/v1/carts/{cart}"),
            None,
            Some(&other_token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::NOT_FOUND).await;
    let r = fx
        .signed(
            Method::POST,
            &items,
            Some(&json!({ "sku": "SKU-1", "qty": 1 })),
            Some(&other_token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::NOT_FOUND).await;
    let r = fx
        .signed(
            Method::DELETE,
            &format!("{items}/SKU-1"),
            None,
            Some(&other_token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::NOT_FOUND).await;
    let r = fx.checkout(&other_token, &cart, "other-shopper-key").await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);
    // Checkout without an idempotency key.
    let r = fx
        .signed(
            Method::POST,
            "/v1/checkout",
            Some(&json!({ "cart_id": cart })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Admin endpoints without, or with a wrong, admin token.
    let r = fx
        .client
        .put(format!("{}/v1/admin/products/SKU-1", fx.base))
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNAUTHORIZED).await;
    let r = fx
        .client
        .delete(format!("{}/v1/admin/products/SKU-1", fx.base))
        .bearer_auth("guess")
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNAUTHORIZED).await;
    // Bad query strings.
    let r = fx
        .signed(Method::GET, "/v1/search?limit=-3", None, None)
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = fx
        .signed(Method::GET, "/v1/search?limit=100000", None, None)
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = fx
        .signed(Method::GET, "/v1/purge?after=zz", None, None)
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // 24 bytes that are not 24 ASCII characters.
    let r = fx
        .signed(
            Method::GET,
            &format!("/v1/purge?after={}", "%E2%82%AC".repeat(8)),
            None,
            None,
        )
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;

    // Nothing changed: the cart, the product, the stock.
    let after = cart_state(&fx, &token, &cart).await;
    assert_eq!(version_after_replay_test, after["version"]);
    assert_eq!(before["lines"], after["lines"]);
    let product = fx
        .signed(Method::GET, "/v1/products/SKU-1", None, None)
        .send()
        .await
        .expect("send");
    assert_eq!(product.status(), StatusCode::OK);
    let product: Value = product.json().await.expect("json");
    assert_eq!(product["title"], "Blue mug");
}
