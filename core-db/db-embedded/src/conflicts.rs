//! Conflict detection, the job of FoundationDB's resolvers: a transaction
//! commits only if nothing it read (its read conflict ranges) was written by
//! a transaction that committed after its read version. The history of
//! committed write ranges is kept for the MVCC window and no longer.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// A half-open key range `[begin, end)`.
pub(crate) type KeyRange = (Vec<u8>, Vec<u8>);

fn overlaps(a: &KeyRange, b: &KeyRange) -> bool {
    a.0 < b.1 && b.0 < a.1
}

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

/// Write ranges of one commit group.
#[derive(Debug)]
struct GroupWrites {
    version: u64,
    at: Instant,
    ranges: Vec<KeyRange>,
}

/// Why a transaction may not commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Commit,
    Conflict,
    TooOld,
}

/// Committed write ranges by version, for the MVCC window.
#[derive(Debug)]
pub(crate) struct History {
    groups: VecDeque<GroupWrites>,
    /// Every version ≤ floor has been forgotten: a transaction reading at
    /// an older version cannot be checked and is too old.
    floor: u64,
    window: Duration,
    /// Bound on ranges kept, whatever the window says.
    max_ranges: usize,
    ranges: usize,
}

impl History {
    pub(crate) fn new(floor: u64, window: Duration, max_ranges: usize) -> Self {
        History {
            groups: VecDeque::new(),
            floor,
            window,
            max_ranges,
            ranges: 0,
        }
    }

    /// Checks a transaction's reads against commits after its read version
    /// and against `pending` (earlier transactions of the group being built,
    /// all newer than any read version).
    pub(crate) fn check(
        &self,
        read_version: u64,
        reads: &[KeyRange],
        pending: &[KeyRange],
    ) -> Verdict {
        if read_version < self.floor {
            return Verdict::TooOld;
        }
        if reads.is_empty() {
            return Verdict::Commit;
        }
        let conflicts =
            |writes: &[KeyRange]| reads.iter().any(|r| writes.iter().any(|w| overlaps(r, w)));
        if conflicts(pending) {
            return Verdict::Conflict;
        }
        for group in self.groups.iter().rev() {
            if group.version <= read_version {
                break;
            }
            if conflicts(&group.ranges) {
                return Verdict::Conflict;
            }
        }
        Verdict::Commit
    }

    /// Records a committed group and forgets what left the window.
    pub(crate) fn record(&mut self, version: u64, ranges: Vec<KeyRange>, now: Instant) {
        self.ranges += ranges.len();
        self.groups.push_back(GroupWrites {
            version,
            at: now,
            ranges,
        });
        while let Some(oldest) = self.groups.front() {
            let expired = now.duration_since(oldest.at) > self.window;
            if !expired && self.ranges <= self.max_ranges {
                break;
            }
            self.floor = oldest.version;
            self.ranges -= oldest.ranges.len();
            self.groups.pop_front();
        }
    }
}
