//! The catalog change feed: an append-only log ordered by commit
//! versionstamp, written in the same transaction as each catalog change.
//! It is the catalog's outbox: each region's search index and product cache
//! tail it with their own cursor, and edges read it (long poll) as their
//! purge feed. A bounded trimmer keeps the newest `feed_retention` events; a
//! consumer whose cursor fell behind the trimmed head is told to reset.

use std::time::Duration;

use db::keys::tuple::Versionstamp;
use db::{RangeOption, Transaction};
use serde::{Deserialize, Serialize};

use crate::catalog::Product;
use crate::error::{CommerceError, Result, invalid};
use crate::{Commerce, decode, get_counter, keys, set_versionstamped_json};

/// Longest a feed read may wait for new events.
pub const MAX_WAIT_MS: u64 = regional_api::purge::MAX_WAIT_MS;
/// Events one feed read returns at most.
pub const MAX_FEED_LIMIT: usize = regional_api::purge::MAX_LIMIT;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    ProductUpserted {
        sku: String,
    },
    ProductDeleted {
        sku: String,
    },
    CategoryUpserted {
        slug: String,
    },
    CategoryDeleted {
        slug: String,
    },
    /// A product's reviews or review summary changed.
    ReviewsChanged {
        sku: String,
    },
}

/// One catalog change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeEvent {
    /// The catalog version the change produced.
    pub version: u64,
    #[serde(flatten)]
    pub change: Change,
    /// Cache tags to purge: `product:<sku>`, `category:<slug>`.
    pub tags: Vec<String>,
    pub at_ms: u64,
}

/// An event and the cursor that reads past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedEntry {
    pub cursor: String,
    #[serde(flatten)]
    pub event: ChangeEvent,
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedPage {
    pub events: Vec<FeedEntry>,
    /// Pass as `after` for the next page (unchanged when `events` is empty).
    pub cursor: String,
    /// The cursor given is older than the oldest event kept: the consumer
    /// missed events and must drop everything it cached, then continue from
    /// `cursor`.
    pub reset: bool,
}

/// A position in the feed: the 12-byte versionstamp of the last event read,
/// as 24 hex digits. The empty cursor is the start of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor(Option<[u8; 12]>);

impl Cursor {
    pub const START: Cursor = Cursor(None);
    /// What [`Cursor::parse`] accepts, as an anchored regular expression.
    pub const PATTERN: &'static str = "^(?:[0-9a-fA-F]{24})?$";

