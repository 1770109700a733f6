//! The storefront and the SRE dashboard in a real browser: the local
//! platform started in-process, Debian's Chromium driven by playwright-core
//! (`tests/e2e/browser/`, installed by `cargo xtask test`), the storefront
//! reached at its name through one POP or another, the dashboard at the
//! routing API. The browser scripts ask for what only the platform can do
//! (run a drill, kill a region, make the bank decline) with `STEP` lines
//! and report first-contentful-paint and bytes per page with `METRIC`
//! lines; screenshots of a failure are kept under this test's output
//! folder (`CARGO_TARGET_TMPDIR/browser/`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support;

/// The browser scripts' folder (its node_modules from `npm ci`).
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Chromium, as Debian installs it.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A product with one unit in stock, in the warehouse of Dublin's shard.
const LAST_UNIT: &str = "LAST-UNIT-1";

/// What a browser script run reported.
#[derive(Default)]
struct Run {
    passed: Vec<String>,
    failed: Vec<String>,
    metrics: Vec<serde_json::Value>,
}

/// Runs `script` under node with `env`, answering its `STEP` lines with
/// `step` (bounded: the script's own waits end it, and the run is killed
/// after `limit`).
async fn run_script(
    script: &str,
    env: &[(&str, String)],
    platform: &mut meridian::platform::Platform,
    limit: std::time::Duration,
) -> Run {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules: `cargo xtask test` installs them (npm ci)",
        dir.display()
    );
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: `cargo xtask test` installs Debian's chromium"
    );
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("MERIDIAN_CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs (node 20 and npm are part of the set-up)");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    // The script's lines, read off the runtime (a bounded channel: the
    // reader waits while the test acts on a step).
    let (lines, mut incoming) = tokio::sync::mpsc::channel::<String>(16);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut run = Run::default();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let line = match tokio::time::timeout_at(deadline, incoming.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(_) => {
                let _ = child.kill();
                panic!("the browser script ran past {limit:?}; killed");
            }
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["STEP", "kill", region] => {
                let region: topology::RegionId = region.parse().expect("a region name");
                platform
                    .kill_region(&region)
                    .await
                    .expect("kill the region");
                writeln!(stdin, "ok").expect("answer the script");
            }
            ["STEP", "drill", region] => {
                // Answered first: the page follows the drill while it runs.
                writeln!(stdin, "ok").expect("answer the script");
                let outcome = meridian::drill::run(
                    platform,
                    meridian::drill::DrillOptions {
                        scenario: meridian::drill::Scenario::RegionOutage,
                        region: region.parse().expect("a region name"),
                        duration: std::time::Duration::from_secs(8),
                        fault_at: std::time::Duration::from_secs(2),
                        fault_for: std::time::Duration::from_secs(3),
                        rate: 20.0,
                        shoppers: 6,
                        seed: 7,
                        cluster_recovery: std::time::Duration::ZERO,
                        catalog_changes: 0,
                    },
                    None,
                )
                .await
                .expect("the drill runs");
                assert!(
                    outcome.passed(),
                    "{}",
                    meridian::drill::report::markdown(&outcome)
                );
            }
            ["STEP", "recommend"] => {
                // The job, as an operator runs it: `meridian recommend`
                // (its own process) against this platform's routing table.
                let routing = platform.routing_api.expect("routing API");
                let export = tempfile::tempdir().expect("tempdir");
                let (ok, stdout, stderr) = support::cli(&[
                    "recommend",
                    "--routing",
                    &format!("http://{routing}"),
                    "--token",
                    support::ADMIN,
                    "--dir",
                    &export.path().display().to_string(),
                ])
                .await;
                assert!(ok, "meridian recommend: {stderr}");
                assert!(stdout.contains("published recommendation set"), "{stdout}");
                writeln!(stdin, "ok").expect("answer the script");
            }
            ["STEP", "reviews", sku, n] => {
                // Every region's copy counts `n` reviews of `sku`: woken by
                // the catalog feed (which every projected review extends),
                // bounded.
                let n: u64 = n.parse().expect("a count");
                let mut cursor = commerce::feed::Cursor::START;
                let mut projected = false;
                for _ in 0..40 {
                    let mut counts = Vec::new();
                    for (_, _, region) in &platform.regions {
                        counts.push(
                            region
                                .commerce
                                .review_summary(sku, 0)
                                .await
                                .map_or(0, |s| s.count),
                        );
                    }
                    if counts.iter().all(|c| *c >= n) {
                        projected = true;
                        break;
                    }
                    let page = platform
                        .operator
                        .read_feed(cursor, 1_000, 2_000)
                        .await
                        .expect("the catalog feed");
                    cursor = commerce::feed::Cursor::parse(&page.cursor).expect("a cursor");
                }
                assert!(projected, "{n} reviews of {sku} never reached every region");
                writeln!(stdin, "ok").expect("answer the script");
            }
            ["STEP", "decline", n] => {
                platform
                    .payments
                    .decline_authorizations(n.parse().expect("a count"));
                writeln!(stdin, "ok").expect("answer the script");
            }
            ["STEP", ..] => {
                writeln!(stdin, "unknown step").expect("answer the script");
            }
            ["METRIC", ..] => run
                .metrics
                .push(serde_json::from_str(line.trim_start_matches("METRIC ")).expect("a metric")),
            ["PASS", name] => run.passed.push((*name).to_owned()),
            ["FAIL", name] => run.failed.push((*name).to_owned()),
            _ => eprintln!("browser: {line}"),
        }
    }
    let status = child.wait().expect("node exits");
    reader.join().expect("the reader");
    assert!(status.success() || !run.failed.is_empty(), "node: {status}");
    run
}

