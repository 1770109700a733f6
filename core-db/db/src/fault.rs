//! Storage faults injected behind the engine trait, for tests and drills:
//! a [`Faults`] handle wraps any engine's [`RawDatabase`] (so it names no
//! engine) and makes chosen commits fail the way a real cluster's do.
//!
//! The fault that matters most is FoundationDB's `commit_unknown_result`
//! after the commit was applied: the caller cannot tell it from one that
//! was not, and every layer above must keep "maybe applied" distinct from
//! "failed".

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::atomic::MutationType;
use crate::backend::{
    CommitInfo, ConflictKind, RangeChunk, RangeRequest, RawDatabase, RawTransaction,
    SharedRawDatabase, WatchFuture,
};
use crate::error::{Error, Result};

/// What to do to commits from now on. Counts are consumed one per commit of
/// a transaction that writes; [`Faults::ALWAYS`] never runs out.
#[derive(Debug, Default)]
pub struct Faults {
    /// Apply the commit, then report `CommitUnknownResult`.
    unknown_after_apply: AtomicU32,
    /// Do not apply the commit; report `CommitUnknownResult` (the other
    /// half of what that error can mean).
    unknown_not_applied: AtomicU32,
    /// Do not apply the commit; report `NotCommitted` (a conflict: certainly
    /// not applied, retryable).
    conflict: AtomicU32,
    injected: AtomicU64,
    commits: AtomicU64,
}

impl Faults {
    /// A count that is never used up.
    pub const ALWAYS: u32 = u32::MAX;

    pub fn new() -> Arc<Faults> {
        Arc::new(Faults::default())
    }

    /// The next `n` writing commits are applied, then reported as
    /// `CommitUnknownResult`.
    pub fn unknown_after_apply(&self, n: u32) {
        self.unknown_after_apply.store(n, Ordering::SeqCst);
    }

    /// The next `n` writing commits are not applied, and reported as
    /// `CommitUnknownResult`.
    pub fn unknown_not_applied(&self, n: u32) {
        self.unknown_not_applied.store(n, Ordering::SeqCst);
    }

    /// The next `n` writing commits are not applied, and reported as a
    /// conflict (`NotCommitted`).
    pub fn conflict(&self, n: u32) {
        self.conflict.store(n, Ordering::SeqCst);
    }

    /// No more faults.
    pub fn clear(&self) {
        self.conflict.store(0, Ordering::SeqCst);
        self.unknown_after_apply.store(0, Ordering::SeqCst);
        self.unknown_not_applied.store(0, Ordering::SeqCst);
    }

    /// Commits that got a fault so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Writing commits that were applied so far (with or without a fault).
    pub fn applied_commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// `raw` with these faults in front of its commits.
    pub fn wrap(self: &Arc<Self>, raw: SharedRawDatabase) -> SharedRawDatabase {
        Arc::new(FaultyDatabase {
            inner: raw,
            faults: self.clone(),
        })
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                0 => None,
                Faults::ALWAYS => Some(n),
                n => Some(n - 1),
            })
            .is_ok()
    }
}

#[derive(Debug)]
struct FaultyDatabase {
    inner: SharedRawDatabase,
    faults: Arc<Faults>,
}

impl RawDatabase for FaultyDatabase {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    fn begin(&self) -> Result<Box<dyn RawTransaction>> {
        Ok(Box::new(FaultyTransaction {
            inner: self.inner.begin()?,
            faults: self.faults.clone(),
            writes: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}

struct FaultyTransaction {
    inner: Box<dyn RawTransaction>,
    faults: Arc<Faults>,
    writes: std::sync::atomic::AtomicBool,
}

impl FaultyTransaction {
    fn wrote(&self) {
        self.writes.store(true, Ordering::Relaxed);
    }
}

impl RawTransaction for FaultyTransaction {
    fn get<'a>(&'a self, key: &'a [u8], snapshot: bool) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        self.inner.get(key, snapshot)
    }
    fn get_range<'a>(&'a self, request: &'a RangeRequest) -> BoxFuture<'a, Result<RangeChunk>> {
        self.inner.get_range(request)
    }
    fn set(&self, key: &[u8], value: &[u8]) {
        self.wrote();
        self.inner.set(key, value);
    }
    fn clear(&self, key: &[u8]) {
        self.wrote();
        self.inner.clear(key);
    }
    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.wrote();
        self.inner.clear_range(begin, end);
    }
    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        self.wrote();
        self.inner.atomic_op(key, param, op);
    }
    fn set_versionstamped_key(&self, key: &[u8], value: &[u8]) {
        self.wrote();
        self.inner.set_versionstamped_key(key, value);
    }
    fn set_versionstamped_value(&self, key: &[u8], value: &[u8]) {
        self.wrote();
        self.inner.set_versionstamped_value(key, value);
    }
    fn add_conflict_range(&self, begin: &[u8], end: &[u8], kind: ConflictKind) {
        self.inner.add_conflict_range(begin, end, kind);
    }
    fn watch(&self, key: &[u8]) -> Result<WatchFuture> {
        self.inner.watch(key)
    }
    fn commit(&self) -> BoxFuture<'_, Result<CommitInfo>> {
        async move {
            if !self.writes.load(Ordering::Relaxed) {
                return self.inner.commit().await;
            }
            let faults = &self.faults;
            if Faults::take(&faults.unknown_not_applied) {
                faults.injected.fetch_add(1, Ordering::SeqCst);
                return Err(Error::CommitUnknownResult);
            }
            if Faults::take(&faults.conflict) {
                faults.injected.fetch_add(1, Ordering::SeqCst);
                return Err(Error::NotCommitted);
            }
            let info = self.inner.commit().await?;
            faults.commits.fetch_add(1, Ordering::SeqCst);
            if Faults::take(&faults.unknown_after_apply) {
                faults.injected.fetch_add(1, Ordering::SeqCst);
                return Err(Error::CommitUnknownResult);
            }
            Ok(info)
        }
        .boxed()
    }
}
