//! The business invariants, checked against the data (the shards' records
//! and the payment provider's ledger), never against a load generator's
//! counters: one definition that `meridian drill` and the deterministic
//! simulator (`tests/sim`) both run after their faults.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::orders::{Order, OrderStatus};
use crate::payments::SimulatedGateway;
use crate::{Commerce, CommerceError};

/// An invariant and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub found: String,
    pub holds: bool,
}

/// What shoppers were told: the acknowledgements the data must honour.
#[derive(Debug, Default, Clone)]
pub struct Acknowledged {
    /// Orders a checkout was answered with: order id → owner id.
    pub orders: BTreeMap<String, String>,
    /// Carts: (cart id, owner id) → the highest version an acknowledged
    /// write of it returned.
    pub carts: BTreeMap<(String, String), u64>,
    /// Units of each SKU asked to be added to each cart, acknowledged or
    /// not, every send of one logical write counted once: (cart id, owner
    /// id) → SKU → units. No cart or order may hold more.
    pub sent: BTreeMap<(String, String), BTreeMap<String, i64>>,
    /// The cart each acknowledged order was checked out from.
    pub order_carts: BTreeMap<String, String>,
}

impl Acknowledged {
    /// Records a cart write answered with `version`.
    pub fn cart_write(&mut self, cart: &str, owner: &str, version: u64) {
        let entry = self
            .carts
            .entry((cart.to_owned(), owner.to_owned()))
            .or_default();
        *entry = (*entry).max(version);
    }

    /// Records one logical add of `qty` units of `sku` to a cart, before
    /// it is sent (whatever its answer, and however often it is resent).
    pub fn add_sent(&mut self, cart: &str, owner: &str, sku: &str, qty: i64) {
        *self
            .sent
            .entry((cart.to_owned(), owner.to_owned()))
            .or_default()
            .entry(sku.to_owned())
            .or_default() += qty;
    }
}

/// Authorizations of the provider's ledger read at most.
pub const MAX_LEDGER: usize = 100_000;

/// Past a saga's lease, how long recovery may take to settle it.
pub const SETTLE_SLACK: Duration = Duration::from_secs(10);

