//! The operator's CLI as a library: configuration loading and opening the
//! storage of every shard, shared by the `meridian` binary and its tests.

pub mod config;

use anyhow::Context;
use db::{ShardMap, StorageConfig};
use db_embedded::EmbeddedOptions;
use topology::Topology;

/// Opens one database per shard of `topology` on the configured engine.
pub fn open_storage(storage: &StorageConfig, topology: &Topology) -> anyhow::Result<ShardMap> {
    match storage {
        StorageConfig::Embedded {
            dir,
            durability,
            retry,
        } => {
            let options = EmbeddedOptions {
                durability: *durability,
                ..EmbeddedOptions::default()
            };
            db_embedded::open_shard_map(dir, topology, &options, *retry)
                .with_context(|| format!("opening embedded stores under {}", dir.display()))
        }
        #[cfg(feature = "fdb")]
        StorageConfig::Foundationdb {
            cluster_files,
            retry,
        } => db_fdb::open_shard_map(cluster_files, topology, *retry)
            .context("opening FoundationDB clusters"),
        #[cfg(not(feature = "fdb"))]
        StorageConfig::Foundationdb { .. } => anyhow::bail!(
            "this meridian was built without FoundationDB support: rebuild with `--features fdb` \
             where the FoundationDB client library is installed"
        ),
    }
}
