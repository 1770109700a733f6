//! The geo shard map: one database per shard of the topology, and the
//! storage configuration that says where each shard's data lives. Which
//! engine opens a shard is the caller's business (binaries match on
//! [`StorageConfig`] and call the engine crate); this crate names none.

use std::collections::BTreeMap;
use std::path::PathBuf;

use topology::{ShardId, ShardedId, Topology};

use crate::database::{Database, RetryPolicy};

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
}

/// When an embedded commit counts as done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The commit is on disk (fdatasync) before it is acknowledged.
    #[default]
    Sync,
    /// The commit is in the OS page cache: survives kill -9, not power loss.
    /// After a power loss the last commits may be gone, and with them the
    /// commit versions they used: versionstamps handed out for them will be
    /// handed out again.
    Buffer,
}

/// Errors opening or using the shard map.
#[derive(Debug, thiserror::Error)]
pub enum ShardMapError {
    #[error("shard {shard} is not served here")]
    NotServed { shard: ShardId },
    #[error("storage config names no cluster file for shard {shard}")]
    NoClusterFile { shard: ShardId },
    #[error("opening shard {shard}")]
    Open {
        shard: ShardId,
        #[source]
        source: crate::Error,
    },
}

/// One open database per shard.
#[derive(Debug, Clone, Default)]
pub struct ShardMap {
    shards: BTreeMap<ShardId, Database>,
}

impl ShardMap {
    /// Opens every shard of `topology` with `open`.
    pub fn open_with(
        topology: &Topology,
        mut open: impl FnMut(&ShardId) -> Result<Database, crate::Error>,
    ) -> Result<Self, ShardMapError> {
        let mut shards = BTreeMap::new();
        for shard in topology.shards() {
            let db = open(shard.id()).map_err(|source| ShardMapError::Open {
                shard: shard.id().clone(),
                source,
            })?;
            shards.insert(shard.id().clone(), db);
        }
        Ok(ShardMap { shards })
    }

    /// Every shard with `faults` in front of its commits (tests and
    /// drills); this map is unaffected.
    pub fn with_faults(&self, faults: &std::sync::Arc<crate::fault::Faults>) -> ShardMap {
        ShardMap {
            shards: self
                .shards
                .iter()
                .map(|(shard, db)| (shard.clone(), db.with_faults(faults)))
                .collect(),
        }
    }

    pub fn insert(&mut self, shard: ShardId, db: Database) {
        self.shards.insert(shard, db);
    }

    pub fn get(&self, shard: &ShardId) -> Result<&Database, ShardMapError> {
        self.shards
            .get(shard)
            .ok_or_else(|| ShardMapError::NotServed {
                shard: shard.clone(),
            })
    }

    /// The database holding the record `id` names.
    pub fn for_id(&self, id: &ShardedId) -> Result<&Database, ShardMapError> {
        self.get(id.shard())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ShardId, &Database)> {
        self.shards.iter()
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}