/// Checks every invariant: acknowledged orders present and settled, no
/// saga left open, charges == confirmed orders with no double charge,
/// stock of `skus` audited clean in every warehouse (live == rebuilt from
/// the event log, nothing oversold), acknowledged cart writes present, and
/// no write applied twice (no cart or order holds more of a SKU than was
/// asked for).
/// The provider's ledger is read once every acknowledged order has
/// settled (a pending one is captured as it settles).
pub async fn check(
    commerce: &Commerce,
    payments: &SimulatedGateway,
    acknowledged: &Acknowledged,
    skus: &[String],
) -> Result<Vec<Check>, db::Error> {
    let mut checks = Vec::new();

    // Orders: every checkout answered with an order is there, and settles
    // (a pending one is driven by recovery; give it its passes).
    let mut lost = 0;
    let mut open = Vec::new();
    let mut confirmed = BTreeSet::new();
    let mut settled: BTreeMap<String, Order> = BTreeMap::new();
    for (order, owner) in &acknowledged.orders {
        let (Ok(order_id), Ok(owner_id)) = (order.parse(), owner.parse()) else {
            lost += 1;
            continue;
        };
        match settled_order(commerce, &owner_id, &order_id).await {
            Some(found) => {
                match found.status {
                    OrderStatus::Confirmed => {
                        confirmed.insert(found.id.clone());
                    }
                    OrderStatus::Pending => {
                        // Where the saga stands, for whoever reads the failure.
                        let saga = match commerce.saga(&order_id).await {
                            Ok(s) => format!(
                                "{:?}, {} runs, {} parked, lease until {}, next attempt {}, now {}",
                                s.state,
                                s.runs,
                                s.parked_runs,
                                s.lease_until_ms,
                                s.next_attempt_ms,
                                commerce.now_ms()
                            ),
                            Err(e) => format!("saga unreadable: {e}"),
                        };
                        open.push(format!("{order}: {saga}"));
                    }
                    OrderStatus::Failed => {}
                }
                settled.insert(order.clone(), found);
            }
            None => lost += 1,
        }
    }
    checks.push(Check {
        name: "acknowledged orders found".into(),
        expected: format!("{}", acknowledged.orders.len()),
        found: format!("{}", acknowledged.orders.len() - lost),
        holds: lost == 0,
    });
    checks.push(Check {
        name: "sagas left open after recovery".into(),
        expected: "0".into(),
        found: if open.is_empty() {
            "0".into()
        } else {
            format!("{} ({})", open.len(), open.join(", "))
        },
        holds: open.is_empty(),
    });

    // Charges: the provider captured exactly the confirmed orders, once.
    let ledger = payments.ledger(MAX_LEDGER).await?;
    let mut charged: BTreeMap<String, usize> = BTreeMap::new();
    for entry in ledger.captured() {
        *charged.entry(entry.reference.clone()).or_default() += 1;
    }
    let doubled = charged.values().filter(|n| **n > 1).count();
    let unconfirmed_charges = charged
        .keys()
        .filter(|k| acknowledged.orders.contains_key(*k) && !confirmed.contains(*k))
        .count();
    let uncharged = confirmed
        .iter()
        .filter(|k| !charged.contains_key(*k))
        .count();
    checks.push(Check {
        name: "charges == confirmed orders (no double charge)".into(),
        expected: format!("{} charged once each", confirmed.len()),
        found: format!(
            "{doubled} doubled, {unconfirmed_charges} charged but not confirmed, {uncharged} confirmed but not charged"
        ),
        holds: doubled == 0 && unconfirmed_charges == 0 && uncharged == 0,
    });

    // Stock: every SKU audits clean in every warehouse (live == rebuilt
    // from its event log, nothing negative): no unit oversold.
    let mut dirty = 0;
    let mut oversold = 0;
    for sku in skus {
        for warehouse in commerce.warehouses() {
            let live = commerce.stock(&warehouse, sku).await;
            let rebuilt = commerce.rebuild_stock(&warehouse, sku).await;
            if let Ok(live) = &live {
                // Units promised (reserved or sold) beyond those received.
                oversold += (live.reserved + live.sold - live.received).max(0);
            }
            match (live, rebuilt) {
                (Ok(live), Ok(rebuilt)) if live == rebuilt && live.is_consistent() => {}
                _ => dirty += 1,
            }
        }
    }
    checks.push(Check {
        name: "stock audits clean (no unit oversold)".into(),
        expected: format!(
            "{} SKU×warehouse audits clean",
            skus.len() * commerce.warehouses().len()
        ),
        found: format!("{dirty} not clean, {oversold} units oversold"),
        holds: dirty == 0 && oversold == 0,
    });

    // Cart writes: each cart is at least at the version its last
    // acknowledged write returned.
    let mut behind = 0;
    for ((cart, owner), version) in &acknowledged.carts {
        let (Ok(cart_id), Ok(owner_id)) = (cart.parse(), owner.parse()) else {
            behind += 1;
            continue;
        };
        match commerce.cart(&owner_id, &cart_id).await {
            Ok(found) if found.version >= *version => {}
            // A checked-out or expired cart is gone by design; it was seen
            // at its version by the checkout that consumed it.
            Err(CommerceError::NotFound { .. }) => {}
            _ => behind += 1,
        }
    }
    checks.push(Check {
        name: "acknowledged cart writes present".into(),
        expected: format!(
            "{} carts at or past their acknowledged version",
            acknowledged.carts.len()
        ),
        found: format!("{behind} behind"),
        holds: behind == 0,
    });

    // Writes applied once: no cart, nor the order made of it, holds more
    // units of a SKU than its shopper asked to add (checked where the
    // caller recorded what it sent).
    if acknowledged.sent.is_empty() {
        return Ok(checks);
    }
    let mut doubled_writes = Vec::new();
    let mut over =
        |what: &str, id: &str, lines: Vec<(String, i64)>, sent: &BTreeMap<String, i64>| {
            for (sku, qty) in lines {
                let asked = sent.get(&sku).copied().unwrap_or(0);
                if qty > asked {
                    doubled_writes.push(format!("{what} {id}: {qty} × {sku}, {asked} asked"));
                }
            }
        };
    for ((cart, owner), sent) in &acknowledged.sent {
        let (Ok(cart_id), Ok(owner_id)) = (cart.parse(), owner.parse()) else {
            continue;
        };
        if let Ok(found) = commerce.cart(&owner_id, &cart_id).await {
            let lines = found.lines.into_iter().map(|l| (l.sku, l.qty)).collect();
            over("cart", cart, lines, sent);
        }
    }
    for (order, cart) in &acknowledged.order_carts {
        let (Some(found), Some(owner)) = (settled.get(order), acknowledged.orders.get(order))
        else {
            continue;
        };
        if let Some(sent) = acknowledged.sent.get(&(cart.clone(), owner.clone())) {
            let lines = found.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect();
            over("order", order, lines, sent);
        }
    }
    checks.push(Check {
        name: "no write applied twice".into(),
        expected: format!(
            "{} carts and their orders within what was asked",
            acknowledged.sent.len()
        ),
        found: if doubled_writes.is_empty() {
            "none over".into()
        } else {
            doubled_writes.join("; ")
        },
        holds: doubled_writes.is_empty(),
    });
    Ok(checks)
}

/// The order, once its saga has settled: a pending one is finished by a
/// recovery pass after its lease expires, so this waits (polling, bounded)
/// up to the lease and a few passes.
async fn settled_order(
    commerce: &Commerce,
    owner: &topology::ShardedId,
    id: &topology::ShardedId,
) -> Option<Order> {
    let patience = Duration::from_millis(commerce.settings().saga_lease_ms) + SETTLE_SLACK;
    let deadline = Instant::now() + patience;
    loop {
        match commerce.order(owner, id).await {
            Ok(order) if order.status != OrderStatus::Pending => return Some(order),
            Ok(order) if Instant::now() >= deadline => return Some(order),
            Err(CommerceError::NotFound { .. }) => return None,
            Err(_) if Instant::now() >= deadline => return None,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