/// The dashboard and every storefront journey, on one platform (one
/// browser at a time: the machine has two cores). The dashboard: drain and
/// undrain behind the admin token, and a region outage drill followed live
/// (the region goes down and comes back, the drill passes, its report
/// opens). The storefront: a keyboard-only purchase on a phone's viewport
/// (axe finds nothing serious on any page), the cart seen through a second
/// POP, the last unit sold to another shopper and a declined card (each
/// told in words), a purchase completed while the home region is down, and
/// each page's first-contentful-paint and bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_storefront_in_chromium() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut platform = support::local_platform_with(&dir, 200, |loaded| {
        // What the recommendations are computed from.
        loaded.seed.order_lines = 20_000;
        // Declines come only when the test asks for one.
        loaded.payments.decline_rate = 0.0;
        loaded.payments.timeout_rate = 0.0;
    })
    .await;
    let routing = platform.routing_api.expect("routing API");
    support::until_healthy(routing).await;
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let _ = std::fs::remove_dir_all(&artifacts);

    let run = run_script(
        "dashboard.mjs",
        &[
            ("MERIDIAN_ROUTING", format!("http://{routing}")),
            ("MERIDIAN_ADMIN_TOKEN", support::ADMIN.to_owned()),
            ("MERIDIAN_ARTIFACTS", artifacts.display().to_string()),
            ("MERIDIAN_SCENARIOS", "drain,drill".to_owned()),
        ],
        &mut platform,
        std::time::Duration::from_secs(300),
    )
    .await;
    assert!(
        run.failed.is_empty(),
        "dashboard failed: {:?} (screenshots in {})",
        run.failed,
        artifacts.display()
    );
    assert_eq!(run.passed, ["drain", "drill"]);
    support::until_healthy(routing).await;

    let commerce = platform.operator.clone();
    let category = commerce.list_categories().await.expect("categories")[0]
        .slug
        .clone();
    let product: commerce::catalog::ProductInput = serde_json::from_value(serde_json::json!({
        "title": "Last Lantern",
        "description": "One left, and two shoppers want it.",
        "category": category,
        "price": { "amount_minor": 4200, "currency": "EUR" },
    }))
    .expect("a product");
    commerce
        .upsert_product(LAST_UNIT, &product)
        .await
        .expect("the product");
    commerce
        .restock(&"eu".parse().expect("shard"), LAST_UNIT, 1)
        .await
        .expect("one unit");

    let mut pops: serde_json::Map<String, serde_json::Value> = platform
        .pops
        .iter()
        .map(|(name, addr)| (name.clone(), addr.to_string().into()))
        .collect();
    // The Cloudflare Worker as a fifth POP, under `wrangler dev`, placed
    // in Dublin by wrangler.toml's local settings.
    let worker_state = tempfile::tempdir().expect("tempdir");
    let mut worker = edge_host::wrangler::Wrangler::start(&edge_host::wrangler::WranglerOptions {
        workspace: support::infra_dir().join(".."),
        routing_url: format!("http://{routing}"),
        edge_key: support::EDGE_KEY.to_owned(),
        stage: None,
        vars: vec![("POP".to_owned(), "wrk".to_owned())],
        persist_to: worker_state.path().to_path_buf(),
    })
    .expect("wrangler dev starts");
    assert_eq!(
        worker
            .ready(&support::client(), std::time::Duration::from_secs(600))
            .await
            .expect("the Worker serves"),
        "wrk"
    );
    pops.insert(
        "wrk".to_owned(),
        worker.url.trim_start_matches("http://").into(),
    );
    let scenarios = [
        // First: no POP has cached the (empty) lists before the job runs.
        "recommendations",
        "measure",
        "purchase",
        "worker_purchase",
        "second_pop",
        "out_of_stock",
        "declined",
        "reviews",
        "home_region_down",
    ];
    let run = run_script(
        "storefront.mjs",
        &[
            ("MERIDIAN_POPS", serde_json::Value::Object(pops).to_string()),
            ("MERIDIAN_ARTIFACTS", artifacts.display().to_string()),
            ("MERIDIAN_STOREFRONT_OOS", LAST_UNIT.to_owned()),
            ("MERIDIAN_SCENARIOS", scenarios.join(",")),
        ],
        &mut platform,
        std::time::Duration::from_secs(600),
    )
    .await;
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    std::fs::write(
        artifacts.join("storefront-metrics.json"),
        serde_json::to_string_pretty(&run.metrics).expect("json"),
    )
    .expect("storefront-metrics.json");
    for m in &run.metrics {
        eprintln!("storefront page: {m}");
    }
    assert!(
        run.failed.is_empty(),
        "storefront failed: {:?} (screenshots in {})",
        run.failed,
        artifacts.display()
    );
    assert_eq!(run.passed, scenarios);
    assert_eq!(run.metrics.len(), 5, "{:?}", run.metrics);
    drop(worker);
    platform.stop().await.expect("the platform stops");
}
