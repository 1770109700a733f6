//! Every config file in infra/ parses with the type that reads it (as
//! hickory tests its shipped configs), so a typo in a shipped file fails CI.

use std::path::{Path, PathBuf};

use topology::Topology;

pub(crate) fn infra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("infra/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml")
            && path.file_name().is_some_and(|n| n != "Cargo.toml")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_config_in_infra_parses() {
    let mut files = Vec::new();
    toml_files(&infra_dir(), &mut files);
    assert!(!files.is_empty());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        match file.file_name().and_then(|n| n.to_str()) {
            Some("topology.toml") => {
                Topology::from_toml_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            }
            Some("routing.toml") => {
                routing::server::load(file).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
            }
            Some("dns.toml") => {
                dns_authority::DnsConfig::from_toml_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            }
            Some(name) if file.parent().is_some_and(|p| p.ends_with("regions")) => {
                let loaded = regional_server::config::load(file, |_| None)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
                assert_eq!(format!("{}.toml", loaded.config.region), name);
            }
            Some("edge.toml") => {
                edge_host::HostConfig::from_toml_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
            }
            Some("meridian.toml") => {
                meridian::config::load(file)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
            }
            _ => panic!(
                "{}: no parser knows this config file; add it to this test",
                file.display()
            ),
        }
    }
}

