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

/// Longest `Idempotency-Key`, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// Saga steps one run takes at most (the longest path has 5).
const MAX_STEPS_PER_RUN: usize = 8;
/// Longest recovery waits between runs of a parked saga.
const MAX_PARK_MS: u64 = 60_000;
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

fn validate_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(())
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

impl Commerce {
    /// Checks out `owner`'s cart under `idempotency_key`: a retry with the
    /// same key returns (and resumes) the same order, never a second one.
    pub async fn checkout(
        &self,
        owner: &ShardedId,
        cart_id: &ShardedId,
        idempotency_key: &str,
    ) -> Result<Order> {
        validate_idempotency_key(idempotency_key)?;
        if cart_id.shard() != owner.shard() {
            return Err(CommerceError::Forbidden { what: "cart" });
        }
        let db = self.owned_db(owner)?;
        let owner_text = owner.to_string();
        let cart_text = cart_id.to_string();
        let idem_key = keys::idempotency(&owner_text, idempotency_key);

        if let Some(order_id) = self.idempotent_order(db, &idem_key, &cart_text).await? {
            return self.drive(db, &order_id, true).await;
        }

        // Price the cart (the catalog is in another shard), then create the
        // order in one transaction that re-checks the key and the cart.
        let cart = self.cart(owner, cart_id).await?;
        if cart.lines.is_empty() {
            return Err(CommerceError::EmptyCart);
        }
        let mut lines = Vec::with_capacity(cart.lines.len());
        for line in &cart.lines {
            let product = self.product(&line.sku).await?;
            lines.push(OrderLine {
                sku: line.sku.clone(),
                title: product.title,
                qty: line.qty,
                unit_price: product.price,
            });
        }
        let currency = lines[0].unit_price.currency.clone();
        if lines.iter().any(|l| l.unit_price.currency != currency) {
            return Err(invalid("cart", "all items must be priced in one currency"));
        }
        let amount_minor = lines.iter().try_fold(0i64, |sum, l| {
            l.unit_price
                .amount_minor
                .checked_mul(l.qty)
                .and_then(|v| sum.checked_add(v))
        });
        let Some(amount_minor) = amount_minor else {
            return Err(invalid("cart", "total overflows"));
        };
        let now_ms = self.now_ms();
        let order_id = self.new_id(owner.shard()).to_string();
        let token = runner_token();
        let order = Order {
            id: order_id.clone(),
            owner: owner_text.clone(),
            cart_id: cart_text.clone(),
            lines,
            total: Money {
                amount_minor,
                currency,
            },
            status: OrderStatus::Pending,
            failure: None,
            created_ms: now_ms,
            updated_ms: now_ms,
        };
        let saga = Saga {
            order_id: order_id.clone(),
            state: SagaState::Created,
            reservations: Vec::new(),
            authorization: None,
            failure: None,
            lease_holder: token,
            lease_until_ms: now_ms + self.settings().saga_lease_ms,
            runs: 1,
            updated_ms: now_ms,
            parked_runs: 0,
            next_attempt_ms: 0,
            capture_refusals: 0,
        };
        let (order_ref, saga_ref, idem_ref, cart_version) =
            (&order, &saga, &idem_key, cart.version);
        let created = db
            .run(|tx, _maybe_committed| async move {
                // Also covers a retry of this very transaction whose commit
                // outcome was unknown: the key is then already there.
                if let Some(existing) =
                    get_json::<IdempotencyRecord>(&tx, idem_ref, "idempotency record").await?
                {
                    if existing.cart_id != order_ref.cart_id {
                        return Err(CommerceError::IdempotencyKeyReused);
                    }
                    return Ok(existing.order_id);
                }
                let Some(mut cart) =
                    get_json::<crate::cart::Cart>(&tx, &keys::cart(&order_ref.cart_id), "cart")
                        .await?
                else {
                    return Err(CommerceError::NotFound {
                        what: "cart",
                        id: order_ref.cart_id.clone(),
                    });
                };
                if let Some(other) = &cart.checkout_order {
                    return Err(CommerceError::CartInCheckout {
                        order_id: other.clone(),
                    });
                }
                if cart.version != cart_version {
                    return Err(invalid(
                        "cart",
                        "changed while checking out; check out again",
                    ));
                }
                cart.checkout_order = Some(order_ref.id.clone());
                cart.version += 1;
                set_json(&tx, &keys::cart(&order_ref.cart_id), &cart)?;
                set_json(&tx, &keys::order(&order_ref.id), order_ref)?;
                tx.set(&keys::order_by_owner(&order_ref.owner, &order_ref.id), b"")?;
                set_json(&tx, &keys::saga(&order_ref.id), saga_ref)?;
                tx.set(&keys::saga_open(&order_ref.id), b"")?;
                set_json(
                    &tx,
                    idem_ref,
                    &IdempotencyRecord {
                        cart_id: order_ref.cart_id.clone(),
                        order_id: order_ref.id.clone(),
                    },
                )?;
                Ok(order_ref.id.clone())
            })
            .await?;
        self.faults().check(SagaState::Created, true)?;
        if created != order_id {
            return self.drive(db, &created, true).await;
        }
        self.run_saga(db, &order_id, token).await
    }

