//! Recommendations across the whole topology: the demo's order history
//! seeded by the platform, `meridian recommend` run as an operator runs it
//! (its own process, `meridian-recommend`, finding the regions in the
//! routing table and going through their admin API), the planted "bought
//! together" pairs and the regions' popular products read through the
//! POPs; the schedule `up` runs publishing the next set and stopping with
//! its owner; a second job refused while one holds the lease; and the job
//! API's answers to bad input.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{ADMIN, call, cli, client, local_platform_with, until_healthy};

const PRODUCTS: usize = 60;
const ORDER_LINES: usize = 12_000;

/// `meridian-recommend`, built beside `meridian-e2e` (the recommend
/// crate's command: `cargo test` builds it with that crate's tests).
fn recommend_command() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_BIN_EXE_meridian-e2e")).with_file_name("meridian-recommend");
    assert!(
        path.is_file(),
        "{} is missing: run the workspace's tests (`cargo test`), which build it",
        path.display()
    );
    path
}

async fn admin(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, _, body) = call(request).await;
    (status, body)
}

/// `meridian recommend` against the platform, exporting into `export`:
/// whether it succeeded, its stdout and its stderr.
async fn recommend_cli(routing: &str, export: &std::path::Path) -> (bool, String, String) {
    cli(&[
        "recommend",
        "--routing",
        routing,
        "--token",
        ADMIN,
        "--dir",
        &export.display().to_string(),
    ])
    .await
}

async fn current_version(client: &reqwest::Client, region: &str) -> Option<u64> {
    let (status, body) = admin(
        client,
        reqwest::Method::GET,
        format!("{region}/v1/admin/recommendations"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["current"]["version"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_publishes_what_was_planted_and_every_pop_serves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = local_platform_with(&dir, PRODUCTS, |loaded| {
        loaded.seed.order_lines = ORDER_LINES;
    })
    .await;
    let routing = platform.routing_api.expect("routing API");
    until_healthy(routing).await;
    let routing_url = format!("http://{routing}");
    let client = client();
    let region = |name: &str| {
        let (_, addr, _) = platform
            .regions
            .iter()
            .find(|(n, _, _)| n.as_str() == name)
            .expect("the region");
        format!("http://{addr}")
    };
    let us = region("us-east");

    // The job API: admin only, bad input refused in problem+json. (Every
    // region here may serve the catalog shard, as its home or a standby:
    // none answers 421.)
    let (status, _, _) = call(client.get(format!("{us}/v1/admin/recommendations"))).await;
    assert_eq!(status, 401);
    let (status, body) = admin(
        &client,
        reqwest::Method::GET,
        format!("{us}/v1/admin/recommendations"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["catalog_shard"], "us");
    assert_eq!(body["current"], Value::Null);
    let begin = |job: &str, lease_ms: u64| Some(json!({ "job": job, "lease_ms": lease_ms }));
    for (base, body, expected, kind) in [
        (&us, begin("no spaces", 60_000), 422, "invalid"),
        (&us, begin("a-job", 0), 422, "invalid"),
        (&us, begin("a-job", 3_600_001), 422, "invalid"),
        (&us, Some(json!({ "job": "a-job" })), 422, ""),
    ] {
        let (status, problem) = admin(
            &client,
            reqwest::Method::POST,
            format!("{base}/v1/admin/recommendations/sets"),
            body.clone(),
        )
        .await;
        assert_eq!(status, expected, "{body:?}: {problem}");
        assert!(
            problem["type"].as_str().is_some_and(|t| t.ends_with(kind)),
            "{problem}"
        );
    }
    let page = json!({ "job": "a-job", "together": [{ "sku": "SKU-1", "items": [] }] });
    let (status, problem) = admin(
        &client,
        reqwest::Method::PUT,
        format!("{us}/v1/admin/recommendations/sets/1/page"),
        Some(page),
    )
    .await;
    assert_eq!(status, 409, "no set begun: {problem}");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("set-not-writable")),
        "{problem}"
    );
    for (query, expected) in [
        ("eu?limit=0", 422),
        ("eu?after=zz", 422),
        ("eu?after=ffffffff", 200),
        ("nowhere", 404),
        ("eu?limit=5", 200),
    ] {
        let (status, body) = admin(
            &client,
            reqwest::Method::GET,
            format!("{us}/v1/admin/sales/{query}"),
            None,
        )
        .await;
        assert_eq!(status, expected, "{query}: {body}");
    }

    // The history the platform seeded, regenerated from the same catalog
    // and seed (its planted pairs are what the set should find).
    let mut items = Vec::new();
    platform
        .operator
        .for_each_product(1_000, |products| {
            items.extend(products.into_iter().map(|p| commerce::history::Item {
                sku: p.sku,
                category: p.category,
            }));
            Ok(())
        })
        .await
        .expect("the catalog");
    let history = commerce::history::generate(
        &items,
        &platform.operator.warehouses(),
        ORDER_LINES,
        42,
        platform.operator.now_ms(),
    );

    // `meridian recommend`, as an operator runs it.
    let export = dir.path().join("export");
    let (ok, stdout, stderr) = recommend_cli(&routing_url, &export).await;
    assert!(ok, "meridian recommend: {stderr}");
    assert!(
        stdout.contains(&format!(
            "published recommendation set 1: {} order lines",
            history.line_count()
        )),
        "{stdout}"
    );

    // Through a POP: each product's planted partner is what the set
    // recommends first for nearly every product.
    let pop = format!("http://{}", platform.pops[0].1);
    let mut first = 0;
    for item in &items {
        let (status, _, body) = call(client.get(format!(
            "{pop}/v1/products/{}/recommendations?limit=3",
            item.sku
        )))
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["set"]["version"], 1, "{body}");
        let partner = &history.partners[&item.sku];
        if body["items"][0]["sku"] == partner.as_str() {
            first += 1;
        }
    }
    assert!(
        first * 10 >= items.len() * 9,
        "the planted partner first for {first} of {} products",
        items.len()
    );
    // Each region's popular products, at each POP.
    for (name, addr) in &platform.pops {
        let (status, _, body) = call(client.get(format!("http://{addr}/v1/popular?limit=5"))).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(5),
            "{name}: {body}"
        );
    }

    // The schedule `up` runs: its first run publishes the next set at
    // once; dropped, it stops the job's process.
    let schedule = meridian::recommend::Schedule::start(
        &meridian::config::RecommendConfig {
            every_s: 600,
            engine: "embedded".into(),
            dir: Some(dir.path().join("scheduled")),
        },
        &routing_url,
        ADMIN,
        Some(recommend_command()),
    )
    .expect("a schedule");
    let mut published = false;
    for _ in 0..600 {
        if current_version(&client, &us).await == Some(2) {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(published, "the schedule's first run published no set");
    let pid = schedule.pid().expect("the job's process");
    assert!(PathBuf::from(format!("/proc/{pid}")).exists());
    drop(schedule);
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "the schedule's process outlived it"
    );

    // While another job holds the lease, a run has nothing to do (a
    // region's CronJob finding another region's at work).
    let (status, body) = admin(
        &client,
        reqwest::Method::POST,
        format!("{us}/v1/admin/recommendations/sets"),
        begin("another-region", 60_000),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 3);
    let (ok, stdout, stderr) = recommend_cli(&routing_url, &export).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("nothing to do") && stdout.contains("another-region"),
        "{stdout}"
    );
    assert_eq!(current_version(&client, &us).await, Some(2));
}
