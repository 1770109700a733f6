//! Recommendations computed in batch: the sales log exported from core-db
//! to Parquet ([`export`]), the job written once against Apache
//! DataFusion's SQL ([`job`]) and run embedded or on an Apache Ballista
//! cluster ([`Engine`]), and its results written back through core-db as
//! one versioned set that readers switch to at once
//! (`commerce::recommend`). [`history`] generates the demo's order history
//! with planted structure; [`quality`] measures what the job finds of it.
//!
//! A run reads and writes through a [`store::Store`]: a `Commerce` opened
//! in this process, or the regions' admin API ([`store::Remote`], what the
//! `meridian-recommend` command uses, and `meridian recommend` and the
//! schedule run).
//!
//! This crate is a leaf: DataFusion and Ballista are linked by its own
//! tests and its command only.

use std::path::Path;

use anyhow::Context;
use commerce::recommend::{BeginSet, PopularRecord, PublishSet, SetInfo, SetPage, TogetherRecord};
use datafusion::prelude::SessionContext;

use crate::store::Store;

pub mod export;
pub use commerce::history;
pub mod job;
pub mod quality;
pub mod store;

pub use job::{Computed, JobOptions};

/// Where the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// In this process (DataFusion).
    Embedded,
    /// On a Ballista scheduler and executors started in this process: the
    /// distributed path (planning, serialized plans, shuffles over Arrow
    /// Flight) without a cluster.
    Standalone,
    /// On the Ballista cluster whose scheduler is at this `df://host:port`
    /// (its executors must read the export directory: a shared volume).
    Remote(String),
}

impl Engine {
    pub fn name(&self) -> String {
        match self {
            Engine::Embedded => "embedded".into(),
            Engine::Standalone => "ballista-standalone".into(),
            Engine::Remote(url) => format!("ballista {url}"),
        }
    }

    /// The session the job's plan runs in.
    pub async fn context(&self) -> anyhow::Result<SessionContext> {
        use ballista::prelude::SessionContextExt;
        Ok(match self {
            Engine::Embedded => SessionContext::new(),
            Engine::Standalone => SessionContext::standalone()
                .await
                .context("starting Ballista in this process")?,
            Engine::Remote(url) => SessionContext::remote(url)
                .await
                .with_context(|| format!("connecting to the Ballista scheduler at {url}"))?,
        })
    }
}

/// Records one page of a set carries (a page of 200 records of 20
/// recommendations is about 250 KB of JSON, inside the regions' bound).
pub const WRITE_PAGE: usize = 200;
/// How long a run holds the lease on writing a set unless told.
pub const DEFAULT_LEASE_MS: u64 = 30 * 60 * 1000;

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub set: SetInfo,
    pub products: usize,
    pub popular_keys: usize,
    pub computed: Computed,
}

/// Stages a run reports to its progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Lines exported so far.
    Exported(u64),
    /// The job is running.
    Computing,
    /// Records of the new set written so far.
    Written(u64),
}

/// One run: export (all of the log when `full`, else what was added since
/// the last run), compute on `engine`, write the set under a lease of
/// `lease_ms`, publish it (which clears the older ones).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: &impl Store,
    engine: &Engine,
    dir: &Path,
    full: bool,
    options: &JobOptions,
    lease_ms: u64,
    progress: &(dyn Fn(Stage) + Sync),
) -> anyhow::Result<Outcome> {
    let exported_so_far = std::sync::atomic::AtomicU64::new(0);
    let exported = export::export(store, dir, full, &|n| {
        let total = exported_so_far.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        progress(Stage::Exported(total));
    })
    .await
    .context("exporting the sales log")?;
    tracing::info!(
        lines = exported.lines,
        files = exported.files.len(),
        "exported the sales log"
    );
    progress(Stage::Computing);
    let ctx = engine.context().await?;
    let path = dir
        .canonicalize()
        .context("the export directory")?
        .to_string_lossy()
        .into_owned();
    let computed = job::run(&ctx, &format!("{path}/"), options).await?;
    let job = ulid::Ulid::new().to_string();
    let version = store
        .begin(&BeginSet {
            job: job.clone(),
            lease_ms,
        })
        .await
        .context("starting a set")?;
    let records: Vec<(Option<TogetherRecord>, Option<PopularRecord>)> = computed
        .bought_together
        .iter()
        .map(|(sku, items)| {
            let record = TogetherRecord {
                sku: sku.clone(),
                items: items.clone(),
            };
            (Some(record), None)
        })
        .chain(computed.popular.iter().map(|((region, category), items)| {
            let record = PopularRecord {
                region: region.clone(),
                category: category.clone(),
                items: items.clone(),
            };
            (None, Some(record))
        }))
        .collect();
    let mut written = 0u64;
    for chunk in records.chunks(WRITE_PAGE) {
        let page = SetPage {
            job: job.clone(),
            together: chunk.iter().filter_map(|(t, _)| t.clone()).collect(),
            popular: chunk.iter().filter_map(|(_, p)| p.clone()).collect(),
        };
        store
            .write_page(version, &page)
            .await
            .context("writing the set")?;
        written += chunk.len() as u64;
        progress(Stage::Written(written));
    }
    let published = store
        .publish(
            version,
            &PublishSet {
                job,
                sales_through_ms: computed.newest_ms,
                lines: computed.lines,
                engine: engine.name(),
            },
        )
        .await
        .context("publishing the set")?;
    Ok(Outcome {
        set: published.set,
        products: computed.bought_together.len(),
        popular_keys: computed.popular.len(),
        computed,
    })
}
