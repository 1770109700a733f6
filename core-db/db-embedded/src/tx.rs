//! An embedded transaction: reads at a fjall snapshot (its read version),
//! buffers writes locally with read-your-writes, records its read and write
//! conflict ranges, and at commit hands everything to the committer.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use db::MutationType;
use db::backend::{
    CommitInfo, ConflictKind, KeyValue, RangeChunk, RangeRequest, RawTransaction, WatchFuture,
};
use db::keys::key_after;
use db::{Error, Result, atomic};
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::oneshot;
// Tokio's clock: the real one, or the simulator's when it drives time.
use tokio::time::Instant;

use crate::committer::{self, CommitRequest, Mutation, PendingWatch, TxCommit, commit_bytes};
use crate::conflicts::{KeyRange, RangeSet};
use crate::engine::{self, Committer, Shared, engine_error};
use crate::store::Snapshot;
use crate::watches::{Reservation, WatchSender};

/// What this transaction knows of a key it wrote.
#[derive(Debug, Clone)]
enum KeyState {
    /// Fully determined here (set or cleared, maybe with atomics after).
    Known(Option<Vec<u8>>),
    /// Atomic mutations over a base this transaction has not determined:
    /// the snapshot's value, or nothing if a clear-range covered the key.
    Atomics {
        base_cleared: bool,
        ops: Vec<(MutationType, Vec<u8>)>,
    },
    /// Holds this transaction's versionstamp: unknown until commit.
    Unreadable,
}

#[derive(Default)]
struct Local {
    mutations: Vec<Mutation>,
    keys: BTreeMap<Vec<u8>, KeyState>,
    cleared: RangeSet,
    reads: Vec<KeyRange>,
    writes: Vec<KeyRange>,
    watches: Vec<(Vec<u8>, WatchSender, Reservation)>,
}

pub(crate) struct EmbeddedTx {
    shared: Arc<Shared>,
    commits: Committer,
    read_version: u64,
    started: Instant,
    snapshot: Snapshot,
    local: Mutex<Local>,
}

fn unreadable() -> Error {
    Error::InvalidMutation {
        reason: "reading a key whose value holds this transaction's versionstamp",
    }
}

impl EmbeddedTx {
    pub(crate) fn begin(shared: Arc<Shared>, commits: Committer) -> Self {
        let (read_version, snapshot) = shared.store.snapshot(&shared.version);
        EmbeddedTx {
            shared,
            commits,
            read_version,
            started: Instant::now(),
            snapshot,
            local: Mutex::new(Local::default()),
        }
    }

    fn too_old(&self) -> Error {
        Error::TransactionTooOld {
            window_ms: self.shared.options.mvcc_window.as_millis() as u64,
        }
    }

    /// Refuses to go on past the MVCC window, or across a crash of the
    /// memory store (what this transaction read may be gone).
    fn check_age(&self) -> Result<()> {
        if self.started.elapsed() > self.shared.options.mvcc_window || self.snapshot.is_stale() {
            return Err(self.too_old());
        }
        Ok(())
    }