    async fn idempotent_order(
        &self,
        db: &Database,
        idem_key: &[u8],
        cart_id: &str,
    ) -> Result<Option<String>> {
        let record = db
            .run(|tx, _| async move {
                get_json::<IdempotencyRecord>(&tx, idem_key, "idempotency record").await
            })
            .await?;
        match record {
            Some(r) if r.cart_id != cart_id => Err(CommerceError::IdempotencyKeyReused),
            Some(r) => Ok(Some(r.order_id)),
            None => Ok(None),
        }
    }

    /// Takes the saga's lease if it is free (or ours to take over) and runs
    /// it; returns the order as it then stands. When another runner holds
    /// the lease and `wait` is set (a shopper's retry), waits for the order
    /// to settle, bounded by `checkout_wait_ms`, so the retry gets the
    /// outcome as soon as it exists.
    async fn drive(&self, db: &Database, order_id: &str, wait: bool) -> Result<Order> {
        let token = runner_token();
        let now_ms = self.now_ms();
        let lease_ms = self.settings().saga_lease_ms;
        let acquired = db
            .run(|tx, _| async move {
                let Some(mut saga) = get_json::<Saga>(&tx, &keys::saga(order_id), "saga").await?
                else {
                    return Err(CommerceError::NotFound {
                        what: "saga",
                        id: order_id.to_owned(),
                    });
                };
                if saga.lease_holder == token {
                    // An earlier attempt of this transaction committed.
                    return Ok(true);
                }
                if saga.state.is_terminal() || saga.lease_until_ms > now_ms {
                    return Ok(false);
                }
                saga.lease_holder = token;
                saga.lease_until_ms = now_ms + lease_ms;
                saga.runs += 1;
                set_json(&tx, &keys::saga(order_id), &saga)?;
                Ok(true)
            })
            .await?;
        if acquired {
            self.run_saga(db, order_id, token).await
        } else if wait {
            self.await_settled(db, order_id).await
        } else {
            self.load_order(db, order_id).await
        }
    }

    /// The order once it is no longer pending, or as it stands after
    /// `checkout_wait_ms`. Each round reads the order and, while pending,
    /// watches its key in the same transaction, so a change committed in
    /// between wakes it.
    async fn await_settled(&self, db: &Database, order_id: &str) -> Result<Order> {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(self.settings().checkout_wait_ms);
        loop {
            let (order, watch) = db
                .run(|tx, _| async move {
                    let key = keys::order(order_id);
                    let order = get_json::<Order>(&tx, &key, "order")
                        .await?
                        .ok_or_else(|| CommerceError::NotFound {
                            what: "order",
                            id: order_id.to_owned(),
                        })?;
                    let watch = match order.status {
                        // No watch to be had (the engine's bound): answer now.
                        OrderStatus::Pending => tx.watch(&key).ok(),
                        _ => None,
                    };
                    Ok::<_, CommerceError>((order, watch))
                })
                .await?;
            let Some(watch) = watch else {
                return Ok(order);
            };
            match tokio::time::timeout_at(deadline, watch).await {
                Ok(Ok(())) => {}
                // Out of time, or the watch was dropped (too many, store
                // closing): the order as it stands; the shopper retries.
                Err(_) | Ok(Err(_)) => return Ok(order),
            }
        }
    }

