//! Inventory: stock per SKU per warehouse (a warehouse is a shard: stock
//! lives in the shard of the region that holds it).
//!
//! Each SKU's available stock is split into `stock_slots` sub-counters, so
//! concurrent reservations of one hot SKU read and write different keys and
//! commit together instead of one at a time. A reservation reads slots until
//! it has the quantity, inside a serializable transaction: it takes stock
//! that exists or fails, under any concurrency. Counters of received,
//! reserved and sold units change with atomic adds (they are never read on
//! the hot path), and every change appends an event to the SKU's log, keyed
//! by commit versionstamp, in the same transaction.
//!
//! Invariant, per SKU and warehouse: `available + reserved + sold ==
//! received`, each term non-negative, and folding the log gives the same
//! numbers ([`Commerce::rebuild_stock`]).

use db::{RangeOption, Transaction};
use serde::{Deserialize, Serialize};
use topology::ShardId;

use crate::catalog::validate_sku;
use crate::error::{CommerceError, Result, invalid};
use crate::{
    Commerce, counter, decode, get_counter, get_json, keys, set_json, set_versionstamped_json,
};

/// Units one restock or reservation moves at most.
pub const MAX_QTY: i64 = 1_000_000;
/// Longest reservation id, in bytes.
pub const MAX_RESERVATION_ID_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    Reserved,
    Committed,
    Released,
}

/// Stock held for a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reservation {
    pub id: String,
    pub sku: String,
    pub qty: i64,
    /// `(slot, units)` taken from each sub-counter, given back on release.
    pub takes: Vec<(u32, i64)>,
    pub state: ReservationState,
    pub expires_ms: u64,
    pub created_ms: u64,
    #[serde(default)]
    pub release_reason: Option<String>,
}

/// An entry of a SKU's inventory log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InventoryEvent {
    Restocked {
        qty: i64,
    },
    Reserved {
        reservation: String,
        qty: i64,
    },
    Committed {
        reservation: String,
        qty: i64,
    },
    Released {
        reservation: String,
        qty: i64,
        reason: String,
    },
    /// A committed (sold) reservation given back: a compensation after part
    /// of a checkout's stock was committed.
    Returned {
        reservation: String,
        qty: i64,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LoggedEvent {
    at_ms: u64,
    #[serde(flatten)]
    event: InventoryEvent,
}

/// Stock of one SKU in one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockLevel {
    pub sku: String,
    #[schema(value_type = String)]
    pub warehouse: ShardId,
    pub received: i64,
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
}

impl StockLevel {
    fn empty(sku: &str, warehouse: &ShardId) -> Self {
        StockLevel {
            sku: sku.to_owned(),
            warehouse: warehouse.clone(),
            received: 0,
            available: 0,
            reserved: 0,
            sold: 0,
        }
    }

    /// Whether the inventory invariant holds.
    pub fn is_consistent(&self) -> bool {
        self.available >= 0
            && self.reserved >= 0
            && self.sold >= 0
            && self.available + self.reserved + self.sold == self.received
    }

    fn apply(&mut self, event: &InventoryEvent) {
        match event {
            InventoryEvent::Restocked { qty } => {
                self.received += qty;
                self.available += qty;
            }
            InventoryEvent::Reserved { qty, .. } => {
                self.available -= qty;
                self.reserved += qty;
            }
            InventoryEvent::Committed { qty, .. } => {
                self.reserved -= qty;
                self.sold += qty;
            }
            InventoryEvent::Released { qty, .. } => {
                self.reserved -= qty;
                self.available += qty;
            }
            InventoryEvent::Returned { qty, .. } => {
                self.sold -= qty;
                self.available += qty;
            }
        }
    }
}

fn validate_qty(qty: i64) -> Result<()> {
    if !(1..=MAX_QTY).contains(&qty) {
        return Err(invalid("qty", format!("must be 1..={MAX_QTY}")));
    }
    Ok(())
}

