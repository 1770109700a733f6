//! Opening every shard's database on the configured engine. Shared by the
//! regional server and the `meridian` CLI.

use anyhow::Context;
use db::{ShardMap, StorageConfig};
use db_embedded::EmbeddedOptions;
use topology::Topology;

/// Opens one database per shard of `topology` on the configured engine.
pub fn open(storage: &StorageConfig, topology: &Topology) -> anyhow::Result<ShardMap> {
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
            "this build has no FoundationDB support: rebuild with `--features fdb` \
             where the FoundationDB client library is installed"
        ),
    }
}