    async fn load_order(&self, db: &Database, order_id: &str) -> Result<Order> {
        db.run(|tx, _| async move { get_json::<Order>(&tx, &keys::order(order_id), "order").await })
            .await?
            .ok_or_else(|| CommerceError::NotFound {
                what: "order",
                id: order_id.to_owned(),
            })
    }

    async fn load_saga(&self, db: &Database, order_id: &str) -> Result<Saga> {
        db.run(|tx, _| async move { get_json::<Saga>(&tx, &keys::saga(order_id), "saga").await })
            .await?
            .ok_or_else(|| CommerceError::NotFound {
                what: "saga",
                id: order_id.to_owned(),
            })
    }

    /// Runs the saga while holding the lease `token`.
    async fn run_saga(&self, db: &Database, order_id: &str, token: u64) -> Result<Order> {
        let order = self.load_order(db, order_id).await?;
        let mut saga = self.load_saga(db, order_id).await?;
        for _ in 0..MAX_STEPS_PER_RUN {
            if saga.state.is_terminal() || saga.lease_holder != token {
                break;
            }
            let next = match saga.state {
                SagaState::Created => self.step_reserve(&order, &saga).await?,
                SagaState::Reserved => self.step_authorize(&order, &saga).await?,
                SagaState::Authorized => self.step_commit_stock(&saga).await?,
                SagaState::StockCommitted => self.step_capture(&saga).await?,
                SagaState::Compensating => self.step_compensate(&order, &saga).await?,
                SagaState::Completed | SagaState::Compensated => break,
            };
            let (new, then_park) = match next {
                Next::To(new) => (new, false),
                Next::Retry(new) => (new, true),
                Next::Later => {
                    // Unknown outcome: free the lease so a retry of the
                    // request or the recovery worker can resume at once.
                    self.park(db, order_id, token).await?;
                    break;
                }
            };
            self.faults().check(new.state, false)?;
            match self.persist(db, &order, saga.state, new, token).await? {
                Some(persisted) => saga = persisted,
                None => break,
            }
            if then_park {
                self.park(db, order_id, token).await?;
                break;
            }
            self.faults().check(saga.state, true)?;
        }
        self.load_order(db, order_id).await
    }

    /// Persists `new` if the saga is still in `from` under our lease, with
    /// the order, payment and outbox writes its state implies.
    async fn persist(
        &self,
        db: &Database,
        order: &Order,
        from: SagaState,
        mut new: Saga,
        token: u64,
    ) -> Result<Option<Saga>> {
        let now_ms = self.now_ms();
        new.updated_ms = now_ms;
        new.lease_until_ms = now_ms + self.settings().saga_lease_ms;
        let order_id = order.id.as_str();
        let new = &new;
        db.run(|tx, _| async move {
            let Some(current) = get_json::<Saga>(&tx, &keys::saga(order_id), "saga").await? else {
                return Ok(None);
            };
            if current == *new {
                // An earlier attempt of this transaction committed.
                return Ok(Some(current));
            }
            if current.state != from || current.lease_holder != token {
                return Ok(None);
            }
            set_json(&tx, &keys::saga(order_id), new)?;
            match new.state {
                SagaState::Authorized | SagaState::Completed | SagaState::Compensated => {
                    write_payment(&tx, order, new)?;
                }
                _ => {}
            }
            match new.state {
                SagaState::Completed => {
                    finish_order(&tx, order, OrderStatus::Confirmed, None, now_ms).await?;
                    Commerce::finish_cart_checkout(&tx, order, true, now_ms).await?;
                }
                SagaState::Compensated => {
                    finish_order(&tx, order, OrderStatus::Failed, new.failure.clone(), now_ms)
                        .await?;
                    Commerce::finish_cart_checkout(&tx, order, false, now_ms).await?;
                }
                _ => {}
            }
            Ok::<_, CommerceError>(Some(new.clone()))
        })
        .await
    }

