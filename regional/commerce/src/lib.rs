//! Meridian's commerce domain, on core-db: the catalog and its change feed,
//! search indexing, the regional product cache, carts, inventory with
//! reservations and an event log, the checkout saga, payments, orders and
//! the transactional outbox.
//!
//! Every operation is a method of [`Commerce`], which holds one database per
//! shard and the capabilities the domain needs (clock, payment gateway,
//! search index), so tests inject faults instead of waiting for them. The
//! consistency rules (`../shared/DESIGN.md`) are kept here, not in the HTTP
//! layer: stock is only ever taken inside a serializable transaction that
//! saw it, every inventory change appends its event in the same transaction,
//! every side effect that must not block the shopper is queued in the same
//! transaction as the change.

mod cache;
pub mod cart;
pub mod catalog;
pub mod checkout;
mod clock;
mod error;
pub mod feed;
pub mod history;
pub mod import;
pub mod invariants;
pub mod inventory;
mod keys;
pub mod openapi;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod planted;
pub mod recommend;
pub mod replica;
pub mod reviews;
pub mod seed;

use std::collections::BTreeSet;
use std::sync::Arc;

use db::{Database, ShardMap, Transaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use topology::{RegionId, ShardId, ShardedId, Topology};

pub use cache::ProductCache;
pub use checkout::Faults;
pub use clock::{Clock, Entropy, ManualClock, OsEntropy, SeededEntropy, SystemClock};
pub use error::{CommerceError, Result};
pub use payments::{GatewayError, PaymentGateway, SimulatedGateway, SimulatedGatewayConfig};

/// Tunables, all bounded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// An untouched cart is deleted after this long.
    pub cart_ttl_s: u64,
    /// A reservation not committed within this long is released.
    pub reservation_ttl_s: u64,
    /// Sub-counters each SKU's stock is split into, so concurrent buyers of
    /// one SKU take different keys and do not conflict.
    pub stock_slots: u32,
    /// How long a saga runner owns a saga before recovery may take it over.
    pub saga_lease_ms: u64,
    /// Payment calls with an unknown outcome retried in one saga run.
    pub payment_attempts: u32,
    /// Records one sweep or worker pass handles at most.
    pub batch: usize,
    /// Catalog feed events kept for consumers that fall behind.
    pub feed_retention: usize,
    /// How long a checkout retry waits for a saga another runner is
    /// driving (woken by a watch on the order) before answering pending.
    pub checkout_wait_ms: u64,
    /// How long records that only guard against late retries are kept
    /// once finished: released or committed reservations (tombstones
    /// included) and seen analytics events. Late retries and redeliveries
    /// come within seconds; then the garbage collector removes them.
    pub retention_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cart_ttl_s: 7 * 24 * 3600,
            reservation_ttl_s: 15 * 60,
            stock_slots: 32,
            saga_lease_ms: 10_000,
            payment_attempts: 3,
            batch: 256,
            feed_retention: 100_000,
            checkout_wait_ms: 10_000,
            retention_s: 24 * 3600,
        }
    }
}

impl Settings {
    pub const MAX_STOCK_SLOTS: u32 = 1024;
    pub const MAX_BATCH: usize = 10_000;

