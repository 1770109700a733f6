//! `meridian-recommend`: one run of the recommendations job against the
//! running regions (or one every `--every` seconds: the schedule). It
//! finds the regions in the routing table, exports the sales logs to
//! Parquet through their admin API, computes on DataFusion (or a Ballista
//! cluster) and publishes the set through the region serving the catalog
//! shard. `meridian recommend` runs it; so does `meridian up`'s schedule
//! and the Kubernetes CronJob.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use recommend::store::Remote;
use recommend::{Engine, JobOptions, Stage};

#[derive(Debug, Parser)]
#[command(
    name = "meridian-recommend",
    about = "Compute the recommendations (bought together, popular now) and publish them to the regions"
)]
struct Args {
    /// The routing API (where the regions are found).
    #[arg(long, default_value = "http://127.0.0.1:7000")]
    routing: String,
    /// The regions' admin token (default: the MERIDIAN_ADMIN_TOKEN
    /// environment variable).
    #[arg(long)]
    token: Option<String>,
    /// Where the job runs: `embedded` (this process), `standalone` (a
    /// Ballista scheduler and executor in this process) or a Ballista
    /// scheduler's `df://host:port` (its executors must read `--dir`).
    #[arg(long, default_value = "embedded")]
    engine: String,
    /// Where the Parquet export is kept between runs.
    #[arg(long, default_value = "recommend-export")]
    dir: PathBuf,
    /// Export the whole sales log again instead of what is new.
    #[arg(long)]
    full: bool,
    /// Run again every this many seconds (the schedule), until stopped.
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..=604_800))]
    every: Option<u64>,
    /// Seconds the run holds the lease on writing a set.
    #[arg(long, default_value_t = 1_800, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    lease_s: u64,
    /// Pairs seen in fewer orders are not recommended.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    min_support: u64,
    /// Popularity halves every this many days.
    #[arg(long, default_value_t = 7.0)]
    half_life_days: f64,
    /// Stop when the process that started this one ends (the schedule of
    /// `meridian up`, however it ends).
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

fn engine(text: &str) -> anyhow::Result<Engine> {
    Ok(match text {
        "embedded" => Engine::Embedded,
        "standalone" => Engine::Standalone,
        url if url.starts_with("df://") => Engine::Remote(url.to_owned()),
        other => anyhow::bail!(
            "unknown engine {other:?}: embedded, standalone or a Ballista scheduler's df://host:port"
        ),
    })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let engine = engine(&args.engine)?;
    anyhow::ensure!(
        args.half_life_days.is_finite() && args.half_life_days > 0.0,
        "--half-life-days must be a positive number"
    );
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("MERIDIAN_ADMIN_TOKEN").ok())
        .filter(|t| !t.is_empty())
        .context("give the regions' admin token with --token or MERIDIAN_ADMIN_TOKEN")?;
    // DataFusion's and Ballista's planners recurse deeply: 16 MiB stacks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
        .context("a runtime")?;
    #[cfg(unix)]
    let parent = std::os::unix::process::parent_id();
    runtime.block_on(async move {
        let mut full = args.full;
        loop {
            let result = once(&args, &engine, &token, full).await;
            let Some(every) = args.every else {
                return result;
            };
            match result {
                Ok(()) => full = false,
                Err(e) => eprintln!("meridian-recommend: this run failed: {e:#}"),
            }
            for _ in 0..every {
                tokio::time::sleep(Duration::from_secs(1)).await;
                #[cfg(unix)]
                if args.exit_with_parent && std::os::unix::process::parent_id() != parent {
                    return Ok(());
                }
            }
        }
    })
}

async fn once(args: &Args, engine: &Engine, token: &str, full: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Remote::connect(&args.routing, token).await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let options = JobOptions {
        min_support: args.min_support,
        half_life_days: args.half_life_days,
        ..JobOptions::default()
    };
    let engine_name = engine.name();
    let progress = |stage: Stage| match stage {
        Stage::Exported(n) => bar.set_message(format!("exporting the sales logs: {n} lines")),
        Stage::Computing => bar.set_message(format!("computing on {engine_name}")),
        Stage::Written(n) => bar.set_message(format!("writing the set: {n} records")),
    };
    let outcome = recommend::run(
        &store,
        engine,
        &args.dir,
        full,
        &options,
        args.lease_s * 1000,
        &progress,
    )
    .await;
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // Another region's run (or another schedule's) is writing a set:
        // this one has nothing to add.
        Err(e)
            if e.chain()
                .any(|c| c.is::<recommend::store::AnotherJobRunning>()) =>
        {
            println!("nothing to do: {e:#}");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    println!(
        "published recommendation set {}: {} order lines, {} products with \"bought together\", {} popular lists, on {}, in {:.1} s",
        outcome.set.version,
        outcome.set.lines,
        outcome.products,
        outcome.popular_keys,
        outcome.set.engine,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