    fn snapshot_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snapshot.get(key).map_err(|e| engine_error(e, false))
    }

    /// The value this transaction sees for a key it wrote, given the
    /// snapshot's value when the base is needed.
    fn resolve(
        state: &KeyState,
        base: impl FnOnce() -> Result<Option<Vec<u8>>>,
    ) -> Result<Option<Vec<u8>>> {
        match state {
            KeyState::Known(v) => Ok(v.clone()),
            KeyState::Unreadable => Err(unreadable()),
            KeyState::Atomics { base_cleared, ops } => {
                let mut value = if *base_cleared { None } else { base()? };
                for (op, param) in ops {
                    value = atomic::apply(*op, value.as_deref(), param);
                }
                Ok(value)
            }
        }
    }

    fn view(&self, local: &Local, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match local.keys.get(key) {
            Some(state) => Self::resolve(state, || self.snapshot_get(key)),
            None if local.cleared.contains(key) => Ok(None),
            None => self.snapshot_get(key),
        }
    }

    fn get_sync(&self, key: &[u8], snapshot: bool) -> Result<Option<Vec<u8>>> {
        self.check_age()?;
        let mut local = self.local.lock();
        let value = self.view(&local, key)?;
        // As FoundationDB: a value this transaction determined itself (set,
        // cleared) was not read from the database, so it adds no conflict.
        let determined_here = match local.keys.get(key) {
            Some(KeyState::Known(_)) => true,
            Some(_) => false,
            None => local.cleared.contains(key),
        };
        if !snapshot && !determined_here {
            local.reads.push((key.to_vec(), key_after(key)));
        }
        Ok(value)
    }

    fn get_range_sync(&self, req: &RangeRequest) -> Result<RangeChunk> {
        self.check_age()?;
        let mut local = self.local.lock();
        let (kvs, more) = self.merge_range(&local, req)?;
        if !req.snapshot {
            let conflict = match (more, kvs.last()) {
                (true, Some(last)) if req.reverse => (last.key.clone(), req.end.clone()),
                (true, Some(last)) => (req.begin.clone(), key_after(&last.key)),
                _ => (req.begin.clone(), req.end.clone()),
            };
            local.reads.push(conflict);
        }
        Ok(RangeChunk { kvs, more })
    }

    /// Merges the snapshot's range with this transaction's writes, in the
    /// requested order: up to `limit` pairs, and whether more follow.
    fn merge_range(&self, local: &Local, req: &RangeRequest) -> Result<(Vec<KeyValue>, bool)> {
        let range = (
            Bound::Included(req.begin.as_slice()),
            Bound::Excluded(req.end.as_slice()),
        );
        let mut stored = self.snapshot.range(&req.begin, &req.end, req.reverse);
        let written = local.keys.range::<[u8], _>(range);
        let written: Box<dyn Iterator<Item = (&Vec<u8>, &KeyState)>> = if req.reverse {
            Box::new(written.rev())
        } else {
            Box::new(written)
        };
        let mut written = written.peekable();
        let mut pending_stored: Option<(Vec<u8>, Vec<u8>)> = None;

        // Merge the snapshot with this transaction's writes, in order.
        let mut next = || -> Result<Option<KeyValue>> {
            loop {
                if pending_stored.is_none()
                    && let Some(pair) = stored.next()
                {
                    pending_stored = Some(pair.map_err(|e| engine_error(e, false))?);
                }
                let before = |a: &[u8], b: &[u8]| if req.reverse { a > b } else { a < b };
                let take_written = match (&pending_stored, written.peek()) {
                    (None, None) => return Ok(None),
                    (Some(_), None) => false,
                    (None, Some(_)) => true,
                    (Some((sk, _)), Some((wk, _))) => !before(sk, wk),
                };
                if take_written {
                    let Some((key, state)) = written.next() else {
                        return Ok(None);
                    };
                    let base = match &pending_stored {
                        Some((sk, sv)) if sk == key => {
                            let v = sv.clone();
                            pending_stored = None;
                            Some(v)
                        }
                        _ => None,
                    };
                    let value = Self::resolve(state, || Ok(base))?;
                    if let Some(value) = value {
                        return Ok(Some(KeyValue {
                            key: key.clone(),
                            value,
                        }));
                    }
                } else if let Some((key, value)) = pending_stored.take()
                    && !local.cleared.contains(&key)
                {
                    return Ok(Some(KeyValue { key, value }));
                }
            }
        };

        let mut kvs = Vec::with_capacity(req.limit.min(1024));
        let mut more = false;
        while let Some(kv) = next()? {
            if kvs.len() == req.limit {
                more = true;
                break;
            }
            kvs.push(kv);
        }
        Ok((kvs, more))
    }

    /// What each watch compares against: the value this transaction saw
    /// or wrote, or `None` where only the commit can tell (atomics over a
    /// base it never read, a versionstamped value).
    fn watch_expectations(&self, local: &Local) -> Result<Vec<Option<Option<Vec<u8>>>>> {
        local
            .watches
            .iter()
            .map(|(key, _, _)| match local.keys.get(key) {
                Some(KeyState::Known(v)) => Ok(Some(v.clone())),
                Some(_) => Ok(None),
                None => self.view(local, key).map(Some),
            })
            .collect()
    }

    async fn commit_async(&self) -> Result<CommitInfo> {
        let mut local = std::mem::take(&mut *self.local.lock());
        let expected = self.watch_expectations(&local)?;
        let watches: Vec<_> = local.watches.drain(..).zip(expected).collect();
        if local.mutations.is_empty() && local.writes.is_empty() {
            // Read-only: nothing to resolve. Watches compare with what this
            // transaction's snapshot saw.
            for ((key, notify, reservation), expected) in watches {
                let expected = expected.unwrap_or_default();
                let mut registry = self.shared.watches.lock();
                let current = self
                    .shared
                    .store
                    .latest(&key)
                    .map_err(|e| engine_error(e, false))?;
                registry.register(reservation, key, expected, current.as_deref(), notify);
            }
            return Ok(CommitInfo::default());
        }
        // Wait for room in the queue's byte budget first, so queued commits
        // cannot hold more memory than it allows (a commit larger than the
        // whole budget takes all of it).
        let bytes = commit_bytes(&local.reads, &local.writes, &local.mutations);
        let budget = engine::commit_budget(&self.shared.options);
        let permits = u32::try_from(bytes.clamp(1, budget)).unwrap_or(u32::MAX);
        let held = Arc::clone(&self.shared.commit_bytes)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Closed)?;
        let (reply, answer) = oneshot::channel();
        let commit = TxCommit {
            read_version: self.read_version,
            reads: local.reads,
            writes: local.writes,
            mutations: local.mutations,
            watches: watches
                .into_iter()
                .map(|((key, notify, reservation), expected)| PendingWatch {
                    key,
                    expected,
                    notify,
                    reservation,
                })
                .collect(),
            reply,
            budget: held,
        };
        match &self.commits {
            Committer::Thread(commits) => commits
                .send(CommitRequest::Commit(Box::new(commit)))
                .await
                .map_err(|_| Error::Closed)?,
            Committer::Inline(inline) => {
                let mut state = inline.lock();
                // Checked under the lock a crash takes too.
                if self.snapshot.is_stale() {
                    return Err(self.too_old());
                }
                let engine::Inline { history, version } = &mut *state;
                committer::commit_group(&self.shared, history, version, &mut vec![commit]);
            }
        }
        match answer.await {
            Ok(result) => result,
            // The committer died holding our request: it may have written it.
            Err(_) => Err(Error::CommitUnknownResult),
        }
    }
}

