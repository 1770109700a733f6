//! Conflict detection, the job of FoundationDB's resolvers: a transaction
//! commits only if nothing it read (its read conflict ranges) was written by
//! a transaction that committed after its read version. The history of
//! committed write ranges is kept for the MVCC window and no longer.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::Duration;

// Tokio's clock: the real one, or the simulator's when it drives time.
use tokio::time::Instant;

/// A half-open key range `[begin, end)`.
pub(crate) type KeyRange = (Vec<u8>, Vec<u8>);

/// A set of disjoint, merged key ranges.
#[derive(Debug, Default, Clone)]
pub(crate) struct RangeSet {
    /// begin → end, disjoint and non-adjacent.
    ranges: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl RangeSet {
    pub(crate) fn insert(&mut self, mut begin: Vec<u8>, mut end: Vec<u8>) {
        if begin >= end {
            return;
        }
        // Absorb a range that starts at or before `begin` and reaches it.
        if let Some((b, e)) = self.ranges.range(..=begin.clone()).next_back()
            && *e >= begin
        {
            begin = b.clone();
            if *e > end {
                end = e.clone();
            }
        }
        // Absorb every range that starts inside the new one.
        let inside: Vec<Vec<u8>> = self
            .ranges
            .range(begin.clone()..=end.clone())
            .map(|(b, _)| b.clone())
            .collect();
        for b in inside {
            if let Some(e) = self.ranges.remove(&b)
                && e > end
            {
                end = e;
            }
        }
        self.ranges.insert(begin, end);
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.ranges
            .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()
            .is_some_and(|(_, end)| key < end.as_slice())
    }
}

/// What one commit group wrote, for expiry.
#[derive(Debug)]
struct GroupWrites {
    version: u64,
    at: Instant,
    points: Vec<Vec<u8>>,
    ranges: usize,
}

/// Why a transaction may not commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Commit,
    Conflict,
    TooOld,
}

/// Committed write ranges by version, for the MVCC window. Single-key
/// writes (nearly all of them) are indexed by key with their newest
/// version, so checking a read costs a lookup, not a scan of every write
/// since the read version; wider write ranges (clear-range, explicit
/// conflict ranges) are few and scanned.
#[derive(Debug)]
pub(crate) struct History {
    /// key → newest version that wrote it.
    points: BTreeMap<Vec<u8>, u64>,
    /// (version, begin, end), oldest first.
    ranges: VecDeque<(u64, Vec<u8>, Vec<u8>)>,
    groups: VecDeque<GroupWrites>,
    /// The group being built: written keys not yet sealed into `groups`.
    open_points: Vec<Vec<u8>>,
    open_ranges: usize,
    /// Every version ≤ floor has been forgotten: a transaction reading at
    /// an older version cannot be checked and is too old.
    floor: u64,
    window: Duration,
    /// Bound on entries kept, whatever the window says.
    max_entries: usize,
}

fn is_point(range: &KeyRange) -> bool {
    range.1.len() == range.0.len() + 1
        && range.1.starts_with(&range.0)
        && range.1.last() == Some(&0)
}

impl History {
    pub(crate) fn new(floor: u64, window: Duration, max_entries: usize) -> Self {
        History {
            points: BTreeMap::new(),
            ranges: VecDeque::new(),
            groups: VecDeque::new(),
            open_points: Vec::new(),
            open_ranges: 0,
            floor,
            window,
            max_entries,
        }
    }

    /// Checks a transaction's reads against every write newer than its read
    /// version, including earlier transactions of the group being built
    /// (recorded with [`History::add`] at the group's version).
    pub(crate) fn check(&self, read_version: u64, reads: &[KeyRange]) -> Verdict {
        // As FoundationDB's resolver: a transaction that read nothing has
        // nothing to check, however old its read version.
        if reads.is_empty() {
            return Verdict::Commit;
        }
        if read_version < self.floor {
            return Verdict::TooOld;
        }
        let newer = |v: &u64| *v > read_version;
        for read in reads {
            let hit = if is_point(read) {
                self.points.get(&read.0).is_some_and(newer)
            } else {
                self.points
                    .range::<[u8], _>((
                        Bound::Included(read.0.as_slice()),
                        Bound::Excluded(read.1.as_slice()),
                    ))
                    .any(|(_, v)| newer(v))
            };
            if hit
                || self
                    .ranges
                    .iter()
                    .rev()
                    .take_while(|(v, _, _)| newer(v))
                    .any(|(_, b, e)| read.0 < *e && *b < read.1)
            {
                return Verdict::Conflict;
            }
        }
        Verdict::Commit
    }

    /// Records an accepted transaction's writes at `version` (the group
    /// being built).
    pub(crate) fn add(&mut self, version: u64, writes: Vec<KeyRange>) {
        for range in writes {
            if is_point(&range) {
                self.points.insert(range.0.clone(), version);
                self.open_points.push(range.0);
            } else {
                self.ranges.push_back((version, range.0, range.1));
                self.open_ranges += 1;
            }
        }
    }

    /// Seals the group written at `version` and forgets what left the
    /// window or the bound.
    pub(crate) fn seal(&mut self, version: u64, now: Instant) {
        self.groups.push_back(GroupWrites {
            version,
            at: now,
            points: std::mem::take(&mut self.open_points),
            ranges: std::mem::take(&mut self.open_ranges),
        });
        while let Some(oldest) = self.groups.front() {
            let expired = now.duration_since(oldest.at) > self.window;
            let over = self.points.len() + self.ranges.len() > self.max_entries;
            if !expired && !over {
                break;
            }
            let Some(oldest) = self.groups.pop_front() else {
                break;
            };
            self.floor = oldest.version;
            for key in oldest.points {
                // A newer group may have written the key again: keep that.
                if self.points.get(&key).is_some_and(|v| *v <= oldest.version) {
                    self.points.remove(&key);
                }
            }
            for _ in 0..oldest.ranges {
                self.ranges.pop_front();
            }
        }
    }
}