    /// Frees the lease of a saga whose outcome is unknown for now, so a
    /// shopper's retry resumes it at once, and tells recovery to wait: 100 ms
    /// doubling per parked run, at most a minute.
    async fn park(&self, db: &Database, order_id: &str, token: u64) -> Result<()> {
        let now_ms = self.now_ms();
        db.run(|tx, _| async move {
            if let Some(mut saga) = get_json::<Saga>(&tx, &keys::saga(order_id), "saga").await?
                && saga.lease_holder == token
            {
                saga.lease_holder = 0;
                saga.lease_until_ms = 0;
                saga.parked_runs = saga.parked_runs.saturating_add(1);
                let wait_ms = 100u64
                    .saturating_mul(1 << saga.parked_runs.min(10))
                    .min(MAX_PARK_MS);
                saga.next_attempt_ms = now_ms.saturating_add(wait_ms);
                set_json(&tx, &keys::saga(order_id), &saga)?;
            }
            Ok::<_, CommerceError>(())
        })
        .await
    }

    /// Warehouses to try for a buyer, their own shard first.
    fn warehouse_order(&self, buyer: &ShardId) -> Vec<ShardId> {
        let mut all = self.warehouses();
        all.sort_by_key(|w| w != buyer);
        all
    }

    async fn step_reserve(&self, order: &Order, saga: &Saga) -> Result<Next> {
        let buyer: ShardedId = order
            .id
            .parse()
            .map_err(|_| invalid("order", "id does not parse"))?;
        let warehouses = self.warehouse_order(buyer.shard());
        let ttl_ms = self.settings().reservation_ttl_s.saturating_mul(1000);
        let mut new = saga.clone();
        new.reservations.clear();
        for (i, line) in order.lines.iter().enumerate() {
            let id = reservation_id(&order.id, i);
            // A run that crashed (or a runner whose lease ran out) may have
            // reserved already: find it first, so a retry never holds stock
            // twice. A released record is a warehouse given up on.
            let mut found = None;
            for w in &warehouses {
                if let Some(r) = self.reservation(w, &id).await?
                    && r.state != crate::inventory::ReservationState::Released
                {
                    found = Some(w.clone());
                    break;
                }
            }
            if found.is_none() {
                for w in &warehouses {
                    match self.reserve(w, &id, &line.sku, line.qty, ttl_ms).await {
                        Ok(_) => {
                            found = Some(w.clone());
                            break;
                        }
                        Err(CommerceError::OutOfStock { .. }) => {
                            // Leave a tombstone before trying the next
                            // warehouse: a stalled runner's late reserve
                            // here then takes nothing, so a line never
                            // holds stock in two warehouses.
                            self.release_reservation(w, &id, &line.sku, "tried elsewhere", false)
                                .await?;
                        }
                        Err(CommerceError::ReservationReleased { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            match found {
                Some(warehouse) => new.reservations.push(LineReservation {
                    line: i,
                    warehouse,
                    reservation: id,
                }),
                None => {
                    new.failure = Some(format!("out of stock: {}", line.sku));
                    new.state = SagaState::Compensating;
                    return Ok(Next::To(new));
                }
            }
        }
        new.state = SagaState::Reserved;
        Ok(Next::To(new))
    }

    async fn step_authorize(&self, order: &Order, saga: &Saga) -> Result<Next> {
        let request = AuthorizeRequest {
            idempotency_key: format!("{}/authorize", order.id),
            amount_minor: order.total.amount_minor,
            currency: order.total.currency.clone(),
            reference: order.id.clone(),
        };
        let mut new = saga.clone();
        if order.total.amount_minor == 0 {
            // Nothing to charge.
            new.state = SagaState::Authorized;
            return Ok(Next::To(new));
        }
        match self
            .with_payment_retries(|| self.gateway().authorize(&request))
            .await
        {
            Ok(Some(authorization)) => {
                new.authorization = Some(authorization);
                new.state = SagaState::Authorized;
            }
            Ok(None) => return Ok(Next::Later),
            Err(GatewayError::Declined { reason } | GatewayError::Rejected { reason }) => {
                new.failure = Some(format!("payment declined: {reason}"));
                new.state = SagaState::Compensating;
            }
            Err(GatewayError::Timeout) => return Ok(Next::Later),
        }
        Ok(Next::To(new))
    }

    async fn step_commit_stock(&self, saga: &Saga) -> Result<Next> {
        let mut new = saga.clone();
        for r in &saga.reservations {
            match self.commit_reservation(&r.warehouse, &r.reservation).await {
                Ok(_) => {}
                Err(CommerceError::ReservationReleased { .. }) => {
                    // Expired before payment completed: give everything back.
                    new.failure = Some("stock reservation expired before payment".into());
                    new.state = SagaState::Compensating;
                    return Ok(Next::To(new));
                }
                Err(e) => return Err(e),
            }
        }
        new.state = SagaState::StockCommitted;
        Ok(Next::To(new))
    }

    async fn step_capture(&self, saga: &Saga) -> Result<Next> {
        let Some(authorization) = &saga.authorization else {
            // A free order: nothing to capture.
            let mut new = saga.clone();
            new.state = SagaState::Completed;
            return Ok(Next::To(new));
        };
        let key = format!("{}/capture", saga.order_id);
        match self
            .with_payment_retries(|| async { self.gateway().capture(authorization, &key).await })
            .await
        {
            Ok(Some(())) => {
                let mut new = saga.clone();
                new.state = SagaState::Completed;
                Ok(Next::To(new))
            }
            Ok(None) | Err(GatewayError::Timeout) => Ok(Next::Later),
            // An authorization we hold should not be refused capture; when
            // it is, try again in later runs (backing off), then give up:
            // the stock goes back and the order fails with the provider's
            // reason, for an operator to follow up.
            Err(e) => {
                let mut new = saga.clone();
                new.capture_refusals = new.capture_refusals.saturating_add(1);
                if new.capture_refusals < MAX_CAPTURE_REFUSALS {
                    tracing::warn!(order = %saga.order_id, refusals = new.capture_refusals, error = %e, "capture refused; retried later");
                    return Ok(Next::Retry(new));
                }
                tracing::error!(order = %saga.order_id, error = %e, "capture refused {MAX_CAPTURE_REFUSALS} times; compensating");
                new.failure = Some(format!("the payment provider refused the capture: {e}"));
                new.state = SagaState::Compensating;
                Ok(Next::To(new))
            }
        }
    }

    async fn step_compensate(&self, order: &Order, saga: &Saga) -> Result<Next> {
        // Stock first: giving it back is idempotent and needs no gateway.
        let reason = saga.failure.as_deref().unwrap_or("checkout failed");
        let buyer: ShardedId = order
            .id
            .parse()
            .map_err(|_| invalid("order", "id does not parse"))?;
        for (i, line) in order.lines.iter().enumerate() {
            let id = reservation_id(&order.id, i);
            for w in self.warehouse_order(buyer.shard()) {
                self.release_reservation(&w, &id, &line.sku, reason, true)
                    .await?;
            }
        }
        if let Some(authorization) = &saga.authorization {
            let key = format!("{}/void", saga.order_id);
            match self
                .with_payment_retries(|| async { self.gateway().void(authorization, &key).await })
                .await
            {
                Ok(Some(())) => {}
                Ok(None) | Err(GatewayError::Timeout) => return Ok(Next::Later),
                // The gateway holds nothing under this authorization (it
                // expired or was voided): nothing is left to give back.
                Err(e) => {
                    tracing::warn!(order = %saga.order_id, error = %e, "void refused; treating the authorization as released")
                }
            }
        }
        let mut new = saga.clone();
        new.state = SagaState::Compensated;
        Ok(Next::To(new))
    }

    /// Calls the gateway up to `payment_attempts` times while it times out.
    /// `Ok(None)`: every attempt timed out, the outcome is unknown.
    async fn with_payment_retries<T, F, Fut>(&self, mut call: F) -> Result<Option<T>, GatewayError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, GatewayError>>,
    {
        let attempts = self.settings().payment_attempts;
        for attempt in 1..=attempts {
            match call().await {
                Ok(value) => return Ok(Some(value)),
                Err(GatewayError::Timeout) if attempt < attempts => {
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                Err(GatewayError::Timeout) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// One recovery pass over `shard`: resumes open sagas whose lease ran
    /// out, at most one batch. Returns how many it ran.
    pub async fn recover_sagas(&self, shard: &ShardId) -> Result<usize> {
        let db = self.shards().get(shard)?;
        let batch = self.settings().batch;
        let space = keys::sagas_open();
        let (start, end) = space.range();
        // Scan from where the last pass stopped, wrapping around, so sagas
        // parked at the head of the index cannot starve the others.
        let from = self
            .inner
            .recovery_cursors
            .lock()
            .get(shard)
            .cloned()
            .unwrap_or_else(|| start.clone());
        let (from, end) = (&from, &end);
        let open = db
            .run(|tx, _| async move {
                Ok::<_, CommerceError>(
                    tx.get_range(
                        &RangeOption::new(from.clone(), end.clone()).limit(batch),
                        true,
                    )
                    .await?,
                )
            })
            .await?;
        let next = match open.kvs.last() {
            Some(last) if open.more => db::keys::key_after(&last.key),
            _ => start,
        };
        self.inner
            .recovery_cursors
            .lock()
            .insert(shard.clone(), next);
        let mut resumed = 0;
        let now_ms = self.now_ms();
        for kv in &open.kvs {
            let Ok((order_id,)) = space.unpack::<(String,)>(&kv.key) else {
                tracing::error!(shard = %shard, "undecodable key in the open-saga index; skipped");
                continue;
            };
            let saga = match self.load_saga(db, &order_id).await {
                Ok(saga) => saga,
                Err(e) => {
                    tracing::error!(order = %order_id, error = %e, "open saga unreadable; skipped");
                    continue;
                }
            };
            if saga.state.is_terminal()
                || saga.lease_until_ms > now_ms
                || saga.next_attempt_ms > now_ms
            {
                continue;
            }
            match self.drive(db, &order_id, false).await {
                Ok(_) => {
                    // Count only progress, so the worker does not spin on a
                    // saga whose outcome is still unknown.
                    if self
                        .load_saga(db, &order_id)
                        .await
                        .is_ok_and(|after| after.state != saga.state)
                    {
                        resumed += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(order = %order_id, error = %e, "saga recovery failed; retried next pass")
                }
            }
        }
        Ok(resumed)
    }

    /// Sagas of `shard` not yet completed or compensated (at most `limit`).
    pub async fn open_sagas(&self, shard: &ShardId, limit: usize) -> Result<Vec<Saga>> {
        let db = self.shards().get(shard)?;
        let space = keys::sagas_open();
        let space = &space;
        let open = db
            .run(|tx, _| async move {
                Ok::<_, CommerceError>(
                    tx.get_range(&RangeOption::subspace(space).limit(limit), true)
                        .await?,
                )
            })
            .await?;
        let mut out = Vec::new();
        for kv in &open.kvs {
            let (order_id,): (String,) = space
                .unpack(&kv.key)
                .map_err(|_| invalid("saga index key", "does not decode"))?;
            out.push(self.load_saga(db, &order_id).await?);
        }
        Ok(out)
    }

    /// The saga of `order_id` (for tests and operators).
    pub async fn saga(&self, order_id: &ShardedId) -> Result<Saga> {
        let db = self.shards().for_id(order_id)?;
        self.load_saga(db, &order_id.to_string()).await
    }

    /// The payment record of `order_id`, if a payment was authorized.
    pub async fn payment(&self, order_id: &ShardedId) -> Result<Option<Payment>> {
        let db = self.shards().for_id(order_id)?;
        let id = order_id.to_string();
        let id = &id;
        db.run(|tx, _| async move { get_json::<Payment>(&tx, &keys::payment(id), "payment").await })
            .await
    }
}

fn runner_token() -> u64 {
    rand::random::<u64>() | 1
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
