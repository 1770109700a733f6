//! Where a run reads the sales and writes its set: a [`Commerce`] opened
//! in this process (the tests, a machine that may open the stores), or
//! the regions' admin API ([`Remote`]: what `meridian recommend` and the
//! schedule use, since a running region holds its embedded store locked
//! and a Ballista executor cannot open core-db at all).
//!
//! Both go through the same `commerce::recommend` calls, so a set written
//! either way is the same set: the regions' routes are those calls behind
//! the admin token, and their request and answer types are the ones
//! `commerce::recommend` defines.

use std::time::Duration;

use anyhow::{Context, bail};
use commerce::Commerce;
use commerce::recommend::{
    BeginSet, ProductCategory, PublishSet, Published, RecommendationStatus, SalesPage, SetBegun,
    SetPage,
};
use topology::routing::RoutingTable;
use topology::{RegionId, ShardId};

/// What a run needs of core-db.
#[allow(async_fn_in_trait)] // used generically here, never as `dyn` or across spawns
pub trait Store {
    /// Every shard with a sales log, with its home region (the region its
    /// sales are counted for).
    async fn shards(&self) -> anyhow::Result<Vec<(ShardId, RegionId)>>;
    /// The catalog's SKUs with their categories, from after `after`.
    async fn categories(&self, after: Option<&str>) -> anyhow::Result<Vec<ProductCategory>>;
    async fn sales_page(
        &self,
        shard: &ShardId,
        after: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<SalesPage>;
    async fn begin(&self, begin: &BeginSet) -> anyhow::Result<u64>;
    async fn write_page(&self, version: u64, page: &SetPage) -> anyhow::Result<()>;
    async fn publish(&self, version: u64, publish: &PublishSet) -> anyhow::Result<Published>;
}

impl Store for Commerce {
    async fn shards(&self) -> anyhow::Result<Vec<(ShardId, RegionId)>> {
        let topology = self.topology();
        self.warehouses()
            .into_iter()
            .map(|shard| {
                let home = topology
                    .shard(&shard)
                    .map(|s| s.home().clone())
                    .with_context(|| format!("shard {shard} has no home"))?;
                Ok((shard, home))
            })
            .collect()
    }

    async fn categories(&self, after: Option<&str>) -> anyhow::Result<Vec<ProductCategory>> {
        Ok(self.product_categories(after, db::MAX_RANGE_BATCH).await?)
    }

    async fn sales_page(
        &self,
        shard: &ShardId,
        after: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<SalesPage> {
        Ok(Commerce::sales_page(self, shard, after, limit).await?)
    }

    async fn begin(&self, begin: &BeginSet) -> anyhow::Result<u64> {
        Ok(self
            .begin_recommendations(&begin.job, begin.lease_ms)
            .await?)
    }

    async fn write_page(&self, version: u64, page: &SetPage) -> anyhow::Result<()> {
        Ok(self.write_set_page(version, page).await?)
    }

    async fn publish(&self, version: u64, publish: &PublishSet) -> anyhow::Result<Published> {
        Ok(self.publish_recommendations(version, publish).await?)
    }
}

/// Tries of one call at most (503, 421, a lost answer).
const MAX_TRIES: u32 = 6;
/// One call's time limit.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The regions, reached through their admin API: each shard's sales read
/// from the region serving it, the set written through the region serving
/// the catalog shard, both found in the routing table (fetched again when
/// a region answers that it no longer serves the shard).
#[derive(Debug)]
pub struct Remote {
    client: reqwest::Client,
    routing: String,
    token: String,
    table: tokio::sync::Mutex<RoutingTable>,
}

/// Another job holds the lease on writing a set (the regions answered
/// 409 `job-running`): this run has nothing to do.
#[derive(Debug)]
pub struct AnotherJobRunning(pub String);

impl std::fmt::Display for AnotherJobRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "another job is writing a set: {}", self.0)
    }
}

impl std::error::Error for AnotherJobRunning {}

/// How a call went wrong.
enum Failure {
    /// The region does not serve the shard now: ask the table again.
    Misdirected,
    /// Worth another try (busy, unreachable, timed out).
    Transient(anyhow::Error),
    Final(anyhow::Error),
}

