//! Building what `up` runs beside itself, so `cargo run -p meridian -- up`
//! works on a fresh clone: the edge component (the `wasm32-wasip2` target
//! is added when missing, then `cargo build -p edge-spin --target
//! wasm32-wasip2 --release` runs, a no-op when it is up to date) and the
//! recommendations job's command. Each path is read from cargo's own
//! report of what it built.

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
    add_target()?;
    let component = cargo_build(
        &root,
        &["-p", "edge-spin", "--target", TARGET, "--release"],
        &format!("building the edge component ({TARGET}, release)"),
        |line| artifact(line, "edge_spin", ".wasm"),
    )?
    .context("cargo built no edge_spin.wasm")?;
    println!("built the edge component: {}", component.display());
    Ok(Some(component))
}

/// The recommendations job's command, `meridian-recommend` (a crate of
/// its own: DataFusion and Ballista are linked there only): beside this
/// executable when it was built with it (`cargo build`, `cargo test`),
/// else built from the checkout (minutes the first time); `None` when
/// neither is possible.
pub fn recommend_command() -> anyhow::Result<Option<PathBuf>> {
    const NAME: &str = "meridian-recommend";
    if let Some(beside) = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(NAME))
        .filter(|p| p.is_file())
    {
        return Ok(Some(beside));
    }
    let Some(root) = checkout() else {
        return Ok(None);
    };
    let release = !cfg!(debug_assertions);
    let mut args = vec!["-p", "recommend", "--bin", NAME];
    if release {
        args.push("--release");
    }
    let built = cargo_build(
        &root,
        &args,
        &format!("building {NAME} (DataFusion and Ballista: minutes the first time)"),
        |line| artifact(line, NAME, NAME),
    )?
    .with_context(|| format!("cargo built no {NAME}"))?;
    Ok(Some(built))
}

/// `cargo build ARGS` in `root` behind a spinner; the path `found` picks
/// out of cargo's JSON messages.
fn cargo_build(
    root: &Path,
    args: &[&str],
    what: &str,
    found: impl Fn(&str) -> Option<PathBuf>,
) -> anyhow::Result<Option<PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spinner = indicatif::ProgressBar::new_spinner().with_message(what.to_owned());
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let result = (|| {
        let mut child = Command::new(&cargo)
            .current_dir(root)
            .arg("build")
            .args(args)
            .args(["--message-format", "json-render-diagnostics"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running cargo: {what}"))?;
        let stderr = child.stderr.take().context("cargo's stderr")?;
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.take(MAX_ERROR_BYTES).read_to_string(&mut text);
            text
        });
        let mut path = None;
        let stdout = child.stdout.take().context("cargo's stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo's output")?;
            if let Some(p) = found(&line) {
                path = Some(p);
            }
        }
        let status = child.wait().context("waiting for cargo")?;
        let errors = errors.join().unwrap_or_default();
        anyhow::ensure!(status.success(), "{what} failed ({status}):\n{errors}");
        Ok(path)
    })();
    spinner.finish_and_clear();
    result
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

/// The file of target `name` whose path ends with `suffix`, in one line
/// of cargo's JSON messages.
fn artifact(line: &str, name: &str, suffix: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["target"]["name"] != name {
        return None;
    }
    if let Some(exe) = message["executable"]
        .as_str()
        .filter(|e| e.ends_with(suffix))
    {
        return Some(PathBuf::from(exe));
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(suffix))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_found_in_cargos_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"edge_spin","kind":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/edge_spin.wasm"],"fresh":true}"#;
        let wasm = |line| artifact(line, "edge_spin", ".wasm");
        assert_eq!(
            wasm(line),
            Some(PathBuf::from("/t/wasm32-wasip2/release/edge_spin.wasm"))
        );
        let other = r#"{"reason":"compiler-artifact","target":{"name":"edge_core"},"filenames":["/t/libedge_core.rlib"]}"#;
        assert_eq!(wasm(other), None);
        assert_eq!(wasm("not json"), None);
        let bin = r#"{"reason":"compiler-artifact","target":{"name":"meridian-recommend","kind":["bin"]},"filenames":["/t/debug/meridian-recommend"],"executable":"/t/debug/meridian-recommend","fresh":true}"#;
        assert_eq!(
            artifact(bin, "meridian-recommend", "meridian-recommend"),
            Some(PathBuf::from("/t/debug/meridian-recommend"))
        );
    }
}
