//! The committer: one thread that resolves conflicts, applies atomic
//! mutations and versionstamps, and writes whole groups of transactions as
//! one fjall batch with one fsync (group commit), the way FoundationDB's
//! commit proxies batch commits. Being the only writer, it needs no lock
//! around read-modify-write of atomics.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use db::backend::CommitInfo;
use db::keys::{key_after, versionstamp_bytes};
use db::{Error, MutationType, Result, atomic, versionstamp_placeholder};

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;

use crate::conflicts::{History, KeyRange, Verdict};
use crate::engine::{Shared, engine_error};
use crate::watches::{Reservation, WatchSender};

/// A buffered mutation, replayed in order at commit.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    Set(Vec<u8>, Vec<u8>),
    Clear(Vec<u8>),
    ClearRange(Vec<u8>, Vec<u8>),
    Atomic(Vec<u8>, Vec<u8>, MutationType),
    VersionstampedKey(Vec<u8>, Vec<u8>),
    VersionstampedValue(Vec<u8>, Vec<u8>),
}

/// A watch to activate when its transaction commits.
#[derive(Debug)]
pub(crate) struct PendingWatch {
    pub(crate) key: Vec<u8>,
    /// The value the transaction saw or wrote; `None`: the value at its
    /// commit point.
    pub(crate) expected: Option<Option<Vec<u8>>>,
    pub(crate) notify: WatchSender,
    pub(crate) reservation: Reservation,
}

/// A transaction asking to commit.
#[derive(Debug)]
pub(crate) struct TxCommit {
    pub(crate) read_version: u64,
    pub(crate) reads: Vec<KeyRange>,
    pub(crate) writes: Vec<KeyRange>,
    pub(crate) mutations: Vec<Mutation>,
    pub(crate) watches: Vec<PendingWatch>,
    pub(crate) reply: oneshot::Sender<Result<CommitInfo>>,
    /// This commit's share of the queue's byte budget, given back when the
    /// commit is dropped: once the committer is done with it.
    pub(crate) budget: OwnedSemaphorePermit,
}

/// What a commit holds of the queue's byte budget: its keys, values and
/// conflict ranges.
pub(crate) fn commit_bytes(
    reads: &[KeyRange],
    writes: &[KeyRange],
    mutations: &[Mutation],
) -> usize {
    let ranges = |r: &[KeyRange]| r.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>();
    let payload: usize = mutations
        .iter()
        .map(|m| match m {
            Mutation::Set(k, v)
            | Mutation::ClearRange(k, v)
            | Mutation::Atomic(k, v, _)
            | Mutation::VersionstampedKey(k, v)
            | Mutation::VersionstampedValue(k, v) => k.len() + v.len(),
            Mutation::Clear(k) => k.len(),
        })
        .sum();
    ranges(reads) + ranges(writes) + payload
}

#[derive(Debug)]
pub(crate) enum CommitRequest {
    Commit(Box<TxCommit>),
    Shutdown,
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    queue: mpsc::Receiver<CommitRequest>,
    version: u64,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("db-committer".into())
        .spawn(move || run(&shared, queue, version))
}

fn run(shared: &Shared, mut queue: mpsc::Receiver<CommitRequest>, mut version: u64) {
    let options = &shared.options;
    let mut history = History::new(version, options.mvcc_window, options.max_history_ranges);
    let mut group = Vec::with_capacity(options.max_group);
    while let Some(first) = queue.blocking_recv() {
        let mut shutdown = false;
        match first {
            CommitRequest::Commit(c) => group.push(*c),
            CommitRequest::Shutdown => shutdown = true,
        }
        // Everything that queued while the last group was on disk joins
        // this one: that is the group commit.
        while !shutdown && group.len() < options.max_group {
            match queue.try_recv() {
                Ok(CommitRequest::Commit(c)) => group.push(*c),
                Ok(CommitRequest::Shutdown) => shutdown = true,
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            commit_group(shared, &mut history, &mut version, &mut group);
        }
        if shutdown {
            queue.close();
            while let Ok(request) = queue.try_recv() {
                if let CommitRequest::Commit(c) = request {
                    let _ = c.reply.send(Err(Error::Closed));
                }
            }
            return;
        }
    }
}

/// Reads a key's newest value: this group's overlay first, then the store.
fn latest(
    shared: &Shared,
    overlay: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    key: &[u8],
) -> Result<Option<Vec<u8>>> {
    if let Some(v) = overlay.get(key) {
        return Ok(v.clone());
    }
    shared.store.latest(key).map_err(|e| engine_error(e, false))
}

/// Replays one transaction's mutations over the group's overlay, into
/// `changes` (applied to the overlay only if every step succeeds).
fn replay(
    shared: &Shared,
    overlay: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    mutations: &[Mutation],
    stamp: [u8; 10],
    writes: &mut Vec<KeyRange>,
) -> Result<BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
    let mut changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let stamped = |buf: &[u8]| -> Result<Vec<u8>> {
        let (offset, real_len) = versionstamp_placeholder(buf).ok_or(Error::InvalidMutation {
            reason: "versionstamp placeholder outside the buffer",
        })?;
        let mut out = buf[..real_len].to_vec();
        out[offset..offset + 10].copy_from_slice(&stamp);
        Ok(out)
    };
    for mutation in mutations {
        match mutation {
            Mutation::Set(k, v) => {
                changes.insert(k.clone(), Some(v.clone()));
            }
            Mutation::Clear(k) => {
                changes.insert(k.clone(), None);
            }
            Mutation::ClearRange(begin, end) => {
                let range = (
                    Bound::Included(begin.as_slice()),
                    Bound::Excluded(end.as_slice()),
                );
                // The store has no range tombstone: clear each key it holds
                // in the range, plus what this group wrote there.
                let stored = shared
                    .store
                    .keys_in(begin, end)
                    .map_err(|e| engine_error(e, false))?;
                for key in stored {
                    changes.insert(key, None);
                }
                for key in overlay.range::<[u8], _>(range).map(|(k, _)| k) {
                    changes.insert(key.clone(), None);
                }
                let mine: Vec<Vec<u8>> = changes
                    .range::<[u8], _>(range)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in mine {
                    changes.insert(key, None);
                }
            }
            Mutation::Atomic(k, param, op) => {
                let current = match changes.get(k) {
                    Some(v) => v.clone(),
                    None => latest(shared, overlay, k)?,
                };
                changes.insert(k.clone(), atomic::apply(*op, current.as_deref(), param));
            }
            Mutation::VersionstampedKey(k, v) => {
                let key = stamped(k)?;
                writes.push((key.clone(), key_after(&key)));
                changes.insert(key, Some(v.clone()));
            }
            Mutation::VersionstampedValue(k, v) => {
                changes.insert(k.clone(), Some(stamped(v)?));
            }
        }
    }
    Ok(changes)
}

