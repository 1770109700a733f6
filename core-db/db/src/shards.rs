//! The geo shard map: one database per shard of the topology. Which engine
//! opens a shard, and how it is configured, is the composition root's
//! business (the binaries' storage config names the engines); this crate
//! names none.

use std::collections::BTreeMap;

use topology::{ShardId, ShardedId, Topology};

use crate::database::Database;

/// Errors opening or using the shard map.
#[derive(Debug, thiserror::Error)]
pub enum ShardMapError {
    #[error("shard {shard} is not served here")]
    NotServed { shard: ShardId },
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
