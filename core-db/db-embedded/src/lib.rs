//! The embedded storage engine, Meridian's default on one machine:
//! FoundationDB's transaction model (serializable optimistic transactions,
//! read versions, conflict ranges, atomics, versionstamps, watches) on
//! fjall, an LSM-tree store with a write-ahead journal.
//!
//! Reads run at a fjall snapshot; writes are buffered in the transaction;
//! one committer thread resolves conflicts and writes each group of
//! transactions as one atomic fjall batch with one fsync.
//!
//! The same engine also keeps its data in memory
//! ([`EmbeddedDatabase::open_memory`]) for the deterministic simulator: no
//! thread (each commit resolved and applied in the committing task), no
//! disk, the MVCC window on tokio's clock, and crashes of the store's host
//! that lose what was not durable ([`EmbeddedDatabase::crash`]). It runs
//! the same conformance battery as the disk store and FoundationDB.

mod committer;
mod conflicts;
mod engine;
mod store;
mod tx;
mod watches;

use std::path::Path;

use db::{RetryPolicy, ShardMap, ShardMapError};
pub use engine::{Durability, EmbeddedDatabase, EmbeddedOptions, EmbeddedStats, OpenError};
pub use store::CrashReport;
use topology::Topology;

/// Opens one store per shard of `topology`, each in `<dir>/<shard>`.
pub fn open_shard_map(
    dir: &Path,
    topology: &Topology,
    options: &EmbeddedOptions,
    retry: RetryPolicy,
) -> Result<ShardMap, ShardMapError> {
    ShardMap::open_with(topology, |shard| {
        EmbeddedDatabase::open_database(dir.join(shard.as_str()), options.clone(), retry)
            .map_err(db::Error::from)
    })
}
