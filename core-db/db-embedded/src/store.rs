//! Where an embedded engine keeps its data: fjall on disk (the default), or
//! a versioned map in memory for the deterministic simulator, which cannot
//! use fjall (its flush and compaction threads, a real disk). Both keep
//! the same data under the same transaction model: the engine's
//! transactions and committer see only [`Store`] and [`Snapshot`].
//!
//! The memory store keeps, per key, the values of recent versions, so a
//! snapshot reads exactly what was committed up to its read version, as a
//! fjall snapshot does. A version older than every open snapshot keeps only
//! its newest value. What is durable follows the engine's
//! [`Durability`]: with `Sync` each commit is durable when acknowledged;
//! with `Buffer` only what [`Memory::sync`] reached, and a crash
//! ([`Memory::crash`]) loses the rest, as a power loss loses the page cache.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Keyspace, PersistMode, Readable};
use parking_lot::Mutex;

use crate::engine::{Durability, VERSION_KEY};

/// A key and its value, as a snapshot's range yields them.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// A group's writes: each key's new value, `None` for a clear.
pub(crate) type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// One key's values by version, oldest first; `None` is a clear.
type Versions = Vec<(u64, Option<Vec<u8>>)>;

pub(crate) enum Store {
    Disk {
        db: fjall::Database,
        data: Keyspace,
        meta: Keyspace,
    },
    Memory(Arc<Memory>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Store::Disk { .. } => "Store::Disk",
            Store::Memory(_) => "Store::Memory",
        })
    }
}

/// One read version's view of the store.
pub(crate) enum Snapshot {
    Disk {
        snapshot: fjall::Snapshot,
        data: Keyspace,
    },
    Memory(MemorySnapshot),
}

impl Store {
    /// A read version and a view of everything committed up to it.
    /// `published` is the engine's last published commit version.
    pub(crate) fn snapshot(&self, published: &AtomicU64) -> (u64, Snapshot) {
        match self {
            // Version first, snapshot second: the snapshot then holds at
            // least every group up to the read version, so conflict checks
            // can only err towards a spurious retry, never a missed conflict.
            Store::Disk { db, data, .. } => {
                let version = published.load(Ordering::Acquire);
                let snapshot = Snapshot::Disk {
                    snapshot: db.snapshot(),
                    data: data.clone(),
                };
                (version, snapshot)
            }
            // Taken under the store's lock: exactly what it holds.
            Store::Memory(memory) => {
                let snapshot = memory.snapshot();
                (snapshot.version, Snapshot::Memory(snapshot))
            }
        }
    }

    /// A key's newest committed value.
    pub(crate) fn latest(&self, key: &[u8]) -> Result<Option<Vec<u8>>, fjall::Error> {
        match self {
            Store::Disk { data, .. } => Ok(data.get(key)?.map(|v| v.to_vec())),
            Store::Memory(memory) => Ok(memory.latest(key)),
        }
    }