    pub fn validate(&self) -> Result<()> {
        if self.stock_slots == 0 || self.stock_slots > Self::MAX_STOCK_SLOTS {
            return Err(error::invalid(
                "stock_slots",
                format!("must be 1..={}", Self::MAX_STOCK_SLOTS),
            ));
        }
        if self.batch == 0 || self.batch > Self::MAX_BATCH {
            return Err(error::invalid(
                "batch",
                format!("must be 1..={}", Self::MAX_BATCH),
            ));
        }
        if self.payment_attempts == 0 || self.payment_attempts > 20 {
            return Err(error::invalid("payment_attempts", "must be 1..=20"));
        }
        if !(60..=30 * 24 * 3600).contains(&self.retention_s) {
            return Err(error::invalid("retention_s", "must be 60 s to 30 days"));
        }
        if self.checkout_wait_ms > 30_000 {
            return Err(error::invalid("checkout_wait_ms", "must be 0..=30000"));
        }
        if !(100..=3_600_000).contains(&self.saga_lease_ms) {
            return Err(error::invalid("saga_lease_ms", "must be 100..=3600000"));
        }
        if self.reservation_ttl_s == 0 || self.reservation_ttl_s > 7 * 24 * 3600 {
            return Err(error::invalid("reservation_ttl_s", "must be 1 s to 7 days"));
        }
        if self.cart_ttl_s == 0 || self.cart_ttl_s > 365 * 24 * 3600 {
            return Err(error::invalid("cart_ttl_s", "must be 1 s to a year"));
        }
        if self.feed_retention == 0 {
            return Err(error::invalid("feed_retention", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a [`Commerce`] is built from.
#[derive(Debug)]
pub struct CommerceParts {
    pub shards: ShardMap,
    pub topology: Arc<Topology>,
    /// The region this service runs in.
    pub region: RegionId,
    /// Shards whose carts, orders and sagas this service accepts writes for.
    pub served: BTreeSet<ShardId>,
    /// The shard holding the one writable copy of the catalog.
    pub catalog_shard: ShardId,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    /// Where random choices come from ([`OsEntropy`] in production).
    pub entropy: Arc<dyn Entropy>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub search: Arc<search::SearchIndex>,
}

/// Runs `work` on the search index on tokio's blocking pool, or in this
/// task when the index is marked [`search::SearchIndex::inline`] (the
/// simulator's). `Err` when the work panicked.
pub async fn off_task<T: Send + 'static>(
    index: Arc<search::SearchIndex>,
    work: impl FnOnce(&search::SearchIndex) -> T + Send + 'static,
) -> std::result::Result<T, tokio::task::JoinError> {
    let inline = index.runs_inline();
    off_task_with(inline, index, move |index| work(&index)).await
}

/// [`off_task`] for work that takes `state` (a staged rebuild, say) and
/// gives it back in its result; `inline` as the index's.
pub async fn off_task_with<S: Send + 'static, T: Send + 'static>(
    inline: bool,
    state: S,
    work: impl FnOnce(S) -> T + Send + 'static,
) -> std::result::Result<T, tokio::task::JoinError> {
    if inline {
        return Ok(work(state));
    }
    tokio::task::spawn_blocking(move || work(state)).await
}

/// The commerce domain of one region. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Commerce {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: ShardMap,
    topology: Arc<Topology>,
    region: RegionId,
    served: BTreeSet<ShardId>,
    catalog_shard: ShardId,
    settings: Settings,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    gateway: Arc<dyn PaymentGateway>,
    search: Arc<search::SearchIndex>,
    cache: ProductCache,
    faults: Faults,
    /// Where each shard's next saga-recovery pass starts.
    recovery_cursors: parking_lot::Mutex<std::collections::BTreeMap<ShardId, Vec<u8>>>,
    /// Saga leases this region saw ending implausibly far ahead of its
    /// clock, and when it first saw each (`checkout::LeaseSightings`).
    lease_sightings: checkout::LeaseSightings,
    /// Purge-feed long polls waiting on a change now.
    feed_waiters: tokio::sync::watch::Sender<usize>,
    /// Writes to the search index, one at a time: a staged rebuild spans
    /// many awaits, and another write meanwhile would be refused.
    index_writes: tokio::sync::Mutex<()>,
    /// The shard holding this region's replica of the catalog (its home
    /// shard, when that is not the catalog's).
    replica: Option<ShardId>,
    /// Whether the replica holds a full copy yet (then catalog reads go
    /// to it).
    replica_ready: std::sync::atomic::AtomicBool,
}

impl Commerce {
    pub fn new(parts: CommerceParts) -> Result<Self> {
        parts.settings.validate()?;
        parts.shards.get(&parts.catalog_shard)?;
        for shard in &parts.served {
            parts.shards.get(shard)?;
        }
        let replica = homed_in(&parts.topology, &parts.region)
            .filter(|home| *home != &parts.catalog_shard && parts.shards.get(home).is_ok())
            .cloned();
        Ok(Commerce {
            inner: Arc::new(Inner {
                shards: parts.shards,
                topology: parts.topology,
                region: parts.region,
                served: parts.served,
                catalog_shard: parts.catalog_shard,
                settings: parts.settings,
                clock: parts.clock,
                entropy: parts.entropy,
                gateway: parts.gateway,
                search: parts.search,
                cache: ProductCache::new(cache::DEFAULT_CAPACITY),
                faults: Faults::default(),
                recovery_cursors: Default::default(),
                lease_sightings: Default::default(),
                feed_waiters: tokio::sync::watch::Sender::new(0),
                index_writes: tokio::sync::Mutex::new(()),
                replica,
                replica_ready: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    pub fn region(&self) -> &RegionId {
        &self.inner.region
    }

    /// How many purge-feed long polls are waiting on a change, as it
    /// changes (a test waits for a poll to be parked, an operator sees
    /// the edges listening).
    pub fn feed_waiters(&self) -> tokio::sync::watch::Receiver<usize> {
        self.inner.feed_waiters.subscribe()
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn shards(&self) -> &ShardMap {
        &self.inner.shards
    }

    pub fn served(&self) -> &BTreeSet<ShardId> {
        &self.inner.served
    }

    pub fn catalog_shard(&self) -> &ShardId {
        &self.inner.catalog_shard
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// A random draw from the service's [`Entropy`].
    pub fn random_u64(&self) -> u64 {
        self.inner.entropy.next_u64()
    }

    pub fn gateway(&self) -> &Arc<dyn PaymentGateway> {
        &self.inner.gateway
    }

    pub fn search_index(&self) -> &Arc<search::SearchIndex> {
        &self.inner.search
    }

    pub fn cache(&self) -> &ProductCache {
        &self.inner.cache
    }

    /// Test hooks: crash points in the checkout saga.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The shard this region puts new shoppers in: the first shard whose
    /// home is this region, else the first shard served.
    pub fn home_shard(&self) -> Option<&ShardId> {
        homed_in(&self.inner.topology, &self.inner.region)
            .or_else(|| self.inner.served.iter().next())
    }

    /// A new id in `shard`.
    pub fn new_id(&self, shard: &ShardId) -> ShardedId {
        ShardedId::new(
            shard.clone(),
            ulid::Ulid::from_parts(self.now_ms(), self.inner.entropy.next_u128()),
        )
    }

    /// The catalog shard: where the catalog is written.
    fn catalog_db(&self) -> Result<&Database> {
        Ok(self.inner.shards.get(&self.inner.catalog_shard)?)
    }

    /// The catalog shard, for a write only the region serving it makes
    /// (a recommendation set's).
    fn catalog_owned_db(&self) -> Result<&Database> {
        if !self.inner.served.contains(&self.inner.catalog_shard) {
            return Err(db::ShardMapError::NotServed {
                shard: self.inner.catalog_shard.clone(),
            }
            .into());
        }
        self.catalog_db()
    }

    /// Where this region reads the catalog: its replica once that holds a
    /// full copy, else the catalog shard.
    fn catalog_read_db(&self) -> Result<&Database> {
        match &self.inner.replica {
            Some(shard) if self.reads_replica() => Ok(self.inner.shards.get(shard)?),
            _ => self.catalog_db(),
        }
    }

    /// The database owning `id`, which this region must serve.
    fn owned_db(&self, id: &ShardedId) -> Result<&Database> {
        if !self.inner.served.contains(id.shard()) {
            return Err(db::ShardMapError::NotServed {
                shard: id.shard().clone(),
            }
            .into());
        }
        Ok(self.inner.shards.for_id(id)?)
    }

    /// Warehouses (shards holding stock), in topology order.
    pub fn warehouses(&self) -> Vec<ShardId> {
        self.inner
            .topology
            .shards()
            .iter()
            .map(|s| s.id().clone())
            .collect()
    }

    fn warehouse_db(&self, warehouse: &ShardId) -> Result<&Database> {
        Ok(self.inner.shards.get(warehouse)?)
    }
}

/// The first shard whose home is `region`.
fn homed_in<'a>(topology: &'a Topology, region: &RegionId) -> Option<&'a ShardId> {
    topology
        .shards()
        .iter()
        .find(|s| s.home() == region)
        .map(|s| s.id())
}

pub(crate) async fn get_json<T: DeserializeOwned>(
    tx: &Transaction,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>> {
    match tx.get(key).await? {
        None => Ok(None),
        Some(bytes) => decode(&bytes, what).map(Some),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| CommerceError::Corrupt { what, source })
}

pub(crate) fn set_json<T: Serialize>(tx: &Transaction, key: &[u8], value: &T) -> Result<()> {
    // Serializing our own plain data types cannot fail; if it ever did, the
    // error is reported rather than writing something half-formed.
    let bytes = serde_json::to_vec(value).map_err(|source| CommerceError::Corrupt {
        what: "record being written",
        source,
    })?;
    tx.set(key, &bytes)?;
    Ok(())
}

pub(crate) fn set_versionstamped_json<T: Serialize>(
    tx: &Transaction,
    key: &[u8],
    value: &T,
) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|source| CommerceError::Corrupt {
        what: "record being written",
        source,
    })?;
    tx.set_versionstamped_key(key, &bytes)?;
    Ok(())
}

/// A little-endian i64 counter's value (absent = 0).
pub(crate) fn counter(bytes: Option<&[u8]>) -> i64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, i64::from_le_bytes)
}

/// Takes (clears, in `tx`) the entries of a due-time index — keys
/// `(due_ms, id)` under `space` — that are due at `now_ms`, at most
/// `batch`, and gives their `(due_ms, id)`. An entry that does not decode
/// is cleared and skipped. The expiry sweeps and the garbage collectors
/// share it.
pub(crate) async fn take_due(
    tx: &Transaction,
    space: &db::Subspace,
    now_ms: u64,
    batch: usize,
) -> Result<Vec<(u64, String)>> {
    let (begin, _) = space.range();
    let end = space.pack(&(now_ms,));
    let due = tx
        .get_range(
            &db::RangeOption::new(begin, end)
                .limit(batch)
                .batch_size(batch),
            false,
        )
        .await?;
    let mut out = Vec::with_capacity(due.kvs.len());
    for kv in &due.kvs {
        tx.clear(&kv.key)?;
        match space.unpack::<(u64, String)>(&kv.key) {
            Ok(entry) => out.push(entry),
            Err(_) => tracing::error!("undecodable due-index key; cleared"),
        }
    }
    Ok(out)
}

pub(crate) async fn get_counter(tx: &Transaction, key: &[u8], snapshot: bool) -> Result<i64> {
    let value = if snapshot {
        tx.get_snapshot(key).await?
    } else {
        tx.get(key).await?
    };
    Ok(counter(value.as_deref()))
}