struct Accepted {
    reply: oneshot::Sender<Result<CommitInfo>>,
    stamp: [u8; 10],
    /// Watches with their expected values settled.
    watches: Vec<(PendingWatch, Option<Vec<u8>>)>,
}

/// Resolves, applies and writes one group; answers each transaction.
pub(crate) fn commit_group(
    shared: &Shared,
    history: &mut History,
    version: &mut u64,
    group: &mut Vec<TxCommit>,
) {
    let commit_version = *version + 1;
    let mut overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let mut accepted: Vec<Accepted> = Vec::with_capacity(group.len());
    let window_ms = shared.options.mvcc_window.as_millis() as u64;
    // The group's data stays in memory (the overlay, the batch) until it is
    // written: its share of the queue's byte budget is given back then.
    let mut budgets = Vec::with_capacity(group.len());

    for tx in group.drain(..) {
        let TxCommit {
            read_version,
            reads,
            mut writes,
            mutations,
            watches,
            reply,
            budget,
        } = tx;
        budgets.push(budget);
        match history.check(read_version, &reads) {
            Verdict::Commit => {}
            Verdict::Conflict => {
                let _ = reply.send(Err(Error::NotCommitted));
                continue;
            }
            Verdict::TooOld => {
                let _ = reply.send(Err(Error::TransactionTooOld { window_ms }));
                continue;
            }
        }
        let Ok(order) = u16::try_from(accepted.len()) else {
            // More than a versionstamp can order in one group: next group.
            let _ = reply.send(Err(Error::NotCommitted));
            continue;
        };
        let stamp = versionstamp_bytes(commit_version, order);
        let changes = match replay(shared, &overlay, &mutations, stamp, &mut writes) {
            Ok(changes) => changes,
            Err(e) => {
                let _ = reply.send(Err(e));
                continue;
            }
        };
        overlay.extend(changes);
        history.add(commit_version, writes);
        let mut watched = Vec::with_capacity(watches.len());
        for watch in watches {
            let expected = match watch.expected.clone() {
                Some(expected) => Ok(expected),
                None => latest(shared, &overlay, &watch.key),
            };
            match expected {
                Ok(expected) => watched.push((watch, expected)),
                Err(e) => {
                    let _ = watch.notify.send(Err(e));
                }
            }
        }
        accepted.push(Accepted {
            reply,
            stamp,
            watches: watched,
        });
    }
    if accepted.is_empty() {
        return;
    }

    let written = shared
        .store
        .write(&overlay, commit_version, shared.options.durability);
    if let Err(e) = written {
        // The journal may hold part of the group: every commit's outcome is
        // unknown, and fjall refuses further writes (it poisons itself).
        tracing::error!(error = %e, commit_version, "group commit failed");
        history.seal(commit_version, Instant::now());
        let shared_error = std::sync::Arc::new(e);
        for tx in accepted {
            let _ = tx.reply.send(Err(Error::Engine {
                source: Box::new(SharedFjallError(shared_error.clone())),
                code: None,
                retryable: false,
                maybe_committed: true,
            }));
        }
        return;
    }

    shared
        .version
        .store(commit_version, std::sync::atomic::Ordering::Release);
    *version = commit_version;
    shared
        .groups_committed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared
        .transactions_committed
        .fetch_add(accepted.len() as u64, std::sync::atomic::Ordering::Relaxed);
    history.seal(commit_version, Instant::now());

    {
        let mut registry = shared.watches.lock();
        if !registry.is_empty() {
            for (key, value) in &overlay {
                if registry.watches(key) {
                    registry.changed(key, value.as_deref());
                }
            }
        }
        for tx in &mut accepted {
            for (watch, expected) in tx.watches.drain(..) {
                let PendingWatch {
                    key,
                    notify,
                    reservation,
                    ..
                } = watch;
                match latest(shared, &overlay, &key) {
                    Ok(current) => {
                        registry.register(reservation, key, expected, current.as_deref(), notify)
                    }
                    Err(e) => {
                        reservation.redeem();
                        registry.release();
                        let _ = notify.send(Err(e));
                    }
                }
            }
        }
    }
    for tx in accepted {
        let _ = tx.reply.send(Ok(CommitInfo {
            version: Some(commit_version),
            versionstamp: Some(tx.stamp),
        }));
    }
}

/// One fjall failure reported to every transaction of the failed group.
#[derive(Debug)]
struct SharedFjallError(std::sync::Arc<fjall::Error>);

impl std::fmt::Display for SharedFjallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group commit failed: {}", self.0)
    }
}

impl std::error::Error for SharedFjallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
