//! Checkout: a saga spanning shards. The buyer's shard holds the order, the
//! payment record and the saga state; each warehouse shard holds its stock.
//!
//! ```text
//! Created ──reserve──▶ Reserved ──authorize──▶ Authorized ──commit──▶ StockCommitted ──capture──▶ Completed
//!    │                    │                        │
//!    └── out of stock ────┴── declined ────────────┴── reservation lost ──▶ Compensating ──▶ Compensated
//! ```
//!
//! Each step is idempotent (reservation ids and payment idempotency keys
//! derive from the order id) and its result is persisted before the next
//! step starts. A runner holds a lease on the saga; the recovery worker
//! resumes open sagas whose lease ran out (the runner crashed or gave up on
//! an unknown payment outcome). Compensation voids the authorization and
//! releases every reservation the saga may have taken, in every warehouse,
//! leaving tombstones so a late retry cannot take stock again. Every saga
//! ends completed or compensated.

use std::collections::BTreeMap;
use std::time::Duration;

use db::{Database, RangeOption, Transaction};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use topology::{ShardId, ShardedId};

use crate::catalog::Money;
use crate::error::{CommerceError, Result, invalid};
use crate::orders::{Order, OrderLine, OrderStatus};
use crate::outbox::{Message, MessageKind, Topic, enqueue};
use crate::payments::{AuthorizeRequest, GatewayError};
use crate::{Commerce, get_json, keys, set_json};

mod recovery;
mod runner;
mod steps;

/// Longest `Idempotency-Key`, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = regional_api::idempotency::MAX_KEY_LEN;
/// Saga steps one run takes at most (the longest path has 5).
const MAX_STEPS_PER_RUN: usize = 8;
/// Longest recovery waits between runs of a parked saga.
const MAX_PARK_MS: u64 = 60_000;
/// How far ahead of a reader's clock a runner's clock may plausibly be.
/// A lease that ends further ahead than its length plus this was written
/// by a clock running ahead (or one a monotonic guard holds after a jump
/// back): the reader honours it for one lease length plus this on its own
/// clock from when it first saw that very lease, not until the writer's
/// clock says. So a region whose clock was wrong cannot hold a dead
/// runner's saga for as long as its clock was wrong (the simulator's seed
/// 1721: 28.7 s), nor can two regions whose clocks disagree take a live
/// runner's saga from each other in turn (seed 58): a live runner renews
/// its lease at every step.
pub const CLOCK_SKEW_TOLERANCE_MS: u64 = 1_000;
/// Implausible leases a region remembers at most (then it forgets them
/// all, which only delays a takeover by one lease length).
const MAX_LEASE_SIGHTINGS: usize = 10_000;

/// Runs in which the provider refused to capture a saga's authorization
/// before the saga gives up and compensates (returns the stock, voids the
/// authorization, fails the order with the provider's reason) rather than
/// wait forever for an answer that will not change.
pub const MAX_CAPTURE_REFUSALS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SagaState {
    Created,
    Reserved,
    Authorized,
    StockCommitted,
    Completed,
    Compensating,
    Compensated,
}

impl SagaState {
    pub fn is_terminal(self) -> bool {
        matches!(self, SagaState::Completed | SagaState::Compensated)
    }
}

/// Where one order line's stock is reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineReservation {
    pub line: usize,
    pub warehouse: ShardId,
    pub reservation: String,
}

/// The persisted saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saga {
    pub order_id: String,
    pub state: SagaState,
    pub reservations: Vec<LineReservation>,
    pub authorization: Option<String>,
    pub failure: Option<String>,
    /// The runner holding the lease, and until when.
    pub lease_holder: u64,
    pub lease_until_ms: u64,
    /// Runs that have worked on it (the first, then recoveries).
    pub runs: u32,
    pub updated_ms: u64,
    /// Runs that ended with the outcome still unknown (a payment call that
    /// kept timing out): recovery waits longer after each.
    #[serde(default)]
    pub parked_runs: u32,
    /// Recovery leaves the saga alone until then (a shopper's retry does
    /// not wait).
    #[serde(default)]
    pub next_attempt_ms: u64,
    /// Runs in which the provider refused the capture (bounded by
    /// [`MAX_CAPTURE_REFUSALS`]).
    #[serde(default)]
    pub capture_refusals: u32,
}