fn validate_reservation_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_RESERVATION_ID_LEN {
        return Err(invalid(
            "reservation",
            format!("id must be 1 to {MAX_RESERVATION_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

fn log(tx: &Transaction, sku: &str, at_ms: u64, event: InventoryEvent) -> Result<()> {
    log_n(tx, sku, 0, at_ms, event)
}

fn log_n(tx: &Transaction, sku: &str, n: u16, at_ms: u64, event: InventoryEvent) -> Result<()> {
    set_versionstamped_json(
        tx,
        &keys::inventory_log_entry(sku, n),
        &LoggedEvent { at_ms, event },
    )
}

impl Commerce {
    /// A stock slot of `slots`, at random: where a restock starts spreading
    /// units and where a reservation first looks.
    fn random_slot(&self, slots: u32) -> u32 {
        u32::try_from(self.random_u64() % u64::from(slots.max(1))).unwrap_or(0)
    }

    /// Adds `qty` units of `sku` to `warehouse`, spread over its slots.
    pub async fn restock(&self, warehouse: &ShardId, sku: &str, qty: i64) -> Result<StockLevel> {
        validate_sku(sku)?;
        validate_qty(qty)?;
        // The SKU must be in the catalog (read through the cache).
        self.product(sku).await?;
        self.restock_known(warehouse, std::slice::from_ref(&(sku.to_owned(), qty)))
            .await?;
        self.stock(warehouse, sku).await
    }

    /// Restocks many SKUs in one transaction, without checking the catalog
    /// (the seeder writes both). At most 500 SKUs.
    pub(crate) async fn restock_known(
        &self,
        warehouse: &ShardId,
        items: &[(String, i64)],
    ) -> Result<()> {
        if items.len() > 500 {
            return Err(CommerceError::LimitExceeded {
                what: "restock batch",
                limit: 500,
            });
        }
        let slots = self.settings().stock_slots;
        let now_ms = self.now_ms();
        let this = self;
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                for (n, (sku, qty)) in items.iter().enumerate() {
                    // `n` keeps two entries of one SKU in a batch apart.
                    let n = u16::try_from(n).unwrap_or(u16::MAX);
                    this.receive_units(&tx, sku, *qty, n, now_ms, slots, slots)?;
                }
                Ok::<_, CommerceError>(())
            })
            .await
    }

    /// Adds `qty` units of `sku` in `tx` (a warehouse's), spread evenly
    /// over `used` of its `slots` from a random one, with the restock's
    /// event (number `n` of the transaction).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn receive_units(
        &self,
        tx: &Transaction,
        sku: &str,
        qty: i64,
        n: u16,
        now_ms: u64,
        slots: u32,
        used: u32,
    ) -> Result<()> {
        // Atomic adds, so a restock never conflicts with reservations.
        let start = self.random_slot(slots);
        let used = used.clamp(1, slots.max(1));
        let per_slot = qty / i64::from(used);
        let extra = qty % i64::from(used);
        for i in 0..used {
            let units = per_slot + i64::from(i64::from(i) < extra);
            if units > 0 {
                tx.add_i64(&keys::stock_slot(sku, (start + i) % slots), units)?;
            }
        }
        tx.add_i64(&keys::received(sku), qty)?;
        log_n(tx, sku, n, now_ms, InventoryEvent::Restocked { qty })
    }

    /// Takes `qty` units of `sku` in `warehouse` for `ttl_ms`, as
    /// reservation `id`. Idempotent: an existing reservation `id` is given
    /// back as it is (and a released one is an error, never re-taken).
    pub async fn reserve(
        &self,
        warehouse: &ShardId,
        id: &str,
        sku: &str,
        qty: i64,
        ttl_ms: u64,
    ) -> Result<Reservation> {
        validate_reservation_id(id)?;
        validate_sku(sku)?;
        validate_qty(qty)?;
        let slots = self.settings().stock_slots;
        let now_ms = self.now_ms();
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let this = self;
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                // Start at a random slot so concurrent buyers spread out.
                // That slot and an existing reservation are read at once:
                // one round trip to a remote warehouse, not two.
                let start = this.random_slot(slots);
                let first_key = keys::stock_slot(sku, start);
                let reservation_key = keys::reservation(id);
                let (existing, first) = futures::try_join!(
                    get_json::<Reservation>(&tx, &reservation_key, "reservation"),
                    async { Ok(counter(tx.get(&first_key).await?.as_deref())) },
                )?;
                if let Some(existing) = existing {
                    return match existing.state {
                        ReservationState::Released => {
                            Err(CommerceError::ReservationReleased { id: id.to_owned() })
                        }
                        _ => Ok(existing),
                    };
                }
                let mut need = qty;
                let mut takes = Vec::new();
                if first > 0 {
                    let take = first.min(need);
                    tx.set(&first_key, &(first - take).to_le_bytes())?;
                    takes.push((start, take));
                    need -= take;
                }
                if need > 0 {
                    // Short: the other slots in one range read (one round
                    // trip, however many slots), as a snapshot, with a read
                    // conflict on each slot taken from, which is what
                    // reading it would add. A slot skipped as empty needs
                    // none: an out-of-stock answer commits nothing.
                    let all = tx
                        .get_range_all(
                            RangeOption::subspace(&keys::stock_slots(sku)).limit(slots as usize),
                            true,
                        )
                        .await?;
                    let levels: std::collections::BTreeMap<Vec<u8>, i64> = all
                        .into_iter()
                        .map(|kv| {
                            let level = counter(Some(kv.value.as_slice()));
                            (kv.key, level)
                        })
                        .collect();
                    for i in 1..slots {
                        let slot = (start + i) % slots;
                        let key = keys::stock_slot(sku, slot);
                        let have = levels.get(&key).copied().unwrap_or(0);
                        if have <= 0 {
                            continue;
                        }
                        tx.add_read_conflict_key(&key)?;
                        let take = have.min(need);
                        tx.set(&key, &(have - take).to_le_bytes())?;
                        takes.push((slot, take));
                        need -= take;
                        if need == 0 {
                            break;
                        }
                    }
                }
                if need > 0 {
                    // Nothing is written: the transaction is dropped.
                    return Err(CommerceError::OutOfStock {
                        sku: sku.to_owned(),
                        requested: qty,
                        available: qty - need,
                    });
                }
                let reservation = Reservation {
                    id: id.to_owned(),
                    sku: sku.to_owned(),
                    qty,
                    takes,
                    state: ReservationState::Reserved,
                    expires_ms,
                    created_ms: now_ms,
                    release_reason: None,
                };
                set_json(&tx, &keys::reservation(id), &reservation)?;
                tx.set(&keys::reservation_expiry(expires_ms, id), b"")?;
                tx.add_i64(&keys::reserved(sku), qty)?;
                log(
                    &tx,
                    sku,
                    now_ms,
                    InventoryEvent::Reserved {
                        reservation: id.to_owned(),
                        qty,
                    },
                )?;
                Ok(reservation)
            })
            .await
    }

    /// Turns a reservation into a sale. Idempotent.
    pub async fn commit_reservation(&self, warehouse: &ShardId, id: &str) -> Result<Reservation> {
        validate_reservation_id(id)?;
        let now_ms = self.now_ms();
        let gc_due_ms = now_ms.saturating_add(self.settings().retention_s.saturating_mul(1000));
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                let Some(mut r) =
                    get_json::<Reservation>(&tx, &keys::reservation(id), "reservation").await?
                else {
                    return Err(CommerceError::NotFound {
                        what: "reservation",
                        id: id.to_owned(),
                    });
                };
                match r.state {
                    ReservationState::Committed => return Ok(r),
                    ReservationState::Released => {
                        return Err(CommerceError::ReservationReleased { id: id.to_owned() });
                    }
                    ReservationState::Reserved => {}
                }
                r.state = ReservationState::Committed;
                set_json(&tx, &keys::reservation(id), &r)?;
                tx.set(&keys::reservation_gc(gc_due_ms, id), b"")?;
                tx.clear(&keys::reservation_expiry(r.expires_ms, id))?;
                tx.add_i64(&keys::reserved(&r.sku), -r.qty)?;
                tx.add_i64(&keys::sold(&r.sku), r.qty)?;
                log(
                    &tx,
                    &r.sku,
                    now_ms,
                    InventoryEvent::Committed {
                        reservation: id.to_owned(),
                        qty: r.qty,
                    },
                )?;
                Ok(r)
            })
            .await
    }

    /// Gives a reservation's units back. Idempotent; releasing an id that
    /// was never reserved leaves a tombstone, so a late `reserve` with that
    /// id (a retry racing a compensation) takes nothing. A committed
    /// reservation is given back only when `return_sold` is set (a checkout
    /// compensating after part of its stock was committed).
    pub async fn release_reservation(
        &self,
        warehouse: &ShardId,
        id: &str,
        sku: &str,
        reason: &str,
        return_sold: bool,
    ) -> Result<Reservation> {
        validate_reservation_id(id)?;
        validate_sku(sku)?;
        let now_ms = self.now_ms();
        let gc_due_ms = now_ms.saturating_add(self.settings().retention_s.saturating_mul(1000));
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                let existing =
                    get_json::<Reservation>(&tx, &keys::reservation(id), "reservation").await?;
                let Some(mut r) = existing else {
                    let tombstone = Reservation {
                        id: id.to_owned(),
                        sku: sku.to_owned(),
                        qty: 0,
                        takes: Vec::new(),
                        state: ReservationState::Released,
                        expires_ms: now_ms,
                        created_ms: now_ms,
                        release_reason: Some(reason.to_owned()),
                    };
                    set_json(&tx, &keys::reservation(id), &tombstone)?;
                    tx.set(&keys::reservation_gc(gc_due_ms, id), b"")?;
                    return Ok(tombstone);
                };
                let event = match r.state {
                    ReservationState::Released => return Ok(r),
                    ReservationState::Committed if !return_sold => {
                        return Err(CommerceError::ReservationCommitted { id: id.to_owned() });
                    }
                    ReservationState::Committed => {
                        tx.add_i64(&keys::sold(&r.sku), -r.qty)?;
                        InventoryEvent::Returned {
                            reservation: id.to_owned(),
                            qty: r.qty,
                            reason: reason.to_owned(),
                        }
                    }
                    ReservationState::Reserved => {
                        tx.clear(&keys::reservation_expiry(r.expires_ms, id))?;
                        tx.add_i64(&keys::reserved(&r.sku), -r.qty)?;
                        InventoryEvent::Released {
                            reservation: id.to_owned(),
                            qty: r.qty,
                            reason: reason.to_owned(),
                        }
                    }
                };
                let times = if return_sold
                    && crate::planted::planted(crate::planted::Bug::DoubleReleaseOnCompensation)
                {
                    2
                } else {
                    1
                };
                for (slot, units) in &r.takes {
                    tx.add_i64(&keys::stock_slot(&r.sku, *slot), *units * times)?;
                }
                r.state = ReservationState::Released;
                r.release_reason = Some(reason.to_owned());
                set_json(&tx, &keys::reservation(id), &r)?;
                tx.set(&keys::reservation_gc(gc_due_ms, id), b"")?;
                log(&tx, &r.sku, now_ms, event)?;
                Ok(r)
            })
            .await
    }

    pub async fn reservation(&self, warehouse: &ShardId, id: &str) -> Result<Option<Reservation>> {
        validate_reservation_id(id)?;
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                get_json::<Reservation>(&tx, &keys::reservation(id), "reservation").await
            })
            .await
    }

    /// Live stock of `sku` in `warehouse`, read in one snapshot.
    pub async fn stock(&self, warehouse: &ShardId, sku: &str) -> Result<StockLevel> {
        validate_sku(sku)?;
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                let mut level = StockLevel::empty(sku, warehouse);
                let slots = tx
                    .get_range_all(RangeOption::subspace(&keys::stock_slots(sku)), true)
                    .await?;
                level.available = slots.iter().map(|kv| counter(Some(&kv.value))).sum();
                level.received = get_counter(&tx, &keys::received(sku), true).await?;
                level.reserved = get_counter(&tx, &keys::reserved(sku), true).await?;
                level.sold = get_counter(&tx, &keys::sold(sku), true).await?;
                Ok::<_, CommerceError>(level)
            })
            .await
    }

    /// Stock of `sku` in `warehouse` rebuilt from its event log alone, read
    /// in pages (each its own transaction: the log is append-only, so pages
    /// read at different versions still add up to a prefix of it).
    pub async fn rebuild_stock(&self, warehouse: &ShardId, sku: &str) -> Result<StockLevel> {
        validate_sku(sku)?;
        let db = self.warehouse_db(warehouse)?;
        let mut level = StockLevel::empty(sku, warehouse);
        let (mut from, end) = keys::inventory_log(sku).range();
        loop {
            let start = from.clone();
            let end_ref = &end;
            let chunk = db
                .run(|tx, _| {
                    let start = start.clone();
                    async move {
                        Ok::<_, CommerceError>(
                            tx.get_range(
                                &RangeOption::new(start, end_ref.clone())
                                    .limit(db::MAX_RANGE_BATCH),
                                true,
                            )
                            .await?,
                        )
                    }
                })
                .await?;
            for kv in &chunk.kvs {
                let logged: LoggedEvent = decode(&kv.value, "inventory event")?;
                level.apply(&logged.event);
            }
            match chunk.kvs.last() {
                Some(last) if chunk.more => from = db::keys::key_after(&last.key),
                _ => return Ok(level),
            }
        }
    }

    /// Releases reservations of `warehouse` whose TTL passed: at most one
    /// batch per call. Returns how many were released.
    pub async fn sweep_expired_reservations(&self, warehouse: &ShardId) -> Result<usize> {
        let now_ms = self.now_ms();
        let batch = self.settings().batch;
        let space = keys::reservation_expiries();
        let due = self
            .warehouse_db(warehouse)?
            .run(|tx, _| {
                let space = space.clone();
                async move {
                    let (begin, _) = space.range();
                    let end = space.pack(&(now_ms,));
                    Ok::<_, CommerceError>(
                        tx.get_range(&RangeOption::new(begin, end).limit(batch), true)
                            .await?,
                    )
                }
            })
            .await?;
        let mut released = 0;
        for kv in &due.kvs {
            // One bad entry must not stop the sweep of every entry behind
            // it: log it and go on (an orphaned or undecodable index entry
            // is cleared).
            let Ok((_, id)) = space.unpack::<(u64, String)>(&kv.key) else {
                tracing::error!(warehouse = %warehouse, "undecodable reservation expiry key; cleared");
                self.clear_expiry_entry(warehouse, &kv.key).await?;
                continue;
            };
            let r = match self.reservation(warehouse, &id).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.clear_expiry_entry(warehouse, &kv.key).await?;
                    continue;
                }
                Err(e) => {
                    tracing::error!(reservation = %id, error = %e, "reservation unreadable; skipped");
                    continue;
                }
            };
            if r.state != ReservationState::Reserved {
                self.clear_expiry_entry(warehouse, &kv.key).await?;
                continue;
            }
            if r.expires_ms <= now_ms {
                match self
                    .release_reservation(warehouse, &id, &r.sku, "expired", false)
                    .await
                {
                    Ok(_) => released += 1,
                    // Committed between the scan and the release: a sale.
                    Err(CommerceError::ReservationCommitted { .. }) => {}
                    Err(e) => {
                        tracing::error!(reservation = %id, error = %e, "releasing an expired reservation failed; retried next pass");
                    }
                }
            }
        }
        Ok(released)
    }

    /// Deletes finished reservations of `warehouse` (released, committed,
    /// tombstones) whose retention passed: at most one batch. Returns how
    /// many went. A reservation still held is never touched.
    pub async fn collect_reservations(&self, warehouse: &ShardId) -> Result<usize> {
        let now_ms = self.now_ms();
        let batch = self.settings().batch;
        let space = keys::reservation_gcs();
        let space = &space;
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                let mut deleted = 0;
                for (_, id) in crate::take_due(&tx, space, now_ms, batch).await? {
                    let record = keys::reservation(&id);
                    if let Some(r) = get_json::<Reservation>(&tx, &record, "reservation").await?
                        && r.state != ReservationState::Reserved
                    {
                        tx.clear(&record)?;
                        deleted += 1;
                    }
                }
                Ok::<_, CommerceError>(deleted)
            })
            .await
    }

    async fn clear_expiry_entry(&self, warehouse: &ShardId, key: &[u8]) -> Result<()> {
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                tx.clear(key)?;
                Ok::<_, CommerceError>(())
            })
            .await
    }

    /// Available units of `sku` in every warehouse.
    pub async fn availability(&self, sku: &str) -> Result<Vec<StockLevel>> {
        // Every warehouse at once: each may be a cluster a round trip
        // away, so the page waits for the farthest, not for their sum.
        let warehouses = self.warehouses();
        futures::future::try_join_all(warehouses.iter().map(|w| self.stock(w, sku))).await
    }
}