    /// Every key holding a value in `[begin, end)`, newest state.
    pub(crate) fn keys_in(&self, begin: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>, fjall::Error> {
        match self {
            Store::Disk { data, .. } => data
                .range::<&[u8], _>((Bound::Included(begin), Bound::Excluded(end)))
                .map(|guard| guard.key().map(|k| k.to_vec()))
                .collect(),
            Store::Memory(memory) => Ok(memory.keys_in(begin, end)),
        }
    }

    /// Writes one group atomically at `version`, durable as `durability`
    /// says.
    pub(crate) fn write(
        &self,
        overlay: &Overlay,
        version: u64,
        durability: Durability,
    ) -> Result<(), fjall::Error> {
        match self {
            Store::Disk { db, data, meta } => {
                let mode = match durability {
                    Durability::Sync => PersistMode::SyncData,
                    Durability::Buffer => PersistMode::Buffer,
                };
                let mut batch = db.batch().durability(Some(mode));
                for (key, value) in overlay {
                    match value {
                        Some(value) => batch.insert(data, key.as_slice(), value.as_slice()),
                        None => batch.remove(data, key.as_slice()),
                    }
                }
                batch.insert(meta, VERSION_KEY, version.to_be_bytes());
                batch.commit()
            }
            Store::Memory(memory) => {
                memory.write(overlay, version, durability);
                Ok(())
            }
        }
    }
}

impl Snapshot {
    /// Whether the store crashed since this view was taken: what it read
    /// may be gone, so its transaction is too old to go on.
    pub(crate) fn is_stale(&self) -> bool {
        match self {
            Snapshot::Disk { .. } => false,
            Snapshot::Memory(s) => s.memory.state.lock().epoch != s.epoch,
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, fjall::Error> {
        match self {
            Snapshot::Disk { snapshot, data } => Ok(snapshot.get(data, key)?.map(|v| v.to_vec())),
            Snapshot::Memory(s) => Ok(s.get(key)),
        }
    }

    /// The pairs in `[begin, end)`, in key order or reversed.
    pub(crate) fn range<'a>(
        &'a self,
        begin: &'a [u8],
        end: &'a [u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<Pair, fjall::Error>> + 'a> {
        match self {
            Snapshot::Disk { snapshot, data } => {
                let range = snapshot
                    .range::<&[u8], _>(data, (Bound::Included(begin), Bound::Excluded(end)));
                let pair =
                    |guard: fjall::Guard| guard.into_inner().map(|(k, v)| (k.to_vec(), v.to_vec()));
                if reverse {
                    Box::new(range.rev().map(pair))
                } else {
                    Box::new(range.map(pair))
                }
            }
            Snapshot::Memory(s) => Box::new(s.range(begin, end, reverse).map(Ok)),
        }
    }
}

/// The memory store: each key's values by version, oldest first; a `None`
/// value is a clear.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    keys: BTreeMap<Vec<u8>, Versions>,
    /// Open snapshots by read version, counted.
    open: BTreeMap<u64, usize>,
    /// The newest version written.
    newest: u64,
    /// Every version up to this one survives a crash.
    durable: u64,
    /// Crashes so far.
    epoch: u64,
}

/// What a crash of the memory store's host did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashReport {
    /// The newest version still there.
    pub durable_version: u64,
    /// Commit groups lost: written and acknowledged, never made durable.
    pub lost_groups: u64,
}

impl Memory {
    fn snapshot(self: &Arc<Self>) -> MemorySnapshot {
        let mut state = self.state.lock();
        let version = state.newest;
        *state.open.entry(version).or_default() += 1;
        MemorySnapshot {
            memory: Arc::clone(self),
            version,
            epoch: state.epoch,
        }
    }

    fn latest(&self, key: &[u8]) -> Option<Vec<u8>> {
        let state = self.state.lock();
        state
            .keys
            .get(key)
            .and_then(|versions| versions.last())
            .and_then(|(_, v)| v.clone())
    }

    fn keys_in(&self, begin: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
        let state = self.state.lock();
        state
            .keys
            .range::<[u8], _>((Bound::Included(begin), Bound::Excluded(end)))
            .filter(|(_, versions)| versions.last().is_some_and(|(_, v)| v.is_some()))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn write(&self, overlay: &Overlay, version: u64, durability: Durability) {
        let mut state = self.state.lock();
        if durability == Durability::Sync {
            state.durable = version;
        }
        // Versions no open snapshot can read, and that a crash cannot bring
        // back, are kept only as each key's newest value at or below this
        // floor.
        let oldest_reader = state.open.keys().next().copied().unwrap_or(version);
        let floor = oldest_reader.min(state.durable);
        for (key, value) in overlay {
            let versions = state.keys.entry(key.clone()).or_default();
            versions.push((version, value.clone()));
            prune(versions, floor);
            if versions.len() == 1 && versions[0].1.is_none() && versions[0].0 <= floor {
                state.keys.remove(key);
            }
        }
        state.newest = version;
    }

    /// Makes every written version durable (the page cache written back).
    pub(crate) fn sync(&self) {
        let mut state = self.state.lock();
        state.durable = state.newest;
    }

    /// Loses every version that is not durable; returns the keys whose
    /// newest value changed, with their value now. Versions stay monotone
    /// (as FoundationDB's do across a recovery): the next write's version
    /// is newer than any written before, lost or not, so no versionstamp
    /// is handed out twice while the store holds a value stamped with it.
    pub(crate) fn crash(&self) -> (CrashReport, Overlay) {
        let mut state = self.state.lock();
        let durable = state.durable;
        let mut changed = Overlay::new();
        state.keys.retain(|key, versions| {
            let before = versions.len();
            versions.retain(|(v, _)| *v <= durable);
            if versions.len() != before {
                changed.insert(key.clone(), versions.last().and_then(|(_, v)| v.clone()));
            }
            versions.last().is_some_and(|(_, v)| v.is_some())
        });
        let report = CrashReport {
            durable_version: durable,
            lost_groups: state.newest - durable,
        };
        state.durable = state.newest;
        state.epoch += 1;
        (report, changed)
    }
}

/// Drops the versions of `versions` (oldest first) that no reader at or
/// after `floor` can see: all but the newest at or below it.
fn prune(versions: &mut Versions, floor: u64) {
    let visible = versions.iter().rposition(|(v, _)| *v <= floor);
    if let Some(keep) = visible
        && keep > 0
    {
        versions.drain(..keep);
    }
}

/// A read version's view of the memory store.
pub(crate) struct MemorySnapshot {
    memory: Arc<Memory>,
    version: u64,
    epoch: u64,
}

fn at(versions: &[(u64, Option<Vec<u8>>)], version: u64) -> Option<&Vec<u8>> {
    versions
        .iter()
        .rev()
        .find(|(v, _)| *v <= version)
        .and_then(|(_, value)| value.as_ref())
}

impl MemorySnapshot {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let state = self.memory.state.lock();
        state
            .keys
            .get(key)
            .and_then(|versions| at(versions, self.version))
            .cloned()
    }

