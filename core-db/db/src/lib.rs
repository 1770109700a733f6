//! Meridian's storage API, modelled on FoundationDB's: a [`Database`] whose
//! [`Database::run`] executes a closure in a serializable [`Transaction`] and
//! retries it on retryable errors; tuple-encoded keys and subspaces; atomic
//! mutations, versionstamps, conflict ranges and watches; FoundationDB's size
//! limits; and the geo [`ShardMap`].
//!
//! This crate names no engine. Engines implement [`backend::RawDatabase`];
//! `db-embedded` (the default, on fjall) and `db-fdb` (FoundationDB) do.

pub mod atomic;
pub mod backend;
mod database;
mod error;
pub mod keys;
pub mod limits;
mod shards;
mod transaction;

pub use atomic::MutationType;
pub use backend::{CommitInfo, KeyValue, RangeChunk};
pub use database::{Database, MaybeCommitted, RetryPolicy};
pub use error::{EngineSource, Error, Result, TxnError};
pub use keys::{Subspace, Versionstamp};
pub use shards::{Durability, ShardMap, ShardMapError, StorageConfig};
pub use transaction::{
    DEFAULT_RANGE_BATCH, MAX_RANGE_BATCH, RangeOption, Transaction, Watch, versionstamp_placeholder,
};
