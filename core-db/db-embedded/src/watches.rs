//! Watches: a future per watched key that resolves once the key's value
//! differs from the value its transaction saw or wrote. The committer checks
//! the registry after each group is published; registration and that check
//! take the same lock, so no change slips between them.
//!
//! The bound counts reserved watches too: a slot is taken when a
//! transaction asks for a watch ([`Registry::reserve`]) and given back when
//! the watch fires, is dropped, or its transaction never commits.

use std::collections::BTreeMap;
use std::sync::Arc;

use db::Error;
use tokio::sync::oneshot;

use crate::engine::Shared;

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
    /// Slots taken by watches not registered yet.
    reserved: usize,
    limit: usize,
    closed: bool,
}

/// A watch slot held by a transaction until its watch is registered; gives
/// the slot back if dropped unregistered.
pub(crate) struct Reservation {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reservation")
    }
}

impl Reservation {
    /// Hands the slot to [`Registry::register`]; call it while holding the
    /// registry lock (dropping an armed reservation takes that lock).
    pub(crate) fn redeem(mut self) {
        self.shared = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.watches.lock().reserved -= 1;
        }
    }
}

impl Registry {
    pub(crate) fn new(limit: usize) -> Self {
        Registry {
            by_key: BTreeMap::new(),
            count: 0,
            reserved: 0,
            limit,
            closed: false,
        }
    }

    /// Takes a slot for a new watch, dropping watches nobody awaits first if
    /// the registry is full.
    pub(crate) fn reserve(&mut self, shared: &Arc<Shared>) -> Result<Reservation, Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.count + self.reserved >= self.limit {
            self.by_key.retain(|_, entries| {
                entries.retain(|e| !e.notify.is_closed());
                !entries.is_empty()
            });
            self.count = self.by_key.values().map(Vec::len).sum();
            if self.count + self.reserved >= self.limit {
                return Err(Error::TooManyWatches { limit: self.limit });
            }
        }
        self.reserved += 1;
        Ok(Reservation {
            shared: Some(shared.clone()),
        })
    }

    /// Activates a reserved watch. `current` is the key's latest committed
    /// value, read under the same lock the committer notifies under.
    pub(crate) fn register(
        &mut self,
        reservation: Reservation,
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        current: Option<&[u8]>,
        notify: WatchSender,
    ) {
        reservation.redeem();
        self.reserved -= 1;
        if self.closed {
            let _ = notify.send(Err(Error::WatchCancelled {
                reason: "database closed",
            }));
            return;
        }
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

    /// Gives back a redeemed slot whose watch could not be registered.
    pub(crate) fn release(&mut self) {
        self.reserved -= 1;
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

    /// Cancels every watch and refuses new ones (the database is closing).
    pub(crate) fn close(&mut self) {
        self.closed = true;
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
