//! Proof that the simulator can fail: each known bug, planted alone behind
//! its test-only switch (`commerce::planted`, `edge_core::planted`), breaks
//! an invariant within a bounded number of seeds. A planted bug is
//! process-wide: each run has a process of its own (`sim::isolated`).

use std::path::Path;

use sim::world::Planted;

/// `options` run in a `meridian-sim` process of its own.
fn run(options: &sim::Options) -> sim::Outcome {
    sim::isolated::run(Path::new(env!("CARGO_BIN_EXE_meridian-sim")), options).expect("run")
}

/// Seeds tried per bug at most.
const MAX_SEEDS: u64 = 30;

/// The seed that finds a bug passes without it: what breaks is the bug,
/// not the seed.
#[test]
fn each_planted_bug_is_found_within_a_bounded_number_of_seeds() {
    let mut missed = Vec::new();
    for bug in Planted::ALL {
        let found = (1..=MAX_SEEDS).find_map(|seed| {
            let mut options = sim::Options::new(seed);
            options.bug = Some(bug);
            let outcome = run(&options);
            (!outcome.passed()).then(|| (seed, outcome.failure_report()))
        });
        match found {
            Some((seed, report)) => {
                eprintln!("{bug:?} found: {report}");
                let clean = run(&sim::Options::new(seed));
                assert!(
                    clean.passed(),
                    "seed {seed} fails without {bug:?} too: {}",
                    clean.failure_report()
                );
            }
            None => missed.push(format!("{bug:?}")),
        }
    }
    assert!(
        missed.is_empty(),
        "not found within {MAX_SEEDS} seeds: {}",
        missed.join(", ")
    );
}
