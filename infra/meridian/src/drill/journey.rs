//! A catalog change's journey: from an admin's write at the catalog's home
//! to every POP serving the new version. Each change is made to a product
//! every POP holds fresh in its cache, so what is measured is the purge
//! reaching the POP (the region's change feed, the POP's long poll), not a
//! cache miss. Each POP is read until it serves the new version (a
//! measurement, polled every few milliseconds, bounded). A review's
//! journey is measured the same way, from a shopper's write through a POP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::platform::Platform;

/// Most changes one measurement makes.
pub const MAX_CHANGES: usize = 1_000;
/// Longest a POP is given to serve a change.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// Between two reads of one POP.
const POLL: Duration = Duration::from_millis(5);

/// What one POP took for each change (`None`: not within [`MAX_WAIT`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PopJourney {
    pub pop: String,
    pub times_ms: Vec<Option<f64>>,
    /// The target: the modelled one-way delay from the catalog's home
    /// region to the POP, plus 150 ms.
    pub target_ms: f64,
}

/// Makes `changes` catalog changes, one after another, and times each to
/// every POP.
pub async fn measure(
    platform: &Platform,
    changes: usize,
    sku: &str,
) -> anyhow::Result<Vec<PopJourney>> {
    anyhow::ensure!(
        (1..=MAX_CHANGES).contains(&changes),
        "1 to {MAX_CHANGES} changes"
    );
    let client = client()?;
    let mut journeys = journeys(platform, 0.0)?;
    let pops: Vec<(String, SocketAddr)> = platform.pops.clone();
    for change in 0..changes {
        // Fresh in every POP's cache first.
        for (_, addr) in &pops {
            let _ = client
                .get(format!("http://{addr}/v1/products/{sku}"))
                .send()
                .await;
        }
        let product = platform
            .operator
            .product_uncached(sku)
            .await
            .context("reading the product")?;
        let input = commerce::catalog::ProductInput {
            title: format!(
                "{} (change {change})",
                product.title.split(" (change").next().unwrap_or("")
            ),
            description: product.description,
            category: product.category,
            price: product.price,
            attributes: product.attributes,
            images: product.images,
        };
        let started = Instant::now();
        let changed = platform
            .operator
            .upsert_product(sku, &input)
            .await
            .context("changing the product")?;
        time_to_every_pop(
            &client,
            &pops,
            &mut journeys,
            started,
            |addr| format!("http://{addr}/v1/products/{sku}"),
            |body| body["version"].as_u64() >= Some(changed.version),
        )
        .await;
    }
    Ok(journeys)
}

