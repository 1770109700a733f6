//! The edge benchmark, in one run on one machine (`cargo xtask bench-edge`,
//! which installs wrk, Varnish and wasmtime-cli where missing and builds
//! the components):
//!
//! 1. cache hits through edge-host (fresh hits answered in front of the
//!    component), and through the component itself (every request in a
//!    fresh instance), on one hot product;
//! 2. the reference: Varnish (Debian's) serving the same product JSON from
//!    its cache;
//! 3. cache misses through edge-host, an instance per request, each filled
//!    from the region (a POP whose store holds 16 entries, over 10,000
//!    products; the miss ratio is counted from `x-cache`);
//! 4. the reference: `wasmtime serve` running a minimal WASI HTTP component
//!    (an instance per request too);
//! 5. a second reference for misses: `wasmtime serve` running the same
//!    component as a signing proxy to a region, over the same products: a
//!    miss's origin work without edge-host and the edge logic.
//!
//! Load comes from wrk (`-t2 -c64` by default), each step bounded by
//! `--secs`. Everything binds 127.0.0.1 on ephemeral ports.
//!
//! Arguments: `--wasmtime PATH --hello PATH [--component PATH] [--secs N]
//! [--connections N] [--threads N] [--only hits,varnish,misses,serve,proxy]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// `cargo bench -p meridian --bench edge -- [options]`.
#[derive(Debug, clap::Parser)]
#[command(about = "edge-host's hits and misses against Varnish and `wasmtime serve`")]
struct Args {
    /// The `wasmtime` binary (for `serve`).
    #[arg(long, default_value = "wasmtime")]
    wasmtime: PathBuf,
    /// The hello-world component `wasmtime serve` runs.
    #[arg(long, default_value_os_t = target_dir().join("wasm32-wasip2/release/bench_hello.wasm"))]
    hello: PathBuf,
    /// The edge component.
    #[arg(long, default_value_os_t = target_dir().join("wasm32-wasip2/release/edge_spin.wasm"))]
    component: PathBuf,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    secs: u64,
    /// wrk's connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk's threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Steps to run (`hits`, `varnish`, `misses`, `serve`, `proxy`); all by
    /// default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Passed by `cargo bench` to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn runs(&self, step: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == step)
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn parse_args() -> anyhow::Result<Args> {
    Ok(<Args as clap::Parser>::parse())
}

/// What wrk measured.
#[derive(Debug, Clone, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    /// Lines a Lua script printed (the miss count).
    script: String,
}

fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> anyhow::Result<Load> {
    let mut load = Load::default();
    for line in out.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => load.rps = n.parse().context("Requests/sec")?,
            ["50%", d] => load.p50_ms = duration_ms(d).context("p50")?,
            ["99%", d] => load.p99_ms = duration_ms(d).context("p99")?,
            [n, "requests", "in", ..] => load.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.non_2xx = n.parse().unwrap_or(0),
            ["misses", ..] => load.script = t.to_owned(),
            _ => {}
        }
    }
    anyhow::ensure!(load.rps > 0.0, "wrk reported no requests:\n{out}");
    Ok(load)
}

fn wrk(args: &Args, url: &str, script: Option<&Path>) -> anyhow::Result<Load> {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.secs))
        .arg("--latency")
        .arg("--timeout")
        .arg("5s");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    command.arg(url);
    let out = command
        .output()
        .context("running wrk (apt-get install wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `wasmtime serve -Scli` running the bench-hello component on a free
/// loopback port, with `env` (`NAME=VALUE`) in its environment.
fn wasmtime_serve(args: &Args, env: &[String]) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let mut cmd = Command::new(&args.wasmtime);
    cmd.args(["serve", "-Scli", "--addr"])
        .arg(format!("127.0.0.1:{port}"));
    for var in env {
        cmd.arg("--env").arg(var);
    }
    let child = cmd
        .arg(&args.hello)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running wasmtime serve")?;
    Ok((Proc(child), port))
}

async fn wait_until_serving(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} never answered")
}

const MISS_SCRIPT: &str = r#"
-- Cycles every thread through the 10,000 seeded products from its own
-- offset and counts x-cache: MISS answers.
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("offset", next_id * 5003)
  next_id = next_id + 1
  table.insert(threads, thread)
end
local n = 0
misses = 0
answers = 0
function request()
  n = n + 1
  local sku = string.format("MRD-%06d", (offset + n * 7919) % 10000)
  return wrk.format("GET", "/v1/products/" .. sku)
