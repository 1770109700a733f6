//! Regional replicas of the catalog, so that a catalog change crosses an
//! ocean once.
//!
//! The catalog has one writable home, the catalog shard. Every other shard
//! keeps a replica of it under the same keys (products, categories, the
//! catalog version, and the change feed with each event at its original
//! versionstamp, so a feed cursor means the same in every copy and an edge
//! can move between regions with it). A region whose home shard holds a
//! replica reads the catalog there once the replica holds a full copy: its
//! purge feed, product reads, category list and search rebuilds are then
//! local. Category membership (used only by the catalog's own writes) is
//! not copied.
//!
//! The catalog's feed is shipped as a log: each change is written with the
//! changed record's new state under the same versionstamp
//! ([`crate::feed::State`]), and a replica applies changes strictly in
//! feed order, each with its own state, in one local transaction that
//! reads where the replica stands ([`Commerce::apply_replica_batch`]). So
//! a replica is always the catalog as of its position; any number of
//! senders may deliver the same changes, in any order, any number of times.
//!
//! Two senders deliver them. The catalog's home region pushes each change
//! to every other region as soon as it is written (the regional service's
//! replication worker, over HTTP: one crossing, the receiving region
//! commits locally). Each region also pulls from the catalog shard itself
//! ([`Commerce::pull_replica`]: a watch on the catalog feed, then one read
//! of the events and their states), which keeps replicas fresh while the
//! catalog's home region is away, and gives a replica its first full copy
//! (or a new one when it fell behind what the catalog trimmed).

use std::time::Duration;

use db::RangeOption;
use serde::{Deserialize, Serialize};
use topology::ShardId;

use crate::catalog::Category;
use crate::error::{CommerceError, Result};
use crate::feed::{ChangeEvent, Cursor, State, feed_ends_in, parse_stored_cursor, read_raw_page};
use crate::{Commerce, decode, keys, set_json};

/// Changes one batch carries at most.
pub const MAX_BATCH_CHANGES: usize = 1_024;
/// What one batch's changes and states weigh at most in JSON (a batch is
/// cut before the change that would pass it; a batch of one change is
/// never cut).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// How long a batch that continues past where the replica stands waits
/// for the batches before it (sent at once, they may arrive out of order).
pub const MAX_PREDECESSOR_WAIT: Duration = Duration::from_secs(2);
/// Records one transaction of a full copy carries at most.
pub const COPY_PAGE: usize = 500;

/// Changes of the catalog feed after a cursor, each with the state it left:
/// what a replica applies, and the body of a push between regions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaBatch {
    /// The cursor the changes follow: a replica applies the batch once it
    /// stands at least there.
    #[schema(schema_with = crate::openapi::cursor)]
    pub after: String,
    /// Changes in feed order, each after `after`.
    #[schema(max_items = 1024)]
    pub changes: Vec<ReplicaChange>,
    /// The catalog's trim mark (events up to it are no longer kept).
    #[schema(schema_with = crate::openapi::cursor)]
    pub trimmed: String,
}

/// One change and the state it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaChange {
    #[schema(schema_with = crate::openapi::cursor)]
    pub cursor: String,
    pub event: ChangeEvent,
    pub state: State,
}

/// Where a replica stands after a batch was offered to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaStanding {
    /// The newest change the replica holds (`null`: it has no full copy
    /// yet; its own region is making one).
    pub position: Option<String>,
    /// Changes of the batch applied now (0: it held them already, or the
    /// batch does not follow on from where it stands).
    pub applied: usize,
}

/// A batch read from a catalog feed.
#[derive(Debug)]
pub struct ReadBatch {
    pub batch: ReplicaBatch,
    /// The cursor of its last change (`after` when it has none).
    pub to: Cursor,
    /// `after` is older than the feed keeps: the replica needs a new copy.
    pub reset: bool,
}

