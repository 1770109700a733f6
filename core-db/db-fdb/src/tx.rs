//! A FoundationDB transaction behind `RawTransaction`.
//!
//! `RawTransaction` takes `&self` everywhere and commits once, while
//! `foundationdb::Transaction::commit` consumes the transaction: it lives in
//! a mutex as an `Option` that commit takes. The binding's futures own their
//! FDB future handles and borrow nothing, so every method locks only to
//! issue the call and awaits after unlocking.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use db::backend::{
    CommitInfo, ConflictKind, KeyValue, RangeChunk, RangeRequest, RawTransaction, WatchFuture,
};
use db::keys::key_after;
use db::limits::TRANSACTION_SIZE_LIMIT;
use db::{Error, MutationType, Result};
use foundationdb::options::{self, ConflictRangeType, StreamingMode};
use foundationdb::{FdbError, FdbResult, KeySelector, Transaction};
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::error::{code, map_fdb_error, map_watch_error};

/// The read version request issued at begin (see [`FdbTx::new`]).
type PendingReadVersion = Box<dyn Future<Output = FdbResult<i64>> + Send + Sync + Unpin>;

struct State {
    /// `None` once commit took it.
    tx: Option<Transaction>,
    /// Held rather than dropped: destroying an unready FDB future cancels
    /// it, and the request must stand until the transaction ends.
    _read_version: PendingReadVersion,
    /// Mutations or write conflict ranges were issued: the commit writes.
    wrote: bool,
    /// Watches were set: the commit must happen for them to activate.
    watched: bool,
    /// The first error of a call that cannot return one (adding a conflict
    /// range), reported by commit, as FoundationDB reports errors of `set`.
    deferred: Option<FdbError>,
}

pub(crate) struct FdbTx {
    state: Mutex<State>,
    /// Set once the commit succeeded, so watch futures can tell "the key
    /// changed or the watch failed" from "the transaction never committed".
    committed: Arc<AtomicBool>,
    /// Keeps the database handle alive as long as its transaction; declared
    /// after `state` so the transaction is destroyed first.
    _db: Arc<foundationdb::Database>,
}

impl FdbTx {
    /// Wraps a fresh transaction and requests its read version at once.
    ///
    /// FoundationDB fetches a read version lazily, at the first read or at
    /// commit; the storage API starts a transaction "at a fresh read
    /// version" (`RawDatabase::begin`), as the embedded engine does. The
    /// difference shows with explicit read conflict ranges: a transaction
    /// that adds one before reading anything must conflict with writes
    /// committed after it began, which a read version taken at commit would
    /// miss. Every commit needs a read version anyway, so requesting it
    /// early costs no extra round trip, only moves it.
    pub(crate) fn new(tx: Transaction, db: Arc<foundationdb::Database>) -> Self {
        let read_version = Box::new(tx.get_read_version());
        FdbTx {
            state: Mutex::new(State {
                _read_version: read_version,
                tx: Some(tx),
                wrote: false,
                watched: false,
                deferred: None,
            }),
            committed: Arc::new(AtomicBool::new(false)),
            _db: db,
        }
    }

    /// Runs `f` on the live transaction; `None` after commit.
    fn with_tx<T>(&self, f: impl FnOnce(&Transaction) -> T) -> Option<T> {
        self.state.lock().tx.as_ref().map(f)
    }

    /// Issues a mutation. After commit it is dropped: the `db::Transaction`
    /// wrapper refuses operations on a finished transaction before they get
    /// here, so only a call racing its own commit could arrive, and that
    /// loses the race as it would in FoundationDB (`used_during_commit`).
    fn write(&self, f: impl FnOnce(&Transaction)) {
        let mut state = self.state.lock();
        if let Some(tx) = state.tx.as_ref() {
            f(tx);
            state.wrote = true;
        }
    }

