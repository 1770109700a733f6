//! What the end-to-end tests share: the local topology started in-process
//! or as a `meridian up` process, calls signed as the edges sign, `dig`.

use std::path::{Path, PathBuf};

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

/// Runs the `meridian` binary; its stdout (it must succeed).
pub(crate) async fn meridian(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meridian-e2e"))
            .args(&args)
            .output()
            .expect("running meridian")
    })
    .await
    .expect("the meridian task");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
        b"local-dev-edge-key-change-me",
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
    routing::client::table_when(&client, &format!("http://{api}"), 40, |t| {
        t.regions
            .iter()
            .all(|r| r.health == topology::routing::Health::Healthy)
            && t.pops
                .iter()
                .all(|p| p.health == topology::routing::Health::Healthy)
    })
    .await
    .expect("every region and POP healthy");
}
