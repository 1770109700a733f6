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

/// Opens the simulated payment provider over its own embedded store: the
/// config's `store`, else `default_dir`. One per platform: every region of
/// a process shares it, as they would share a real provider.
pub fn open_gateway(
    config: &commerce::SimulatedGatewayConfig,
    default_dir: Option<&std::path::Path>,
) -> anyhow::Result<std::sync::Arc<commerce::SimulatedGateway>> {
    let dir = config
        .store
        .as_deref()
        .or(default_dir)
        .context("payments.store is not set (where the simulated provider keeps its books)")?;
    let db = db_embedded::EmbeddedDatabase::open_database(
        dir,
        EmbeddedOptions::default(),
        db::RetryPolicy::default(),
    )
    .with_context(|| format!("opening the payment provider's store {}", dir.display()))?;
    tracing::info!(seed = config.seed, store = %dir.display(), "simulated payment provider");
    Ok(std::sync::Arc::new(commerce::SimulatedGateway::new(
        config.clone(),
        db,
    )))
}

/// Where the provider's store goes by default: beside the embedded shards.
pub fn default_gateway_dir(storage: &StorageConfig) -> Option<std::path::PathBuf> {
    match storage {
        StorageConfig::Embedded { dir, .. } => Some(dir.join("payments")),
        StorageConfig::Foundationdb { .. } => None,
    }
}
