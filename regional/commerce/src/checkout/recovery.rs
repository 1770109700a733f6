//! Recovery: a bounded pass over a shard's open sagas resumes those whose
//! lease ran out; reads of sagas and payments for audits and tests.

use futures::StreamExt;

use super::*;

/// Sagas one recovery pass runs at once.
const RECOVERY_CONCURRENCY: usize = 16;

impl Commerce {
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
        // The sagas of one pass run side by side (at most
        // `RECOVERY_CONCURRENCY` at once): after an outage a shard may hold
        // a backlog whose runs each take seconds at a distance, and one at
        // a time it took tens of seconds (the simulator's seed 1931).
        let now_ms = self.now_ms();
        let space = &space;
        let resume = |kv: &db::KeyValue| {
            let key = kv.key.clone();
            async move {
                let Ok((order_id,)) = space.unpack::<(String,)>(&key) else {
                    tracing::error!(shard = %shard, "undecodable key in the open-saga index; skipped");
                    return 0;
                };
                let saga = match self.load_saga(db, &order_id).await {
                    Ok(saga) => saga,
                    Err(e) => {
                        tracing::error!(order = %order_id, error = %e, "open saga unreadable; skipped");
                        return 0;
                    }
                };
                if saga.state.is_terminal()
                    || self.inner.lease_sightings.holds(
                        &saga,
                        now_ms,
                        self.settings().saga_lease_ms,
                    )
                    || saga.parked_at(now_ms)
                {
                    return 0;
                }
                match self.drive(db, &order_id, false).await {
                    // Count only progress, so the worker does not spin on
                    // a saga whose outcome is still unknown.
                    Ok(_) => usize::from(
                        self.load_saga(db, &order_id)
                            .await
                            .is_ok_and(|after| after.state != saga.state),
                    ),
                    Err(e) => {
                        tracing::warn!(order = %order_id, error = %e, "saga recovery failed; retried next pass");
                        0
                    }
                }
            }
        };
        let resumed = futures::stream::iter(open.kvs.iter().map(resume))
            .buffer_unordered(RECOVERY_CONCURRENCY)
            .fold(0, |sum, n| async move { sum + n })
            .await;
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