    async fn commit_async(&self, taken: Option<(Transaction, bool, bool)>) -> Result<CommitInfo> {
        let (tx, wrote, watched) = taken.ok_or(Error::UsedAfterFinish)?;
        if !wrote && !watched {
            // Read-only without watches: FoundationDB's commit would return
            // at once with no version either, so skip the round trip through
            // the network thread. Dropping the transaction is all it needs.
            return Ok(CommitInfo::default());
        }
        if !wrote {
            // Read-only with watches: the commit is local (no version, no
            // versionstamp) but activates the watches.
            return match tx.commit().await {
                Ok(_) => {
                    self.committed.store(true, Ordering::Release);
                    Ok(CommitInfo::default())
                }
                Err(e) => Err(map_fdb_error(FdbError::from(e))),
            };
        }
        // Both futures must be issued before `commit` consumes the
        // transaction. The size is only awaited to explain a
        // `transaction_too_large`; the versionstamp resolves once the commit
        // succeeded.
        let size = tx.get_approximate_size();
        let versionstamp = tx.get_versionstamp();
        match tx.commit().await {
            Ok(committed) => {
                self.committed.store(true, Ordering::Release);
                // -1: FoundationDB committed it as read-only (it may turn
                // writes of unchanged values into nothing): no version, and
                // no versionstamp to wait for.
                let version = match committed.committed_version() {
                    Ok(v) => u64::try_from(v).ok(),
                    Err(error) => {
                        // The commit happened: reporting an error would make
                        // `Database::run` treat it as failed (and perhaps run
                        // it again). Report it without a version instead.
                        tracing::warn!(%error, "committed, but its commit version is unavailable");
                        None
                    }
                };
                let versionstamp = match version {
                    None => None,
                    Some(_) => match versionstamp.await {
                        Ok(stamp) => <[u8; 10]>::try_from(&stamp[..]).ok(),
                        Err(error) => {
                            tracing::warn!(%error, "committed, but its versionstamp is unavailable");
                            None
                        }
                    },
                };
                drop(committed);
                Ok(CommitInfo {
                    version,
                    versionstamp,
                })
            }
            Err(e) => {
                let err = FdbError::from(e);
                if err.code() == code::TRANSACTION_TOO_LARGE
                    && let Ok(size) = size.await
                    && let Ok(size) = usize::try_from(size)
                    && size > TRANSACTION_SIZE_LIMIT
                {
                    // FoundationDB measured mutations plus conflict ranges
                    // with its own overheads, which the wrapper's accounting
                    // does not see.
                    return Err(Error::TransactionTooLarge {
                        size,
                        limit: TRANSACTION_SIZE_LIMIT,
                    });
                }
                Err(map_fdb_error(err))
            }
        }
    }
}

/// The FoundationDB atomic operation for each storage API mutation.
fn fdb_mutation(op: MutationType) -> options::MutationType {
    match op {
        MutationType::Add => options::MutationType::Add,
        MutationType::BitAnd => options::MutationType::BitAnd,
        MutationType::BitOr => options::MutationType::BitOr,
        MutationType::BitXor => options::MutationType::BitXor,
        MutationType::Max => options::MutationType::Max,
        MutationType::Min => options::MutationType::Min,
        MutationType::ByteMax => options::MutationType::ByteMax,
        MutationType::ByteMin => options::MutationType::ByteMin,
        MutationType::AppendIfFits => options::MutationType::AppendIfFits,
        MutationType::CompareAndClear => options::MutationType::CompareAndClear,
    }
}

fn conflict_type(kind: ConflictKind) -> ConflictRangeType {
    match kind {
        ConflictKind::Read => ConflictRangeType::Read,
        ConflictKind::Write => ConflictRangeType::Write,
    }
}