end
function response(status, headers, body)
  answers = answers + 1
  if headers["x-cache"] == "MISS" then misses = misses + 1 end
end
function done(summary, latency, requests)
  local m, a = 0, 0
  for _, t in ipairs(threads) do
    m = m + t:get("misses")
    a = a + t:get("answers")
  end
  io.write(string.format("misses %d of %d\n", m, a))
end
"#;

fn row(name: &str, load: &Load) {
    println!(
        "{name:<44} {:>10.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} non-2xx)",
        load.rps, load.p50_ms, load.p99_ms, load.requests, load.non_2xx
    );
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    for (what, path) in [("component", &args.component), ("hello", &args.hello)] {
        anyhow::ensure!(
            path.exists(),
            "the {what} {} is missing (cargo xtask bench-edge builds it)",
            path.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    // The platform: three regions over one embedded store, seeded with
    // 10,000 products, and the routing layer.
    let dir = tempfile::tempdir()?;
    let mut loaded = meridian::config::load(&workspace().join("infra/local/meridian.toml"))?;
    if let regional_server::storage::StorageConfig::Embedded {
        dir: data,
        durability,
        ..
    } = &mut loaded.storage
    {
        *data = dir.path().to_path_buf();
        *durability = db_embedded::Durability::Buffer;
    }
    loaded.seed.products = 10_000;
    // The bench runs its own edge hosts below.
    loaded.edge = None;
    eprintln!("bench-edge: starting the platform (seeding 10,000 products)");
    let platform = meridian::platform::start(
        &loaded,
        meridian::platform::StartOptions {
            ephemeral_ports: true,
            component: None,
        },
    )
    .await?;
    let routing = platform.routing_api.context("no routing API")?;
    wait_for_table(&client, routing).await?;

    // Two edge hosts on the same component: one with a large store (hits),
    // one whose store keeps 16 entries (misses). No rate limit in reach.
    let mut config =
        edge_host::HostConfig::load(&workspace().join("infra/local/edge.toml"), |_| None)?;
    config.component = args.component.clone();
    config.routing_url = format!("http://{routing}");
    config.rate_limit = edge_host::config::RateLimitConfig {
        per_s: 1e9,
        burst: 1e9,
        ..Default::default()
    };
    config.pops.truncate(1);
    let hits_host = edge_host::start(&config, true).await?;
    let mut miss_config = config.clone();
    miss_config.max_kv_entries = 16;
    miss_config.fast_path = false;
    let miss_host = edge_host::start(&miss_config, true).await?;
    let (hit_pop, hit_addr) = hits_host.pops[0].clone();
    let (_, miss_addr) = miss_host.pops[0].clone();
    let product = format!("http://{hit_addr}/v1/products/MRD-000042");
    let body = warm(&client, &product).await?;

    println!(
        "\nEdge benchmark: wrk -t{} -c{} -d{}s, {} cores",
        args.threads,
        args.connections,
        args.secs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (mut fast, mut varnish_load, mut misses, mut serve, mut proxy) =
        (None, None, None, None, None);
    // 1. Hits.
    if args.runs("hits") {
        let load = wrk(&args, &product, None)?;
        row("edge-host cache hits (fast path)", &load);
        fast = Some(load);
        hit_pop
            .fast_path
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let via_component = wrk(&args, &product, None)?;
        row(
            "edge-host cache hits (instance per request)",
            &via_component,
        );
        hit_pop
            .fast_path
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    // 2. Varnish in front of an origin serving the same bytes.
    if args.runs("varnish") {
        let load = varnish(&args, &client, body).await?;
        row("Varnish cache hits (reference)", &load);
        varnish_load = Some(load);
    }

    // The product mix of the misses and of the proxy reference.
    let miss_script = dir.path().join("miss.lua");
    std::fs::write(&miss_script, MISS_SCRIPT)?;

    // 3. Misses.
    if args.runs("misses") {
        let load = wrk(
            &args,
            &format!("http://{miss_addr}/v1/products/MRD-000000"),
            Some(&miss_script),
        )?;
        row("edge-host cache misses (instance per request)", &load);
        println!("{:<44} {}", "", load.script);
        misses = Some(load);
    }

    // 4. wasmtime serve, hello world.
    if args.runs("serve") {
        let (_serve, port) = wasmtime_serve(&args, &[])?;
        let hello = format!("http://127.0.0.1:{port}/");
        wait_until_serving(&client, &hello).await?;
        let load = wrk(&args, &hello, None)?;
        row("wasmtime serve hello world (reference)", &load);
        serve = Some(load);
    }

    // 5. wasmtime serve, the same component as a signing proxy to a region:
    // the origin work of a miss (signed GET, the region's answer, the body
    // passed on) without edge-host or the edge logic, same product mix.
    if args.runs("proxy") {
        let (_, region, _) = platform.regions.first().context("no region")?;
        let (_serve, port) = wasmtime_serve(
            &args,
            &[
                format!("ORIGIN=http://{region}"),
                format!("EDGE_KEY={}", config.edge_key),
            ],
        )?;
        let first = format!("http://127.0.0.1:{port}/v1/products/MRD-000000");
        // Succeeds only once the proxy reaches the region with a signature
        // the region accepts.
        wait_until_serving(&client, &first).await?;
        let load = wrk(&args, &first, Some(&miss_script))?;
        row("wasmtime serve, signing proxy (reference)", &load);
        proxy = Some(load);
    }

    if let (Some(fast), Some(varnish)) = (&fast, &varnish_load) {
        println!(
            "\nhits: {:.2}x Varnish's requests/s (target >= 1.0), p99 {:.3} ms vs {:.3} ms (target: no worse)",
            fast.rps / varnish.rps,
            fast.p99_ms,
            varnish.p99_ms
        );
    }
    if let (Some(misses), Some(serve)) = (&misses, &serve) {
        println!(
            "misses: {:.2}x wasmtime serve's hello-world requests/s (target >= 1.0)",
            misses.rps / serve.rps
        );
    }
    if let (Some(misses), Some(proxy)) = (&misses, &proxy) {
        println!(
            "misses: {:.2}x wasmtime serve's requests/s proxying the same products from the region",
            misses.rps / proxy.rps
        );
    }
    hits_host.stop().await;
    miss_host.stop().await;
    platform.stop().await?;
    Ok(())
}

async fn wait_for_table(client: &reqwest::Client, routing: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(r) = client
            .get(format!("http://{routing}/v1/table"))
            .send()
            .await
            && let Ok(table) = r.json::<serde_json::Value>().await
            && table["regions"]
                .as_array()
                .is_some_and(|rs| rs.iter().filter(|r| r["health"] == "healthy").count() >= 3)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the regions never became healthy")
}

/// Reads `url` until the POP answers it from its cache; returns the body.
async fn warm(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    for _ in 0..100 {
        let r = client.get(url).send().await?;
        let hit = r.headers().get("x-cache").is_some_and(|v| v == "HIT");
        let status = r.status();
        let body = r.bytes().await?.to_vec();
        if hit && status.is_success() {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} never became a cache hit")
}

/// Varnish (`varnishd`, Debian's defaults) in front of an origin that
/// serves `body` as a cacheable product, measured on cache hits.
async fn varnish(args: &Args, client: &reqwest::Client, body: Vec<u8>) -> anyhow::Result<Load> {
    use axum::response::IntoResponse;
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin_addr = origin.local_addr()?;
    let app = axum::Router::new().route(
        "/v1/products/{sku}",
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        ("content-type", "application/json"),
                        (
                            "cache-control",
                            "public, max-age=300, stale-while-revalidate=600, stale-if-error=86400",
                        ),
                    ],
                    body,
                )
                    .into_response()
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(origin, app).await });
    let work = tempfile::tempdir()?;
    let port = free_port()?;
    let varnishd = ["/usr/sbin/varnishd", "varnishd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("varnishd");
    let _varnish = Proc(
        Command::new(varnishd)
            .arg("-F")
            .args(["-a", &format!("127.0.0.1:{port}")])
            .args(["-b", &origin_addr.to_string()])
            .arg("-n")
            .arg(work.path())
            .args(["-s", "malloc,256m"])
            // The management interface, on loopback only.
            .args(["-T", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("running varnishd (apt-get install varnish)")?,
    );
    let url = format!("http://127.0.0.1:{port}/v1/products/MRD-000042");
    wait_until_serving(client, &url).await?;
    // Cached after the first answer.
    for _ in 0..3 {
        client.get(&url).send().await?.bytes().await?;
    }
    let load = wrk(args, &url, None);
    server.abort();
    load
}
