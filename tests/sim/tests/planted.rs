//! Proof that the simulator can fail: each known bug, planted alone behind
//! its test-only switch (`commerce::planted`, `edge_core::planted`), breaks
//! an invariant within a bounded number of seeds. A test binary of its own:
//! a planted bug is process-wide, so no other run may share the process.

use sim::world::Planted;

/// Seeds tried per bug at most.
const MAX_SEEDS: u64 = 30;

/// One test, so that no other run shares the process while a bug is
/// planted. The seed that finds a bug passes without it: what breaks is
/// the bug, not the seed.
#[test]
fn each_planted_bug_is_found_within_a_bounded_number_of_seeds() {
    let mut missed = Vec::new();
    for bug in Planted::ALL {
        let found = (1..=MAX_SEEDS).find_map(|seed| {
            let mut options = sim::Options::new(seed);
            options.bug = Some(bug);
            let outcome = sim::run(&options).expect("run");
            (!outcome.passed()).then(|| (seed, outcome.failure_report()))
        });
        match found {
            Some((seed, report)) => {
                eprintln!("{bug:?} found: {report}");
                let clean = sim::run(&sim::Options::new(seed)).expect("run");
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
