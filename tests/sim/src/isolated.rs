//! Each run in a process of its own, as FoundationDB's simulator runs each
//! seed. Within one process a run is not a function of its seed alone:
//! tokio numbers tasks from one process-wide counter, and a crashed host's
//! runtime drops its tasks shard by shard of that number (four shards on a
//! current-thread runtime), so the order in which a crashed region's
//! connections reset, and what the POPs do next, depends on how many tasks
//! the process made before, and on any run going on beside it on another
//! thread. Nightly seed 5443 ran one way beside other seeds and another
//! alone. A fresh process starts the counter at one, so its runs repeat.
//!
//! The parent hands the child its [`Options`] as JSON in an argument and
//! reads its [`Outcome`] back as the last line of its output.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Options, Outcome};

/// The hidden option (`--run-json`) that makes `meridian-sim` a child:
/// run the options that follow it and print the outcome as one JSON line.
pub const CHILD_OPTION: &str = "run-json";

/// Bytes of a failed child's error output kept in the error.
const STDERR_KEPT: usize = 4_096;

/// Runs `options` in a new process of `exe` (the `meridian-sim` binary).
/// `Err` when the run could not start or finish (a refused plan, a
/// panic): the child's own error.
pub fn run(exe: &Path, options: &Options) -> anyhow::Result<Outcome> {
    let input = serde_json::to_string(options)?;
    let output = Command::new(exe)
        .arg(format!("--{CHILD_OPTION}"))
        .arg(input)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", exe.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let from = stderr.len().saturating_sub(STDERR_KEPT);
        let from = (from..stderr.len())
            .find(|i| stderr.is_char_boundary(*i))
            .unwrap_or(stderr.len());
        anyhow::bail!(
            "seed {} ({}): {}",
            options.seed,
            output.status,
            stderr[from..].trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .ok_or_else(|| anyhow::anyhow!("seed {}: the run printed nothing", options.seed))?;
    serde_json::from_str(line)
        .map_err(|e| anyhow::anyhow!("seed {}: unreadable outcome: {e}", options.seed))
}

/// The child's side: runs the options in `json` in this process and
/// prints the outcome as one JSON line.
pub fn child(json: &str) -> anyhow::Result<()> {
    let options: Options = serde_json::from_str(json)?;
    let outcome = crate::run(&options)?;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}
