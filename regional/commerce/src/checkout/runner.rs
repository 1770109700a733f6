//! The saga runner: checkout creates the order and its saga in one
//! transaction, then a runner holding the lease drives it step by step,
//! persisting each result; a retry waits for a saga another runner drives.

use super::*;

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
            return Err(CommerceError::Unpayable {
                reason: "its items are priced in more than one currency",
            });
        }
        let amount_minor = lines.iter().try_fold(0i64, |sum, l| {
            l.unit_price
                .amount_minor
                .checked_mul(l.qty)
                .and_then(|v| sum.checked_add(v))
        });
        // One payment holds at most what one price may be.
        let Some(amount_minor) =
            amount_minor.filter(|total| *total <= crate::catalog::MAX_PRICE_MINOR)
        else {
            return Err(CommerceError::Unpayable {
                reason: "its total is past the bound",
            });
        };
        let now_ms = self.now_ms();
        let order_id = self.new_id(owner.shard()).to_string();
        let token = runner_token(self);
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

    pub(super) async fn idempotent_order(
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
    pub(super) async fn drive(&self, db: &Database, order_id: &str, wait: bool) -> Result<Order> {
        let token = runner_token(self);
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
                if saga.state.is_terminal()
                    || self.inner.lease_sightings.holds(&saga, now_ms, lease_ms)
                {
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
    pub(super) async fn await_settled(&self, db: &Database, order_id: &str) -> Result<Order> {
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

    pub(super) async fn load_order(&self, db: &Database, order_id: &str) -> Result<Order> {
        db.run(|tx, _| async move { get_json::<Order>(&tx, &keys::order(order_id), "order").await })
            .await?
            .ok_or_else(|| CommerceError::NotFound {
                what: "order",
                id: order_id.to_owned(),
            })
    }

    pub(super) async fn load_saga(&self, db: &Database, order_id: &str) -> Result<Saga> {
        db.run(|tx, _| async move { get_json::<Saga>(&tx, &keys::saga(order_id), "saga").await })
            .await?
            .ok_or_else(|| CommerceError::NotFound {
                what: "saga",
                id: order_id.to_owned(),
            })
    }

    /// Runs the saga while holding the lease `token`, renewing the lease
    /// while a step is under way: a step may take longer than one lease (a
    /// runner far from a warehouse, a slow gateway), and a lease that ran
    /// out under a live runner lets the next runner start the step again,
    /// which a slow runner never finishes (seed 5443). A runner that finds
    /// its lease taken stops at once; its steps are idempotent, so that is
    /// a crash the next runner resumes from.
    pub(super) async fn run_saga(
        &self,
        db: &Database,
        order_id: &str,
        token: u64,
    ) -> Result<Order> {
        tokio::select! {
            ran = self.run_steps(db, order_id, token) => {
                if let Err(e) = ran {
                    // A run that failed (a store it needs unreachable, say)
                    // hands the saga on at once rather than holding it for
                    // the rest of its lease: another region, or this one's
                    // next recovery pass, may get through (seed 1173). Not
                    // after an injected crash: a crashed runner frees
                    // nothing. If the store holding the saga is the one
                    // out of reach, the lease runs out as before.
                    if !matches!(e, CommerceError::InjectedCrash { .. })
                        && let Err(free) = self.free_lease(db, order_id, token, false).await
                    {
                        tracing::debug!(order = %order_id, error = %free, "could not free a failed run's lease; it runs out");
                    }
                    return Err(e);
                }
            }
            () = self.keep_lease(db, order_id, token) => {}
        }
        self.load_order(db, order_id).await
    }

    /// Extends the lease `token` holds on `order_id`'s saga every third of
    /// a lease; returns once the lease is another runner's or the saga is
    /// over. A renewal that fails (storage unreachable) is tried again at
    /// the next tick: the lease may then run out, and `persist`'s check
    /// keeps this runner from writing past it.
    async fn keep_lease(&self, db: &Database, order_id: &str, token: u64) {
        let lease_ms = self.settings().saga_lease_ms;
        let every = Duration::from_millis((lease_ms / 3).max(1));
        loop {
            tokio::time::sleep(every).await;
            let now_ms = self.now_ms();
            let renewed = db
                .run(|tx, _| async move {
                    let Some(mut saga) =
                        get_json::<Saga>(&tx, &keys::saga(order_id), "saga").await?
                    else {
                        return Ok(false);
                    };
                    if saga.lease_holder != token || saga.state.is_terminal() {
                        return Ok(false);
                    }
                    saga.lease_until_ms = saga.lease_until_ms.max(now_ms + lease_ms);
                    set_json(&tx, &keys::saga(order_id), &saga)?;
                    Ok::<_, CommerceError>(true)
                })
                .await;
            if let Ok(false) = renewed {
                return;
            }
        }
    }

    /// The steps of one run (at most [`MAX_STEPS_PER_RUN`]), while the
    /// lease is `token`'s.
    async fn run_steps(&self, db: &Database, order_id: &str, token: u64) -> Result<()> {
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
        Ok(())
    }

    /// Persists `new` if the saga is still in `from` under our lease, with
    /// the order, payment and outbox writes its state implies.
    pub(super) async fn persist(
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
    pub(super) async fn park(&self, db: &Database, order_id: &str, token: u64) -> Result<()> {
        self.free_lease(db, order_id, token, true).await
    }

    /// Frees the lease `token` holds on `order_id`'s saga, if it still
    /// does; parked (`park`), recovery waits before resuming it.
    async fn free_lease(
        &self,
        db: &Database,
        order_id: &str,
        token: u64,
        park: bool,
    ) -> Result<()> {
        let now_ms = self.now_ms();
        db.run(|tx, _| async move {
            if let Some(mut saga) = get_json::<Saga>(&tx, &keys::saga(order_id), "saga").await?
                && saga.lease_holder == token
            {
                saga.lease_holder = 0;
                saga.lease_until_ms = 0;
                if park {
                    saga.parked_runs = saga.parked_runs.saturating_add(1);
                    saga.next_attempt_ms = now_ms.saturating_add(park_wait_ms(saga.parked_runs));
                }
                set_json(&tx, &keys::saga(order_id), &saga)?;
            }
            Ok::<_, CommerceError>(())
        })
        .await
    }
}