    /// The range's pairs, read at once: the simulator's stores are small.
    fn range(&self, begin: &[u8], end: &[u8], reverse: bool) -> impl Iterator<Item = Pair> {
        let state = self.memory.state.lock();
        let mut pairs: Vec<Pair> = state
            .keys
            .range::<[u8], _>((Bound::Included(begin), Bound::Excluded(end)))
            .filter_map(|(k, versions)| at(versions, self.version).map(|v| (k.clone(), v.clone())))
            .collect();
        if reverse {
            pairs.reverse();
        }
        pairs.into_iter()
    }
}

impl Drop for MemorySnapshot {
    fn drop(&mut self) {
        let mut state = self.memory.state.lock();
        if let Some(count) = state.open.get_mut(&self.version) {
            *count -= 1;
            if *count == 0 {
                state.open.remove(&self.version);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(pairs: &[(&[u8], Option<&[u8]>)]) -> Overlay {
        pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn a_snapshot_reads_its_version_while_newer_ones_are_written() {
        let memory = Arc::new(Memory::default());
        memory.write(&overlay(&[(b"a", Some(b"1"))]), 1, Durability::Sync);
        let old = memory.snapshot();
        assert_eq!(old.version, 1);
        memory.write(
            &overlay(&[(b"a", Some(b"2")), (b"b", Some(b"x"))]),
            2,
            Durability::Sync,
        );
        memory.write(&overlay(&[(b"a", None)]), 3, Durability::Sync);
        assert_eq!(old.get(b"a"), Some(b"1".to_vec()));
        assert_eq!(old.get(b"b"), None);
        let new = memory.snapshot();
        assert_eq!(new.get(b"a"), None);
        assert_eq!(
            new.range(b"", b"\xff", false).collect::<Vec<_>>(),
            vec![(b"b".to_vec(), b"x".to_vec())]
        );
        drop(old);
        drop(new);
        // With no reader left, a cleared key's versions are gone at the
        // next write of it.
        memory.write(&overlay(&[(b"a", None)]), 4, Durability::Sync);
        assert!(!memory.state.lock().keys.contains_key(b"a".as_slice()));
    }

    #[test]
    fn a_crash_loses_what_was_not_durable_and_nothing_else() {
        let memory = Arc::new(Memory::default());
        memory.write(&overlay(&[(b"a", Some(b"1"))]), 1, Durability::Buffer);
        memory.sync();
        memory.write(
            &overlay(&[(b"a", Some(b"2")), (b"b", Some(b"x"))]),
            2,
            Durability::Buffer,
        );
        let (report, changed) = memory.crash();
        assert_eq!(
            report,
            CrashReport {
                durable_version: 1,
                lost_groups: 1
            }
        );
        assert_eq!(changed, overlay(&[(b"a", Some(b"1")), (b"b", None)]));
        assert_eq!(memory.latest(b"a"), Some(b"1".to_vec()));
        assert_eq!(memory.latest(b"b"), None);
        memory.write(&overlay(&[(b"c", Some(b"y"))]), 3, Durability::Sync);
        assert_eq!(memory.crash().0.lost_groups, 0);
        assert_eq!(memory.latest(b"c"), Some(b"y".to_vec()));
    }
}