    pub fn parse(text: &str) -> Result<Cursor> {
        if text.is_empty() {
            return Ok(Cursor(None));
        }
        // Hex digits only (`from_str_radix` alone would take a `+`).
        if text.len() != 24 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("cursor", "must be empty or 24 hex digits"));
        }
        let mut bytes = [0u8; 12];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| invalid("cursor", "must be empty or 24 hex digits"))?;
        }
        Ok(Cursor(Some(bytes)))
    }

    /// The cursor at a complete versionstamp.
    pub(crate) fn from_stamp(stamp: [u8; 12]) -> Cursor {
        Cursor(Some(stamp))
    }

    pub(crate) fn from_key(key: &[u8]) -> Result<Cursor> {
        Cursor::from_key_in(&keys::feed(), key)
    }

    /// The cursor of a key of `space` (the feed, or the states beside it)
    /// ending in a versionstamp.
    pub(crate) fn from_key_in(space: &db::Subspace, key: &[u8]) -> Result<Cursor> {
        let (stamp,): (Versionstamp,) = space
            .unpack(key)
            .map_err(|_| invalid("feed key", "does not hold a versionstamp"))?;
        Ok(Cursor(Some(*stamp.as_bytes())))
    }

    /// The first feed key after this cursor.
    pub(crate) fn begin_key(&self) -> Vec<u8> {
        match self.0 {
            None => keys::feed().range().0,
            Some(bytes) => db::keys::key_after(&keys::feed_at(bytes)),
        }
    }

    /// The first key of the feed's states after this cursor.
    pub(crate) fn state_begin_key(&self) -> Vec<u8> {
        match self.0 {
            None => keys::feed_states().range().0,
            Some(bytes) => db::keys::key_after(&keys::feed_state_at(bytes)),
        }
    }

    /// The versionstamp this cursor is at (`None`: the start).
    pub(crate) fn stamp(&self) -> Option<[u8; 12]> {
        self.0
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(bytes) = self.0 {
            for b in bytes {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// What a change left behind: the record's state right after it (what a
/// replica applying the feed in order sets), or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Product(Product),
    Category(crate::catalog::Category),
    /// The product or category was deleted.
    Gone,
    /// The reviews a reviews change wrote and the product's counts after it.
    Reviews(crate::reviews::ReviewsState),
}

/// Appends an event and the changed record's new state (in the caller's
/// transaction, under the same versionstamp) and wakes feed watchers. `n`
/// tells apart several events of one transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn append_event(
    tx: &Transaction,
    n: u16,
    version: u64,
    at_ms: u64,
    change: Change,
    tags: Vec<String>,
    state: &State,
) -> Result<()> {
    let event = ChangeEvent {
        version,
        change,
        tags,
        at_ms,
    };
    set_versionstamped_json(tx, &keys::feed_entry(n), &event)?;
    set_versionstamped_json(tx, &keys::feed_state_entry(n), state)?;
    tx.add_i64(&keys::feed_head(), 1)?;
    Ok(())
}

/// A page of the feed as stored: each event's key and value, the cursor
/// after them, the feed's trim mark and whether `after` was trimmed away.
pub(crate) struct RawPage {
    pub kvs: Vec<db::KeyValue>,
    pub cursor: Cursor,
    pub trimmed: Cursor,
    pub reset: bool,
}

pub(crate) async fn read_raw_page(
    tx: &Transaction,
    after: Cursor,
    limit: usize,
) -> Result<RawPage> {
    // The trim mark and the page are read at once (one round trip to a
    // remote cluster, not two): a trim deletes the events up to its mark
    // in the transaction that moves the mark, so the page read from
    // `after` never holds a trimmed event.
    let (_, end) = keys::feed().range();
    let trimmed_key = keys::feed_trimmed();
    // One chunk of up to `limit` events (a range read's chunks are
    // DEFAULT_RANGE_BATCH rows unless told otherwise).
    let range = RangeOption::new(after.begin_key(), end)
        .limit(limit)
        .batch_size(limit);
    let (trimmed, chunk) = futures::try_join!(tx.get(&trimmed_key), tx.get_range(&range, false))?;
    let trimmed = parse_stored_cursor(trimmed.as_deref())?;
    let reset = after < trimmed;
    let mut cursor = after.max(trimmed);
    let mut kvs = Vec::with_capacity(chunk.kvs.len());
    for kv in chunk.kvs {
        // An event at or before the mark (left in a replica by a copy
        // made before a trim reached it) is not served.
        let at = Cursor::from_key(&kv.key)?;
        if at <= trimmed {
            continue;
        }
        cursor = at;
        kvs.push(kv);
    }
    Ok(RawPage {
        kvs,
        cursor,
        trimmed,
        reset,
    })
}

/// `db`'s feed tail (its newest event, or its trim mark when that is
/// newer: a feed trimmed empty) and its trim mark, read together.
pub(crate) async fn feed_ends_in(db: &db::Database) -> Result<(Cursor, Cursor)> {
    db.run(|tx, _| async move {
        let range = RangeOption::subspace(&keys::feed()).limit(1).reverse(true);
        let trimmed_key = keys::feed_trimmed();
        let (last, trimmed) = futures::try_join!(tx.get_range(&range, true), tx.get(&trimmed_key))?;
        let trimmed = parse_stored_cursor(trimmed.as_deref())?;
        let tail = match last.kvs.first() {
            Some(kv) => Cursor::from_key(&kv.key)?.max(trimmed),
            None => trimmed,
        };
        Ok((tail, trimmed))
    })
    .await
}

/// A cursor kept as text in the store (absent: the feed's start).
pub(crate) fn parse_stored_cursor(bytes: Option<&[u8]>) -> Result<Cursor> {
    match bytes {
        Some(bytes) => Cursor::parse(std::str::from_utf8(bytes).unwrap_or_default()),
        None => Ok(Cursor::START),
    }
}

async fn read_page(tx: &Transaction, after: Cursor, limit: usize) -> Result<FeedPage> {
    let raw = read_raw_page(tx, after, limit).await?;
    let mut events = Vec::with_capacity(raw.kvs.len());
    for kv in &raw.kvs {
        events.push(FeedEntry {
            cursor: Cursor::from_key(&kv.key)?.to_string(),
            event: decode(&kv.value, "feed event")?,
        });
    }
    Ok(FeedPage {
        events,
        cursor: raw.cursor.to_string(),
        reset: raw.reset,
    })
}

impl Commerce {
    /// Up to `limit` events after `after`; when there are none and `wait_ms`
    /// is positive, waits (up to `wait_ms`) for the next change. Read from
    /// where this region reads the catalog: its replica once that is
    /// ready, else the catalog shard (the cursors are the same in both).
    pub async fn read_feed(&self, after: Cursor, limit: usize, wait_ms: u64) -> Result<FeedPage> {
        if limit == 0 || limit > MAX_FEED_LIMIT {
            return Err(invalid("limit", format!("must be 1..={MAX_FEED_LIMIT}")));
        }
        if wait_ms > MAX_WAIT_MS {
            return Err(invalid("wait_ms", format!("must be at most {MAX_WAIT_MS}")));
        }
        let db = self.catalog_read_db()?;
        self.long_poll(db, wait_ms, true, |tx| async move {
            let page = read_page(&tx, after, limit).await?;
            let idle = page.events.is_empty() && !page.reset;
            Ok((page, idle))
        })
        .await
    }

    /// Reads with `read` until it finds something (`idle` false) or
    /// `wait_ms` passes: each round that found nothing waits on a watch of
    /// the feed head set in the same transaction, so a change committed in
    /// between wakes it. `counted` makes the wait a purge-feed long poll
    /// for [`Commerce::feed_waiters`].
    pub(crate) async fn long_poll<T, F, Fut>(
        &self,
        db: &db::Database,
        wait_ms: u64,
        counted: bool,
        read: F,
    ) -> Result<T>
    where
        F: Fn(Transaction) -> Fut,
        Fut: std::future::Future<Output = Result<(T, bool)>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            let (found, watch) = db
                .run(|tx, _| {
                    let round = read(tx.clone());
                    async move {
                        let (found, idle) = round.await?;
                        let watch = if idle && wait_ms > 0 {
                            // The watch is on the head this transaction
                            // read (FoundationDB's watch semantics).
                            tx.get(&keys::feed_head()).await?;
                            Some(tx.watch(&keys::feed_head())?)
                        } else {
                            None
                        };
                        Ok::<_, CommerceError>((found, watch))
                    }
                })
                .await?;
            let Some(watch) = watch else {
                return Ok(found);
            };
            let waiting = counted.then(|| WaiterGuard::new(&self.inner.feed_waiters));
            let woken = tokio::time::timeout_at(deadline, watch).await;
            drop(waiting);
            match woken {
                Err(_) => return Ok(found),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Drops the oldest events beyond `feed_retention`, at most one batch.
    /// Returns how many were dropped.
    pub async fn trim_feed(&self) -> Result<usize> {
        let retention = i64::try_from(self.settings().feed_retention).unwrap_or(i64::MAX);
        let batch = self.settings().batch;
        self.catalog_db()?
            .run(|tx, _| async move {
                // A snapshot read: appends bump the head all the time and
                // must not abort the trimmer.
                let appended = get_counter(&tx, &keys::feed_head(), true).await?;
                let trimmed = get_counter(&tx, &keys::feed_trimmed_count(), false).await?;
                let excess = appended - trimmed - retention;
                if excess <= 0 {
                    return Ok(0);
                }
                let take = usize::try_from(excess).unwrap_or(usize::MAX).min(batch);
                let chunk = tx
                    .get_range(
                        &RangeOption::subspace(&keys::feed())
                            .limit(take)
                            .batch_size(take),
                        false,
                    )
                    .await?;
                let Some(last) = chunk.kvs.last() else {
                    return Ok(0);
                };
                let cursor = Cursor::from_key(&last.key)?;
                let first = &chunk.kvs[0].key;
                tx.clear_range(first, &db::keys::key_after(&last.key))?;
                tx.clear_range(&keys::feed_states().range().0, &cursor.state_begin_key())?;
                tx.set(&keys::feed_trimmed(), cursor.to_string().as_bytes())?;
                let n = chunk.kvs.len();
                tx.add_i64(&keys::feed_trimmed_count(), i64::try_from(n).unwrap_or(0))?;
                Ok::<_, CommerceError>(n)
            })
            .await
    }

    /// The cursor of the newest event (where a consumer that just loaded the
    /// whole catalog continues from), where this region reads the catalog.
    pub async fn feed_tail(&self) -> Result<Cursor> {
        Ok(feed_ends_in(self.catalog_read_db()?).await?.0)
    }

    /// Applies the feed to this region's product cache and search index:
    /// one page after the index's cursor, waiting up to `wait_ms` for one.
    /// Rebuilds the index from the catalog when it has no cursor (new or
    /// lost) or fell behind the trimmed feed. Returns the events applied.
    pub async fn apply_feed(&self, wait_ms: u64) -> Result<usize> {
        // Until the replica holds a full copy, the catalog shard is read
        // (an unreachable replica is looked at again next pass).
        if let Err(e) = self.refresh_replica().await {
            tracing::debug!(error = %e, "the catalog replica is not readable yet");
        }
        let index = self.search_index().clone();
        let Some(cursor) = index.cursor().as_deref().and_then(index_cursor) else {
            let _writing = self.inner.index_writes.lock().await;
            // Another caller may have rebuilt it while this one waited.
            if index.cursor().as_deref().and_then(index_cursor).is_none() {
                self.rebuild_search_locked().await?;
            }
            return Ok(0);
        };
        if wait_ms > MAX_WAIT_MS {
            return Err(invalid("wait_ms", format!("must be at most {MAX_WAIT_MS}")));
        }
        // Changes with the states they left: the index takes each
        // product's newest state in the batch (applying a batch twice, or
        // an older one, converges all the same). A full page means more
        // is waiting: the pages after it join the batch, up to
        // APPLY_BATCH changes, so that a bulk load commits the index (a
        // new segment, a reader reload, and later a merge) once per batch
        // rather than once per page, while a trickle still commits each
        // change as soon as it is read.
        let db = self.catalog_read_db()?;
        let mut newest: std::collections::BTreeMap<String, Option<search::SearchDoc>> =
            std::collections::BTreeMap::new();
        let mut applied = 0;
        let mut last = None;
        let mut after = cursor;
        loop {
            let wait = if applied == 0 { wait_ms } else { 0 };
            let page = self
                .long_poll(db, wait, true, |tx| async move {
                    let page =
                        crate::replica::read_changes(&tx, after, APPLY_PAGE, usize::MAX).await?;
                    let idle = page.changes.is_empty() && !page.reset;
                    Ok((page, idle))
                })
                .await?;
            if page.reset {
                self.cache().clear();
                self.rebuild_search().await?;
                return Ok(0);
            }
            let full = page.changes.len() >= APPLY_PAGE;
            applied += page.changes.len();
            for (at, event, state) in page.changes {
                last = Some(at);
                match (event.change, state) {
                    (Change::ProductUpserted { sku } | Change::ProductDeleted { sku }, state) => {
                        let doc = match state {
                            State::Product(product) => Some(search_doc(&product)),
                            State::Gone => None,
                            // Not a product's state: the product as it is now.
                            _ => match self.product_uncached(&sku).await {
                                Ok(product) => Some(search_doc(&product)),
                                Err(CommerceError::UnknownSku { .. }) => None,
                                Err(e) => return Err(e),
                            },
                        };
                        newest.insert(sku, doc);
                    }
                    (
                        Change::CategoryUpserted { .. }
                        | Change::CategoryDeleted { .. }
                        | Change::ReviewsChanged { .. },
                        _,
                    ) => {}
                }
            }
            match last {
                Some(at) if full && applied + APPLY_PAGE <= APPLY_BATCH => after = at,
                _ => break,
            }
        }
        let Some(last) = last else {
            return Ok(0);
        };
        let skus: Vec<String> = newest.keys().cloned().collect();
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for (sku, doc) in newest {
            match doc {
                Some(doc) => upserts.push(doc),
                None => deletes.push(sku),
            }
        }
        let cursor = format!("{INDEX_CURSOR_PREFIX}{last}");
        let _writing = self.inner.index_writes.lock().await;
        crate::off_task(index, move |index| index.apply(upserts, deletes, &cursor))
            .await
            .map_err(|_| invalid("search index", "indexing task panicked"))??;
        for sku in &skus {
            self.cache().invalidate(sku);
        }
        Ok(applied)
    }

    /// Rebuilds this region's search index from the whole catalog, a page
    /// of [`REBUILD_PAGE`] products at a time (the catalog is never in
    /// memory whole), published in one commit: searches see the old
    /// index until then.
    pub async fn rebuild_search(&self) -> Result<usize> {
        let _writing = self.inner.index_writes.lock().await;
        self.rebuild_search_locked().await
    }

    /// [`Commerce::rebuild_search`], `index_writes` held.
    async fn rebuild_search_locked(&self) -> Result<usize> {
        let tail = self.feed_tail().await?;
        let index = self.search_index().clone();
        let inline = index.runs_inline();
        let panicked = |_| invalid("search index", "indexing task panicked");
        let mut rebuild = index.begin_rebuild()?;
        let mut from = None;
        loop {
            let (products, next) = self.product_page(from, REBUILD_PAGE).await?;
            let docs: Vec<search::SearchDoc> = products.iter().map(search_doc).collect();
            drop(products);
            rebuild = crate::off_task_with(inline, rebuild, move |mut rebuild| {
                rebuild.add(docs).map(|()| rebuild)
            })
            .await
            .map_err(panicked)??;
            match next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        let cursor = format!("{INDEX_CURSOR_PREFIX}{tail}");
        let n = crate::off_task_with(inline, rebuild, move |rebuild| rebuild.commit(&cursor))
            .await
            .map_err(panicked)??;
        self.cache().clear();
        tracing::info!(products = n, region = %self.region(), "search index rebuilt from the catalog");
        Ok(n)
    }
}

/// Products [`Commerce::rebuild_search`] reads and stages at a time.
pub const REBUILD_PAGE: usize = 1_000;

/// Changes [`Commerce::apply_feed`] reads in one transaction.
pub const APPLY_PAGE: usize = 4_096;

/// Changes one pass of [`Commerce::apply_feed`] takes at most: one commit
/// of the search index, within its [`search::MAX_APPLY_OPS`].
pub const APPLY_BATCH: usize = 4 * APPLY_PAGE;
const _: () = assert!(APPLY_BATCH <= search::MAX_APPLY_OPS);

/// How the feed cursor is kept in the search index's commit payload: with
/// a prefix, so an empty cursor (the feed's start) is not mistaken for "no
/// cursor", and a payload of another format is.
const INDEX_CURSOR_PREFIX: &str = "feed:";

fn index_cursor(payload: &str) -> Option<Cursor> {
    Cursor::parse(payload.strip_prefix(INDEX_CURSOR_PREFIX)?).ok()
}

pub fn search_doc(product: &Product) -> search::SearchDoc {
    search::SearchDoc {
        id: product.sku.clone(),
        title: product.title.clone(),
        description: product.description.clone(),
        category: product.category.clone(),
        price_minor: product.price.amount_minor,
        currency: product.price.currency.clone(),
    }
}

/// Counts a long poll as waiting for as long as it lives.
struct WaiterGuard<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> WaiterGuard<'a> {
    fn new(count: &'a tokio::sync::watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        WaiterGuard(count)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
