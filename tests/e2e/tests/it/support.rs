//! What the end-to-end tests share: the local topology started in-process
//! or as a `meridian up` process, calls signed as the edges sign, `dig`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The local stack's admin token (regions and routing).
pub(crate) const ADMIN: &str = "local-dev-admin-token";
/// The key the local edges sign their calls to the regions with.
pub(crate) const EDGE_KEY: &str = "local-dev-edge-key-change-me";
/// Products in the catalog of a stack `write_config` describes.
pub(crate) const PRODUCTS: usize = 12;

/// The repository's `infra/` directory.
pub fn infra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
}

/// `dig`'s short answer for an A query.
pub(crate) fn dig(server: std::net::SocketAddr, name: &str) -> Vec<String> {
    let out = std::process::Command::new("dig")
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            name,
            "A",
            "+short",
            "+time=2",
            "+tries=1",
        ])
        .output()
        .expect("`dig` runs (Debian's dnsutils; `cargo xtask test` installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs the `meridian` CLI (as `meridian-e2e`) to its end, off the async
/// runtime: whether it succeeded, its stdout and its stderr.
pub(crate) async fn cli<S: AsRef<str>>(args: &[S]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meridian-e2e"))
            .args(&args)
            .env("RUST_LOG", "error")
            .output()
            .expect("running meridian")
    })
    .await
    .expect("the meridian task");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the `meridian` CLI; its stdout (it must succeed).
pub(crate) async fn meridian(args: &[&str]) -> String {
    let (ok, stdout, stderr) = cli(args).await;
    assert!(ok, "{stderr}");
    stdout
}

/// Whether the routing table serves `shard` at `region`.
pub(crate) fn active_is(
    shard: &'static str,
    region: &'static str,
) -> impl Fn(&topology::routing::RoutingTable) -> bool {
    move |t| {
        t.shard(&shard.parse().expect("shard"))
            .and_then(|s| s.active.as_ref())
            .is_some_and(|r| r.as_str() == region)
    }
}

/// `meridian up` on the local config with ephemeral ports (each server on
/// its configured loopback address), a fresh data directory and a catalog
/// of `products`, after `up`'s own build step (a no-op when the component
/// is fresh).
pub(crate) async fn local_platform(
    dir: &tempfile::TempDir,
    products: usize,
) -> meridian::platform::Platform {
    local_platform_with(dir, products, |_| {}).await
}

/// `local_platform` with the loaded config changed by `change` first.
pub(crate) async fn local_platform_with(
    dir: &tempfile::TempDir,
    products: usize,
    change: impl FnOnce(&mut meridian::config::Loaded),
) -> meridian::platform::Platform {
    let mut loaded =
        meridian::config::load(&infra_dir().join("local/meridian.toml")).expect("local config");
    if let regional_server::storage::StorageConfig::Embedded {
        dir: data,
        durability,
        ..
    } = &mut loaded.storage
    {
        *data = dir.path().to_path_buf();
        // The seed writes thousands of records; fsync is not what these
        // tests are about.
        *durability = db_embedded::Durability::Buffer;
    }
    loaded.seed.products = products;
    loaded.seed.order_lines = 0;
    change(&mut loaded);
    let component = tokio::task::spawn_blocking(meridian::build::edge_component)
        .await
        .expect("build task")
        .expect("the edge component builds");
    assert!(
        component.as_ref().is_some_and(|c| c.is_file()),
        "{component:?}"
    );
    meridian::platform::start(
        &loaded,
        meridian::platform::StartOptions {
            ephemeral_ports: true,
            component,
        },
    )
    .await
    .expect("the platform starts")
}

/// A call signed as the local edges sign, to a region; its JSON answer
/// (it must succeed).
pub(crate) async fn signed_call(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: &[u8],
    token: Option<&str>,
) -> serde_json::Value {
    let (status, body) = signed_call_status(client, base, method, path, body, token).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {body}"
    );
    body
}

