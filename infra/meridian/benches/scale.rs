//! The million-product benchmark (`cargo xtask bench-scale`): the whole
//! platform (every region, the catalog's replicas, each region's search
//! index) over the configured embedded storage, durable as configured.
//!
//! 1. Bulk import: the demo catalog of `--products` products, with stock
//!    in every warehouse, posted as NDJSON to the catalog's home region
//!    (`POST /v1/admin/imports/{id}`) in requests of `--request-lines`
//!    lines, each continuing at the cursor the one before left; timed to
//!    the last answer (durable: every line committed) and to the moment
//!    every region's search index holds every product.
//!
//! 2. A region's start-up at that size: one region's search index rebuilt
//!    from the catalog (as `meridian up` does before serving), timed.
//!
//! Everything binds 127.0.0.1 on ephemeral ports; the data lives in a
//! temporary directory (`--keep DIR` keeps it).
//!
//! Arguments: `[--products N] [--request-lines N] [--keep DIR]`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// mimalloc: glibc malloc spent about 30 % of a bulk import's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `cargo bench -p meridian --bench scale -- [options]`.
#[derive(Debug, clap::Parser)]
#[command(about = "Meridian at a million products: bulk import, search, the rest of the platform")]
struct Args {
    /// Products in the catalog.
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    products: u64,
    /// Lines per import request.
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    request_lines: u64,
    /// Keep the data here instead of a temporary directory (it must not
    /// exist).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Passed by `cargo bench` to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Times one import request is resumed from its cursor after an answer
/// that it was not, or maybe, applied.
const MAX_RESUMES: u32 = 5;

/// The bulk import target, products/s.
const IMPORT_TARGET: f64 = 20_000.0;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    // The platform's warnings (a lost commit, say) on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// This process's resident memory now and at its peak, in MiB.
fn resident_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let temp = tempfile::tempdir()?;
    let data = match &args.keep {
        Some(dir) => {
            anyhow::ensure!(!dir.exists(), "{} exists", dir.display());
            dir.clone()
        }
        None => temp.path().to_path_buf(),
    };
    let mut loaded = meridian::config::load(&workspace().join("infra/local/meridian.toml"))?;
    if let regional_server::storage::StorageConfig::Embedded { dir, .. } = &mut loaded.storage {
        *dir = data.clone();
    }
    loaded.seed.products = 0;
    loaded.seed.order_lines = 0;
    loaded.edge = None;
    let durability = match &loaded.storage {
        regional_server::storage::StorageConfig::Embedded { durability, .. } => {
            format!("{durability:?}")
        }
        #[allow(unreachable_patterns)]
        _ => "n/a".to_owned(),
    };
    eprintln!("bench-scale: starting the platform in {}", data.display());
    let platform = meridian::platform::start(
        &loaded,
        meridian::platform::StartOptions {
            ephemeral_ports: true,
            component: None,
        },
    )
    .await?;
    let catalog = platform.operator.catalog_shard().clone();
    let (home, home_addr, _) = platform
        .regions
        .iter()
        .find(|(_, _, region)| region.commerce.served().contains(&catalog))
        .context("no region serves the catalog shard")?;
    let base = format!("http://{home_addr}");
    let token = regional_token(&workspace().join("infra/local/regions"), home)?;
    for (slug, input) in commerce::seed::demo_categories() {
        let r = client
            .put(format!("{base}/v1/admin/categories/{slug}"))
            .bearer_auth(&token)
            .json(&input)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "category {slug}: {}", r.status());
    }

    println!(
        "\nScale benchmark: {} products, {} cores, durability {durability}, geography {}",
        args.products,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loaded.geography
    );
    // 1. Bulk import.
    let options = commerce::seed::SeedOptions {
        products: usize::try_from(args.products)?,
        seed: 42,
        max_stock: 200,
    };
    let warehouses = platform.operator.warehouses();
    let body = move |from: u64, to: u64| {
        let mut body = Vec::with_capacity(usize::try_from(to - from).unwrap_or(0) * 600);
        for i in from..to {
            let line = commerce::seed::demo_line(&options, i as usize, &warehouses);
            serde_json::to_writer(&mut body, &line).expect("a demo line serializes");
            body.push(b'\n');
        }
        body
    };
    let id = format!("bench-{}", args.products);
    let started = Instant::now();
    let mut next = Some(tokio::task::spawn_blocking({
        let body = body.clone();
        let to = args.request_lines.min(args.products);
        move || body(0, to)
    }));
    let mut from = 0;
    let mut sent_bytes = 0usize;
    let mut resumes = 0;
    while let Some(pending) = next.take() {
        let lines = pending.await?;
        let to = (from + args.request_lines).min(args.products);
        if to < args.products {
            let body = body.clone();
            let (a, b) = (to, (to + args.request_lines).min(args.products));
            next = Some(tokio::task::spawn_blocking(move || body(a, b)));
        }
        sent_bytes += lines.len();
        // An import is safe to repeat (lines below its cursor are skipped):
        // an answer that it was not, or maybe, applied is resumed from the
        // cursor it names, a bounded number of times, as a client should.
        let mut lines = lines;
        let mut at = from;
        let mut resumed = 0;
        let text = loop {
            let r = client
                .post(format!("{base}/v1/admin/imports/{id}?offset={at}"))
                .bearer_auth(&token)
                .header("content-type", commerce::import::CONTENT_TYPE)
                .body(lines)
                .send()
                .await?;
            let status = r.status();
            let text = r.text().await?;
            if status.is_success() {
                break text;
            }
            let delivery = regional_api::delivery::of_status(status.as_u16());
            let problem: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let cursor = problem["cursor"].as_u64();
            match cursor {
                Some(cursor)
                    if regional_api::delivery::may_resend(delivery, true)
                        && resumed < MAX_RESUMES
                        && (from..=to).contains(&cursor) =>
                {
                    resumed += 1;
                    resumes += 1;
                    eprintln!("bench-scale: {status} at line {cursor}, resumed there: {text}");
                    at = cursor;
                    lines = tokio::task::spawn_blocking({
                        let body = body.clone();
                        move || body(cursor, to)
                    })
                    .await?;
                }
                _ => bail!("import request from line {at}: {status} {text}"),
            }
        };
        let report: serde_json::Value = serde_json::from_str(&text)?;
        anyhow::ensure!(
            report["status"]["cursor"] == to,
            "the import stands at {} after lines {from}..{to}",
            report["status"]["cursor"]
        );
        eprintln!(
            "bench-scale: {to} lines committed ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        from = to;
    }
    let durable = started.elapsed();
    // Every region's index holds every product.
    let mut indexed = Vec::new();
    for (region, _, served) in &platform.regions {
        let index = served.commerce.search_index().clone();
        let deadline = Instant::now() + Duration::from_secs(3_600);
        loop {
            let docs = index.num_docs();
            if docs >= args.products {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{region}'s index holds {docs} of {} products after an hour",
                args.products
            );
            // A poll of a counter, not a wait standing in for an event:
            // the index has no notification to wait on.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        indexed.push((region.clone(), started.elapsed()));
    }
    let everywhere = indexed.iter().map(|(_, t)| *t).max().unwrap_or(durable);
    let n = args.products as f64;
    let (rss, peak) = resident_mib();
    // A region's start-up on a catalog of this size: its search index
    // rebuilt from the catalog (what `up` does before serving), while the
    // platform runs.
    let (rebuilt_region, _, rebuilt) = platform
        .regions
        .last()
        .context("the platform has no region")?;
    let rebuild_started = Instant::now();
    let rebuilt_docs = rebuilt.commerce.rebuild_search().await?;
    let rebuild = rebuild_started.elapsed();
    anyhow::ensure!(
        rebuilt_docs as u64 == args.products,
        "{rebuilt_region}'s rebuild took {rebuilt_docs} of {} products",
        args.products
    );
    let (_, rebuild_peak) = resident_mib();
    println!("\n| step | time | products/s | target |\n|---|---:|---:|---:|");
    println!(
        "| import, every line durable ({:.0} MiB of NDJSON) | {:.1} s | {:.0} | ≥ {IMPORT_TARGET:.0} {} |",
        sent_bytes as f64 / 1_048_576.0,
        durable.as_secs_f64(),
        n / durable.as_secs_f64(),
        verdict(n / durable.as_secs_f64() >= IMPORT_TARGET)
    );
    for (region, at) in &indexed {
        println!(
            "| {region}'s search index holds every product | {:.1} s | {:.0} | |",
            at.as_secs_f64(),
            n / at.as_secs_f64()
        );
    }
    println!(
        "| import, every region's index caught up | {:.1} s | {:.0} | ≥ {IMPORT_TARGET:.0} {} |",
        everywhere.as_secs_f64(),
        n / everywhere.as_secs_f64(),
        verdict(n / everywhere.as_secs_f64() >= IMPORT_TARGET)
    );
    println!(
        "| {rebuilt_region}'s search index rebuilt from the catalog (a region's start) | {:.1} s | {:.0} | |",
        rebuild.as_secs_f64(),
        n / rebuild.as_secs_f64()
    );
    println!(
        "\nrequests resumed from their cursor after a 503 or 504: {resumes}\n\
         resident memory of the whole platform process: {rss} MiB after the import, \
         {peak} MiB at its peak, {rebuild_peak} MiB at the peak after the rebuild"
    );
    platform.stop().await?;
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// The admin token of `region`'s local config (with its environment
/// override, as the region reads it).
fn regional_token(dir: &Path, region: &topology::RegionId) -> anyhow::Result<String> {
    let config = regional_server::config::load(&dir.join(format!("{region}.toml")), |name| {
        std::env::var(name).ok()
    })?;
    config
        .config
        .secrets
        .admin_tokens()
        .first()
        .map(|t| t.to_string())
        .context("the region has no admin token")
}
