//! The saga's steps: reserve, authorize, commit stock, capture, and the
//! compensation; each idempotent by its reservation ids and payment keys.

use super::*;

impl Commerce {
    /// Warehouses to try for a buyer, their own shard first.
    pub(super) fn warehouse_order(&self, buyer: &ShardId) -> Vec<ShardId> {
        let mut all = self.warehouses();
        all.sort_by_key(|w| w != buyer);
        all
    }

    pub(super) async fn step_reserve(&self, order: &Order, saga: &Saga) -> Result<Next> {
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
            // The buyer's own warehouse first (the usual one, and one a
            // partition leaves reachable), then the others at once: one
            // round trip to the farthest, not one to each in turn.
            let taken = |r: &Option<crate::inventory::Reservation>| {
                r.as_ref()
                    .is_some_and(|r| r.state != crate::inventory::ReservationState::Released)
            };
            let mut found = None;
            if let Some((own, others)) = warehouses.split_first() {
                if taken(&self.reservation(own, &id).await?) {
                    found = Some(own.clone());
                } else {
                    let elsewhere = futures::future::try_join_all(
                        others.iter().map(|w| self.reservation(w, &id)),
                    )
                    .await?;
                    found = others
                        .iter()
                        .zip(&elsewhere)
                        .find(|(_, r)| taken(r))
                        .map(|(w, _)| w.clone());
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

    pub(super) async fn step_authorize(&self, order: &Order, saga: &Saga) -> Result<Next> {
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

    pub(super) async fn step_commit_stock(&self, saga: &Saga) -> Result<Next> {
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

    pub(super) async fn step_capture(&self, saga: &Saga) -> Result<Next> {
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

    pub(super) async fn step_compensate(&self, order: &Order, saga: &Saga) -> Result<Next> {
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
    pub(super) async fn with_payment_retries<T, F, Fut>(
        &self,
        mut call: F,
    ) -> Result<Option<T>, GatewayError>
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
}
