//! Watches: a future per watched key that resolves once the key's value
//! differs from the value its transaction saw or wrote. The committer checks
//! the registry after each group is published; registration and that check
//! take the same lock, so no change slips between them.

use std::collections::BTreeMap;

use db::Error;
use tokio::sync::oneshot;

pub(crate) type WatchSender = oneshot::Sender<Result<(), Error>>;

#[derive(Debug)]
struct Entry {
    expected: Option<Vec<u8>>,
    notify: WatchSender,
}

/// Active watches by key, bounded.
#[derive(Debug)]
pub(crate) struct Registry {
    by_key: BTreeMap<Vec<u8>, Vec<Entry>>,
    count: usize,
    limit: usize,
}

impl Registry {
    pub(crate) fn new(limit: usize) -> Self {
        Registry {
            by_key: BTreeMap::new(),
            count: 0,
            limit,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether another watch fits, after dropping the ones nobody awaits.
    pub(crate) fn has_room(&mut self) -> bool {
        if self.count < self.limit {
            return true;
        }
        self.by_key.retain(|_, entries| {
            entries.retain(|e| !e.notify.is_closed());
            !entries.is_empty()
        });
        self.count = self.by_key.values().map(Vec::len).sum();
        self.count < self.limit
    }

    /// Activates a watch. `current` is the key's latest committed value,
    /// read under the same lock the committer notifies under.
    pub(crate) fn register(
        &mut self,
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        current: Option<&[u8]>,
        notify: WatchSender,
    ) {
        if expected.as_deref() != current {
            let _ = notify.send(Ok(()));
            return;
        }
        if notify.is_closed() {
            return;
        }
        self.count += 1;
        self.by_key
            .entry(key)
            .or_default()
            .push(Entry { expected, notify });
    }

    /// Whether anything watches `key`.
    pub(crate) fn watches(&self, key: &[u8]) -> bool {
        self.by_key.contains_key(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Fires the watches of `key` whose expected value differs from `now`.
    pub(crate) fn changed(&mut self, key: &[u8], now: Option<&[u8]>) {
        let Some(entries) = self.by_key.get_mut(key) else {
            return;
        };
        let before = entries.len();
        let mut kept = Vec::with_capacity(before);
        for entry in entries.drain(..) {
            if entry.expected.as_deref() != now {
                let _ = entry.notify.send(Ok(()));
            } else if !entry.notify.is_closed() {
                kept.push(entry);
            }
        }
        self.count -= before - kept.len();
        if kept.is_empty() {
            self.by_key.remove(key);
        } else {
            *entries = kept;
        }
    }

    /// Cancels every watch (the database is closing).
    pub(crate) fn cancel_all(&mut self) {
        for (_, entries) in std::mem::take(&mut self.by_key) {
            for entry in entries {
                let _ = entry.notify.send(Err(Error::WatchCancelled {
                    reason: "database closed",
                }));
            }
        }
        self.count = 0;
    }
}
