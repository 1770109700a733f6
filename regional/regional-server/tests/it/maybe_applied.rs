//! A write whose outcome the region does not know is answered 504
//! `maybe-applied`, never 503 (which says "not applied"); a repeat with the
//! same `Idempotency-Key` applies it at most once. Faults are injected in
//! front of the storage engine's commits.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::fixture::{Fixture, Options, problem};

const MAYBE_APPLIED: &str = "urn:meridian:problem:maybe-applied";

async fn faulty(retries: Option<u32>) -> (Fixture, std::sync::Arc<db::Faults>) {
    let faults = db::Faults::new();
    let f = Fixture::start_with(Options {
        faults: Some((faults.clone(), retries)),
        ..Default::default()
    })
    .await;
    (f, faults)
}

async fn create_cart(f: &Fixture, token: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = f.signed(Method::POST, "/v1/carts", None, Some(token));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.expect("send")
}

#[tokio::test]
async fn a_cart_created_then_lost_is_504_and_its_keyed_repeat_returns_the_same_cart() {
    // No retries inside the region: the first unknown result is the answer.
    let (f, faults) = faulty(Some(0)).await;
    let (token, owner) = f.session("us").await;
    let owner: topology::ShardedId = owner.parse().expect("owner");

    // Applied, then its result lost.
    faults.unknown_after_apply(1);
    let body = problem(
        create_cart(&f, &token, Some("cart-1")).await,
        StatusCode::GATEWAY_TIMEOUT,
    )
    .await;
    assert_eq!(body["type"], MAYBE_APPLIED, "{body}");
    assert_eq!(faults.injected(), 1);
    let carts = f
        .region
        .commerce
        .carts_of(&owner, 1000)
        .await
        .expect("carts");
    assert_eq!(carts.len(), 1, "the lost commit was applied");

    // What an edge does next: the same request, same key (here or at the
    // standby, which shares the shard). The first cart, not a second.
    let r = create_cart(&f, &token, Some("cart-1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let cart: serde_json::Value = r.json().await.expect("cart");
    assert_eq!(cart["id"], carts[0].id.as_str());
    assert!(cart.get("created_by").is_none(), "internal field leaked");
    let carts = f
        .region
        .commerce
        .carts_of(&owner, 1000)
        .await
        .expect("carts");
    assert_eq!(carts.len(), 1);

    // Not applied, result unknown: the region cannot tell the difference,
    // so it is 504 too, and the repeat creates the cart once.
    faults.unknown_not_applied(1);
    let body = problem(
        create_cart(&f, &token, Some("cart-2")).await,
        StatusCode::GATEWAY_TIMEOUT,
    )
    .await;
    assert_eq!(body["type"], MAYBE_APPLIED);
    assert_eq!(
        create_cart(&f, &token, Some("cart-2")).await.status(),
        StatusCode::CREATED
    );
    let carts = f
        .region
        .commerce
        .carts_of(&owner, 1000)
        .await
        .expect("carts");
    assert_eq!(carts.len(), 2);

    // Certainly not applied (a conflict, retries used up): 503, which an
    // edge may send anywhere.
    faults.conflict(1);
    let body = problem(
        create_cart(&f, &token, None).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(body["type"], "urn:meridian:problem:unavailable");
    let carts = f
        .region
        .commerce
        .carts_of(&owner, 1000)
        .await
        .expect("carts");
    assert_eq!(carts.len(), 2, "nothing was applied");
}

#[tokio::test]
async fn a_cart_change_applied_then_lost_applies_once_when_repeated() {
    let (f, faults) = faulty(Some(0)).await;
    f.catalog(&[("MUG-1", "Mug", 500)]).await;
    let (token, _) = f.session("us").await;
    let cart = f.new_cart(&token).await;
    let add = || {
        f.signed(
            Method::POST,
            &format!("/v1/carts/{cart}/items"),
            Some(&json!({ "sku": "MUG-1", "qty": 1 })),
            Some(&token),
        )
        .header("idempotency-key", "add-1")
    };
    faults.unknown_after_apply(1);
    let body = problem(
        add().send().await.expect("send"),
        StatusCode::GATEWAY_TIMEOUT,
    )
    .await;
    assert_eq!(body["type"], MAYBE_APPLIED);
    let r = add().send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let cart: serde_json::Value = r.json().await.expect("cart");
    assert_eq!(cart["lines"], json!([{ "sku": "MUG-1", "qty": 1 }]));
    assert_eq!(cart["version"], 2, "applied once");
}

#[tokio::test]
async fn inside_the_region_a_lost_commit_is_retried_without_a_second_effect() {
    // The default retry policy: the region retries the unknown commit
    // itself, and the retry must notice the first attempt's effect.
    let (f, faults) = faulty(None).await;
    let (token, owner) = f.session("us").await;
    let owner: topology::ShardedId = owner.parse().expect("owner");
    for key in [None, Some("k-1")] {
        faults.unknown_after_apply(1);
        let r = create_cart(&f, &token, key).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    assert_eq!(faults.injected(), 2);
    let carts = f
        .region
        .commerce
        .carts_of(&owner, 1000)
        .await
        .expect("carts");
    assert_eq!(carts.len(), 2, "one cart per request");
}
