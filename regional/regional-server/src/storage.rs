//! The composition root of storage: the `[storage]` config, which names
//! the engines, and opening every shard's database on the configured one.
//! Shared by the regional server and the `meridian` CLI; `core-db/db`
//! names no engine, so a new engine touches this file and its own crate.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use db::{RetryPolicy, ShardMap};
use db_embedded::{Durability, EmbeddedOptions};
use topology::{ShardId, Topology};

/// Where each shard's data lives, from the `[storage]` config.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "engine", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// The embedded engine: one directory per shard under `dir`
    /// (`<dir>/<shard>`).
    Embedded {
        dir: PathBuf,
        /// `sync` (fsync before acknowledging, the default) or `buffer`
        /// (survives a process crash, not a machine crash).
        #[serde(default)]
        durability: Durability,
        #[serde(default)]
        retry: RetryPolicy,
    },
    /// FoundationDB: one cluster file per shard.
    Foundationdb {
        cluster_files: BTreeMap<ShardId, PathBuf>,
        #[serde(default)]
        retry: RetryPolicy,
    },
}

impl StorageConfig {
    pub fn retry_policy(&self) -> RetryPolicy {
        match self {
            StorageConfig::Embedded { retry, .. } | StorageConfig::Foundationdb { retry, .. } => {
                *retry
            }
        }
    }

    /// Relative paths resolved against `base` (the config file's folder).
    pub fn resolve(self, base: &std::path::Path) -> StorageConfig {
        match self {
            StorageConfig::Embedded {
                dir,
                durability,
                retry,
            } => StorageConfig::Embedded {
                dir: base.join(dir),
                durability,
                retry,
            },
            StorageConfig::Foundationdb {
                cluster_files,
                retry,
            } => StorageConfig::Foundationdb {
                cluster_files: cluster_files
                    .into_iter()
                    .map(|(shard, file)| (shard, base.join(file)))
                    .collect(),
                retry,
            },
        }
    }
}

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
