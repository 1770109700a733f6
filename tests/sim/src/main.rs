//! `meridian-sim`: runs seeds of the deterministic simulation with a
//! progress bar and a summary; a failing seed prints its trace and the
//! command that replays it. `cargo xtask sim` runs it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Parser)]
#[command(about = "Runs seeds of Meridian's deterministic simulation")]
struct Args {
    /// How many seeds to run (from --first).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of the range.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Run this one seed and print its whole trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Shoppers per run.
    #[arg(long, default_value_t = 12)]
    shoppers: usize,
    /// Seeds run at once, one per thread (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Plant a known bug (the simulator must find it).
    #[arg(long, value_enum)]
    bug: Option<Bug>,
    /// A child's run: these options (JSON), the outcome printed as JSON
    /// (`sim::isolated`).
    #[arg(long = sim::isolated::CHILD_OPTION, hide = true)]
    run_json: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Bug {
    SkipCartIdempotency,
    DoubleReleaseOnCompensation,
    EdgeResendsAsNew,
}

impl Bug {
    fn planted(self) -> sim::world::Planted {
        match self {
            Bug::SkipCartIdempotency => sim::world::Planted::SkipCartIdempotency,
            Bug::DoubleReleaseOnCompensation => sim::world::Planted::DoubleReleaseOnCompensation,
            Bug::EdgeResendsAsNew => sim::world::Planted::EdgeResendsAsNew,
        }
    }
}

/// What the runs found, added up.
#[derive(Debug, Default)]
struct Totals {
    faults: usize,
    simulated_ms: u128,
    failed: Vec<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(json) = &args.run_json {
        return sim::isolated::child(json);
    }
    // One seed alone in this process: as a child runs it.
    if let Some(seed) = args.seed {
        let mut options = sim::Options::new(seed);
        options.shoppers = args.shoppers;
        options.bug = args.bug.map(Bug::planted);
        let outcome = sim::run(&options)?;
        for line in &outcome.trace {
            println!("{line}");
        }
        println!(
            "seed {seed}: {} ({} faults, {} ms simulated, {} steps)",
            if outcome.passed() { "passed" } else { "FAILED" },
            outcome.faults.len(),
            outcome.simulated.as_millis(),
            outcome.steps
        );
        anyhow::ensure!(outcome.passed(), "seed {seed} broke an invariant");
        return Ok(());
    }
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    // Seeds are handed out in order; each thread runs one seed at a time
    // in a process of its own, so no run depends on another
    // (`sim::isolated`).
    let exe = std::env::current_exe()?;
    let next = AtomicU64::new(args.first);
    let end = args.first.saturating_add(args.seeds);
    let totals = Mutex::new(Totals::default());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= end {
                        return;
                    }
                    let mut options = sim::Options::new(seed);
                    options.shoppers = args.shoppers;
                    options.bug = args.bug.map(Bug::planted);
                    let result = sim::isolated::run(&exe, &options);
                    let mut totals = totals.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(outcome) => {
                            totals.faults += outcome.faults.len();
                            totals.simulated_ms += outcome.simulated.as_millis();
                            if !outcome.passed() {
                                bar.suspend(|| eprintln!("FAILED {}", outcome.failure_report()));
                                totals.failed.push(seed);
                            }
                        }
                        Err(e) => {
                            bar.suspend(|| {
                                eprintln!(
                                    "seed {seed} could not run: {e:#}\n  replay: {}",
                                    sim::replay_command(seed)
                                )
                            });
                            totals.failed.push(seed);
                        }
                    }
                    bar.inc(1);
                    bar.set_message(format!("{} failed", totals.failed.len()));
                }
            });
        }
    });
    bar.finish();
    let Totals {
        faults,
        simulated_ms,
        mut failed,
    } = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    failed.sort_unstable();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} seeds in {secs:.1} s on {jobs} threads ({:.2} seeds/s), {faults} faults injected ({:.1} per run), {:.0} s simulated; {} failed{}",
        args.seeds,
        args.seeds as f64 / secs.max(1e-9),
        faults as f64 / args.seeds.max(1) as f64,
        simulated_ms as f64 / 1000.0,
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {failed:?}")
        }
    );
    anyhow::ensure!(failed.is_empty(), "{} seeds failed", failed.len());
    Ok(())
}
