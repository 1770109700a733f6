//! The checker and the API end to end: real HTTP regions on 127.0.0.1 whose
//! `/readyz` the test turns on and off, probed by `HttpProber`, the table
//! read back over the routing API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use routing::api::ApiState;
use routing::checker::{Checker, HttpProber};
use routing::health::HealthPolicy;
use routing::table::RegionTable;
use topology::routing::{Health, RoutingTable};

use crate::{endpoints, local_topology};

const TOKEN: &str = "test-admin-token";
const SECONDARY: &str = "test-admin-token-next";

/// A region's `/readyz`, switchable.
struct FakeRegion {
    ready: Arc<AtomicBool>,
    base: String,
}

async fn fake_region() -> FakeRegion {
    let ready = Arc::new(AtomicBool::new(true));
    let base = crate::readyz_server(ready.clone()).await;
    FakeRegion { ready, base }
}

struct Stack {
    regions: Vec<FakeRegion>,
    /// One edge POP, probed on its health route.
    pop: FakeRegion,
    api: String,
    client: reqwest::Client,
    _checker: Checker,
}

async fn stack() -> Stack {
    let mut regions = Vec::new();
    for _ in 0..3 {
        regions.push(fake_region().await);
    }
    let urls: Vec<(&str, String)> = ["us-east", "eu-west", "ap-southeast"]
        .iter()
        .zip(&regions)
        .map(|(n, r)| (*n, r.base.clone()))
        .collect();
    let policy = HealthPolicy {
        interval_ms: 20,
        timeout_ms: 200,
        fall: 3,
        rise: 2,
        ..HealthPolicy::default()
    };
    let pop = fake_region().await;
    let table = RegionTable::new(&local_topology(), endpoints(&urls), policy)
        .unwrap()
        .with_pops(vec![routing::table::PopEndpoint {
            endpoint: routing::table::RegionEndpoint {
                name: "dub".parse().unwrap(),
                base_url: pop.base.clone(),
                readyz_url: format!("{}/readyz", pop.base),
                addresses: vec!["127.0.2.1".parse().unwrap()],
                baseline_ms: 0.0,
            },
            latitude: 53.35,
            longitude: -6.26,
        }])
        .unwrap();
    let checker = Checker::spawn(table.clone(), Arc::new(HttpProber::new().unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let state = ApiState {
        table,
        admin_token: Some(TOKEN.into()),
        admin_token_secondary: Some(SECONDARY.into()),
        drills: routing::drills::Drills::default(),
    };
    tokio::spawn(routing::api::run(listener, state, std::future::pending()));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    Stack {
        regions,
        pop,
        api,
        client,
        _checker: checker,
    }
}

impl Stack {
    async fn table(&self) -> RoutingTable {
        self.client
            .get(format!("{}/v1/table", self.api))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Follows the table's long poll until `done` holds.
    async fn wait_until(&self, done: impl Fn(&RoutingTable) -> bool) -> RoutingTable {
        routing::client::table_when(&self.client, &self.api, 50, done)
            .await
            .unwrap()
    }
}

/// Every region and the POP healthy: the table is settled, so its version
/// moves only on what the test does next.
fn all_healthy(table: &RoutingTable) -> bool {
    table.regions.iter().all(|r| r.health == Health::Healthy)
        && table.pops.iter().all(|p| p.health == Health::Healthy)
}

fn active(table: &RoutingTable, shard: &str) -> Option<String> {
    table
        .shard(&shard.parse().unwrap())?
        .active
        .as_ref()
        .map(|r| r.as_str().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_region_fails_over_and_recovers() {
    let s = stack().await;
    s.wait_until(all_healthy).await;
    assert_eq!(active(&s.table().await, "us").as_deref(), Some("us-east"));

    s.regions[0].ready.store(false, Ordering::SeqCst);
    let table = s
        .wait_until(|t| active(t, "us").as_deref() == Some("eu-west"))
        .await;
    assert_eq!(
        table.region(&"us-east".parse().unwrap()).unwrap().health,
        Health::Down
    );
    // How fast is the health policy's business (fall × interval, tested
    // on its counters in health.rs), never a clock in a test.

    s.regions[0].ready.store(true, Ordering::SeqCst);
    s.wait_until(|t| active(t, "us").as_deref() == Some("us-east"))
        .await;

    let events: serde_json::Value = s
        .client
        .get(format!("{}/v1/events", s.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let moved: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "shard_moved" && e["shard"] == "us")
        .collect();
    assert!(
        moved.len() >= 3,
        "timeline lacks the failover and failback: {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_needs_the_admin_token_and_moves_traffic() {
    let s = stack().await;
    s.wait_until(all_healthy).await;
    let url = format!("{}/v1/regions/eu-west/drain", s.api);

    let unauthorized = s.client.post(&url).send().await.unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        unauthorized.headers()["content-type"],
        "application/problem+json"
    );
    let forged = s
        .client
        .post(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        active(&s.table().await, "eu").as_deref(),
        Some("eu-west"),
        "a refused drain changed nothing"
    );

    let drained: RoutingTable = s
        .client
        .post(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        drained.region(&"eu-west".parse().unwrap()).unwrap().health,
        Health::Drained
    );
    assert_eq!(active(&drained, "eu").as_deref(), Some("us-east"));

    // The secondary token (a rotation's other value) is accepted too.
    let undrain = format!("{}/v1/regions/eu-west/undrain", s.api);
    let back: RoutingTable = s
        .client
        .post(&undrain)
        .bearer_auth(SECONDARY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(active(&back, "eu").as_deref(), Some("eu-west"));

    let unknown = s
        .client
        .post(format!("{}/v1/regions/mars/drain", s.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let bad = s
        .client
        .post(format!("{}/v1/regions/Not_A_Region/drain", s.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let problem: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(problem["status"], 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_at_its_timeout_and_rejects_bad_queries() {
    let s = stack().await;
    let table = s.wait_until(all_healthy).await;
    let started = Instant::now();
    let same: RoutingTable = s
        .client
        .get(format!(
            "{}/v1/table/watch?since={}&timeout_ms=200",
            s.api, table.version
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(same.version, table.version);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let bad = s
        .client
        .get(format!("{}/v1/table/watch?since=abc", s.api))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
}

/// The value of the sample `name{labels…}` in Prometheus text (every
/// given label present).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter(|line| line[name.len()..].starts_with(['{', ' ']))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_region_health_and_count_probes() {
    let s = stack().await;
    s.wait_until(all_healthy).await;
    let metrics = || async {
        s.client
            .get(format!("{}/metrics", s.api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let body = metrics().await;
    let health = |body: &str| {
        sample(
            body,
            "routing_region_health",
            &[("region", "eu-west"), ("service", "routing")],
        )
    };
    assert_eq!(health(&body), Some(0.0), "{body}");
    let probes = sample(
        &body,
        "routing_probes_total",
        &[("region", "eu-west"), ("outcome", "ready")],
    )
    .unwrap_or_default();
    assert!(probes >= 2.0, "{body}");
    // eu-west goes down: the gauge says so (2 = down), and failed probes
    // are counted.
    s.regions[1].ready.store(false, Ordering::SeqCst);
    s.wait_until(|t| {
        t.regions
            .iter()
            .any(|r| r.name.as_str() == "eu-west" && r.health == Health::Down)
    })
    .await;
    let body = metrics().await;
    assert_eq!(health(&body), Some(2.0), "{body}");
    assert!(
        sample(
            &body,
            "routing_probes_total",
            &[("region", "eu-west"), ("outcome", "failed")],
        )
        .unwrap_or_default()
            >= 3.0,
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_meridian_problem_json_a_wrong_method_included() {
    let s = stack().await;
    for (method, path, status, kind) in [
        (reqwest::Method::PUT, "/v1/table", 405, "method-not-allowed"),
        (
            reqwest::Method::DELETE,
            "/v1/events",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::GET,
            "/v1/regions/us-east/drain",
            405,
            "method-not-allowed",
        ),
        (reqwest::Method::GET, "/v1/nope", 404, "not-found"),
        (
            reqwest::Method::POST,
            "/v1/regions/us-east/drain",
            401,
            "unauthorized",
        ),
        (
            reqwest::Method::GET,
            "/v1/events?limit=x",
            400,
            "bad-request",
        ),
        (reqwest::Method::POST, "/v1/drills", 401, "unauthorized"),
        (
            reqwest::Method::DELETE,
            "/v1/drills",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::GET,
            "/v1/drills/nope",
            404,
            "unknown-drill",
        ),
        (
            reqwest::Method::GET,
            "/v1/drills/nope/report.html",
            404,
            "unknown-drill",
        ),
        (
            reqwest::Method::GET,
            "/v1/drills/nope/updates",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::POST,
            "/dashboard",
            405,
            "method-not-allowed",
        ),
        (reqwest::Method::GET, "/dashboard/nope.js", 404, "not-found"),
    ] {
        let response = s
            .client
            .request(method.clone(), format!("{}{path}", s.api))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        if status == 405 {
            assert!(response.headers().contains_key("allow"), "{method} {path}");
        }
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status, "{method} {path}");
        assert_eq!(
            problem["type"],
            format!("urn:meridian:problem:{kind}"),
            "{method} {path}"
        );
    }
}

/// The SRE dashboard is served beside the API it reads: `/` leads to it,
/// the page is under a policy that runs only its own script, and every
/// script and style sheet it links is served with its type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_its_assets() {
    let s = stack().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(format!("{}/", s.api)).send().await.unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], routing::dashboard::PATH);
    let page = client
        .get(format!("{}{}", s.api, routing::dashboard::PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        page.headers()["content-security-policy"],
        routing::dashboard::CONTENT_SECURITY_POLICY
    );
    let html = page.text().await.unwrap();
    // The page charts the drills' all-POPs seconds by the server's name.
    assert!(!html.contains("{{"), "every placeholder filled");
    assert!(
        html.contains(&format!("data-all-pops=\"{}\"", routing::drills::ALL_POPS)),
        "{html}"
    );
    let linked: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/dashboard/"))
        .collect();
    assert_eq!(linked.len(), 2, "{linked:?}");
    for path in linked {
        let asset = client.get(format!("{}{path}", s.api)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let kind = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(asset.headers()["content-type"], kind, "{path}");
        assert!(!asset.text().await.unwrap().is_empty(), "{path}");
    }
}

/// A POP is probed like a region: healthy once it answers, down when it
/// stops, healthy again when it is back, each change in the timeline; the
/// regions and shards are untouched by it.
#[tokio::test]
async fn pops_are_probed_into_the_table() {
    let s = stack().await;
    let pop_health = |t: &RoutingTable| t.pops.first().map(|p| p.health);
    s.wait_until(|t| pop_health(t) == Some(Health::Healthy))
        .await;
    s.pop.ready.store(false, Ordering::SeqCst);
    let down = s.wait_until(|t| pop_health(t) == Some(Health::Down)).await;
    assert_eq!(
        down.pops[0].addresses,
        ["127.0.2.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(active(&down, "us").as_deref(), Some("us-east"));
    s.pop.ready.store(true, Ordering::SeqCst);
    s.wait_until(|t| pop_health(t) == Some(Health::Healthy))
        .await;
    let events: serde_json::Value = s
        .client
        .get(format!("{}/v1/events", s.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pop_events: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "pop_health")
        .collect();
    assert!(
        pop_events
            .iter()
            .any(|e| e["pop"] == "dub" && e["to"] == "down"),
        "{events}"
    );
}

/// A drill as the routing layer keeps it: started, updated and finished
/// with the admin token only (bad bodies refused as problems), followed by
/// long poll, listed, its reports served (the HTML under a policy that runs
/// no script).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_is_posted_with_the_token_followed_and_reported() {
    use routing::drills::{
        DrillFinish, DrillMoment, DrillSecond, DrillStart, DrillState, DrillUpdate,
    };
    let s = stack().await;
    let start = DrillStart {
        scenario: "region-outage".into(),
        region: "eu-west".parse().unwrap(),
        hypothesis: "nothing is lost".into(),
        duration_s: 30,
        fault_at_s: 8,
        fault_for_s: 10,
    };
    let refused = routing::client::drill_start(&s.client, &s.api, "wrong", &start).await;
    assert!(format!("{:#}", refused.unwrap_err()).contains("401"));
    let drill = routing::client::drill_start(&s.client, &s.api, TOKEN, &start)
        .await
        .unwrap();
    assert_eq!(drill.state, DrillState::Running);

    // Someone follows it from its first version.
    let follower = {
        let (client, api, id) = (s.client.clone(), s.api.clone(), drill.id.clone());
        tokio::spawn(async move {
            routing::client::drill_watch(&client, &api, &id, drill.version, 30_000).await
        })
    };
    let update = DrillUpdate {
        timeline: vec![DrillMoment {
            at_ms: 8_000,
            what: "fault injected".into(),
        }],
        seconds: vec![DrillSecond {
            at_s: 8,
            pop: "dub".into(),
            requests: 60,
            errors: 1,
            p50_ms: 20.0,
            p99_ms: 300.0,
        }],
    };
    routing::client::drill_update(&s.client, &s.api, TOKEN, &drill.id, &update)
        .await
        .unwrap();
    let seen = follower.await.unwrap().unwrap();
    assert_eq!(seen.timeline, update.timeline);
    assert_eq!(seen.seconds, update.seconds);

    // Bad bodies are problems, not panics or partial writes.
    for (body, content_type, status) in [
        ("{", "application/json", 400),
        ("{\"timeline\": 3}", "application/json", 422),
        ("{}", "text/plain", 415),
    ] {
        let response = s
            .client
            .post(format!("{}/v1/drills/{}/updates", s.api, drill.id))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let too_big = s
        .client
        .post(format!("{}/v1/drills/{}/finish", s.api, drill.id))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; routing::api::MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status().as_u16(), 413);

    let report = s
        .client
        .get(format!("{}/v1/drills/{}/report.md", s.api, drill.id))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status().as_u16(), 404, "no report while it runs");
    routing::client::drill_finish(
        &s.client,
        &s.api,
        TOKEN,
        &drill.id,
        &DrillFinish {
            passed: true,
            markdown: "# Drill — PASSED".into(),
            html: "<!doctype html><h1>Drill</h1>".into(),
        },
    )
    .await
    .unwrap();
    let listed = routing::client::drills(&s.client, &s.api).await.unwrap();
    assert_eq!(listed[0].id, drill.id);
    assert_eq!(listed[0].state, DrillState::Passed);
    let html = s
        .client
        .get(format!("{}/v1/drills/{}/report.html", s.api, drill.id))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status().as_u16(), 200);
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        html.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert_eq!(html.text().await.unwrap(), "<!doctype html><h1>Drill</h1>");
    let again = routing::client::drill_update(&s.client, &s.api, TOKEN, &drill.id, &update).await;
    assert!(format!("{:#}", again.unwrap_err()).contains("409"));
}