impl RawTransaction for FdbTx {
    fn get<'a>(&'a self, key: &'a [u8], snapshot: bool) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        let pending = self.with_tx(|tx| tx.get(key, snapshot));
        async move {
            let value = pending
                .ok_or(Error::UsedAfterFinish)?
                .await
                .map_err(map_fdb_error)?;
            Ok(value.map(|v| v.to_vec()))
        }
        .boxed()
    }

    /// One chunk of at most `limit` pairs.
    ///
    /// FoundationDB's `more` is "true if (but not only if) pairs remain": it
    /// is true whenever the row limit is reached, even at the end of the
    /// range. To report `more` exactly, as the embedded engine does, this
    /// reads one pair past the limit. That extra pair must not join the read
    /// conflict range (a write to it would abort this transaction for a key
    /// the caller never saw), so the read is a snapshot read and the conflict
    /// range FoundationDB would have added — up to just after the last pair
    /// returned, or the whole range when it was read to its end — is added
    /// explicitly.
    fn get_range<'a>(&'a self, request: &'a RangeRequest) -> BoxFuture<'a, Result<RangeChunk>> {
        let limit = request.limit.max(1);
        let option = foundationdb::RangeOption {
            begin: KeySelector::first_greater_or_equal(request.begin.as_slice()),
            end: KeySelector::first_greater_or_equal(request.end.as_slice()),
            limit: Some(limit + 1),
            // WantAll: fetch the chunk in as few round trips as possible,
            // within FoundationDB's per-request byte budget (so a chunk of
            // large values may hold fewer than `limit` pairs, with `more`).
            mode: StreamingMode::WantAll,
            reverse: request.reverse,
            ..foundationdb::RangeOption::default()
        };
        let pending = self.with_tx(|tx| tx.get_range(&option, 1, true));
        async move {
            let values = pending
                .ok_or(Error::UsedAfterFinish)?
                .await
                .map_err(map_fdb_error)?;
            let more = values.len() > limit || values.more();
            let kvs: Vec<KeyValue> = values
                .iter()
                .take(limit)
                .map(|kv| KeyValue {
                    key: kv.key().to_vec(),
                    value: kv.value().to_vec(),
                })
                .collect();
            if !request.snapshot {
                let (begin, end) = match (more, kvs.last()) {
                    (true, Some(last)) if request.reverse => {
                        (last.key.clone(), request.end.clone())
                    }
                    (true, Some(last)) => (request.begin.clone(), key_after(&last.key)),
                    _ => (request.begin.clone(), request.end.clone()),
                };
                self.with_tx(|tx| tx.add_conflict_range(&begin, &end, ConflictRangeType::Read))
                    .ok_or(Error::UsedAfterFinish)?
                    .map_err(map_fdb_error)?;
            }
            Ok(RangeChunk { kvs, more })
        }
        .boxed()
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.write(|tx| tx.set(key, value));
    }

    fn clear(&self, key: &[u8]) {
        self.write(|tx| tx.clear(key));
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.write(|tx| tx.clear_range(begin, end));
    }

    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        self.write(|tx| tx.atomic_op(key, param, fdb_mutation(op)));
    }

    fn set_versionstamped_key(&self, key: &[u8], value: &[u8]) {
        // The buffers already end with the placeholder's 4-byte
        // little-endian offset, FoundationDB's API ≥ 520 format.
        self.write(|tx| tx.atomic_op(key, value, options::MutationType::SetVersionstampedKey));
    }

    fn set_versionstamped_value(&self, key: &[u8], value: &[u8]) {
        self.write(|tx| tx.atomic_op(key, value, options::MutationType::SetVersionstampedValue));
    }

    fn add_conflict_range(&self, begin: &[u8], end: &[u8], kind: ConflictKind) {
        let mut state = self.state.lock();
        let Some(tx) = state.tx.as_ref() else {
            return;
        };
        let added = tx.add_conflict_range(begin, end, conflict_type(kind));
        if kind == ConflictKind::Write {
            state.wrote = true;
        }
        if let Err(err) = added {
            state.deferred.get_or_insert(err);
        }
    }

    fn watch(&self, key: &[u8]) -> Result<WatchFuture> {
        let pending = {
            let mut state = self.state.lock();
            let tx = state.tx.as_ref().ok_or(Error::UsedAfterFinish)?;
            let pending = tx.watch(key);
            state.watched = true;
            pending
        };
        let committed = self.committed.clone();
        Ok(async move {
            pending
                .await
                .map_err(|err| map_watch_error(err, committed.load(Ordering::Acquire)))
        }
        .boxed())
    }

    fn commit(&self) -> BoxFuture<'_, Result<CommitInfo>> {
        // Taken now, not when the future is first polled: from here on the
        // transaction is finished for every other call.
        let taken = {
            let mut state = self.state.lock();
            match (state.tx.take(), state.deferred.take()) {
                (Some(_), Some(err)) => {
                    return std::future::ready(Err(map_fdb_error(err))).boxed();
                }
                (tx, _) => tx.map(|tx| (tx, state.wrote, state.watched)),
            }
        };
        self.commit_async(taken).boxed()
    }
}
