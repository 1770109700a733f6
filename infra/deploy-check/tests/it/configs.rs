//! The Meridian configs inside the rendered ConfigMaps, laid out as the
//! pods mount them and loaded by the services' own loaders (every one
//! `deny_unknown_fields`), so a config that parses but names a file the
//! pod does not have fails here.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::render::{Region, regions};

/// The container's args' `--config` path.
pub fn config_arg(container: &Value) -> String {
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = args.iter().position(|a| *a == "--config").unwrap();
    args[at + 1].to_owned()
}

/// Writes every rendered ConfigMap the container mounts under `root`, at
/// its mount path; gives the mount paths of its other volumes.
pub fn mount(
    region: &Region,
    deployment: &str,
    container: &str,
    root: &Path,
) -> Vec<(String, Value)> {
    let spec = &region.find("Deployment", deployment)["spec"]["template"]["spec"];
    let container = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == container)
        .unwrap();
    let mut others = Vec::new();
    for m in container["volumeMounts"].as_array().unwrap() {
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        let path = m["mountPath"].as_str().unwrap();
        let rendered = volume["configMap"]["name"].as_str().and_then(|name| {
            region
                .of_kind("ConfigMap")
                .find(|c| c["metadata"]["name"] == name)
        });
        match rendered {
            Some(config_map) => {
                let dir = root.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).unwrap();
                for (file, text) in config_map["data"].as_object().unwrap() {
                    std::fs::write(dir.join(file), text.as_str().unwrap()).unwrap();
                }
            }
            None => others.push((path.to_owned(), volume.clone())),
        }
    }
    others
}

/// The path inside `root` of an absolute path in the pod.
pub fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Whether `path` lies in one of the mounts (and which volume).
fn under<'a>(mounts: &'a [(String, Value)], path: &Path) -> Option<&'a Value> {
    mounts
        .iter()
        .find(|(m, _)| path.starts_with(m))
        .map(|(_, v)| v)
}

pub fn secrets(name: &str) -> Option<String> {
    match name {
        "MERIDIAN_EDGE_KEY" => Some("deploy-check-edge-key-0123456789".into()),
        "MERIDIAN_SESSION_KEY" => Some("deploy-check-session-key-0123456789".into()),
        "MERIDIAN_ADMIN_TOKEN" => Some("deploy-check-admin-token".into()),
        _ => None,
    }
}

/// The region's regional.toml, loaded as the pod loads it, with the pod's
/// filesystem under `root`.
pub fn load_regional(
    region: &Region,
    root: &Path,
) -> (regional_server::config::Loaded, Vec<(String, Value)>) {
    let others = mount(region, "meridian-regional", "regional", root);
    let deployment = region.find("Deployment", "meridian-regional");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let path = inside(root, &config_arg(container));
    let loaded = regional_server::config::load(&path, secrets)
        .unwrap_or_else(|e| panic!("{}: {}: {e:#}", region.name, path.display()));
    (loaded, others)
}

#[test]
fn every_regional_config_loads_in_its_pod_on_foundationdb() {
    for region in regions() {
        let root = tempfile::tempdir().unwrap();
        let (loaded, others) = load_regional(region, root.path());
        let config = &loaded.config;
        assert_eq!(config.region.as_str(), region.name);
        assert!(config.http.require_edge_signature);
        // Served on the container's port.
        let deployment = region.find("Deployment", "meridian-regional");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let env_listen = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "MERIDIAN_LISTEN")
            .and_then(|e| e["value"].as_str())
            .unwrap();
        let listen: std::net::SocketAddr = env_listen.parse().unwrap();
        assert_eq!(
            u64::from(listen.port()),
            container["ports"][0]["containerPort"].as_u64().unwrap()
        );
        // On FoundationDB: a cluster file per shard of the topology, in a
        // writable volume of the pod.
        let regional_server::storage::StorageConfig::Foundationdb { cluster_files, .. } =
            &config.storage
        else {
            panic!("{}: production runs on FoundationDB", region.name);
        };
        let shards: Vec<_> = loaded
            .topology
            .shards()
            .iter()
            .map(|s| s.id().clone())
            .collect();
        assert_eq!(
            cluster_files.keys().cloned().collect::<Vec<_>>().len(),
            shards.len()
        );
        for shard in &shards {
            let file = &cluster_files[shard];
            let volume = under(&others, file)
                .unwrap_or_else(|| panic!("{}: {} is in no volume", region.name, file.display()));
            assert!(
                volume.get("emptyDir").is_some(),
                "cluster files must be writable"
            );
        }
        // The search index and the payment provider's books are in a
        // volume too (the root filesystem is read-only).
        for path in [
            config.search_dir.clone().unwrap(),
            config.payments.store.clone().unwrap(),
        ] {
            assert!(
                under(&others, &path).is_some(),
                "{}: {} is in no volume",
                region.name,
                path.display()
            );
        }
        // The catalog's home pushes to every other region.
        let home = loaded
            .topology
            .shard(&config.catalog_shard)
            .unwrap()
            .home()
            .clone();
        if config.region == home {
            assert_eq!(
                config.replication.peers.len(),
                loaded.topology.regions().len() - 1
            );
        } else {
            assert!(config.replication.peers.is_empty());
        }
    }
}

#[test]
fn every_routing_config_loads_in_its_pod() {
    for region in regions() {
        let root = tempfile::tempdir().unwrap();
        let others = mount(region, "meridian-routing", "routing", root.path());
        let deployment = region.find("Deployment", "meridian-routing");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let path = inside(root.path(), &config_arg(container));
        let loaded =
            routing::server::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", region.name));
        assert_eq!(loaded.config.regions.len(), 3);
        assert_eq!(u64::from(loaded.config.dns_listen.port()), 5353);
        assert_eq!(u64::from(loaded.config.api_listen.port()), 7000);
        // GeoIP from the volume the geoipupdate sidecar fills.
        let geoip = loaded.dns.geoip.as_ref().expect("[geoip] in production");
        for database in &geoip.databases {
            let pod_path =
                Path::new("/").join(database.strip_prefix(root.path()).unwrap_or(database));
            assert!(
                under(&others, &pod_path).is_some(),
                "{}: {} is in no volume",
                region.name,
                pod_path.display()
            );
        }
        // The regions routing checks are the topology's.
        let names: Vec<&str> = loaded
            .config
            .regions
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, crate::render::REGIONS);
    }
}
