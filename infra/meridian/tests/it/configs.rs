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
    assert!(
        files.iter().any(|f| f.starts_with(infra_dir().join("k8s"))),
        "the production configs are checked too"
    );
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Production's files name paths inside the pods, so only their
        // text is checked here; infra/deploy-check loads them as the pods
        // mount them.
        let in_k8s = file.starts_with(infra_dir().join("k8s"));
        match file.file_name().and_then(|n| n.to_str()) {
            Some("routing.toml") if in_k8s => {
                routing::config::RoutingConfig::from_toml_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
            }
            Some("regional.toml") if in_k8s => {
                let config = regional_server::config::parse(&text)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
                let overlay = file.parent().and_then(|p| p.file_name()).unwrap();
                assert_eq!(config.region.as_str(), overlay, "{}", file.display());
            }
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
