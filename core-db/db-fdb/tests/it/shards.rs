//! The shard map checks its configuration before it opens anything.

use std::collections::BTreeMap;
use std::path::PathBuf;

use db::RetryPolicy;
use topology::{LOCAL_TOPOLOGY, ShardId, Topology};

fn local() -> Topology {
    Topology::from_toml_str(LOCAL_TOPOLOGY).expect("the shipped topology parses")
}

#[test]
fn a_shard_without_a_cluster_file_is_refused() {
    let topology = local();
    let first: &ShardId = topology.shards()[0].id();
    // Every shard but the first has a cluster file (which is never opened:
    // the check comes first).
    let cluster_files: BTreeMap<ShardId, PathBuf> = topology.shards()[1..]
        .iter()
        .map(|s| (s.id().clone(), PathBuf::from("/nonexistent/fdb.cluster")))
        .collect();
    let err = db_fdb::open_shard_map(&cluster_files, &topology, RetryPolicy::default())
        .expect_err("a shard has no cluster file");
    assert!(
        matches!(&err, db_fdb::ShardMapOpenError::NoClusterFile { shard } if shard == first),
        "{err:?}"
    );
}
