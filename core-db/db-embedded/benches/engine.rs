//! The embedded engine's benchmark: point-read transactions/s, durable
//! single-key write transactions/s with 1 and 64 concurrent committers, and
//! committed transactions/s on one hot key under contention.
//!
//! Run: `cargo bench -p db-embedded --bench engine` (add `-- --secs N` to
//! change the time per scenario, default 5). Every scenario is bounded in
//! time and stops by itself. Figures are recorded in ARCHITECTURE.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use db::{Database, RetryPolicy};
use db_embedded::Durability;
use db_embedded::{EmbeddedDatabase, EmbeddedOptions};
use hdrhistogram::Histogram;

const PRELOADED_KEYS: u64 = 100_000;

struct Outcome {
    committed: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

impl Outcome {
    fn print(&self, name: &str) {
        let per_s = self.committed as f64 / self.elapsed.as_secs_f64();
        println!(
            "{name:<44} {per_s:>12.0} tx/s   p50 {:>6} µs   p99 {:>6} µs   ({} tx in {:.1} s)",
            self.latency_us.value_at_quantile(0.50),
            self.latency_us.value_at_quantile(0.99),
            self.committed,
            self.elapsed.as_secs_f64()
        );
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("item/{i:012}").into_bytes()
}

/// Runs `tasks` concurrent loops of `op` for `secs`, counting successes.
async fn drive<F, Fut>(tasks: usize, secs: u64, op: F) -> Outcome
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks as u64 {
        let (op, stop, committed) = (op.clone(), stop.clone(), committed.clone());
        handles.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                op(task, n).await;
                let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                n += 1;
                if n.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            committed.fetch_add(n, Ordering::Relaxed);
            hist
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for h in handles {
        latency_us
            .add(h.await.expect("task"))
            .expect("merge histograms");
    }
    Outcome {
        committed: committed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        latency_us,
    }
}

fn open(dir: &std::path::Path, durability: Durability) -> (Arc<EmbeddedDatabase>, Database) {
    let engine = EmbeddedDatabase::open(
        dir,
        EmbeddedOptions {
            durability,
            ..EmbeddedOptions::default()
        },
    )
    .expect("open store");
    let engine = Arc::new(engine);
    let db = Database::new(engine.clone()).with_retry_policy(RetryPolicy {
        max_retries: 10_000,
        timeout_ms: 60_000,
        ..RetryPolicy::default()
    });
    (engine, db)
}

async fn preload(db: &Database) {
    for chunk in (0..PRELOADED_KEYS).collect::<Vec<_>>().chunks(5_000) {
        let chunk = chunk.to_vec();
        db.run(|tx, _| {
            let chunk = chunk.clone();
            async move {
                for i in chunk {
                    tx.set(&key(i), &i.to_le_bytes())?;
                }
                Ok::<_, db::Error>(())
            }
        })
        .await
        .expect("preload");
    }
}

/// `cargo bench -p db-embedded --bench engine -- [options]`.
#[derive(Debug, clap::Parser)]
#[command(about = "The embedded engine under contention")]
struct Options {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    secs: u64,
    /// Passed by `cargo bench` to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let Options { secs, .. } = <Options as clap::Parser>::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        println!(
            "embedded engine benchmark: {} cores, {secs} s per scenario, durability = fdatasync per group",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let durability = if std::env::var("BENCH_BUFFERED").is_ok() { Durability::Buffer } else { Durability::Sync };
        let (engine, db) = open(dir.path(), durability);
        preload(&db).await;

        let reads = {
            let db = db.clone();
            drive(4, secs, move |task, n| {
                let db = db.clone();
                async move {
                    let k = key((task * 7_919 + n * 104_729) % PRELOADED_KEYS);
                    let v = db
                        .run(|tx, _| {
                            let k = k.clone();
                            async move { tx.get(&k).await }
                        })
                        .await
                        .expect("read");
                    assert!(v.is_some());
                }
            })
            .await
        };
        reads.print("point-read transactions, 4 tasks");

        for committers in [1usize, 64] {
            let db = db.clone();
            let before = engine.stats();
            let out = drive(committers, secs, move |task, n| {
                let db = db.clone();
                async move {
                    let k = format!("w/{task:03}/{n:012}").into_bytes();
                    db.run(|tx, _| {
                        let k = k.clone();
                        async move { tx.set(&k, b"durable") }
                    })
                    .await
                    .expect("write");
                }
            })
            .await;
            out.print(&format!("durable 1-key writes, {committers} committers"));
            let after = engine.stats();
            println!(
                "{:<44} {:>12.1} tx per group (one fsync each)",
                "",
                (after.transactions_committed - before.transactions_committed) as f64
                    / (after.groups_committed - before.groups_committed).max(1) as f64
            );
        }

        let hot = {
            let db = db.clone();
            drive(64, secs, move |_, _| {
                let db = db.clone();
                async move {
                    db.run(|tx, _| async move {
                        let n = tx.get(b"hot").await?.map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap_or([0; 8])));
                        tx.set(b"hot", &(n + 1).to_le_bytes())
                    })
                    .await
                    .expect("hot read-modify-write");
                }
            })
            .await
        };
        hot.print("hot key read-modify-write, 64 committers");

        let hot_atomic = {
            let db = db.clone();
            drive(64, secs, move |_, _| {
                let db = db.clone();
                async move {
                    db.run(|tx, _| async move { tx.add_i64(b"hot-atomic", 1) })
                        .await
                        .expect("hot atomic add");
                }
            })
            .await
        };
        hot_atomic.print("hot key atomic add, 64 committers");
    });
}
