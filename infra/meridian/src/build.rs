//! Building the edge component `up` runs, so `cargo run -p meridian -- up`
//! works on a fresh clone: the `wasm32-wasip2` target is added when
//! missing, then `cargo build -p edge-spin --target wasm32-wasip2
//! --release` runs (a no-op when it is up to date), and the component's
//! path is read from cargo's own report of what it built.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

const TARGET: &str = "wasm32-wasip2";
/// Most of the build's error output kept to show when it fails.
const MAX_ERROR_BYTES: u64 = 64 * 1024;

/// The checkout this binary was built from, when it is still there.
fn checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("Cargo.toml").is_file().then_some(root)
}

/// Builds the edge component and returns its path; `None` (with a note)
/// when there is no checkout to build from, so the edge config's
/// component is used.
pub fn edge_component() -> anyhow::Result<Option<PathBuf>> {
    let Some(root) = checkout() else {
        eprintln!("no Meridian checkout here: using the edge config's component");
        return Ok(None);
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spinner = indicatif::ProgressBar::new_spinner()
        .with_message(format!("building the edge component ({TARGET}, release)"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let result = (|| {
        add_target()?;
        let mut child = Command::new(&cargo)
            .current_dir(&root)
            .args(["build", "-p", "edge-spin", "--target", TARGET, "--release"])
            .args(["--message-format", "json-render-diagnostics"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running cargo to build the edge component")?;
        let stderr = child.stderr.take().context("cargo's stderr")?;
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.take(MAX_ERROR_BYTES).read_to_string(&mut text);
            text
        });
        let mut component = None;
        let stdout = child.stdout.take().context("cargo's stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo's output")?;
            if let Some(path) = wasm_artifact(&line) {
                component = Some(path);
            }
        }
        let status = child.wait().context("waiting for cargo")?;
        let errors = errors.join().unwrap_or_default();
        anyhow::ensure!(
            status.success(),
            "building the edge component failed ({status}):\n{errors}"
        );
        component.context("cargo built no edge_spin.wasm")
    })();
    spinner.finish_and_clear();
    let component = result?;
    println!("built the edge component: {}", component.display());
    Ok(Some(component))
}

/// Adds the wasm target through rustup when it is missing.
fn add_target() -> anyhow::Result<()> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // No rustup: the toolchain manages its targets some other way.
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == TARGET)
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::null())
        .status()
        .context("rustup target add")?;
    anyhow::ensure!(status.success(), "rustup target add {TARGET} failed");
    Ok(())
}

/// The `.wasm` file of edge-spin in one line of cargo's JSON messages.
fn wasm_artifact(line: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["target"]["name"] != "edge_spin" {
        return None;
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_found_in_cargos_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"edge_spin","kind":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/edge_spin.wasm"],"fresh":true}"#;
        assert_eq!(
            wasm_artifact(line),
            Some(PathBuf::from("/t/wasm32-wasip2/release/edge_spin.wasm"))
        );
        let other = r#"{"reason":"compiler-artifact","target":{"name":"edge_core"},"filenames":["/t/libedge_core.rlib"]}"#;
        assert_eq!(wasm_artifact(other), None);
        assert_eq!(wasm_artifact("not json"), None);
    }
}
