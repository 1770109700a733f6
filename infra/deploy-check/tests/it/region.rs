//! A region started with the production config: on FoundationDB when
//! `FDB_CLUSTER_FILE` names a cluster (and this crate is built with
//! `--features fdb`), else on the embedded engine in its place. It serves,
//! and its /metrics has the series the HPA scales on.

use crate::configs::load_regional;
use crate::kubernetes::hpa_queue_metric;
use crate::render::regions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_starts_with_the_production_config_and_exports_the_hpa_metric() {
    let region = &regions()[0];
    let root = tempfile::tempdir().unwrap();
    let (mut loaded, _) = load_regional(region, root.path());
    let state = root.path().join("state");
    loaded.config.search_dir = Some(state.join("search"));
    loaded.config.payments.store = Some(state.join("payments"));
    loaded.config.listen = "127.0.0.1:0".parse().unwrap();
    loaded.config.replication.peers.clear();
    match std::env::var_os("FDB_CLUSTER_FILE") {
        Some(file) if cfg!(feature = "fdb") => {
            // Every shard on the one test cluster.
            if let regional_server::storage::StorageConfig::Foundationdb { cluster_files, .. } =
                &mut loaded.config.storage
            {
                for path in cluster_files.values_mut() {
                    *path = std::path::PathBuf::from(&file);
                }
            }
        }
        other => {
            println!(
                "deploy-check: FoundationDB skipped: {}; the production config runs on the embedded engine instead",
                if other.is_some() {
                    "FDB_CLUSTER_FILE is set but this build lacks `--features fdb`"
                } else {
                    "FDB_CLUSTER_FILE is not set"
                }
            );
            loaded.config.storage = regional_server::storage::StorageConfig::Embedded {
                dir: state.join("shards"),
                durability: Default::default(),
                retry: Default::default(),
            };
        }
    }
    let shards = regional_server::storage::open(&loaded.config.storage, &loaded.topology).unwrap();
    let gateway = regional_server::storage::open_gateway(&loaded.config.payments, None).unwrap();
    let server = regional_server::Region::from_config(&loaded, shards, gateway).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(regional_server::run(server, listener, stopped));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // Bounded: the readiness probe's own budget (90 tries).
    let mut ready = false;
    for _ in 0..90 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(ready, "the region never became ready");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let name = hpa_queue_metric(region);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
        "the HPA scales on {name}, which /metrics does not export:\n{metrics}"
    );
    let _ = stop.send(true);
    running.await.unwrap().unwrap();
}
