//! The recommendations' batch against PostgreSQL, each timed end to end
//! from the stored orders to the stored results, in one run on one
//! machine.
//!
//! - **Data**: the demo catalog (`--products`, default 10,000) and an order
//!   history of `--lines` order lines (default 1,000,000; deterministic,
//!   with planted pairs, best-sellers and regional tastes) written to
//!   core-db's sales logs (the embedded engine, fsync-durable, in a
//!   tempdir) and, with the same rows, to a `sales` table in a private
//!   PostgreSQL cluster (initdb in a tempdir, 127.0.0.1 only; `work_mem`
//!   256 MB, `shared_buffers` 1 GB; `ANALYZE`d). Loading is not timed.
//! - **Meridian**: `recommend::run` in full: the sales logs exported to
//!   Parquet, the job on DataFusion in this process, the set written back
//!   to core-db and published. Peak memory is the process's resident peak
//!   during the run (`VmHWM`, reset before it through `clear_refs`).
//! - **PostgreSQL**: the very same SQL text (`job::together_sql`,
//!   `job::popular_sql`) as `INSERT … SELECT` into two result tables, in
//!   one transaction, committed. Peak memory is the backend's `VmHWM`
//!   (parallel workers, if the planner starts any, are processes of their
//!   own and not counted).
//! - Also timed once: the same run on an in-process Ballista cluster.
//! - The answers are compared: each product's first recommendation and
//!   each region's first popular product must be the same on both.
//!
//! Each engine runs `--runs` times (default 3); the table gives the median
//! and the range, and the verdict against the target (Meridian ≥ 3× as
//! fast as PostgreSQL).
//!
//! Run: `cargo xtask bench-recommend` (installs postgresql if missing), or
//! `cargo bench -p recommend --bench batch -- [--lines N] [--products N]
//! [--runs N] [--skip-pg]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use commerce::recommend::{MAX_WRITE_PAGE, SaleLine};
use commerce::seed::SeedOptions;
use commerce::{Commerce, CommerceParts, SimulatedGateway, SystemClock};
use recommend::{Engine, JobOptions, Stage};
use topology::Topology;

#[path = "../../regional-server/benches/pg/mod.rs"]
mod pg;

#[derive(Debug, Clone)]
struct Options {
    lines: usize,
    products: usize,
    runs: usize,
    skip_pg: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        lines: 1_000_000,
        products: 10_000,
        runs: 3,
        skip_pg: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str, max: usize| -> anyhow::Result<usize> {
            let n: usize = args
                .next()
                .with_context(|| format!("{what} needs a number"))?
                .parse()
                .with_context(|| format!("{what} needs a number"))?;
            ensure!((1..=max).contains(&n), "{what} must be 1..={max}");
            Ok(n)
        };
        match arg.as_str() {
            "--lines" => o.lines = number("--lines", commerce::history::MAX_LINES)?,
            "--products" => o.products = number("--products", 1_000_000)?,
            "--runs" => o.runs = number("--runs", 20)?,
            "--skip-pg" => o.skip_pg = true,
            // What `cargo bench` passes to every benchmark.
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument {other:?} (--lines N --products N --runs N --skip-pg)"
            ),
        }
    }
    Ok(o)
}

/// The process's resident peak (`VmHWM`) and now (`VmRSS`), in MiB.
fn memory(pid: Option<u32>) -> (f64, f64) {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets a process's resident peak to what it holds now.
fn reset_peak(pid: Option<u32>) {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/clear_refs"),
        None => "/proc/self/clear_refs".to_owned(),
    };
    let _ = std::fs::write(path, "5");
}

/// Median and range of some seconds.
fn spread(mut secs: Vec<f64>) -> (f64, f64, f64) {
    secs.sort_by(f64::total_cmp);
    let n = secs.len();
    let median = if n % 2 == 1 {
        secs[n / 2]
    } else {
        (secs[n / 2 - 1] + secs[n / 2]) / 2.0
    };
    (median, secs[0], secs[n - 1])
}

