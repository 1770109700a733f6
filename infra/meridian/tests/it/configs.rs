//! Every config file in infra/ parses with the type that reads it (as
//! hickory tests its shipped configs), so a typo in a shipped file fails CI.

use std::path::{Path, PathBuf};

use topology::Topology;

fn infra_dir() -> PathBuf {
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

/// `meridian up` on the local config (with ephemeral ports and a fresh data
/// directory): every region serves the seeded catalog, search answers, and
/// the routing layer sees every region healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_every_region_seeded_and_routed() {
    let mut loaded = meridian::config::load(&infra_dir().join("local/meridian.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    if let regional_server::storage::StorageConfig::Embedded {
        dir: data,
        durability,
        ..
    } = &mut loaded.storage
    {
        *data = dir.path().to_path_buf();
        // The seed writes thousands of records; fsync is not what this
        // test is about.
        *durability = db_embedded::Durability::Buffer;
    }
    loaded.seed.products = 10_000;
    let platform = meridian::platform::start(
        &loaded,
        meridian::platform::StartOptions {
            ephemeral_ports: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(platform.regions.len(), 3);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (name, addr, region) in &platform.regions {
        assert_eq!(region.commerce.search_index().num_docs(), 10_000, "{name}");
        let product: serde_json::Value = client
            .get(format!("http://{addr}/v1/products/MRD-009999"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(product["sku"], "MRD-009999", "{name}: {product}");
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
    // The routing layer probes the regions' /readyz and finds them healthy.
    let api = platform.routing_api.unwrap();
    // Followed by the table's long poll, not a clock.
    routing::client::table_when(&client, &format!("http://{api}"), 20, |table| {
        table
            .regions
            .iter()
            .filter(|r| r.health == topology::routing::Health::Healthy)
            .count()
            == 3
    })
    .await
    .unwrap();
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
