//! The transaction handle services code against. It validates every
//! operation (FoundationDB's size limits, ranges, versionstamp offsets) and
//! accounts the transaction's size identically for every engine, then hands
//! the operation to the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::Stream;

use crate::atomic::MutationType;
use crate::backend::{
    CommitInfo, ConflictKind, KeyValue, RangeChunk, RangeRequest, RawTransaction, WatchFuture,
};
use crate::error::{Error, Result};
use crate::keys::{Subspace, key_after, prefix_range};
use crate::limits::{
    KEY_SIZE_LIMIT, SYSTEM_KEYSPACE, TRANSACTION_SIZE_LIMIT, check_key, check_range_end,
    check_value,
};

/// Rows a range read fetches per round trip unless told otherwise.
pub const DEFAULT_RANGE_BATCH: usize = 256;
/// Upper bound on rows in one chunk, whatever the caller asks.
pub const MAX_RANGE_BATCH: usize = 10_000;

/// A range read: `[begin, end)`, optionally limited and reversed, fetched in
/// batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeOption {
    pub begin: Vec<u8>,
    pub end: Vec<u8>,
    /// Total rows to return, `None` for the whole range.
    pub limit: Option<usize>,
    pub reverse: bool,
    /// Rows per chunk (clamped to `1..=MAX_RANGE_BATCH`).
    pub batch_size: usize,
}

impl RangeOption {
    pub fn new(begin: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        RangeOption {
            begin: begin.into(),
            end: end.into(),
            limit: None,
            reverse: false,
            batch_size: DEFAULT_RANGE_BATCH,
        }
    }

    /// Every key starting with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        let (begin, end) = prefix_range(prefix);
        Self::new(begin, end)
    }

    /// Every key inside `subspace`.
    pub fn subspace(subspace: &Subspace) -> Self {
        let (begin, end) = subspace.range();
        Self::new(begin, end)
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }

    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    fn chunk_rows(&self) -> usize {
        let batch = self.batch_size.clamp(1, MAX_RANGE_BATCH);
        self.limit.map_or(batch, |limit| limit.min(batch))
    }
}

struct Inner {
    raw: Box<dyn RawTransaction>,
    /// Bytes of mutations and conflict ranges so far.
    size: AtomicUsize,
    finished: AtomicBool,
}

/// A transaction. Cheap to clone: clones share one transaction, so a
/// `Database::run` closure can move it into its future.
#[derive(Clone)]
pub struct Transaction {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("size", &self.inner.size.load(Ordering::Relaxed))
            .field("finished", &self.inner.finished.load(Ordering::Relaxed))
            .finish()
    }
}

impl Transaction {
    pub(crate) fn new(raw: Box<dyn RawTransaction>) -> Self {
        Transaction {
            inner: Arc::new(Inner {
                raw,
                size: AtomicUsize::new(0),
                finished: AtomicBool::new(false),
            }),
        }
    }

    fn live(&self) -> Result<&dyn RawTransaction> {
        if self.inner.finished.load(Ordering::Acquire) {
            return Err(Error::UsedAfterFinish);
        }
        Ok(&*self.inner.raw)
    }

    /// Accounts `bytes` against the transaction size limit.
    fn charge(&self, bytes: usize) -> Result<()> {
        let before = self.inner.size.fetch_add(bytes, Ordering::AcqRel);
        let after = before.saturating_add(bytes);
        if after > TRANSACTION_SIZE_LIMIT {
            self.inner.size.fetch_sub(bytes, Ordering::AcqRel);
            return Err(Error::TransactionTooLarge {
                size: after,
                limit: TRANSACTION_SIZE_LIMIT,
            });
        }
        Ok(())
    }

    /// Refuses an inverted range (FoundationDB `inverted_range`) and charges
    /// a non-empty one; `false` means the range is empty: nothing to do.
    fn charge_range(&self, begin: &[u8], end: &[u8], inverted: &'static str) -> Result<bool> {
        if begin > end {
            return Err(Error::InvalidMutation { reason: inverted });
        }
        if begin == end {
            return Ok(false);
        }
        self.charge(begin.len() + end.len())?;
        Ok(true)
    }

    /// Bytes of mutations and conflict ranges charged so far.
    pub fn size(&self) -> usize {
        self.inner.size.load(Ordering::Acquire)
    }