/// Reviews' journeys: each written by a new shopper through one POP (in
/// turn, so authors live in different shards) and acknowledged by their
/// home region, then timed until every POP's summary of the product counts
/// it. Every POP holds the summary fresh in its cache first, so what is
/// measured is the author's outbox, the projection in the catalog shard,
/// the regions' replicas and the purge reaching each POP. The target
/// beside each POP is the catalog change's plus the outbox worker's idle
/// interval and the author region's way to the catalog shard.
pub async fn measure_reviews(
    platform: &Platform,
    reviews: usize,
    sku: &str,
    outbox_interval: Duration,
) -> anyhow::Result<Vec<PopJourney>> {
    anyhow::ensure!(
        (1..=MAX_CHANGES).contains(&reviews),
        "1 to {MAX_CHANGES} reviews"
    );
    let client = client()?;
    let topology = platform.topology();
    let home_region = catalog_home(platform)?;
    let farthest_ms = topology
        .regions()
        .iter()
        .filter_map(|r| topology.region_rtt(r.name(), &home_region))
        .map(|rtt| rtt.as_secs_f64() * 1e3 / 2.0)
        .fold(0.0, f64::max);
    let mut journeys = journeys(platform, farthest_ms + outbox_interval.as_secs_f64() * 1e3)?;
    let pops: Vec<(String, SocketAddr)> = platform.pops.clone();
    let summary_url =
        |addr: &SocketAddr| format!("http://{addr}/v1/products/{sku}/reviews/summary");
    for review in 0..reviews {
        let (_, writer) = &pops[review % pops.len()];
        let mut before = 0;
        for (_, addr) in &pops {
            let summary: serde_json::Value = client
                .get(summary_url(addr))
                .send()
                .await
                .context("a POP's review summary")?
                .json()
                .await
                .context("a review summary")?;
            before = before.max(summary["count"].as_u64().unwrap_or(0));
        }
        let session: serde_json::Value = client
            .post(format!("http://{writer}/v1/sessions"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .context("a session")?
            .json()
            .await
            .context("a session's answer")?;
        let token = session["token"].as_str().context("a session token")?;
        let started = Instant::now();
        let written = client
            .put(format!("http://{writer}/v1/products/{sku}/reviews/mine"))
            .bearer_auth(token)
            .header("idempotency-key", format!("journey-review-{review}"))
            .json(&serde_json::json!({
                "rating": review % 5 + 1,
                "title": format!("Review {review}"),
                "body": "Measured on its way to every POP.",
                "lang": "en",
            }))
            .send()
            .await
            .context("writing a review")?;
        anyhow::ensure!(
            written.status() == reqwest::StatusCode::CREATED,
            "a review was refused: {}",
            written.text().await.unwrap_or_default()
        );
        time_to_every_pop(
            &client,
            &pops,
            &mut journeys,
            started,
            summary_url,
            |body| body["count"].as_u64() > Some(before),
        )
        .await;
    }
    Ok(journeys)
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .context("an HTTP client")
}

fn catalog_home(platform: &Platform) -> anyhow::Result<topology::RegionId> {
    platform
        .topology()
        .shard(platform.operator.catalog_shard())
        .map(|s| s.home().clone())
        .context("the catalog shard's home region")
}

/// A journey per POP, none timed yet, each with its target: the modelled
/// one-way delay from the catalog's home region to the POP, plus `extra_ms`
/// and 150 ms.
fn journeys(platform: &Platform, extra_ms: f64) -> anyhow::Result<Vec<PopJourney>> {
    let home_region = catalog_home(platform)?;
    Ok(platform
        .pop_places()
        .iter()
        .map(|(name, _, _)| {
            let rtt = platform.pop_rtt(name, &home_region).unwrap_or_default();
            PopJourney {
                pop: name.clone(),
                times_ms: Vec::new(),
                target_ms: rtt.as_secs_f64() * 1e3 / 2.0 + extra_ms + 150.0,
            }
        })
        .collect())
}

/// Reads each POP's `url_of(addr)` until `seen` is true of its JSON (every
/// [`POLL`], at most [`MAX_WAIT`] after `started`) and adds the time each
/// took to its journey (`None`: not within the wait).
async fn time_to_every_pop(
    client: &reqwest::Client,
    pops: &[(String, SocketAddr)],
    journeys: &mut [PopJourney],
    started: Instant,
    url_of: impl Fn(&SocketAddr) -> String,
    seen: impl Fn(&serde_json::Value) -> bool,
) {
    let seen = &seen;
    let waits = pops.iter().map(|(_, addr)| {
        let url = url_of(addr);
        async move {
            while started.elapsed() < MAX_WAIT {
                if let Ok(response) = client.get(&url).send().await
                    && let Ok(body) = response.json::<serde_json::Value>().await
                    && seen(&body)
                {
                    return Some(started.elapsed().as_secs_f64() * 1e3);
                }
                tokio::time::sleep(POLL).await;
            }
            None
        }
    });
    let times = futures::future::join_all(waits).await;
    for ((name, _), time) in pops.iter().zip(times) {
        if let Some(journey) = journeys.iter_mut().find(|j| &j.pop == name) {
            journey.times_ms.push(time);
        }
    }
}

/// The `q` quantile of the times seen (`None` when one was never seen).
pub fn quantile(times: &[Option<f64>], q: f64) -> Option<f64> {
    let mut seen: Vec<f64> = times.iter().copied().collect::<Option<Vec<f64>>>()?;
    if seen.is_empty() {
        return None;
    }
    seen.sort_by(f64::total_cmp);
    let i = ((seen.len() as f64 - 1.0) * q).round() as usize;
    seen.get(i.min(seen.len() - 1)).copied()
}