async fn open(dir: &Path) -> anyhow::Result<Commerce> {
    let topology = Arc::new(Topology::from_toml_str(topology::LOCAL_TOPOLOGY)?);
    let options = db_embedded::EmbeddedOptions::default();
    let shards = db_embedded::open_shard_map(
        &dir.join("db"),
        &topology,
        &options,
        db::RetryPolicy::default(),
    )?;
    let gateway = Arc::new(SimulatedGateway::new(
        Default::default(),
        db_embedded::EmbeddedDatabase::open_database(
            dir.join("payments"),
            options,
            db::RetryPolicy::default(),
        )?,
    ));
    Ok(Commerce::new(CommerceParts {
        shards,
        topology: topology.clone(),
        region: "us-east".parse()?,
        served: topology.shards().iter().map(|s| s.id().clone()).collect(),
        catalog_shard: "us".parse()?,
        settings: Default::default(),
        clock: Arc::new(SystemClock),
        entropy: Arc::new(commerce::OsEntropy),
        gateway,
        search: Arc::new(search::SearchIndex::open_or_create(None)?),
    })?)
}

/// What each engine's answers say first.
#[derive(Debug, Default, PartialEq)]
struct Firsts {
    together: BTreeMap<String, String>,
    popular: BTreeMap<(String, String), String>,
}

async fn pg_load(
    client: &tokio_postgres::Client,
    rows: &[(String, String, SaleLine, String)],
) -> anyhow::Result<()> {
    client
        .batch_execute(
            "CREATE TABLE sales (order_id text NOT NULL, shard text NOT NULL, region text NOT NULL,
                                 at_ms bigint NOT NULL, sku text NOT NULL, category text NOT NULL,
                                 qty bigint NOT NULL);
             CREATE TABLE together_out (sku text NOT NULL, other text NOT NULL, score float8 NOT NULL);
             CREATE TABLE popular_out (region text NOT NULL, category text NOT NULL, sku text NOT NULL,
                                       score float8 NOT NULL);",
        )
        .await?;
    let insert = client
        .prepare(
            "INSERT INTO sales SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                                                   $5::text[], $6::text[], $7::bigint[])",
        )
        .await?;
    for chunk in rows.chunks(10_000) {
        let orders: Vec<&str> = chunk.iter().map(|r| r.2.order_id.as_str()).collect();
        let shards: Vec<&str> = chunk.iter().map(|r| r.0.as_str()).collect();
        let regions: Vec<&str> = chunk.iter().map(|r| r.1.as_str()).collect();
        let at: Vec<i64> = chunk.iter().map(|r| r.2.at_ms as i64).collect();
        let skus: Vec<&str> = chunk.iter().map(|r| r.2.sku.as_str()).collect();
        let categories: Vec<&str> = chunk.iter().map(|r| r.3.as_str()).collect();
        let qty: Vec<i64> = chunk.iter().map(|r| r.2.qty).collect();
        client
            .execute(
                &insert,
                &[&orders, &shards, &regions, &at, &skus, &categories, &qty],
            )
            .await?;
    }
    client.batch_execute("ANALYZE sales").await?;
    Ok(())
}