/// A call signed as the local edges sign, to a region: its status and JSON
/// body.
pub(crate) async fn signed_call_status(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: &[u8],
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let nonce = format!(
        "test-nonce-{:016}",
        NONCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signature = regional_server::auth::sign_edge_request(
        EDGE_KEY.as_bytes(),
        method,
        path,
        now_s,
        &nonce,
        body,
    );
    let mut request = client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{base}{path}"),
        )
        .header(topology::signing::TIMESTAMP_HEADER, now_s.to_string())
        .header(topology::signing::NONCE_HEADER, nonce)
        .header(topology::signing::SIGNATURE_HEADER, signature);
    if !body.is_empty() {
        request = request
            .header("content-type", "application/json")
            .body(body.to_vec());
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// A client for shoppers and operators (no proxy: everything is loopback).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// A session for a new shopper of `shard`, made through the POP at
/// `base`: its token.
pub(crate) async fn session(client: &reqwest::Client, base: &str, shard: &str) -> String {
    let (status, _, session) = call(
        client
            .post(format!("{base}/v1/sessions"))
            .json(&serde_json::json!({ "shard": shard })),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    session["token"].as_str().expect("token").to_owned()
}

/// A new shopper of `shard` at the POP `base`, with an empty cart made
/// under the Idempotency-Key `cart_key`: (session token, cart id).
pub(crate) async fn new_shopper(
    client: &reqwest::Client,
    base: &str,
    shard: &str,
    cart_key: &str,
) -> (String, String) {
    let token = session(client, base, shard).await;
    let (status, _, cart) = call(
        client
            .post(format!("{base}/v1/carts"))
            .bearer_auth(&token)
            .header("idempotency-key", cart_key),
    )
    .await;
    assert_eq!(status, 201, "{cart}");
    (token, cart["id"].as_str().expect("cart id").to_owned())
}

/// A JSON request through a POP: its status, headers and JSON body.
pub(crate) async fn call(
    request: reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Waits (bounded) until the routing layer at `api` sees every region and
/// every POP healthy: the state a shopper's first request needs.
pub(crate) async fn until_healthy(api: std::net::SocketAddr) {
    let client = client();
    routing::client::table_when(
        &client,
        &format!("http://{api}"),
        40,
        topology::routing::RoutingTable::all_healthy,
    )
    .await
    .expect("every region and POP healthy");
}

/// The local platform's config copied into `dir`, with its data there, a
/// small catalog, short saga leases, and a slow and sometimes-lost payment
/// provider (so checkouts are in flight when the process dies).
pub(crate) fn write_config(dir: &Path) -> PathBuf {
    let local = infra_dir().join("local");
    for file in ["topology.toml", "routing.toml", "dns.toml", "edge.toml"] {
        std::fs::copy(local.join(file), dir.join(file)).expect("copy a config");
    }
    std::fs::create_dir_all(dir.join("regions")).expect("regions dir");
    let mut regions = Vec::new();
    for region in ["us-east", "eu-west", "ap-southeast"] {
        let file = format!("regions/{region}.toml");
        let text = std::fs::read_to_string(local.join(&file)).expect("region config");
        std::fs::write(
            dir.join(&file),
            format!(
                "{text}\n[commerce]\nsaga_lease_ms = 1000\n\n[workers]\nrecovery_interval_ms = 50\n"
            ),
        )
        .expect("region config");
        regions.push(format!("\"{file}\""));
    }
    let path = dir.join("meridian.toml");
    std::fs::write(
        &path,
        format!(
            r#"topology = "topology.toml"
regions = [{}]
routing = "routing.toml"
edge = "edge.toml"
geography = true

[storage]
engine = "embedded"
dir = "data"
durability = "sync"

[seed]
products = {PRODUCTS}
seed = 42
max_stock = 1000
order_lines = 0

[recommend]
every_s = 0

[payments]
latency_ms = 40
timeout_rate = 0.05
seed = 11
"#,
            regions.join(", ")
        ),
    )
    .expect("meridian.toml");
    path
}

/// A running `meridian up`: its POPs and regions by name, its routing
/// API. Dropped, it is killed (a failed test leaves no process behind).
pub(crate) struct Up {
    child: Child,
    pub(crate) pops: BTreeMap<String, SocketAddr>,
    pub(crate) regions: BTreeMap<String, String>,
    pub(crate) routing: SocketAddr,
    /// The control API (drills against this stack).
    pub(crate) control: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Up {
    /// Starts `meridian up --ephemeral-ports` and reads its banner.
    pub(crate) fn start(config: &Path) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian-e2e"))
            .args(["up", "--ephemeral-ports", "--config"])
            .arg(config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning meridian up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut pops, mut regions, mut routing, mut control) =
            (BTreeMap::new(), BTreeMap::new(), None, None);
        // The banner ends with the "Try:" line; bounded by its length.
        for _ in 0..100 {
            let Some(Ok(line)) = lines.next() else {
                panic!("meridian up ended before it was up");
            };
            if line.starts_with("Try:") {
                break;
            }
            // "  pop    dub            http://127.0.2.1:PORT"
            // "  region us-east        http://127.0.1.1:PORT  serves shards [us, eu]"
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["pop", name, url] => {
                    let addr = url
                        .trim_start_matches("http://")
                        .parse()
                        .expect("POP address");
                    pops.insert((*name).to_owned(), addr);
                }
                ["region", name, url, ..] => {
                    regions.insert((*name).to_owned(), (*url).to_owned());
                }
                // "  control API    http://127.0.0.1:PORT  (drills: …)"
                ["control", "API", url, ..] => control = Some((*url).to_owned()),
                // "  routing API    http://127.0.0.1:PORT/v1/table"
                ["routing", "API", url] => {
                    let addr = url
                        .trim_start_matches("http://")
                        .trim_end_matches("/v1/table");
                    routing = Some(addr.parse().expect("routing API address"));
                }
                _ => {}
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        assert_eq!(pops.len(), 4, "{pops:?}");
        assert_eq!(regions.len(), 3, "{regions:?}");
        Up {
            child,
            pops,
            regions,
            routing: routing.expect("the banner names the routing API"),
            control: control.expect("the banner names the control API"),
        }
    }

    /// The POP a shopper of `shard` uses: the one nearest its home region.
    pub(crate) fn pop(&self, shard: &str) -> String {
        let name = match shard {
            "us" => "iad",
            "eu" => "dub",
            _ => "sin",
        };
        format!("http://{}", self.pops[name])
    }

    pub(crate) fn kill(mut self) {
        // SIGKILL: no shutdown path runs.
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}