impl ReplicaBatch {
    /// Checks the batch's shape (cursors well-formed and in order, within
    /// the bounds) and gives `after`, the trim mark and each change's
    /// cursor.
    pub fn parse(&self) -> Result<(Cursor, Cursor, Vec<Cursor>)> {
        if self.changes.len() > MAX_BATCH_CHANGES {
            return Err(CommerceError::LimitExceeded {
                what: "replica batch changes",
                limit: MAX_BATCH_CHANGES as u64,
            });
        }
        let after = Cursor::parse(&self.after)?;
        let trimmed = Cursor::parse(&self.trimmed)?;
        let mut last = after;
        let mut cursors = Vec::with_capacity(self.changes.len());
        for change in &self.changes {
            let cursor = Cursor::parse(&change.cursor)?;
            if cursor <= last {
                return Err(CommerceError::BadReplicaBatch {
                    reason: "cursors must be after `after` and in increasing order",
                });
            }
            check_state(&change.event, &change.state)?;
            last = cursor;
            cursors.push(cursor);
        }
        Ok((after, trimmed, cursors))
    }
}

/// A state must be the record its event names, or `gone`. (A deletion
/// may carry the record: a change written before states were kept is
/// shipped with the record as the catalog held it when read.)
fn check_state(event: &ChangeEvent, state: &State) -> Result<()> {
    use crate::feed::Change;
    let fits = match (&event.change, state) {
        (_, State::Gone) => true,
        (Change::ProductUpserted { sku } | Change::ProductDeleted { sku }, State::Product(p)) => {
            &p.sku == sku
        }
        (
            Change::CategoryUpserted { slug } | Change::CategoryDeleted { slug },
            State::Category(c),
        ) => &c.slug == slug,
        (Change::ReviewsChanged { sku }, State::Reviews(state)) => {
            &state.sku == sku
                && state.reviews.len() <= crate::reviews::MAX_EVENT_REVIEWS
                && state.reviews.iter().all(|r| &r.sku == sku)
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(CommerceError::BadReplicaBatch {
            reason: "a change's state is not the record its event names",
        })
    }
}

impl Commerce {
    /// The shard holding this region's replica of the catalog, if any.
    pub fn replica_shard(&self) -> Option<&ShardId> {
        self.inner.replica.as_ref()
    }

    /// Whether this region reads the catalog from its replica now.
    pub fn reads_replica(&self) -> bool {
        self.inner.replica.is_some()
            && self
                .inner
                .replica_ready
                .load(std::sync::atomic::Ordering::Acquire)
    }

    fn replica_db(&self) -> Result<(&ShardId, &db::Database)> {
        let shard = self
            .inner
            .replica
            .as_ref()
            .ok_or(CommerceError::NoReplica)?;
        Ok((shard, self.inner.shards.get(shard)?))
    }

    /// Looks whether this region's replica holds a full copy yet, and from
    /// then on reads the catalog there. Returns whether it does.
    pub async fn refresh_replica(&self) -> Result<bool> {
        if self.inner.replica.is_none() {
            return Ok(false);
        }
        if self.reads_replica() {
            return Ok(true);
        }
        let ready = self.replica_position().await?.is_some();
        if ready {
            self.inner
                .replica_ready
                .store(true, std::sync::atomic::Ordering::Release);
            tracing::info!(region = %self.region(), "reading the catalog from this region's replica");
        }
        Ok(ready)
    }

    /// Where this region's replica stands: the newest catalog change it
    /// holds (`None` until its first full copy is done).
    pub async fn replica_position(&self) -> Result<Option<Cursor>> {
        let (_, db) = self.replica_db()?;
        let stored =
            db.run(|tx, _| async move {
                Ok::<_, CommerceError>(tx.get(&keys::replica_position()).await?)
            })
            .await?;
        stored
            .map(|bytes| parse_stored_cursor(Some(&bytes)))
            .transpose()
    }

    /// Changes of the catalog after `after` with their states, up to the
    /// batch bounds, read from the catalog shard; when there are none,
    /// waits up to `wait_ms` for one. What the replication worker pushes.
    pub async fn replica_batch(&self, after: Cursor, wait_ms: u64) -> Result<ReadBatch> {
        self.long_poll(self.catalog_db()?, wait_ms, false, |tx| async move {
            let page = read_changes(&tx, after, MAX_BATCH_CHANGES, MAX_BATCH_BYTES).await?;
            let to = page.changes.last().map_or(after, |(cursor, ..)| *cursor);
            let idle = page.changes.is_empty() && !page.reset;
            let read = ReadBatch {
                batch: ReplicaBatch {
                    after: after.to_string(),
                    changes: page
                        .changes
                        .into_iter()
                        .map(|(cursor, event, state)| ReplicaChange {
                            cursor: cursor.to_string(),
                            event,
                            state,
                        })
                        .collect(),
                    trimmed: page.trimmed.to_string(),
                },
                to,
                reset: page.reset,
            };
            Ok((read, idle))
        })
        .await
    }

    /// Applies a batch to this region's replica, in one local transaction:
    /// the changes after where the replica stands, each with its state, in
    /// order. A batch that continues past where the replica stands waits
    /// (up to [`MAX_PREDECESSOR_WAIT`]) for the ones before it; one that
    /// still does not follow on, or that reaches a replica with no full
    /// copy, applies nothing. Idempotent: a change held already is skipped.
    pub async fn apply_replica_batch(&self, batch: &ReplicaBatch) -> Result<ReplicaStanding> {
        let (after, trimmed, cursors) = batch.parse()?;
        let (_, db) = self.replica_db()?;
        let deadline = tokio::time::Instant::now() + MAX_PREDECESSOR_WAIT;
        let cursors = &cursors;
        loop {
            let (standing, watch) = db
                .run(|tx, _| async move {
                    let (position_key, trimmed_key) =
                        (keys::replica_position(), keys::feed_trimmed());
                    let (position, held_trim) =
                        futures::try_join!(tx.get(&position_key), tx.get(&trimmed_key))?;
                    let Some(position) = position else {
                        return Ok((None, 0, None));
                    };
                    let position = parse_stored_cursor(Some(&position))?;
                    if after > position {
                        // Sent before this one and not here yet.
                        let watch = tx.watch(&position_key)?;
                        return Ok((Some(position), 0, Some(watch)));
                    }
                    let mut applied = 0;
                    let mut newest = position;
                    for (change, cursor) in batch.changes.iter().zip(cursors) {
                        if *cursor <= position {
                            continue;
                        }
                        write_change(&tx, *cursor, change).await?;
                        applied += 1;
                        newest = *cursor;
                    }
                    if trimmed > parse_stored_cursor(held_trim.as_deref())? {
                        set_trim_mark(&tx, trimmed)?;
                    }
                    if applied > 0 {
                        tx.set(&position_key, newest.to_string().as_bytes())?;
                        tx.add_i64(&keys::feed_head(), 1)?;
                    }
                    Ok::<_, CommerceError>((Some(newest), applied, None))
                })
                .await
                .map(|(position, applied, watch)| {
                    (
                        ReplicaStanding {
                            position: position.map(|p| p.to_string()),
                            applied,
                        },
                        watch,
                    )
                })?;
            let Some(watch) = watch else {
                return Ok(standing);
            };
            match tokio::time::timeout_at(deadline, watch).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Ok(standing),
            }
        }
    }

    /// One pass of this region's own puller: gives its replica a full copy
    /// when it has none (or fell behind what the catalog trimmed), else
    /// waits (up to `wait_ms`) for catalog changes it does not hold and
    /// applies them. Returns the records written (0: nothing to do).
    pub async fn pull_replica(&self, wait_ms: u64) -> Result<usize> {
        if self.inner.replica.is_none() {
            return Ok(0);
        }
        let Some(position) = self.replica_position().await? else {
            return self.copy_catalog().await;
        };
        let read = self.replica_batch(position, wait_ms).await?;
        if read.reset {
            return self.copy_catalog().await;
        }
        if read.batch.changes.is_empty() {
            return Ok(0);
        }
        Ok(self.apply_replica_batch(&read.batch).await?.applied)
    }

    /// A full copy of the catalog into this region's replica, in pages:
    /// products, then the feed the catalog keeps, then categories, version,
    /// trim mark and position together (which makes the copy the replica's
    /// and lets the changes after it apply). Each page clears the stretch
    /// it covers first, so what the catalog no longer has goes. Returns the
    /// records copied.
    pub async fn copy_catalog(&self) -> Result<usize> {
        let catalog = self.catalog_db()?;
        let (shard, replica) = self.replica_db()?;
        let (tail, trimmed) = feed_ends_in(catalog).await?;
        let mut copied = 0;
        let (products_begin, products_end) = keys::products().range();
        let (reviews_begin, reviews_end) = keys::reviews().range();
        // The feed up to and including the tail (nothing when both are the
        // start: then both keys are the feed's first).
        for (begin, end) in [
            (products_begin, products_end),
            (reviews_begin, reviews_end),
            (trimmed.begin_key(), tail.begin_key()),
        ] {
            let mut from = begin;
            while from < end {
                let range = RangeOption::new(from.clone(), end.clone()).limit(COPY_PAGE);
                let range = &range;
                let chunk =
                    catalog
                        .run(|tx, _| async move {
                            Ok::<_, CommerceError>(tx.get_range(range, true).await?)
                        })
                        .await?;
                let span_end = match chunk.kvs.last() {
                    Some(last) if chunk.more => db::keys::key_after(&last.key),
                    _ => end.clone(),
                };
                let (span_begin, span_end, kvs) = (&from, &span_end, &chunk.kvs);
                replica
                    .run(|tx, _| async move {
                        tx.clear_range(span_begin, span_end)?;
                        for kv in kvs {
                            tx.set(&kv.key, &kv.value)?;
                        }
                        Ok::<_, CommerceError>(())
                    })
                    .await?;
                copied += chunk.kvs.len();
                from = span_end.clone();
            }
        }
        let (categories, version) = catalog
            .run(|tx, _| async move {
                let categories = tx.get_range_all(RangeOption::subspace(&keys::categories()), true);
                let version_key = keys::catalog_version();
                let (categories, version) = futures::try_join!(categories, tx.get(&version_key))?;
                Ok::<_, CommerceError>((categories, version))
            })
            .await?;
        let (categories, version) = (&categories, &version);
        replica
            .run(|tx, _| async move {
                let (begin, end) = keys::categories().range();
                tx.clear_range(&begin, &end)?;
                for kv in categories {
                    tx.set(&kv.key, &kv.value)?;
                }
                if let Some(version) = version {
                    tx.set(&keys::catalog_version(), version)?;
                }
                set_trim_mark(&tx, trimmed)?;
                tx.add_i64(&keys::feed_head(), 1)?;
                tx.set(&keys::replica_position(), tail.to_string().as_bytes())?;
                Ok::<_, CommerceError>(())
            })
            .await?;
        copied += categories.len();
        tracing::info!(%shard, records = copied, "copied the catalog into this region's replica");
        Ok(copied.max(1))
    }
}

