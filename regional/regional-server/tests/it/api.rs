//! The API's surface: the OpenAPI document matches the real routes, health,
//! readiness and metrics answer.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::fixture::Fixture;

#[tokio::test]
async fn every_documented_route_exists_and_every_route_is_documented() {
    let fx = Fixture::start().await;
    let doc: Value = fx
        .client
        .get(format!("{}/v1/openapi.json", fx.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let concrete = path
                .replace("{sku}", "NOSUCH-1")
                .replace("{cart_id}", "us.01ARZ3NDEKTSV4RRFFQ69G5FAV")
                .replace("{order_id}", "us.01ARZ3NDEKTSV4RRFFQ69G5FAV")
                .replace("{slug}", "nosuch")
                .replace("{warehouse}", "us");
            assert!(!concrete.contains('{'), "unfilled parameter in {concrete}");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = if concrete.starts_with("/v1/admin") {
                fx.admin(method.clone(), &concrete, None).send().await
            } else {
                fx.signed(method.clone(), &concrete, None, None)
                    .send()
                    .await
            }
            .expect("send");
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete} is documented but not routed"
            );
            assert!(
                !body.contains("no such route"),
                "{method} {concrete} is documented but not routed: {body}"
            );
        }
    }
    // Every route the router serves is in the document (the count is the
    // routes! list of api.rs plus the two added by hand).
    assert_eq!(
        operations,
        24,
        "documented operations: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    // And an undocumented path is a problem+json 404.
    let response = fx
        .client
        .get(format!("{}/v1/nope", fx.base))
        .send()
        .await
        .expect("send");
    crate::fixture::problem(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let fx = Fixture::start().await;
    let health = fx
        .client
        .get(format!("{}/healthz", fx.base))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status(), StatusCode::OK);
    let ready = fx
        .client
        .get(format!("{}/readyz", fx.base))
        .send()
        .await
        .expect("send");
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    let metrics = fx
        .client
        .get(format!("{}/metrics", fx.base))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("regional_http_requests_total"),
        "{metrics}"
    );
}