impl Saga {
    /// Whether recovery must still leave the saga alone at `now_ms`: its
    /// park ends in the future, by no more than the park its parked runs
    /// give ([`park_wait_ms`]) and the tolerated skew. A park written by a
    /// clock running ahead is not honoured (passing it only costs a run):
    /// in the simulator's seed 9699 a 200 ms park written by a clock 22 s
    /// ahead held a saga past the audit.
    pub fn parked_at(&self, now_ms: u64) -> bool {
        ahead(self.next_attempt_ms, now_ms, park_wait_ms(self.parked_runs))
    }
}

/// How long recovery leaves a saga parked for the `parked_runs`-th time:
/// 100 ms doubling per parked run, at most [`MAX_PARK_MS`].
pub(crate) fn park_wait_ms(parked_runs: u32) -> u64 {
    100u64
        .saturating_mul(1 << parked_runs.min(10))
        .min(MAX_PARK_MS)
}

/// The implausible leases (see [`CLOCK_SKEW_TOLERANCE_MS`]) a region has
/// seen: order id → (holder, lease end, first seen on this clock).
#[derive(Debug, Default)]
pub(crate) struct LeaseSightings(Mutex<BTreeMap<String, (u64, u64, u64)>>);

impl LeaseSightings {
    /// Whether `saga`'s lease holds at `now_ms` on this region's clock,
    /// for leases of `lease_ms`.
    pub(crate) fn holds(&self, saga: &Saga, now_ms: u64, lease_ms: u64) -> bool {
        let until = saga.lease_until_ms;
        if until <= now_ms {
            self.0.lock().remove(&saga.order_id);
            return false;
        }
        if ahead(until, now_ms, lease_ms) {
            return true;
        }
        let length = lease_ms.saturating_add(CLOCK_SKEW_TOLERANCE_MS);
        let mut seen = self.0.lock();
        if seen.len() >= MAX_LEASE_SIGHTINGS && !seen.contains_key(&saga.order_id) {
            seen.clear();
        }
        let entry = seen
            .entry(saga.order_id.clone())
            .or_insert((saga.lease_holder, until, now_ms));
        if (entry.0, entry.1) != (saga.lease_holder, until) {
            *entry = (saga.lease_holder, until, now_ms);
        }
        now_ms.saturating_sub(entry.2) < length
    }
}

/// `until` is in the future of `now_ms`, by no more than `length` and the
/// tolerated skew.
fn ahead(until: u64, now_ms: u64, length: u64) -> bool {
    until > now_ms && until - now_ms <= length.saturating_add(CLOCK_SKEW_TOLERANCE_MS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    Authorized,
    Captured,
    Voided,
}

/// The buyer-side payment record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub order_id: String,
    pub authorization: String,
    pub amount: Money,
    pub state: PaymentState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IdempotencyRecord {
    cart_id: String,
    order_id: String,
}

/// Where a test makes the saga runner "crash": after the step that leads to
/// `state` did its work, before or after persisting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashPoint {
    pub state: SagaState,
    pub persisted: bool,
}

/// Test hooks, inert unless armed. One-shot: a crash disarms it.
#[derive(Debug, Default)]
pub struct Faults {
    crash: Mutex<Option<CrashPoint>>,
    outbox_crash: std::sync::atomic::AtomicBool,
}

impl Faults {
    /// The next outbox pass "crashes" after its consumers ran and before
    /// it deletes the batch, so the batch is delivered again.
    pub fn arm_outbox_crash(&self) {
        self.outbox_crash
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn check_outbox(&self) -> Result<()> {
        if self
            .outbox_crash
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(CommerceError::InjectedCrash {
                step: "an outbox batch's delivery, before deleting it",
            });
        }
        Ok(())
    }

    pub fn arm_crash(&self, point: CrashPoint) {
        *self.crash.lock() = Some(point);
    }

    fn check(&self, state: SagaState, persisted: bool) -> Result<()> {
        let mut armed = self.crash.lock();
        if *armed == Some(CrashPoint { state, persisted }) {
            *armed = None;
            return Err(CommerceError::InjectedCrash {
                step: if persisted {
                    "persisting a saga step"
                } else {
                    "a saga step's work, before persisting it"
                },
            });
        }
        Ok(())
    }
}

/// Checks an `Idempotency-Key` by the contract's one rule.
pub(crate) fn validate_idempotency_key(key: &str) -> Result<()> {
    regional_api::idempotency::validate(key).map_err(|e| invalid("Idempotency-Key", e.to_string()))
}