/// The state for a change written before states were kept: the record as
/// the catalog holds it now (never older than the change).
/// Changes of a catalog feed after a cursor, each with the state it left.
pub(crate) struct Changes {
    pub changes: Vec<(Cursor, ChangeEvent, State)>,
    /// The feed's trim mark.
    pub trimmed: Cursor,
    /// `after` is older than the feed keeps: nothing was read.
    pub reset: bool,
}

/// Up to `limit` changes after `after` with their states (the events and
/// the states read at once: two ranges, one round trip), cut before the
/// change that would take the stored bytes past `max_bytes` (a first
/// change is never cut).
pub(crate) async fn read_changes(
    tx: &db::Transaction,
    after: Cursor,
    limit: usize,
    max_bytes: usize,
) -> Result<Changes> {
    let (_, states_end) = keys::feed_states().range();
    let states = RangeOption::new(after.state_begin_key(), states_end)
        .limit(limit)
        .batch_size(limit);
    let (page, states) = futures::try_join!(read_raw_page(tx, after, limit), async {
        Ok(tx.get_range(&states, false).await?)
    })?;
    if page.reset {
        return Ok(Changes {
            changes: Vec::new(),
            trimmed: page.trimmed,
            reset: true,
        });
    }
    let feed_states = keys::feed_states();
    let mut states = states
        .kvs
        .iter()
        .map(|kv| Ok((Cursor::from_key_in(&feed_states, &kv.key)?, &kv.value)))
        .collect::<Result<std::collections::BTreeMap<Cursor, &Vec<u8>>>>()?;
    let mut changes = Vec::with_capacity(page.kvs.len());
    let mut bytes = 0;
    for kv in &page.kvs {
        let cursor = Cursor::from_key(&kv.key)?;
        let event: ChangeEvent = decode(&kv.value, "feed event")?;
        let (state, stored) = match states.remove(&cursor) {
            Some(state) => (decode(state, "feed state")?, state.len()),
            None => (legacy_state(tx, &event).await?, 0),
        };
        let weight = kv.value.len() + stored;
        if !changes.is_empty() && bytes + weight > max_bytes {
            break;
        }
        bytes += weight;
        changes.push((cursor, event, state));
    }
    Ok(Changes {
        changes,
        trimmed: page.trimmed,
        reset: false,
    })
}