/// One PostgreSQL run: both results stored in one transaction.
async fn pg_run(
    client: &mut tokio_postgres::Client,
    options: &JobOptions,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let tx = client.transaction().await?;
    tx.batch_execute("TRUNCATE together_out, popular_out")
        .await?;
    tx.execute(
        &format!(
            "INSERT INTO together_out (sku, other, score) {}",
            recommend::job::together_sql(options)
        ),
        &[],
    )
    .await?;
    tx.execute(
        &format!(
            "INSERT INTO popular_out (region, category, sku, score) {}",
            recommend::job::popular_sql(options)
        ),
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(started.elapsed())
}

async fn pg_firsts(client: &tokio_postgres::Client) -> anyhow::Result<Firsts> {
    let mut firsts = Firsts::default();
    for row in client
        .query(
            "SELECT DISTINCT ON (sku) sku, other FROM together_out ORDER BY sku, score DESC, other",
            &[],
        )
        .await?
    {
        firsts.together.insert(row.get(0), row.get(1));
    }
    for row in client
        .query(
            "SELECT DISTINCT ON (region, category) region, category, sku FROM popular_out
             ORDER BY region, category, score DESC, sku",
            &[],
        )
        .await?
    {
        firsts.popular.insert((row.get(0), row.get(1)), row.get(2));
    }
    Ok(firsts)
}

fn meridian_firsts(computed: &recommend::Computed) -> Firsts {
    Firsts {
        together: computed
            .bought_together
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.first()?.sku.clone())))
            .collect(),
        popular: computed
            .popular
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.first()?.sku.clone())))
            .collect(),
    }
}

/// Share of `a`'s keys whose first answer `b` has too.
fn agreement<K: Ord>(a: &BTreeMap<K, String>, b: &BTreeMap<K, String>) -> (usize, usize) {
    let same = a.iter().filter(|(k, v)| b.get(k) == Some(v)).count();
    (same, a.len().max(b.len()))
}

fn quiet(_: Stage) {}