impl Remote {
    /// Reads the routing table at `routing` (the routing API, e.g.
    /// `http://127.0.0.1:7000`); `token` is the regions' admin token.
    pub async fn connect(routing: &str, token: &str) -> anyhow::Result<Remote> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(CALL_TIMEOUT)
            .build()
            .context("an HTTP client")?;
        let routing = routing.trim_end_matches('/').to_owned();
        let table = routing::client::table(&client, &routing)
            .await
            .with_context(|| format!("reading the routing table at {routing}"))?;
        Ok(Remote {
            client,
            routing,
            token: token.to_owned(),
            table: tokio::sync::Mutex::new(table),
        })
    }

    /// The base URL of the region serving `shard` now (any serving region
    /// when `shard` is `None`).
    async fn region_for(&self, shard: Option<&ShardId>) -> anyhow::Result<String> {
        let table = self.table.lock().await;
        let region = match shard {
            Some(shard) => table
                .active_region(shard)
                .with_context(|| format!("no region serves shard {shard} now"))?,
            None => table
                .regions
                .iter()
                .find(|r| r.health.serves())
                .context("no region serves now")?,
        };
        Ok(region.base_url.trim_end_matches('/').to_owned())
    }

    async fn refresh(&self) -> anyhow::Result<()> {
        let table = routing::client::table(&self.client, &self.routing).await?;
        *self.table.lock().await = table;
        Ok(())
    }

    /// One call, tried again (a bounded number of times, backing off) when
    /// the answer says it may be: every call here is safe to repeat (reads,
    /// and writes a retry leaves as one write would).
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        shard: Option<&ShardId>,
        method: reqwest::Method,
        path: &str,
        body: Option<&(dyn erased::Body + Sync)>,
    ) -> anyhow::Result<T> {
        let mut last = None;
        for attempt in 0..MAX_TRIES {
            if attempt > 0 {
                let backoff = Duration::from_millis(200 << attempt.min(5));
                tokio::time::sleep(backoff).await;
            }
            let base = self.region_for(shard).await?;
            let mut request = self
                .client
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(&self.token);
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.json()?);
            }
            match Self::answer(request.send().await).await {
                Ok(bytes) => {
                    let bytes = if bytes.is_empty() {
                        &b"null"[..]
                    } else {
                        &bytes
                    };
                    return serde_json::from_slice(bytes)
                        .with_context(|| format!("the answer of {method} {path}"));
                }
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Misdirected) => {
                    last = Some(anyhow::anyhow!("{base} no longer serves the shard"));
                    self.refresh().await?;
                }
                Err(Failure::Transient(e)) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow::anyhow!("no answer"))
            .context(format!("{method} {path}: {MAX_TRIES} tries")))
    }

    async fn answer(
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<bytes::Bytes, Failure> {
        let response =
            response.map_err(|e| Failure::Transient(anyhow::Error::new(e).context("no answer")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transient(anyhow::Error::new(e).context("a cut answer")))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let problem = String::from_utf8_lossy(&bytes)
            .chars()
            .take(2_000)
            .collect::<String>();
        let error = anyhow::anyhow!("{status}: {problem}");
        Err(match status.as_u16() {
            421 => Failure::Misdirected,
            409 if problem.contains("job-running") => {
                let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["detail"].as_str().map(str::to_owned))
                    .unwrap_or(problem);
                Failure::Final(anyhow::Error::new(AnotherJobRunning(detail)))
            }
            // Busy, timed out (a 504 on a write: it may have been applied,
            // and every write here is safe to repeat), or a proxy's error.
            502..=504 | 429 => Failure::Transient(error),
            _ => Failure::Final(error),
        })
    }

    async fn status(&self) -> anyhow::Result<RecommendationStatus> {
        self.call(
            None,
            reqwest::Method::GET,
            "/v1/admin/recommendations",
            None,
        )
        .await
    }

    async fn catalog_shard(&self) -> anyhow::Result<ShardId> {
        Ok(self.status().await?.catalog_shard)
    }
}

/// Request bodies as JSON, whatever their type.
mod erased {
    pub trait Body {
        fn json(&self) -> anyhow::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Body for T {
        fn json(&self) -> anyhow::Result<Vec<u8>> {
            Ok(serde_json::to_vec(self)?)
        }
    }
}

fn query_value(text: &str) -> String {
    // Cursors and SKUs are hex, letters, digits and `-`: nothing to escape
    // but what a SKU may hold.
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Store for Remote {
    async fn shards(&self) -> anyhow::Result<Vec<(ShardId, RegionId)>> {
        let table = self.table.lock().await;
        Ok(table
            .shards
            .iter()
            .map(|s| (s.shard.clone(), s.home.clone()))
            .collect())
    }

    async fn categories(&self, after: Option<&str>) -> anyhow::Result<Vec<ProductCategory>> {
        let mut path = "/v1/admin/product-categories".to_owned();
        if let Some(after) = after {
            path.push_str(&format!("?after={}", query_value(after)));
        }
        self.call(None, reqwest::Method::GET, &path, None).await
    }

    async fn sales_page(
        &self,
        shard: &ShardId,
        after: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<SalesPage> {
        let mut path = format!("/v1/admin/sales/{shard}?limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&after={}", query_value(after)));
        }
        self.call(Some(shard), reqwest::Method::GET, &path, None)
            .await
    }

    async fn begin(&self, begin: &BeginSet) -> anyhow::Result<u64> {
        let shard = self.catalog_shard().await?;
        let begun: SetBegun = self
            .call(
                Some(&shard),
                reqwest::Method::POST,
                "/v1/admin/recommendations/sets",
                Some(begin),
            )
            .await?;
        Ok(begun.version)
    }

    async fn write_page(&self, version: u64, page: &SetPage) -> anyhow::Result<()> {
        let shard = self.catalog_shard().await?;
        let _: Option<()> = self
            .call(
                Some(&shard),
                reqwest::Method::PUT,
                &format!("/v1/admin/recommendations/sets/{version}/page"),
                Some(page),
            )
            .await?;
        Ok(())
    }

    async fn publish(&self, version: u64, publish: &PublishSet) -> anyhow::Result<Published> {
        let shard = self.catalog_shard().await?;
        let result = self
            .call(
                Some(&shard),
                reqwest::Method::POST,
                &format!("/v1/admin/recommendations/sets/{version}/publish"),
                Some(publish),
            )
            .await;
        match result {
            Ok(published) => Ok(published),
            // A publish whose answer was lost and was sent again is refused
            // (the set is current already): the status tells.
            Err(e) => match self.status().await {
                Ok(status)
                    if status
                        .current
                        .as_ref()
                        .is_some_and(|c| c.version == version) =>
                {
                    Ok(Published {
                        set: status.current.expect("checked"),
                        cleared: Vec::new(),
                    })
                }
                _ => bail!(e),
            },
        }
    }
}