async fn legacy_state(tx: &db::Transaction, event: &ChangeEvent) -> Result<State> {
    use crate::feed::Change;
    Ok(match &event.change {
        Change::ProductUpserted { sku } | Change::ProductDeleted { sku } => {
            match crate::get_json(tx, &keys::product(sku), "product").await? {
                Some(product) => State::Product(product),
                None => State::Gone,
            }
        }
        Change::CategoryUpserted { slug } | Change::CategoryDeleted { slug } => {
            match crate::get_json::<Category>(tx, &keys::category(slug), "category").await? {
                Some(category) => State::Category(category),
                None => State::Gone,
            }
        }
        // Reviews changes were never written without their state.
        Change::ReviewsChanged { .. } => {
            return Err(CommerceError::BadReplicaBatch {
                reason: "a reviews change without its state",
            });
        }
    })
}

/// Writes one change into a replica: the event under its own key, the
/// record as the change left it, the catalog version it made.
async fn write_change(tx: &db::Transaction, cursor: Cursor, change: &ReplicaChange) -> Result<()> {
    use crate::feed::Change;
    let stamp = cursor.stamp().ok_or(CommerceError::BadReplicaBatch {
        reason: "a change's cursor cannot be empty",
    })?;
    set_json(tx, &keys::feed_at(stamp), &change.event)?;
    match (&change.event.change, &change.state) {
        (_, State::Product(product)) => set_json(tx, &keys::product(&product.sku), product)?,
        (_, State::Category(category)) => set_json(tx, &keys::category(&category.slug), category)?,
        (Change::ProductUpserted { sku } | Change::ProductDeleted { sku }, State::Gone) => {
            tx.clear(&keys::product(sku))?
        }
        (Change::CategoryUpserted { slug } | Change::CategoryDeleted { slug }, State::Gone) => {
            tx.clear(&keys::category(slug))?
        }
        (_, State::Reviews(state)) => crate::reviews::write_reviews_state(tx, state).await?,
        (Change::ReviewsChanged { .. }, State::Gone) => {
            return Err(CommerceError::BadReplicaBatch {
                reason: "a reviews change must carry its reviews",
            });
        }
    }
    let version = i64::try_from(change.event.version).unwrap_or(i64::MAX);
    tx.set(&keys::catalog_version(), &version.to_le_bytes())?;
    Ok(())
}

/// Moves a replica's trim mark to the catalog's, dropping the events up to
/// it (a consumer behind it is told to reset, as by the catalog).
fn set_trim_mark(tx: &db::Transaction, trimmed: Cursor) -> Result<()> {
    if trimmed != Cursor::START {
        tx.clear_range(&keys::feed().range().0, &trimmed.begin_key())?;
    }
    tx.set(&keys::feed_trimmed(), trimmed.to_string().as_bytes())?;
    Ok(())
}
