//! The API's surface: the OpenAPI document matches the real routes (and
//! openapi.rs checks real answers against it), health, readiness and
//! metrics answer.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::fixture::Fixture;

#[tokio::test]
async fn every_documented_route_exists_and_every_route_is_documented() {
    let fx = Fixture::start().await;
    let doc: Value = fx.openapi().await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let concrete = concrete(path);
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
    assert!(operations >= 24, "{operations} documented operations");
    // And every route the router serves is in the document: routes are
    // registered only through utoipa-axum's `routes!` (handler and
    // annotation at once), never with a bare `.route(..)`.
    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = 0;
    for entry in std::fs::read_dir(&api).expect("src/api") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        files += 1;
        assert!(
            !text.contains(".route(") && !text.contains(".route_service("),
            "{} routes something outside the OpenAPI document",
            path.display()
        );
    }
    assert!(files >= 9, "{files} files under src/api");
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
    // Ready once the search index has been built from the catalog (the
    // feed worker's first pass; here, this one).
    fx.region
        .commerce
        .apply_feed(0)
        .await
        .expect("the index built");
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
    // The two readiness probes above are counted, in this region's own
    // series.
    let readyz = |text: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("regional_http_requests_total{")
                    && l.contains("route=\"/readyz\"")
                    && l.contains("status=\"200\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(readyz(&metrics), Some(1.0), "{metrics}");
    // The request queue's length (what the HPA scales on): the scrape
    // itself is the one request in flight.
    let in_flight = metrics
        .lines()
        .find(|l| l.starts_with(&format!("{}{{", regional_server::metrics::IN_FLIGHT)))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(in_flight, Some(1.0), "{metrics}");
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("regional_"))
            .all(|l| l.contains("region=\"us-east\"") && l.contains("service=\"regional\"")),
        "{metrics}"
    );
    for _ in 0..3 {
        fx.client
            .get(format!("{}/readyz", fx.base))
            .send()
            .await
            .expect("send");
    }
    let metrics = fx
        .client
        .get(format!("{}/metrics", fx.base))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert_eq!(readyz(&metrics), Some(4.0), "{metrics}");
}

#[test]
fn the_environment_overrides_the_config_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../infra/local/regions/eu-west.toml");
    let plain = regional_server::config::load(&path, |_| None).expect("load");
    assert_eq!(plain.config.region.as_str(), "eu-west");
    let overridden = regional_server::config::load(&path, |name| match name {
        "MERIDIAN_REGION" => Some("ap-southeast".into()),
        "MERIDIAN_LISTEN" => Some("127.0.0.1:9999".into()),
        "MERIDIAN_EDGE_KEY" => Some("an-edge-key-from-the-environment".into()),
        "MERIDIAN_ADMIN_TOKEN" => Some("env-admin".into()),
        _ => None,
    })
    .expect("load");
    assert_eq!(overridden.config.region.as_str(), "ap-southeast");
    assert_eq!(overridden.config.listen.port(), 9999);
    assert_eq!(
        overridden.config.secrets.edge_key,
        "an-edge-key-from-the-environment"
    );
    assert_eq!(overridden.config.secrets.admin_token, "env-admin");
    // A short secret is refused, naming the setting.
    let err = regional_server::config::load(&path, |name| {
        (name == "MERIDIAN_SESSION_KEY").then(|| "short".into())
    })
    .expect_err("short key");
    assert!(
        format!("{err:#}").contains("secrets.session_key"),
        "{err:#}"
    );
    // So is an unknown region.
    let err = regional_server::config::load(&path, |name| {
        (name == "MERIDIAN_REGION").then(|| "mars".into())
    })
    .expect_err("unknown region");
    assert!(format!("{err:#}").contains("mars"), "{err:#}");
}

/// Every documented path asked with every method it does not take: 405,
/// problem+json, an `Allow` header naming the methods it does take, and
/// the answering region's name.
#[tokio::test]
async fn a_wrong_method_on_any_known_route_is_a_problem_json_405() {
    let fx = Fixture::start().await;
    let doc: Value = fx.openapi().await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = concrete(path);
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = if concrete.starts_with("/v1/admin") {
                fx.admin(method.clone(), &concrete, None).send().await
            } else {
                fx.signed(method.clone(), &concrete, None, None)
                    .send()
                    .await
            }
            .expect("send");
            let allow = response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Errors too name the region that answered.
            assert_eq!(
                response
                    .headers()
                    .get(regional_api::headers::REGION)
                    .and_then(|v| v.to_str().ok()),
                Some(fx.region.state.commerce.region().as_str()),
                "{method} {concrete}"
            );
            let body = crate::fixture::problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
            assert_eq!(
                body["type"], "urn:meridian:problem:method-not-allowed",
                "{method} {concrete}"
            );
            let allow = allow.unwrap_or_else(|| panic!("{method} {concrete}: no Allow header"));
            for documented in ["get", "post", "put", "delete"] {
                if item.get(documented).is_some() {
                    assert!(
                        allow.contains(&documented.to_uppercase()),
                        "{method} {concrete}: Allow {allow:?} lacks {documented}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} wrong methods tried");
}

/// Search work is bounded: with every admission taken, a search is
/// refused at once with 503 + Retry-After; freed, it runs.
#[tokio::test]
async fn searches_past_the_bound_are_refused_with_retry_after() {
    let fx = Fixture::start().await;
    let admitted = fx.region.state.searches.admitted.clone();
    let all = admitted.available_permits() as u32;
    let held = admitted.acquire_many(all).await.expect("permits");
    let r = fx
        .signed(Method::GET, "/v1/search?q=lamp", None, None)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    crate::fixture::problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    drop(held);
    let r = fx
        .signed(Method::GET, "/v1/search?q=lamp", None, None)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
}

/// The engine's watch bound is "come back shortly", not an internal error.
#[test]
fn too_many_watches_is_503_with_retry_after() {
    use axum::response::IntoResponse;
    let error = regional_server::problem::ApiError::from(commerce::CommerceError::Db(
        db::Error::TooManyWatches { limit: 1 },
    ));
    let response = error.into_response();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
}

/// A documented path with its parameters filled with well-formed values
/// nothing holds (an unknown SKU, cart, order, category; a known shard).
fn concrete(path: &str) -> String {
    path.replace("{sku}", "NOSUCH-1")
        .replace("{cart_id}", "us.01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .replace("{order_id}", "us.01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .replace("{review_id}", "us.01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .replace("{slug}", "nosuch")
        .replace("{warehouse}", "us")
        .replace("{shard}", "us")
        .replace("{version}", "1")
        .replace("{id}", "nosuch")
}