#[test]
fn unknown_fields_are_refused() {
    let err = meridian::config::parse(
        "topology = \"t.toml\"\nextra = 1\n[storage]\nengine = \"embedded\"\ndir = \"d\"\n",
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    let err = meridian::config::parse(
        "topology = \"t.toml\"\n[storage]\nengine = \"embedded\"\ndir = \"d\"\ncolour = 1\n",
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    let err = meridian::config::parse("topology = \"t.toml\"\n[storage]\nengine = \"rocks\"\n")
        .unwrap_err();
    assert!(format!("{err:#}").contains("unknown variant"), "{err:#}");
}

#[test]
fn foundationdb_storage_parses() {
    let config = meridian::config::parse(
        "topology = \"t.toml\"\n[storage]\nengine = \"foundationdb\"\ncluster_files = { us = \"us.cluster\", eu = \"eu.cluster\" }\n[storage.retry]\nmax_retries = 5\n",
    )
    .unwrap();
    match config.storage {
        regional_server::storage::StorageConfig::Foundationdb {
            cluster_files,
            retry,
        } => {
            assert_eq!(cluster_files.len(), 2);
            assert_eq!(retry.max_retries, 5);
        }
        other => panic!("{other:?}"),
    }
}

/// `up`'s storage path: the local config opens one store per shard.
#[tokio::test]
async fn local_config_opens_every_shard() {
    let loaded = meridian::config::load(&infra_dir().join("local/meridian.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = match loaded.storage {
        regional_server::storage::StorageConfig::Embedded {
            durability, retry, ..
        } => regional_server::storage::StorageConfig::Embedded {
            dir: dir.path().to_path_buf(),
            durability,
            retry,
        },
        other => panic!("local config should be embedded: {other:?}"),
    };
    let shards = meridian::open_storage(&storage, &loaded.topology).unwrap();
    assert_eq!(shards.len(), loaded.topology.shards().len());
}

/// `meridian up` on the local config (with ephemeral ports, each server on
/// its own configured loopback address, and a fresh data directory): the
/// edge component is built, every region serves the seeded catalog through
/// the POPs, the regions refuse unsigned, forged and replayed calls, the
/// routing layer sees every region and POP healthy, and DNS answers the
/// storefront's name with the nearest POP and `api` with the nearest
/// region, at the addresses that really serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_regions_pops_routing_and_dns() {
    let dir = tempfile::tempdir().unwrap();
    let platform = local_platform(&dir, 2_000).await;
    assert_eq!(platform.regions.len(), 3);
    assert_eq!(platform.pops.len(), 4);
    // Each region and POP on its own configured loopback address.
    let addresses: std::collections::BTreeSet<std::net::IpAddr> = platform
        .regions
        .iter()
        .map(|(_, a, _)| a.ip())
        .chain(platform.pops.iter().map(|(_, a)| a.ip()))
        .collect();
    assert_eq!(addresses.len(), 7, "{addresses:?}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = platform.routing_api.unwrap();
    // The routing layer finds every region and POP healthy (followed by
    // the table's long poll, not a clock).
    let table = routing::client::table_when(&client, &format!("http://{api}"), 40, |table| {
        use topology::routing::Health::Healthy;
        table.regions.iter().all(|r| r.health == Healthy)
            && table.pops.len() == 4
            && table.pops.iter().all(|p| p.health == Healthy)
    })
    .await
    .unwrap();
    for (name, addr, region) in &platform.regions {
        assert_eq!(region.commerce.search_index().num_docs(), 2_000, "{name}");
        let row = table.region(name).unwrap();
        assert_eq!(
            row.addresses,
            [addr.ip()],
            "{name}: DNS gives out where it listens"
        );
    }
    // Through every POP: the catalog and search answer (signed by the POP).
    for (name, addr) in &platform.pops {
        let product = client
            .get(format!("http://{addr}/v1/products/MRD-001999"))
            .send()
            .await
            .unwrap();
        assert_eq!(product.status().as_u16(), 200, "{name}");
        let product: serde_json::Value = product.json().await.unwrap();
        assert_eq!(product["sku"], "MRD-001999", "{name}: {product}");
        let found: serde_json::Value = client
            .get(format!("http://{addr}/v1/search?q=wool&limit=5"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(found["total"].as_u64().unwrap() > 0, "{name}: {found}");
    }
    // The regions require edge signatures: unsigned and forged calls are
    // refused, and so is a replayed write (a replayed read is bounded by the
    // signature's time window alone: it returns what was already seen).
    let (_, region_addr, _) = &platform.regions[0];
    let unsigned = client
        .get(format!("http://{region_addr}/v1/products/MRD-000001"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let body = br#"{}"#;
    let signed = |key: &str, nonce: &str| {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let signature = regional_server::auth::sign_edge_request(
            key.as_bytes(),
            "POST",
            "/v1/sessions",
            now_s,
            nonce,
            body,
        );
        client
            .post(format!("http://{region_addr}/v1/sessions"))
            .header("content-type", "application/json")
            .header(topology::signing::TIMESTAMP_HEADER, now_s.to_string())
            .header(topology::signing::NONCE_HEADER, nonce)
            .header(topology::signing::SIGNATURE_HEADER, signature)
            .body(&body[..])
    };
    let forged = signed("not-the-edge-key-at-all", "0123456789abcdef0001")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let first = signed("local-dev-edge-key-change-me", "0123456789abcdef0002")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 201, "the local edge key signs");
    let replayed = signed("local-dev-edge-key-change-me", "0123456789abcdef0002")
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status().as_u16(), 401, "a replayed write");
    // Geography: each region reaches every shard's cluster over a link, of
    // the modelled round trip to the shards homed elsewhere (zero time to
    // its own), and a call that crosses one pays it.
    assert_eq!(platform.links.len(), 9, "{:?}", platform.links);
    let link = |region: &str, shard: &str| {
        platform
            .links
            .iter()
            .find(|l| l.region.as_str() == region && l.shard.as_str() == shard)
            .map(|l| l.link.clone())
    };
    let us_to_eu = link("us-east", "eu").expect("us-east reaches eu over a link");
    assert_eq!(
        link("eu-west", "eu").unwrap().rtt(),
        std::time::Duration::ZERO
    );
    let rtt = platform
        .topology()
        .region_rtt(&"us-east".parse().unwrap(), &"eu-west".parse().unwrap())
        .unwrap();
    assert_eq!(us_to_eu.rtt(), rtt);
    let region_url = |name: &str| {
        let addr = platform
            .regions
            .iter()
            .find(|(n, _, _)| n.as_str() == name)
            .unwrap()
            .1;
        format!("http://{addr}")
    };
    let session = signed_call(
        &client,
        &region_url("us-east"),
        "POST",
        "/v1/sessions",
        br#"{"shard":"eu"}"#,
        None,
    )
    .await;
    let token = session["token"].as_str().unwrap().to_owned();
    let before = us_to_eu.trips();
    let started = std::time::Instant::now();
    let cart = signed_call(
        &client,
        &region_url("us-east"),
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert!(cart["id"].as_str().unwrap().starts_with("eu."), "{cart}");
    assert!(
        us_to_eu.trips() > before,
        "the eu cart's writes crossed no link"
    );
    // A lower bound only: the modelled time is paid.
    assert!(
        started.elapsed() >= rtt,
        "{:?} < {rtt:?}",
        started.elapsed()
    );
    // The routing layer's probes pay the round trip from where it runs (the
    // first region, us-east) and judge each region against it: the far
    // region is healthy (checked above) though its probes take longer.
    let ap = table.region(&"ap-southeast".parse().unwrap()).unwrap();
    let ap_rtt = platform
        .topology()
        .region_rtt(
            &"us-east".parse().unwrap(),
            &"ap-southeast".parse().unwrap(),
        )
        .unwrap();
    assert!(
        ap.probe_latency_ms.unwrap() >= ap_rtt.as_secs_f64() * 1_000.0,
        "{ap:?}"
    );
    // An edge's miss pays its POP's round trip to the region it calls: San
    // Francisco's nearest region is us-east.
    let sfo = platform.pops.iter().find(|(n, _)| n == "sfo").unwrap().1;
    let sfo_rtt = platform
        .pop_rtt("sfo", &"us-east".parse().unwrap())
        .unwrap();
    let started = std::time::Instant::now();
    let miss = client
        .get(format!("http://{sfo}/v1/products/MRD-000777"))
        .send()
        .await
        .unwrap();
    assert_eq!(miss.headers()["x-cache"], "MISS");
    assert!(
        started.elapsed() >= sfo_rtt,
        "{:?} < {sfo_rtt:?}",
        started.elapsed()
    );
    // At the shard's home the same write crosses a zero-time link.
    let local = signed_call(
        &client,
        &region_url("eu-west"),
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert!(local["id"].as_str().unwrap().starts_with("eu."), "{local}");
    // DNS: from this machine (located near Ashburn by the local DNS
    // config) the storefront is the Ashburn POP and `api` us-east, at the
    // addresses they listen on.
    let dns = platform.dns.unwrap();
    let iad = platform.pops.iter().find(|(n, _)| n == "iad").unwrap().1;
    let us_east = platform
        .regions
        .iter()
        .find(|(n, _, _)| n.as_str() == "us-east")
        .unwrap()
        .1;
    assert_eq!(dig(dns, "www.shop.example."), [iad.ip().to_string()]);
    assert_eq!(dig(dns, "api.shop.example."), [us_east.ip().to_string()]);
    assert_eq!(dig(dns, "sin.pop.shop.example."), ["127.0.2.3"]);
    // The SRE's commands: status shows the table; drain takes us-east out
    // (its shard fails over, `api` answers the next nearest region), and
    // undrain puts it back.
    let routing_url = format!("http://{api}");
    let status = meridian(&["status", "--routing", &routing_url]).await;
    for expected in ["us-east", "healthy", "iad", "127.0.2.2", "SHARD"] {
        assert!(status.contains(expected), "{status}");
    }
    let drained = meridian(&[
        "drain",
        "us-east",
        "--routing",
        &routing_url,
        "--token",
        "local-dev-admin-token",
    ])
    .await;
    assert!(drained.contains("drained"), "{drained}");
    let table = routing::client::table_when(&client, &routing_url, 10, active_is("us", "eu-west"))
        .await
        .unwrap();
    let eu_west = table.region(&"eu-west".parse().unwrap()).unwrap().addresses[0];
    assert_eq!(dig(dns, "api.shop.example."), [eu_west.to_string()]);
    meridian(&[
        "undrain",
        "us-east",
        "--routing",
        &routing_url,
        "--token",
        "local-dev-admin-token",
    ])
    .await;
    assert_eq!(dig(dns, "api.shop.example."), [us_east.ip().to_string()]);
    // A wrong token is refused, with the routing layer's reason.
    let refused = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args([
                "drain",
                "us-east",
                "--routing",
                &routing_url,
                "--token",
                "wrong",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Every service in the process serves its own metrics, labelled: each
    // region only its own series, the routing layer its own.
    let names: Vec<String> = platform
        .regions
        .iter()
        .map(|(n, _, _)| n.as_str().to_owned())
        .collect();
    for (name, addr, _) in &platform.regions {
        let r = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
        let text = r.text().await.unwrap();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("regional_"))
            .collect();
        assert!(!series.is_empty(), "{name}: {text}");
        for line in series {
            assert!(
                line.contains(&format!("region=\"{name}\"")),
                "{name}: {line}"
            );
            for other in names.iter().filter(|o| *o != name.as_str()) {
                assert!(
                    !line.contains(&format!("region=\"{other}\"")),
                    "{name}: {line}"
                );
            }
        }
        assert!(!text.contains("routing_"), "{name} serves routing's series");
    }
    let text = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("routing_region_health{"), "{text}");
    assert!(
        !text.contains("regional_http"),
        "routing serves the regions' series"
    );
    platform.stop().await.unwrap();
}

/// `dig`'s short answer for an A query.
fn dig(server: std::net::SocketAddr, name: &str) -> Vec<String> {
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
async fn meridian(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
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
