//! The FoundationDB backend of Meridian's storage API (client API 7.3): one
//! cluster per geo shard, each opened from its cluster file.
//!
//! FoundationDB is what the storage API is modelled on, so this backend is
//! thin: operations go straight to a `foundationdb::Transaction`, and its
//! errors are classified into `db::Error` ([`map_fdb_error`]). It does not
//! retry: `db::Database::run` does, for both engines. The client network is
//! booted once per process ([`FdbNetwork`]).
//!
//! Linking needs `libfdb_c`; building (clippy, check) needs only libclang.

mod database;
mod error;
mod network;
mod tx;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use db::backend::SharedRawDatabase;
use db::{Database, RetryPolicy, ShardMap, ShardMapError};
use topology::{ShardId, Topology};

pub use database::{FdbDatabase, OpenError};
pub use error::{MAX_WATCHES, MVCC_WINDOW_MS, map_fdb_error};
pub use network::{FdbNetwork, NetworkError};

/// Why the shard map could not be opened on FoundationDB.
#[derive(Debug, thiserror::Error)]
pub enum ShardMapOpenError {
    #[error("the storage config names no cluster file for shard {shard}")]
    NoClusterFile { shard: topology::ShardId },
    #[error(transparent)]
    Open(#[from] ShardMapError),
}

/// Opens one database per shard of `topology`, each on the cluster its
/// entry in `cluster_files` describes (the `[storage]` config's
/// `engine = "foundationdb"`).
///
/// Every shard needs a cluster file, checked before anything is opened.
/// Shards that name the same cluster file share one client handle, as
/// FoundationDB recommends (one database object per cluster per process).
/// Entries for shards outside the topology are ignored.
pub fn open_shard_map(
    cluster_files: &BTreeMap<ShardId, PathBuf>,
    topology: &Topology,
    retry: RetryPolicy,
) -> Result<ShardMap, ShardMapOpenError> {
    let mut paths = Vec::with_capacity(topology.shards().len());
    for shard in topology.shards() {
        let path =
            cluster_files
                .get(shard.id())
                .ok_or_else(|| ShardMapOpenError::NoClusterFile {
                    shard: shard.id().clone(),
                })?;
        paths.push((shard.id(), path.as_path()));
    }

    let mut clusters: BTreeMap<&Path, SharedRawDatabase> = BTreeMap::new();
    let mut map = ShardMap::default();
    for (shard, path) in paths {
        let raw = match clusters.get(path) {
            Some(raw) => raw.clone(),
            None => {
                let opened: SharedRawDatabase =
                    Arc::new(FdbDatabase::open(path).map_err(|e| ShardMapError::Open {
                        shard: shard.clone(),
                        source: e.into(),
                    })?);
                clusters.insert(path, opened.clone());
                opened
            }
        };
        map.insert(shard.clone(), Database::new(raw).with_retry_policy(retry));
    }
    Ok(map)
}