impl RawTransaction for EmbeddedTx {
    fn get<'a>(&'a self, key: &'a [u8], snapshot: bool) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        std::future::ready(self.get_sync(key, snapshot)).boxed()
    }

    fn get_range<'a>(&'a self, request: &'a RangeRequest) -> BoxFuture<'a, Result<RangeChunk>> {
        std::future::ready(self.get_range_sync(request)).boxed()
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        let mut local = self.local.lock();
        local
            .keys
            .insert(key.to_vec(), KeyState::Known(Some(value.to_vec())));
        local.writes.push((key.to_vec(), key_after(key)));
        local
            .mutations
            .push(Mutation::Set(key.to_vec(), value.to_vec()));
    }

    fn clear(&self, key: &[u8]) {
        let mut local = self.local.lock();
        local.keys.insert(key.to_vec(), KeyState::Known(None));
        local.writes.push((key.to_vec(), key_after(key)));
        local.mutations.push(Mutation::Clear(key.to_vec()));
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        let mut local = self.local.lock();
        let covered: Vec<Vec<u8>> = local
            .keys
            .range::<[u8], _>((Bound::Included(begin), Bound::Excluded(end)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in covered {
            local.keys.remove(&key);
        }
        local.cleared.insert(begin.to_vec(), end.to_vec());
        local.writes.push((begin.to_vec(), end.to_vec()));
        local
            .mutations
            .push(Mutation::ClearRange(begin.to_vec(), end.to_vec()));
    }

    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        let mut local = self.local.lock();
        let base_cleared = local.cleared.contains(key);
        let state = local.keys.entry(key.to_vec()).or_insert(KeyState::Atomics {
            base_cleared,
            ops: Vec::new(),
        });
        match state {
            KeyState::Known(v) => *v = atomic::apply(op, v.as_deref(), param),
            KeyState::Atomics { ops, .. } => ops.push((op, param.to_vec())),
            KeyState::Unreadable => {}
        }
        local.writes.push((key.to_vec(), key_after(key)));
        local
            .mutations
            .push(Mutation::Atomic(key.to_vec(), param.to_vec(), op));
    }

    fn set_versionstamped_key(&self, key: &[u8], value: &[u8]) {
        // The real key exists only at commit: the committer adds its write
        // conflict range then.
        self.local
            .lock()
            .mutations
            .push(Mutation::VersionstampedKey(key.to_vec(), value.to_vec()));
    }

    fn set_versionstamped_value(&self, key: &[u8], value: &[u8]) {
        let mut local = self.local.lock();
        local.keys.insert(key.to_vec(), KeyState::Unreadable);
        local.writes.push((key.to_vec(), key_after(key)));
        local
            .mutations
            .push(Mutation::VersionstampedValue(key.to_vec(), value.to_vec()));
    }

    fn add_conflict_range(&self, begin: &[u8], end: &[u8], kind: ConflictKind) {
        let mut local = self.local.lock();
        let range = (begin.to_vec(), end.to_vec());
        match kind {
            ConflictKind::Read => local.reads.push(range),
            ConflictKind::Write => local.writes.push(range),
        }
    }

    fn watch(&self, key: &[u8]) -> Result<WatchFuture> {
        let reservation = self.shared.watches.lock().reserve(&self.shared)?;
        let (notify, fired) = oneshot::channel();
        self.local
            .lock()
            .watches
            .push((key.to_vec(), notify, reservation));
        Ok(async move {
            fired.await.unwrap_or(Err(Error::WatchCancelled {
                reason: "its transaction did not commit",
            }))
        }
        .boxed())
    }

    fn commit(&self) -> BoxFuture<'_, Result<CommitInfo>> {
        self.commit_async().boxed()
    }
}
