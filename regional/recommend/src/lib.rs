//! Recommendations computed in batch: the sales log exported from core-db
//! to Parquet ([`export`]), the job written once against Apache
//! DataFusion's SQL ([`job`]) and run embedded or on an Apache Ballista
//! cluster ([`Engine`]), and its results written back through core-db as
//! one versioned set that readers switch to at once
//! (`commerce::recommend`). [`history`] generates the demo's order history
//! with planted structure; [`quality`] measures what the job finds of it.
//!
//! This crate is a leaf: DataFusion and Ballista are linked by its own
//! tests (and, later, its command) only.

use std::path::Path;

use anyhow::Context;
use commerce::Commerce;
use commerce::recommend::{MAX_WRITE_PAGE, SetInfo};
use datafusion::prelude::SessionContext;

pub mod export;
pub mod history;
pub mod job;
pub mod quality;

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
/// the last run), compute on `engine`, write the set, publish it, clear
/// the older ones.
pub async fn run(
    commerce: &Commerce,
    engine: &Engine,
    dir: &Path,
    full: bool,
    options: &JobOptions,
    progress: &(dyn Fn(Stage) + Sync),
) -> anyhow::Result<Outcome> {
    let exported_so_far = std::sync::atomic::AtomicU64::new(0);
    let exported = export::export(commerce, dir, full, &|n| {
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
    let version = commerce.begin_recommendations().await?;
    let mut written = 0u64;
    let together: Vec<(String, Vec<commerce::recommend::Recommended>)> = computed
        .bought_together
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for page in together.chunks(MAX_WRITE_PAGE) {
        commerce.write_bought_together(version, page).await?;
        written += page.len() as u64;
        progress(Stage::Written(written));
    }
    let popular: Vec<((String, String), Vec<commerce::recommend::Recommended>)> = computed
        .popular
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for page in popular.chunks(MAX_WRITE_PAGE) {
        commerce.write_popular(version, page).await?;
        written += page.len() as u64;
        progress(Stage::Written(written));
    }
    let set = SetInfo {
        version,
        computed_ms: commerce.now_ms(),
        sales_through_ms: computed.newest_ms,
        lines: computed.lines,
        engine: engine.name(),
    };
    commerce.publish_recommendations(&set).await?;
    commerce.clear_old_recommendations().await?;
    Ok(Outcome {
        set,
        products: together.len(),
        popular_keys: popular.len(),
        computed,
    })
}