async fn bench(o: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let commerce = open(dir.path()).await?;
    let started = Instant::now();
    commerce
        .seed_demo(
            SeedOptions {
                products: o.products,
                seed: 42,
                max_stock: 0,
            },
            |_| {},
        )
        .await?;
    eprintln!(
        "bench: {} products seeded in {:.1} s",
        o.products,
        started.elapsed().as_secs_f64()
    );
    let mut items = Vec::new();
    let mut category = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = commerce
            .product_categories(after.as_deref(), db::MAX_RANGE_BATCH)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.sku.clone());
        for p in page {
            category.insert(p.sku.clone(), p.category.clone());
            items.push(commerce::history::Item {
                sku: p.sku,
                category: p.category,
            });
        }
    }
    let now = commerce.now_ms();
    let history = commerce::history::generate(&items, &commerce.warehouses(), o.lines, 42, now);
    let started = Instant::now();
    let topology = commerce.topology().clone();
    let mut rows = Vec::with_capacity(history.line_count());
    for (shard, lines) in &history.lines {
        for page in lines.chunks(MAX_WRITE_PAGE) {
            commerce.record_sales(shard, page).await?;
        }
        let region = topology
            .shard(shard)
            .map(|s| s.home().to_string())
            .unwrap_or_default();
        for line in lines {
            let c = category.get(&line.sku).cloned().unwrap_or_default();
            rows.push((shard.to_string(), region.clone(), line.clone(), c));
        }
    }
    eprintln!(
        "bench: {} order lines written to core-db in {:.1} s",
        history.line_count(),
        started.elapsed().as_secs_f64()
    );
    drop(history);

    let job = JobOptions::default();
    let export = dir.path().join("export");
    let mut meridian = Vec::new();
    let mut meridian_peak: f64 = 0.0;
    let mut meridian_base: f64 = 0.0;
    let mut ours = Firsts::default();
    let mut lines = 0;
    for run in 0..o.runs {
        let (_, rss) = memory(None);
        reset_peak(None);
        let started = Instant::now();
        let outcome = recommend::run(
            &commerce,
            &Engine::Embedded,
            &export,
            true,
            &job,
            600_000,
            &quiet,
        )
        .await?;
        let elapsed = started.elapsed();
        let (peak, _) = memory(None);
        eprintln!(
            "bench: Meridian run {}: {:.2} s, peak RSS {peak:.0} MiB (from {rss:.0})",
            run + 1,
            elapsed.as_secs_f64()
        );
        meridian.push(elapsed.as_secs_f64());
        meridian_peak = meridian_peak.max(peak);
        meridian_base = meridian_base.max(rss);
        lines = outcome.set.lines;
        ours = meridian_firsts(&outcome.computed);
    }
    ensure!(
        lines as usize == rows.len(),
        "the job read {lines} lines of {}",
        rows.len()
    );
    let started = Instant::now();
    let ballista = recommend::run(
        &commerce,
        &Engine::Standalone,
        &export,
        true,
        &job,
        600_000,
        &quiet,
    )
    .await?;
    let ballista_s = started.elapsed().as_secs_f64();
    ensure!(
        meridian_firsts(&ballista.computed) == ours,
        "Ballista's answers differ from DataFusion's"
    );

    let mut postgres = Vec::new();
    let mut pg_peak: f64 = 0.0;
    let mut pg_version = 0;
    let mut agree = None;
    if !o.skip_pg {
        let cluster = pg::PgCluster::start(
            10,
            &[
                ("work_mem", "256MB"),
                ("shared_buffers", "1GB"),
                ("maintenance_work_mem", "256MB"),
            ],
        )
        .await?;
        pg_version = cluster.version;
        let mut client = cluster.connect().await?;
        let started = Instant::now();
        pg_load(&client, &rows).await?;
        eprintln!(
            "bench: {} rows loaded into PostgreSQL {} in {:.1} s",
            rows.len(),
            cluster.version,
            started.elapsed().as_secs_f64()
        );
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        for run in 0..o.runs {
            reset_peak(Some(backend as u32));
            let elapsed = pg_run(&mut client, &job).await?;
            let (peak, _) = memory(Some(backend as u32));
            eprintln!(
                "bench: PostgreSQL run {}: {:.2} s, backend peak RSS {peak:.0} MiB",
                run + 1,
                elapsed.as_secs_f64()
            );
            postgres.push(elapsed.as_secs_f64());
            pg_peak = pg_peak.max(peak);
        }
        let theirs = pg_firsts(&client).await?;
        agree = Some((
            agreement(&ours.together, &theirs.together),
            agreement(&ours.popular, &theirs.popular),
        ));
    }

    let (m, m_lo, m_hi) = spread(meridian);
    println!();
    println!(
        "Recommendations' batch, {} order lines over {} products, end to end (stored orders to stored results), {} runs each",
        lines, o.products, o.runs
    );
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!();
    println!("| engine | median | range | lines/s | peak memory |");
    println!("|---|---|---|---|---|");
    println!(
        "| Meridian (core-db → Parquet → DataFusion → core-db) | {m:.2} s | {m_lo:.2}–{m_hi:.2} s | {:.0} | {meridian_peak:.0} MiB process RSS (from {meridian_base:.0} MiB before) |",
        lines as f64 / m
    );
    println!(
        "| Meridian on Ballista standalone (one run) | {ballista_s:.2} s | – | {:.0} | (in the same process) |",
        lines as f64 / ballista_s
    );
    if !postgres.is_empty() {
        let (p, p_lo, p_hi) = spread(postgres);
        println!(
            "| PostgreSQL {pg_version} (the same SQL, INSERT … SELECT, one transaction) | {p:.2} s | {p_lo:.2}–{p_hi:.2} s | {:.0} | {pg_peak:.0} MiB backend RSS |",
            lines as f64 / p
        );
        println!();
        let ratio = p / m;
        println!(
            "Meridian is {ratio:.2}× PostgreSQL's speed (median over median); target ≥ 3×: {}",
            if ratio >= 3.0 { "met" } else { "NOT met" }
        );
        if let Some(((t_same, t_all), (p_same, p_all))) = agree {
            println!(
                "Same answers: first \"bought together\" for {t_same} of {t_all} products, first popular product for {p_same} of {p_all} lists"
            );
        }
    }
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    // DataFusion's and Ballista's planners recurse deeply: 16 MiB stacks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()?;
    runtime.block_on(bench(options))
}
