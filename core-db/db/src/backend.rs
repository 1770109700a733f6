//! What an engine implements. Services never see these traits: they use
//! [`Database`](crate::Database) and [`Transaction`](crate::Transaction),
//! which validate every operation (limits, ranges) the same way before it
//! reaches the engine, and run the one retry loop both engines share.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::atomic::MutationType;
use crate::error::Result;

/// One engine's database: a source of transactions.
pub trait RawDatabase: Send + Sync + std::fmt::Debug + 'static {
    /// A short engine name for logs and metrics ("embedded", "foundationdb").
    fn engine(&self) -> &'static str;
    /// Starts a transaction at a fresh read version.
    fn begin(&self) -> Result<Box<dyn RawTransaction>>;
}

/// One chunk of a range read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeChunk {
    /// The key-value pairs, in the requested order.
    pub kvs: Vec<KeyValue>,
    /// Whether the range holds more pairs past the last one returned.
    pub more: bool,
}

/// A key and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A validated range read request for one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRequest {
    /// Inclusive start key.
    pub begin: Vec<u8>,
    /// Exclusive end key; `begin < end`.
    pub end: Vec<u8>,
    /// At most this many pairs (≥ 1).
    pub limit: usize,
    /// Read from `end` down to `begin`.
    pub reverse: bool,
    /// Add no read conflict range.
    pub snapshot: bool,
}

/// Which side of conflict detection an explicit range joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    Read,
    Write,
}

/// What a commit reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitInfo {
    /// The commit version, `None` for a read-only transaction (which commits
    /// trivially, as in FoundationDB).
    pub version: Option<u64>,
    /// The transaction's 10-byte versionstamp (commit version, batch order),
    /// `None` when read-only.
    pub versionstamp: Option<[u8; 10]>,
}

/// A watch: resolves `Ok(())` once the watched key's value differs from the
/// value the transaction saw or wrote.
pub type WatchFuture = BoxFuture<'static, Result<()>>;

/// One engine's transaction. Shared by reference between the caller's future
/// and the retry loop, so every method takes `&self`.
///
/// Arguments reaching these methods are already validated by the wrapper:
/// keys and values within limits, `begin < end`, versionstamp offsets inside
/// their buffer.
pub trait RawTransaction: Send + Sync {
    fn get<'a>(&'a self, key: &'a [u8], snapshot: bool) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;
    fn get_range<'a>(&'a self, request: &'a RangeRequest) -> BoxFuture<'a, Result<RangeChunk>>;
    fn set(&self, key: &[u8], value: &[u8]);
    fn clear(&self, key: &[u8]);
    fn clear_range(&self, begin: &[u8], end: &[u8]);
    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType);
    /// `key` ends with a 4-byte little-endian offset of a 10-byte placeholder
    /// that the commit's versionstamp replaces.
    fn set_versionstamped_key(&self, key: &[u8], value: &[u8]);
    /// `value` ends with a 4-byte little-endian offset, as for keys.
    fn set_versionstamped_value(&self, key: &[u8], value: &[u8]);
    fn add_conflict_range(&self, begin: &[u8], end: &[u8], kind: ConflictKind);
    /// Registers a watch that becomes active when the transaction commits.
    fn watch(&self, key: &[u8]) -> Result<WatchFuture>;
    /// Commits. Called at most once; a read-only transaction commits
    /// trivially (its watches still become active).
    fn commit(&self) -> BoxFuture<'_, Result<CommitInfo>>;
}

/// An engine that can be shared.
pub type SharedRawDatabase = Arc<dyn RawDatabase>;
