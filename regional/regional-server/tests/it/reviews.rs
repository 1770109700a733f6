//! Reviews through the HTTP API: written with a session, acknowledged by
//! the shopper's shard, shown once the outbox worker projected them (the
//! purge feed names `reviews:<sku>` when it has), voted on, moderated,
//! and every refusal a problem+json.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fixture::{Fixture, problem};

async fn get_json(fx: &Fixture, path: &str) -> (StatusCode, Value) {
    let response = fx
        .signed(Method::GET, path, None, None)
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// Follows the purge feed (long polls) from `cursor` until `holds` is
/// true of what `path` answers, looking again after each event that names
/// `tag`; gives the cursor reached. The region's own outbox worker does
/// the projecting.
async fn until(
    fx: &Fixture,
    cursor: &str,
    tag: &str,
    path: &str,
    holds: impl Fn(&Value) -> bool,
) -> (String, Value) {
    let mut cursor = cursor.to_owned();
    for _ in 0..50 {
        let (_, now) = get_json(fx, path).await;
        if holds(&now) {
            return (cursor, now);
        }
        loop {
            let (status, page) = get_json(
                fx,
                &format!("/v1/purge?after={cursor}&limit=1000&wait_ms=5000"),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            cursor = page["cursor"].as_str().expect("cursor").to_owned();
            let named = page["events"].as_array().expect("events").iter().any(|e| {
                e["tags"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!(tag)))
            });
            if named {
                break;
            }
        }
    }
    panic!("{path} never became what was awaited");
}

async fn feed_tail(fx: &Fixture) -> String {
    let (_, page) = get_json(fx, "/v1/purge?limit=1000").await;
    page["cursor"].as_str().expect("cursor").to_owned()
}

fn review(rating: u8, title: &str) -> Value {
    json!({ "rating": rating, "title": title, "body": "Keeps tea hot.", "lang": "en-GB", "name": "Ada" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_is_written_projected_voted_on_and_moderated_through_the_api() {
    let fx = Fixture::start().await;
    fx.catalog(&[("MUG-1", "Blue mug", 1200)]).await;
    let tag = regional_api::purge::reviews_tag("MUG-1");
    let cursor = feed_tail(&fx).await;
    let (author, _) = fx.session("eu").await;
    let put = |token: String, body: Value, key: &'static str| {
        fx.signed(
            Method::PUT,
            "/v1/products/MUG-1/reviews/mine",
            Some(&body),
            Some(&token),
        )
        .header("idempotency-key", key)
        .send()
    };
    let first = put(author.clone(), review(5, "Lovely"), "w-1")
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("eu."), "{first}");
    assert_eq!(first["verified"], false);
    assert!(first.get("recent_ops").is_none(), "{first}");
    // Its author sees it at once, from their own shard.
    let mine = fx
        .signed(
            Method::GET,
            "/v1/products/MUG-1/reviews/mine",
            None,
            Some(&author),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), StatusCode::OK);
    // Everyone once the outbox worker has projected it.
    let (cursor, page) = until(&fx, &cursor, &tag, "/v1/products/MUG-1/reviews", |p| {
        p["reviews"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert_eq!(page["reviews"][0]["id"], json!(id));
    assert_eq!(page["reviews"][0]["name"], "Ada");
    assert!(page["reviews"][0].get("author").is_none(), "{page}");
    let (_, summary) = get_json(&fx, "/v1/products/MUG-1/reviews/summary").await;
    assert_eq!(summary["count"], 1);
    assert_eq!(summary["average"], 5.0);
    assert_eq!(summary["histogram"], json!([0, 0, 0, 0, 1]));

    // An edit (200), and its repeat with the same key (200, applied once).
    let edit = put(author.clone(), review(3, "Fine"), "w-2").await.unwrap();
    assert_eq!(edit.status(), StatusCode::OK);
    let edit: Value = edit.json().await.unwrap();
    assert_eq!(edit["revision"], 2);
    let repeat: Value = put(author.clone(), review(3, "Fine"), "w-2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(repeat["revision"], 2);

    // Helpful votes: once per shopper, never one's own.
    let (voter, _) = fx.session("us").await;
    let vote = |token: &str, id: &str| {
        fx.signed(
            Method::POST,
            &format!("/v1/reviews/{id}/helpful"),
            None,
            Some(token),
        )
        .send()
    };
    for _ in 0..2 {
        let voted = vote(&voter, &id).await.unwrap();
        assert_eq!(voted.status(), StatusCode::OK);
        assert_eq!(voted.json::<Value>().await.unwrap()["voted"], true);
    }
    let own = problem(vote(&author, &id).await.unwrap(), StatusCode::CONFLICT).await;
    assert!(
        own["type"].as_str().unwrap().ends_with(":own-review"),
        "{own}"
    );
    problem(
        vote(&voter, "eu.01ARZ3NDEKTSV4RRFFQ69G5FAV").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let (cursor, page) = until(
        &fx,
        &cursor,
        &tag,
        "/v1/products/MUG-1/reviews?sort=helpful&limit=5",
        |p| p["reviews"][0]["helpful"] == 1 && p["reviews"][0]["rating"] == 3,
    )
    .await;
    assert_eq!(page["reviews"][0]["helpful"], 1, "{page}");
    assert_eq!(page["reviews"][0]["rating"], 3, "{page}");

    // Moderation: admin only; a hidden review leaves the list and summary.
    let hide = |hidden: bool| {
        fx.admin(
            Method::PUT,
            &format!("/v1/admin/reviews/{id}/visibility"),
            Some(&json!({ "hidden": hidden })),
        )
        .send()
    };
    let anonymous = fx
        .client
        .put(format!("{}/v1/admin/reviews/{id}/visibility", fx.base))
        .json(&json!({ "hidden": true }))
        .send()
        .await
        .unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let hidden: Value = hide(true).await.unwrap().json().await.unwrap();
    assert_eq!(hidden["hidden"], true);
    let (cursor, summary) = until(
        &fx,
        &cursor,
        &tag,
        "/v1/products/MUG-1/reviews/summary",
        |s| s["count"] == 0,
    )
    .await;
    assert_eq!(summary["average"], Value::Null);
    let (_, page) = get_json(&fx, "/v1/products/MUG-1/reviews").await;
    assert_eq!(page["reviews"], json!([]));
    problem(vote(&voter, &id).await.unwrap(), StatusCode::NOT_FOUND).await;
    hide(false).await.unwrap();
    until(
        &fx,
        &cursor,
        &tag,
        "/v1/products/MUG-1/reviews/summary",
        |s| s["count"] == 1,
    )
    .await;
    let audit = fx.region.commerce.audit_reviews("MUG-1").await.unwrap();
    assert!(audit.holds(), "{audit:?}");
}

#[tokio::test]
async fn bad_review_requests_get_problems() {
    let fx = Fixture::start().await;
    fx.catalog(&[("MUG-1", "Blue mug", 1200)]).await;
    let (token, _) = fx.session("us").await;
    let put = |path: &str, body: Value, session: Option<&str>| {
        fx.signed(Method::PUT, path, Some(&body), session).send()
    };
    let path = "/v1/products/MUG-1/reviews/mine";
    for (body, status) in [
        (review(0, "x"), StatusCode::UNPROCESSABLE_ENTITY),
        (review(6, "x"), StatusCode::UNPROCESSABLE_ENTITY),
        (review(3, ""), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "rating": 3, "title": "t", "body": "b", "lang": "english" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "rating": 3, "title": "t", "body": "x".repeat(4_001), "lang": "en" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "rating": 3, "title": "t", "body": "b", "lang": "en", "stars": 5 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "rating": 3 }), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let body_text = body.to_string();
        let response = put(path, body, Some(&token)).await.unwrap();
        assert_eq!(response.status(), status, "{body_text:.80}");
        problem(response, status).await;
    }
    // No session; a product that does not exist; a malformed SKU.
    problem(
        put(path, review(3, "t"), None).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unknown = problem(
        put(
            "/v1/products/NOPE-1/reviews/mine",
            review(3, "t"),
            Some(&token),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(unknown["type"].as_str().unwrap().ends_with("unknown-sku"));
    let (status, _) = get_json(&fx, "/v1/products/bad%20sku/reviews").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for query in ["limit=0", "limit=51", "sort=best", "after=zz", "after=abc"] {
        let (status, body) = get_json(&fx, &format!("/v1/products/MUG-1/reviews?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
    }
    // A cursor no page gave is a position, not an error.
    let (status, page) = get_json(&fx, "/v1/products/MUG-1/reviews?after=ffff").await;
    assert_eq!(
        (status, page["reviews"].clone()),
        (StatusCode::OK, json!([]))
    );
    // A method the route does not take.
    let wrong = fx
        .signed(Method::POST, "/v1/products/MUG-1/reviews", None, None)
        .send()
        .await
        .unwrap();
    problem(wrong, StatusCode::METHOD_NOT_ALLOWED).await;
    let (status, _) = get_json(&fx, "/v1/products/MUG-1/reviews/mine").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
