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

/// An import holds tens of MiB while it runs: a region runs
/// `MAX_RUNNING_IMPORTS` at once and refuses another with 503 and
/// `Retry-After` before reading any of it; once one ends, the next runs.
#[tokio::test]
async fn imports_beyond_the_running_bound_are_refused_until_one_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.category("test").await;
    let addr = fx.base.trim_start_matches("http://").to_owned();
    let chunk = commerce::import::CHUNK_LINES;
    // Each held import sends one chunk's lines and keeps its body open;
    // the chunk's commit shows the import is running.
    let mut held = Vec::new();
    for k in 0..commerce::import::MAX_RUNNING_IMPORTS {
        let lines = ndjson(k * chunk, (k + 1) * chunk);
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/admin/imports/held-{k} HTTP/1.1\r\nhost: {addr}\r\n\
             authorization: Bearer {}\r\ncontent-type: application/x-ndjson\r\n\
             transfer-encoding: chunked\r\n\r\n{:x}\r\n{lines}\r\n",
            fx.admin_token,
            lines.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        let path = format!("/v1/admin/imports/held-{k}");
        let mut polls = 0;
        loop {
            let r = fx
                .admin(Method::GET, &path, None)
                .send()
                .await
                .expect("send");
            if r.status() == StatusCode::OK {
                let status: Value = r.json().await.expect("json");
                if status["cursor"] == chunk {
                    break;
                }
            }
            polls += 1;
            assert!(polls < 3_000, "import {k} never committed its first chunk");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        held.push(stream);
    }
    let r = post(&fx, "/v1/admin/imports/refused", ndjson(0, 1))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    let r = fx
        .admin(Method::GET, "/v1/admin/imports/refused", None)
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::NOT_FOUND).await;
    // One held import ends: its answer comes after its permit is back.
    let mut first = held.remove(0);
    first.write_all(b"0\r\n\r\n").await.expect("end the body");
    let mut answer = Vec::new();
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0u8; 1024];
        let n = first.read(&mut buf).await.expect("read");
        assert!(n > 0, "the connection closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let r = post(&fx, "/v1/admin/imports/refused", ndjson(0, 1))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    drop(held);
}

/// A chunk's commit whose outcome was lost answers 504 `maybe-applied`
/// with the cursor to resend from (not an Idempotency-Key's retry); the
/// resend takes the stock in once.
#[tokio::test]
async fn an_import_whose_commit_was_lost_answers_504_and_resumes_from_its_cursor() {
    let faults = db::Faults::new();
    let fx = Fixture::start_with(Options {
        workers: false,
        faults: Some((faults.clone(), Some(0))),
        ..Default::default()
    })
    .await;
    fx.category("test").await;
    let n = 10;
    // The first commit (a warehouse's stock) applied, its answer lost.
    faults.unknown_after_apply(1);
    let r = post(&fx, "/v1/admin/imports/lost-1", ndjson(0, n))
        .send()
        .await
        .expect("send");
    let body = problem(r, StatusCode::GATEWAY_TIMEOUT).await;
    assert_eq!(body["type"], "urn:meridian:problem:maybe-applied", "{body}");
    assert_eq!(faults.injected(), 1);
    let cursor = body["cursor"].as_u64().expect("cursor");
    assert!(
        body["detail"].as_str().is_some_and(
            |d| d.contains("resend the lines from `cursor`") && !d.contains("Idempotency-Key")
        ),
        "{body}"
    );
    let cursor_usize = usize::try_from(cursor).expect("cursor");
    let r = post(
        &fx,
        &format!("/v1/admin/imports/lost-1?offset={cursor}"),
        ndjson(cursor_usize, n),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["status"]["cursor"], n);
    assert_eq!(report["status"]["stock_units"], 5 * n);
    let level = fx
        .region
        .commerce
        .stock(&shard("eu"), "BULK-00000")
        .await
        .expect("stock");
    assert_eq!(
        level.received, 5,
        "the lost stock commit was taken in twice"
    );
}
