//! The bulk import route: NDJSON in, products with their stock and change
//! events out, searchable once the feed is applied; every failure a
//! problem+json naming where to resume.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fixture::{Fixture, Options, problem, shard};

fn ndjson(from: usize, to: usize) -> String {
    let mut body = String::new();
    for i in from..to {
        let line = json!({
            "sku": format!("BULK-{i:05}"),
            "title": format!("Bulk lantern {i}"),
            "category": "test",
            "price": { "amount_minor": 500 + i, "currency": "EUR" },
            "attributes": { "color": "amber" },
            "stock": { "eu": 5 },
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    body
}

fn post(fx: &Fixture, path: &str, body: String) -> reqwest::RequestBuilder {
    fx.admin(Method::POST, path, None)
        .header("content-type", "application/x-ndjson")
        .body(body)
}

#[tokio::test]
async fn products_imported_over_http_are_stocked_and_searchable() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.category("test").await;
    let n = 1_200;
    let r = post(&fx, "/v1/admin/imports/bulk-1", ndjson(0, n))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["committed"], n);
    assert_eq!(report["status"]["cursor"], n);
    assert_eq!(report["status"]["stock_units"], 5 * n);
    let r = fx
        .admin(Method::GET, "/v1/admin/imports/bulk-1", None)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let status: Value = r.json().await.expect("json");
    assert_eq!(status, report["status"]);
    // Resent whole: nothing is written twice.
    let r = post(&fx, "/v1/admin/imports/bulk-1", ndjson(0, n))
        .send()
        .await
        .expect("send");
    let again: Value = r.json().await.expect("json");
    assert_eq!(
        (&again["skipped"], &again["committed"]),
        (&json!(n), &json!(0))
    );
    let level = fx
        .region
        .commerce
        .stock(&shard("eu"), "BULK-01199")
        .await
        .expect("stock");
    assert_eq!(level.received, 5);
    fx.catch_up().await;
    let r = fx
        .signed(Method::GET, "/v1/search?q=lantern&limit=1", None, None)
        .send()
        .await
        .expect("send");
    let hits: Value = r.json().await.expect("json");
    assert_eq!(hits["total"], n, "{hits}");
    let r = fx
        .signed(Method::GET, "/v1/products/BULK-00042", None, None)
        .send()
        .await
        .expect("send");
    let product: Value = r.json().await.expect("json");
    assert_eq!(product["title"], "Bulk lantern 42");
}

#[tokio::test]
async fn a_failed_import_answers_problem_json_with_where_to_resume() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.category("test").await;
    // A bad line: the lines before it are committed.
    let mut body = ndjson(0, 10);
    body.push_str("{\"sku\":\"BULK-X\",\"title\":\"x\"}\n");
    body.push_str(&ndjson(11, 20));
    let r = post(&fx, "/v1/admin/imports/bulk-2", body)
        .send()
        .await
        .expect("send");
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!((&p["line"], &p["cursor"]), (&json!(10), &json!(10)), "{p}");
    assert!(
        p["detail"].as_str().expect("detail").contains("line 10"),
        "{p}"
    );
    // Past the cursor: a gap.
    let r = post(&fx, "/v1/admin/imports/bulk-2?offset=11", ndjson(11, 20))
        .send()
        .await
        .expect("send");
    let p = problem(r, StatusCode::CONFLICT).await;
    assert_eq!(p["type"], "urn:meridian:problem:import-gap");
    assert_eq!(p["cursor"], 10);
    // From the cursor: the rest.
    let r = post(&fx, "/v1/admin/imports/bulk-2?offset=10", ndjson(10, 20))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    // Another media type, a malformed id or offset, no token, no import.
    let r = fx
        .admin(Method::POST, "/v1/admin/imports/bulk-3", Some(&json!({})))
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let r = post(&fx, "/v1/admin/imports/bad%20id", ndjson(0, 1))
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = post(&fx, "/v1/admin/imports/bulk-3?offset=-1", ndjson(0, 1))
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = fx
        .client
        .post(format!("{}/v1/admin/imports/bulk-3", fx.base))
        .header("content-type", "application/x-ndjson")
        .body(ndjson(0, 1))
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNAUTHORIZED).await;
    let r = fx
        .admin(Method::GET, "/v1/admin/imports/never", None)
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::NOT_FOUND).await;
}