    /// Reads a key, adding a read conflict on it.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_inner(key, false).await
    }

    /// Reads a key without a read conflict: a concurrent write to it does
    /// not abort this transaction.
    pub async fn get_snapshot(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_inner(key, true).await
    }

    async fn get_inner(&self, key: &[u8], snapshot: bool) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let raw = self.live()?;
        if !snapshot {
            self.charge(key.len() + 1)?;
        }
        raw.get(key, snapshot).await
    }

    /// Reads the first chunk of a range (at most `batch_size` rows, and at
    /// most `limit`). `more` says whether the range goes on.
    pub async fn get_range(&self, range: &RangeOption, snapshot: bool) -> Result<RangeChunk> {
        let raw = self.live()?;
        if range.begin >= range.end || range.limit == Some(0) {
            return Ok(RangeChunk::default());
        }
        // Ranges may end at, not past, the system keyspace (as FoundationDB
        // without system-key access).
        if range.begin.as_slice() >= SYSTEM_KEYSPACE || range.end.as_slice() > SYSTEM_KEYSPACE {
            return Err(Error::KeyOutsideLegalRange {
                len: range.end.len(),
            });
        }
        // No stored key is longer than the key limit, so cutting a bound to
        // limit + 1 bytes selects the same keys (FoundationDB does the same)
        // and keeps engines from seeing keys they cannot handle.
        let clamp = |k: &[u8]| k[..k.len().min(KEY_SIZE_LIMIT + 1)].to_vec();
        let request = RangeRequest {
            begin: clamp(&range.begin),
            end: clamp(&range.end),
            limit: range.chunk_rows(),
            reverse: range.reverse,
            snapshot,
        };
        if !snapshot {
            self.charge(request.begin.len() + request.end.len())?;
        }
        raw.get_range(&request).await
    }

    /// Streams a whole range in chunks of `batch_size`, stopping at `limit`.
    pub fn get_ranges(
        &self,
        range: RangeOption,
        snapshot: bool,
    ) -> impl Stream<Item = Result<Vec<KeyValue>>> + Send + 'static {
        struct Cursor {
            tx: Transaction,
            range: RangeOption,
            done: bool,
        }
        let cursor = Cursor {
            tx: self.clone(),
            range,
            done: false,
        };
        futures::stream::unfold(cursor, move |mut cursor| async move {
            if cursor.done {
                return None;
            }
            match cursor.tx.get_range(&cursor.range, snapshot).await {
                Err(e) => {
                    cursor.done = true;
                    Some((Err(e), cursor))
                }
                Ok(chunk) => {
                    let got = chunk.kvs.len();
                    if let Some(limit) = cursor.range.limit.as_mut() {
                        *limit -= got.min(*limit);
                    }
                    match chunk.kvs.last() {
                        Some(last) if chunk.more && cursor.range.limit != Some(0) => {
                            if cursor.range.reverse {
                                cursor.range.end = last.key.clone();
                            } else {
                                cursor.range.begin = key_after(&last.key);
                            }
                        }
                        _ => cursor.done = true,
                    }
                    if got == 0 {
                        return None;
                    }
                    Some((Ok(chunk.kvs), cursor))
                }
            }
        })
    }

    /// Reads a range into memory, up to its `limit`: give one unless the
    /// range is known to be small.
    pub async fn get_range_all(&self, range: RangeOption, snapshot: bool) -> Result<Vec<KeyValue>> {
        use futures::TryStreamExt;
        let chunks: Vec<Vec<KeyValue>> = self.get_ranges(range, snapshot).try_collect().await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        let raw = self.live()?;
        self.charge(key.len() + value.len())?;
        raw.set(key, value);
        Ok(())
    }

    pub fn clear(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        let raw = self.live()?;
        self.charge(key.len())?;
        raw.clear(key);
        Ok(())
    }

    /// Clears every key in `[begin, end)`. An empty range does nothing; an
    /// inverted one is an error (FoundationDB `inverted_range`).
    pub fn clear_range(&self, begin: &[u8], end: &[u8]) -> Result<()> {
        check_key(begin)?;
        check_range_end(end)?;
        let raw = self.live()?;
        if self.charge_range(begin, end, "clear_range begin is after end")? {
            raw.clear_range(begin, end);
        }
        Ok(())
    }

    /// Clears every key in `subspace`.
    pub fn clear_subspace(&self, subspace: &Subspace) -> Result<()> {
        let (begin, end) = subspace.range();
        self.clear_range(&begin, &end)
    }

    /// Applies an atomic mutation without reading the key, so concurrent
    /// atomic mutations of one key never conflict.
    pub fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) -> Result<()> {
        check_key(key)?;
        check_value(param)?;
        let raw = self.live()?;
        self.charge(key.len() + param.len())?;
        raw.atomic_op(key, param, op);
        Ok(())
    }

    /// Adds a signed 64-bit delta to a little-endian counter.
    pub fn add_i64(&self, key: &[u8], delta: i64) -> Result<()> {
        self.atomic_op(key, &delta.to_le_bytes(), MutationType::Add)
    }

    /// Sets a key whose bytes contain a versionstamp placeholder; `key` is as
    /// `Subspace::pack_with_versionstamp` builds it (placeholder, then a
    /// 4-byte little-endian offset at the end).
    pub fn set_versionstamped_key(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let real_len = check_versionstamp_offset(key)?;
        check_key(&key[..real_len])?;
        check_value(value)?;
        let raw = self.live()?;
        self.charge(real_len + value.len())?;
        raw.set_versionstamped_key(key, value);
        Ok(())
    }

    /// Sets a value whose bytes contain a versionstamp placeholder followed,
    /// at the end, by its 4-byte little-endian offset.
    pub fn set_versionstamped_value(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        let real_len = check_versionstamp_offset(value)?;
        check_value(&value[..real_len])?;
        let raw = self.live()?;
        self.charge(key.len() + real_len)?;
        raw.set_versionstamped_value(key, value);
        Ok(())
    }

    /// Makes the transaction conflict with any concurrent write in
    /// `[begin, end)`, as if it had read the range.
    pub fn add_read_conflict_range(&self, begin: &[u8], end: &[u8]) -> Result<()> {
        self.add_conflict_range(begin, end, ConflictKind::Read)
    }

    /// Makes concurrent readers of `[begin, end)` conflict with this
    /// transaction, as if it had written the range.
    pub fn add_write_conflict_range(&self, begin: &[u8], end: &[u8]) -> Result<()> {
        self.add_conflict_range(begin, end, ConflictKind::Write)
    }

    pub fn add_read_conflict_key(&self, key: &[u8]) -> Result<()> {
        self.add_read_conflict_range(key, &key_after(key))
    }

    pub fn add_write_conflict_key(&self, key: &[u8]) -> Result<()> {
        self.add_write_conflict_range(key, &key_after(key))
    }

    fn add_conflict_range(&self, begin: &[u8], end: &[u8], kind: ConflictKind) -> Result<()> {
        let raw = self.live()?;
        if self.charge_range(begin, end, "conflict range begin is after end")? {
            raw.add_conflict_range(begin, end, kind);
        }
        Ok(())
    }

    /// A future that resolves once `key`'s value differs from what this
    /// transaction saw or wrote. It becomes active when the transaction
    /// commits; it is cancelled if the transaction never does.
    pub fn watch(&self, key: &[u8]) -> Result<Watch> {
        check_key(key)?;
        let raw = self.live()?;
        Ok(Watch(raw.watch(key)?))
    }

    /// Commits. Used by [`Database::run`](crate::Database::run); call it
    /// directly only for a transaction made with `create_transaction`.
    pub async fn commit(&self) -> Result<CommitInfo> {
        if self.inner.finished.swap(true, Ordering::AcqRel) {
            return Err(Error::UsedAfterFinish);
        }
        self.inner.raw.commit().await
    }
}

/// Checks a versionstamp placeholder offset and gives the buffer's length
/// without the 4-byte offset suffix.
fn check_versionstamp_offset(buf: &[u8]) -> Result<usize> {
    versionstamp_placeholder(buf)
        .map(|(_, real_len)| real_len)
        .ok_or(Error::InvalidMutation {
            reason: "versionstamp placeholder missing or outside the buffer",
        })
}

/// Where a versionstamped buffer's placeholder sits, and its length without
/// the offset suffix. For engines that write versionstamps themselves.
pub fn versionstamp_placeholder(buf: &[u8]) -> Option<(usize, usize)> {
    let real_len = buf.len().checked_sub(4)?;
    let mut offset = [0u8; 4];
    offset.copy_from_slice(&buf[real_len..]);
    let offset = u32::from_le_bytes(offset) as usize;
    (offset + 10 <= real_len).then_some((offset, real_len))
}

/// A pending watch (see [`Transaction::watch`]).
pub struct Watch(WatchFuture);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

impl std::future::Future for Watch {
    type Output = Result<()>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}
