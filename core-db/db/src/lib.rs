//! Meridian's storage API, modelled on FoundationDB's: a [`Database`] whose
//! [`Database::run`] executes a closure in a serializable [`Transaction`] and
//! retries it on retryable errors; tuple-encoded keys and subspaces; atomic
//! mutations, versionstamps, conflict ranges and watches; FoundationDB's size
//! limits; and the geo [`ShardMap`].
//!
//! ```
//! use db::{Database, Error, Subspace};
//!
//! /// Takes `qty` units of `sku` if they are there; never oversells.
//! async fn reserve(db: &Database, sku: &str, qty: i64) -> Result<bool, Error> {
//!     let stock = Subspace::from_bytes(b"\x02stock".to_vec());
//!     db.run(|tx, _maybe_committed| {
//!         let key = stock.pack(&(sku,));
//!         async move {
//!             let have = tx
//!                 .get(&key)
//!                 .await?
//!                 .map_or(0, |v| i64::from_le_bytes(v.try_into().unwrap_or([0; 8])));
//!             if have < qty {
//!                 return Ok(false);
//!             }
//!             tx.set(&key, &(have - qty).to_le_bytes())?;
//!             Ok(true)
//!         }
//!     })
//!     .await
//! }
//! ```
//!
//! This crate names no engine. Engines implement [`backend::RawDatabase`];
//! `db-embedded` (the default, on fjall) and `db-fdb` (FoundationDB) do.

pub mod atomic;
pub mod backend;
mod database;
mod error;
pub mod fault;
pub mod fdb_codes;
pub mod keys;
mod layer;
pub mod limits;
pub mod link;
mod shards;
mod transaction;

pub use atomic::MutationType;
pub use backend::{CommitInfo, KeyValue, RangeChunk};
pub use database::{Database, MaybeCommitted, RetryPolicy};
pub use error::{EngineSource, Error, Result, TxnError};
pub use fault::Faults;
pub use keys::{Subspace, Versionstamp};
pub use link::Link;
pub use shards::{ShardMap, ShardMapError};
pub use transaction::{
    DEFAULT_RANGE_BATCH, MAX_RANGE_BATCH, RangeOption, Transaction, Watch, versionstamp_placeholder,
};
