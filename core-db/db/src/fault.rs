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

use crate::backend::{CommitInfo, RawTransaction, SharedRawDatabase};
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
        crate::layer::wrap(self.clone(), raw)
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

impl crate::layer::Layer for Faults {
    fn before_read(&self) -> BoxFuture<'_, Result<()>> {
        futures::future::ready(Ok(())).boxed()
    }

    fn commit<'a>(
        &'a self,
        wrote: bool,
        _read: bool,
        inner: &'a dyn RawTransaction,
    ) -> BoxFuture<'a, Result<CommitInfo>> {
        async move {
            if !wrote {
                return inner.commit().await;
            }
            if Faults::take(&self.unknown_not_applied) {
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Err(Error::CommitUnknownResult);
            }
            if Faults::take(&self.conflict) {
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Err(Error::NotCommitted);
            }
            let info = inner.commit().await?;
            self.commits.fetch_add(1, Ordering::SeqCst);
            if Faults::take(&self.unknown_after_apply) {
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Err(Error::CommitUnknownResult);
            }
            Ok(info)
        }
        .boxed()
    }
}