fn reservation_id(order_id: &str, line: usize) -> String {
    format!("{order_id}/{line}")
}

/// What a step decided.
enum Next {
    /// Persist this new state (with the saga's changes).
    To(Saga),
    /// The outcome is unknown for now (payment timeout): leave the saga for
    /// a later run.
    Later,
    /// Persist this (same-state) saga, then leave it for a later run.
    Retry(Saga),
}

fn runner_token(commerce: &crate::Commerce) -> u64 {
    commerce.random_u64() | 1
}

fn write_payment(tx: &Transaction, order: &Order, saga: &Saga) -> Result<()> {
    let Some(authorization) = &saga.authorization else {
        return Ok(());
    };
    let state = match saga.state {
        SagaState::Completed => PaymentState::Captured,
        SagaState::Compensated => PaymentState::Voided,
        _ => PaymentState::Authorized,
    };
    set_json(
        tx,
        &keys::payment(&order.id),
        &Payment {
            order_id: order.id.clone(),
            authorization: authorization.clone(),
            amount: order.total.clone(),
            state,
        },
    )
}

/// Ends the order: its final status, the saga leaves the open index, and
/// the shopper's notification and the analytics event are queued, all in
/// the transaction that ends the saga.
async fn finish_order(
    tx: &Transaction,
    order: &Order,
    status: OrderStatus,
    failure: Option<String>,
    now_ms: u64,
) -> Result<()> {
    let mut order = get_json::<Order>(tx, &keys::order(&order.id), "order")
        .await?
        .unwrap_or_else(|| order.clone());
    order.status = status;
    order.failure = failure;
    order.updated_ms = now_ms;
    set_json(tx, &keys::order(&order.id), &order)?;
    tx.clear(&keys::saga_open(&order.id))?;
    if status == OrderStatus::Confirmed {
        // What makes the buyer's reviews of these SKUs verified, and
        // what recommendations are computed from.
        for (i, line) in order.lines.iter().enumerate() {
            tx.set(&keys::purchased(&order.owner, &line.sku), b"")?;
            crate::recommend::record_sale(
                tx,
                i,
                &crate::recommend::SaleLine {
                    order_id: order.id.clone(),
                    at_ms: now_ms,
                    sku: line.sku.clone(),
                    qty: line.qty,
                },
            )?;
        }
    }
    let kind = match status {
        OrderStatus::Confirmed => MessageKind::OrderConfirmed,
        _ => MessageKind::OrderFailed,
    };
    let message = Message {
        id: format!(
            "{}/{}",
            order.id,
            if status == OrderStatus::Confirmed {
                "confirmed"
            } else {
                "failed"
            }
        ),
        kind,
        order_id: order.id.clone(),
        owner: order.owner.clone(),
        amount_minor: order.total.amount_minor,
        currency: order.total.currency.clone(),
        at_ms: now_ms,
    };
    enqueue(tx, Topic::Notifications, 0, &message)?;
    enqueue(tx, Topic::Analytics, 0, &message)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(parked_runs: u32, next_attempt_ms: u64) -> Saga {
        Saga {
            order_id: "us.1".into(),
            state: SagaState::Reserved,
            reservations: Vec::new(),
            authorization: None,
            failure: None,
            lease_holder: 0,
            lease_until_ms: 0,
            runs: 1,
            updated_ms: 0,
            parked_runs,
            next_attempt_ms,
            capture_refusals: 0,
        }
    }

    /// A park is honoured for as long as its parked runs make it (and the
    /// tolerated skew), not for as long as the clock that wrote it ran
    /// ahead (seed 9699: 200 ms written 22 s ahead).
    #[test]
    fn a_park_is_honoured_for_its_own_length_only() {
        let now = 1_800_000_000_000;
        let honest = parked(1, now + park_wait_ms(1));
        assert!(honest.parked_at(now));
        assert!(!honest.parked_at(now + park_wait_ms(1)));
        let ahead = parked(1, now + 22_494 + park_wait_ms(1));
        assert!(!ahead.parked_at(now), "written by a clock 22 s ahead");
        let long = parked(12, now + MAX_PARK_MS);
        assert!(long.parked_at(now), "the longest park");
        assert_eq!(park_wait_ms(1), 200);
        assert_eq!(park_wait_ms(40), MAX_PARK_MS);
    }
}
