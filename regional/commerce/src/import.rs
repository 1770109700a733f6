//! Bulk import of products: a stream of NDJSON lines (one product each,
//! with the stock received for it in each warehouse) written in large
//! transactions, resumable without duplicates.
//!
//! An import has an id the client chooses and a cursor: the number of
//! lines of its input committed so far. A request sends lines from an
//! `offset` (0, or where the cursor stood); lines below the cursor are
//! skipped unread, so resending the whole file, or the rest of it, after a
//! crash or a lost answer writes every line exactly once.
//!
//! The lines are cut into chunks (at most [`CHUNK_LINES`] lines or
//! [`CHUNK_BYTES`] of input). A chunk is written in two steps:
//!
//! 1. each warehouse that receives stock in the chunk, in one transaction
//!    of its own shard: the stock of the chunk's lines at or after the
//!    warehouse's mark for the import, and the mark moved to the chunk's
//!    end (so stock already taken in is never taken in twice);
//! 2. the catalog shard, in one transaction: the products of the lines at
//!    or after the import's cursor, their category membership, one change
//!    event (with the product's state) per product under one catalog
//!    version, and the cursor moved to the chunk's end.
//!
//! Every warehouse step precedes the catalog step, so every line below the
//! cursor has its stock in every warehouse; a crash between the steps
//! leaves marks ahead of the cursor, which the resent chunk then skips.
//! The change events are the catalog's usual ones: every region's replica,
//! search index and product cache, and every POP's purge feed, take the
//! import in as any other change.

use std::collections::{BTreeMap, BTreeSet};

use db::keys::tuple::Versionstamp;
use futures::{SinkExt, Stream, StreamExt, TryFutureExt};
use serde::{Deserialize, Serialize};
use topology::ShardId;

use crate::catalog::{Money, Product, ProductInput, product_tag, validate_sku};
use crate::error::{CommerceError, Result, invalid};
use crate::feed::{Change, Cursor, State, append_event};
use crate::inventory::MAX_QTY;
use crate::{Commerce, get_json, keys, set_json};

/// The media type of an import's body.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// Longest import id.
pub const MAX_ID_LEN: usize = 64;
/// What [`validate_import_id`] accepts.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// Longest line (a product at every bound is about 30 KiB of JSON).
pub const MAX_LINE_BYTES: usize = 128 * 1024;
/// Most lines one import holds.
pub const MAX_LINES: u64 = 100_000_000;
/// Most lines one chunk (one catalog transaction) carries.
pub const CHUNK_LINES: usize = 1_000;
/// Most input one chunk carries: with each product written twice (record
/// and feed state) plus its event, a chunk stays near 2.5× this, well
/// inside FoundationDB's 10 MB transaction limit.
pub const CHUNK_BYTES: usize = 2 * 1024 * 1024;

/// One line of an import: a [`ProductInput`]'s fields beside the SKU,
/// and the units of it each warehouse received (taken in as a restock,
/// once per import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportLine {
    #[schema(schema_with = crate::openapi::sku)]
    pub sku: String,
    #[schema(schema_with = crate::openapi::title)]
    pub title: String,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::description)]
    pub description: String,
    /// A category slug that exists.
    #[schema(schema_with = crate::openapi::slug)]
    pub category: String,
    pub price: Money,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::attributes)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::images)]
    pub images: Vec<String>,
    /// Units received per warehouse (its shard's name): 0 to 1,000,000.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::stock_per_warehouse)]
    pub stock: BTreeMap<String, i64>,
}

impl ImportLine {
    pub fn new(sku: String, product: ProductInput, stock: BTreeMap<String, i64>) -> Self {
        ImportLine {
            sku,
            title: product.title,
            description: product.description,
            category: product.category,
            price: product.price,
            attributes: product.attributes,
            images: product.images,
            stock,
        }
    }

    fn into_item(self) -> Item {
        Item {
            sku: self.sku,
            product: ProductInput {
                title: self.title,
                description: self.description,
                category: self.category,
                price: self.price,
                attributes: self.attributes,
                images: self.images,
            },
            stock: self.stock,
        }
    }
}

/// A line parsed: what the chunk writes.
#[derive(Debug)]
struct Item {
    sku: String,
    product: ProductInput,
    stock: BTreeMap<String, i64>,
}

/// Where an import stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportStatus {
    pub id: String,
    /// Lines committed: where the next request continues (its `offset`).
    pub cursor: u64,
    /// Products written (blank lines are counted by the cursor only).
    pub products: u64,
    /// Units of stock received through the import, in every warehouse.
    pub stock_units: i64,
    pub started_ms: u64,
    pub updated_ms: u64,
    /// The feed cursor of the import's newest change (empty before the
    /// first): a consumer of the feed past it holds the whole import.
    #[schema(schema_with = crate::openapi::cursor)]
    pub feed_cursor: String,
}

impl ImportStatus {
    fn new(id: &str, now_ms: u64) -> Self {
        ImportStatus {
            id: id.to_owned(),
            cursor: 0,
            products: 0,
            stock_units: 0,
            started_ms: now_ms,
            updated_ms: now_ms,
            feed_cursor: String::new(),
        }
    }
}

/// What one request of an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// The import after this request.
    pub status: ImportStatus,
    /// Lines of this request below the cursor it found, not read.
    pub skipped: u64,
    /// Lines of this request committed now.
    pub committed: u64,
}

/// Why an import stopped. Everything before `cursor` is committed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line (numbered from 0 in the import) that cannot be imported.
    #[error("line {line}: {source}")]
    Line {
        line: u64,
        cursor: u64,
        #[source]
        source: CommerceError,
    },
    /// The request starts past the cursor: lines in between were never
    /// sent.
    #[error("the import stands at line {cursor}; this request starts at line {offset}")]
    Gap { offset: u64, cursor: u64 },
    /// The body could not be read to its end.
    #[error("the body broke off after line {cursor}: {reason}")]
    Body { cursor: u64, reason: String },
    /// Storage or the shards failed in `step` (which transaction: the
    /// stock of lines `a..b` in a warehouse, their catalog step, ...);
    /// `cursor` is the last one known (a chunk whose commit was lost may
    /// stand past it: resending from here is safe).
    #[error("after line {cursor}, {step}: {source}")]
    Store {
        cursor: u64,
        step: String,
        #[source]
        source: CommerceError,
    },
}

impl ImportError {
    /// The cursor the error leaves: where to resume.
    pub fn cursor(&self) -> u64 {
        match self {
            ImportError::Line { cursor, .. }
            | ImportError::Gap { cursor, .. }
            | ImportError::Body { cursor, .. }
            | ImportError::Store { cursor, .. } => *cursor,
        }
    }
}

/// 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn validate_import_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "import",
            format!("id must be 1 to {MAX_ID_LEN} of A-Z a-z 0-9 _ -"),
        ))
    }
}

/// Cuts a byte stream into lines, each at most [`MAX_LINE_BYTES`]; the
/// last line needs no newline.
#[derive(Debug)]
pub struct Lines<S> {
    body: S,
    buf: Vec<u8>,
    /// Where the search for the next newline resumes in `buf`.
    scanned: usize,
    done: bool,
}

impl<S, B, E> Lines<S>
where
    S: Stream<Item = std::result::Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    pub fn new(body: S) -> Self {
        Lines {
            body,
            buf: Vec::new(),
            scanned: 0,
            done: false,
        }
    }

    /// The next line (without its `\n` or `\r\n`), `None` at the end.
    pub async fn next_line(&mut self) -> std::result::Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + at;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.scanned = 0;
                if line.len() > MAX_LINE_BYTES {
                    return Err(format!("a line is longer than {MAX_LINE_BYTES} bytes"));
                }
                return Ok(Some(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_LINE_BYTES {
                return Err(format!("a line is longer than {MAX_LINE_BYTES} bytes"));
            }
            if self.done {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.scanned = 0;
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.buf.extend_from_slice(bytes.as_ref()),
                Some(Err(e)) => return Err(e.to_string()),
                None => self.done = true,
            }
        }
    }
}

/// A chunk ready to write: the lines `[first, end)` of the import (at
/// most [`CHUNK_LINES`]), and the products among them with their line
/// numbers.
struct Chunk {
    first: u64,
    end: u64,
    products: Vec<(u64, Item)>,
}

impl Chunk {
    fn at(line: u64) -> Chunk {
        Chunk {
            first: line,
            end: line,
            products: Vec::new(),
        }
    }
}

/// Units an imported SKU keeps per stock slot at least (see
/// [`import_slots`]).
pub const UNITS_PER_IMPORT_SLOT: i64 = 64;

/// The stock slots an import spreads `qty` units over: one per
/// [`UNITS_PER_IMPORT_SLOT`] units, at least one, at most `slots`. A
/// restock spreads over every slot, so that buyers of a hot SKU take
/// different keys; a catalog's worth of SKUs with a few hundred units
/// each does not need 32 keys per SKU and warehouse (the slots are most
/// of an import's writes), and a reservation finds units in any slot.
pub fn import_slots(qty: i64, slots: u32) -> u32 {
    let wanted = (qty.max(1) + UNITS_PER_IMPORT_SLOT - 1) / UNITS_PER_IMPORT_SLOT;
    u32::try_from(wanted)
        .unwrap_or(u32::MAX)
        .clamp(1, slots.max(1))
}

/// Chunks whose warehouse steps run at once. A far warehouse's step is
/// two round trips (about 0.9 s from us-east to ap-southeast under the
/// local geography), so 32 steps at once keep 32,000 lines/s moving. With
/// [`QUEUED`] chunks on each side, an import holds at most
/// `PIPELINE + 2 * QUEUED + 2` chunks of at most [`CHUNK_BYTES`] each
/// (76 MiB; about 17 MiB for lines of 450 bytes).
const PIPELINE: usize = 32;
/// Imports a region runs at once (each holds up to `PIPELINE + 2 *
/// QUEUED + 2` chunks in memory); another is refused until one ends.
pub const MAX_RUNNING_IMPORTS: usize = 2;
/// Chunks waiting between the reader and the warehouse step, and between
/// the warehouse step and the catalog step.
const QUEUED: usize = 2;

impl Commerce {
    /// Where import `id` stands (`NotFound` before its first chunk).
    pub async fn import_status(&self, id: &str) -> Result<ImportStatus> {
        validate_import_id(id)?;
        let found =
            self.catalog_db()?
                .run(|tx, _| async move {
                    get_json::<ImportStatus>(&tx, &keys::import(id), "import").await
                })
                .await?;
        found.ok_or_else(|| CommerceError::NotFound {
            what: "import",
            id: id.to_owned(),
        })
    }

    /// Imports the lines of `body`, the import's lines from `offset` on,
    /// as import `id` (see the module's documentation). `progress` sees
    /// the status after each chunk. Writes to the catalog shard, which
    /// this region must serve.
    pub async fn import_products<S, B, E>(
        &self,
        id: &str,
        offset: u64,
        body: S,
        mut progress: impl FnMut(&ImportStatus),
    ) -> std::result::Result<ImportReport, ImportError>
    where
        S: Stream<Item = std::result::Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let store = |cursor, step: &'static str| {
            move |source| ImportError::Store {
                cursor,
                step: step.to_owned(),
                source,
            }
        };
        validate_import_id(id).map_err(store(offset, "checking the id"))?;
        if offset > MAX_LINES {
            return Err(ImportError::Line {
                line: offset,
                cursor: offset,
                source: invalid("offset", format!("must be at most {MAX_LINES}")),
            });
        }
        self.catalog_owned_db()
            .map_err(store(offset, "finding the catalog shard"))?;
        let status = match self.import_status(id).await {
            Ok(status) => status,
            Err(CommerceError::NotFound { .. }) => ImportStatus::new(id, self.now_ms()),
            Err(e) => return Err(store(offset, "reading the import's status")(e)),
        };
        if offset > status.cursor {
            return Err(ImportError::Gap {
                offset,
                cursor: status.cursor,
            });
        }
        let categories: BTreeSet<String> = self
            .list_catalog_categories()
            .await
            .map_err(store(status.cursor, "reading the categories"))?;
        let warehouses: BTreeSet<String> = self
            .warehouses()
            .iter()
            .map(|w| w.as_str().to_owned())
            .collect();
        let start = status.cursor.max(offset);
        let cursor_at_start = status.cursor;
        // The lines are parsed into chunks here, while the chunks before
        // are written: up to PIPELINE chunks take their stock in at once
        // (the warehouses are often far away), and each then goes to the
        // catalog in order.
        let (mut chunks_in, chunks_out) = futures::channel::mpsc::channel::<Chunk>(QUEUED);
        let read = async {
            let mut lines = Lines::new(body);
            let mut line_no = offset;
            let mut skipped = 0u64;
            let mut chunk = Chunk::at(line_no);
            let mut chunk_bytes = 0;
            let mut stop = None;
            loop {
                let line = match lines.next_line().await {
                    Ok(Some(line)) => line,
                    Ok(None) => break,
                    Err(reason) => {
                        stop = Some(ImportError::Body { cursor: 0, reason });
                        break;
                    }
                };
                if line_no >= MAX_LINES {
                    stop = Some(ImportError::Line {
                        line: line_no,
                        cursor: 0,
                        source: CommerceError::LimitExceeded {
                            what: "import lines",
                            limit: MAX_LINES,
                        },
                    });
                    break;
                }
                let this = line_no;
                line_no += 1;
                if this < cursor_at_start {
                    skipped += 1;
                    chunk = Chunk::at(line_no);
                    continue;
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    match parse_line(&line, &categories, &warehouses) {
                        Ok(product) => {
                            chunk_bytes += line.len();
                            chunk.products.push((this, product));
                        }
                        Err(source) => {
                            stop = Some(ImportError::Line {
                                line: this,
                                cursor: 0,
                                source,
                            });
                            break;
                        }
                    }
                }
                chunk.end = line_no;
                if chunk.end - chunk.first >= CHUNK_LINES as u64 || chunk_bytes >= CHUNK_BYTES {
                    chunk_bytes = 0;
                    let full = std::mem::replace(&mut chunk, Chunk::at(line_no));
                    if chunks_in.send(full).await.is_err() {
                        // The writer stopped (its error is the answer).
                        return (None, skipped);
                    }
                }
            }
            // What was read before a bad line or a broken body is written.
            if chunk.end > chunk.first {
                let _ = chunks_in.send(chunk).await;
            }
            drop(chunks_in);
            (stop, skipped)
        };
        // The stock step runs ahead of the catalog step in a future of its
        // own: a `buffered` stream only makes progress while it is polled,
        // so polling it from the catalog loop would stop every chunk's
        // stock while a catalog transaction runs.
        let (mut stocked_in, mut stocked_out) = futures::channel::mpsc::channel::<
            std::result::Result<Chunk, (String, CommerceError)>,
        >(QUEUED);
        let stock = async move {
            let mut stocked =
                chunks_out
                    .map(|chunk| async move {
                        self.receive_chunk_stock(id, &chunk).await.map(|()| chunk)
                    })
                    .buffered(PIPELINE);
            while let Some(stocked) = stocked.next().await {
                let failed = stocked.is_err();
                if stocked_in.send(stocked).await.is_err() || failed {
                    break;
                }
            }
        };
        let write = async {
            let mut status = status;
            let mut failed = None;
            while let Some(stocked) = stocked_out.next().await {
                let written = match stocked {
                    Ok(chunk) => self
                        .write_catalog_chunk(id, &chunk, &status)
                        .await
                        .map_err(|e| {
                            let step =
                                format!("the catalog step of lines {}..{}", chunk.first, chunk.end);
                            (step, e)
                        }),
                    Err(failed) => Err(failed),
                };
                match written {
                    Ok(next) => status = next,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                progress(&status);
            }
            // Stops the stock step at its next chunk, and with it the reader.
            drop(stocked_out);
            (status, failed)
        };
        let ((stop, skipped), (), (status, failed)) = futures::join!(read, stock, write);
        // The newest change's feed cursor, which the last chunk's own
        // transaction could not know (best effort: the import is whole
        // without it).
        let _ = self.keep_feed_cursor(id, &status).await;
        if let Some((step, source)) = failed {
            return Err(ImportError::Store {
                cursor: status.cursor,
                step,
                source,
            });
        }
        if let Some(mut stop) = stop {
            match &mut stop {
                ImportError::Line { cursor, .. } | ImportError::Body { cursor, .. } => {
                    *cursor = status.cursor;
                }
                ImportError::Gap { .. } | ImportError::Store { .. } => {}
            }
            return Err(stop);
        }
        Ok(ImportReport {
            committed: status.cursor.saturating_sub(start),
            status,
            skipped,
        })
    }

    /// The category slugs, read at the catalog shard.
    async fn list_catalog_categories(&self) -> Result<BTreeSet<String>> {
        let kvs = self
            .catalog_db()?
            .run(|tx, _| async move {
                Ok::<_, CommerceError>(
                    tx.get_range_all(
                        db::RangeOption::subspace(&keys::categories())
                            .limit(crate::catalog::MAX_LIST_LIMIT),
                        true,
                    )
                    .await?,
                )
            })
            .await?;
        kvs.iter()
            .map(|kv| {
                crate::decode::<crate::catalog::Category>(&kv.value, "category").map(|c| c.slug)
            })
            .collect()
    }

    /// The warehouse step of a chunk: in each warehouse that receives
    /// stock in it, at once.
    async fn receive_chunk_stock(
        &self,
        id: &str,
        chunk: &Chunk,
    ) -> std::result::Result<(), (String, CommerceError)> {
        let mut per_warehouse: BTreeMap<&str, Vec<(u64, &str, i64)>> = BTreeMap::new();
        for (line, item) in &chunk.products {
            for (warehouse, qty) in &item.stock {
                if *qty > 0 {
                    per_warehouse.entry(warehouse.as_str()).or_default().push((
                        *line,
                        item.sku.as_str(),
                        *qty,
                    ));
                }
            }
        }
        let steps = per_warehouse.into_iter().map(|(warehouse, items)| {
            async move {
                let shard: ShardId =
                    warehouse
                        .parse()
                        .map_err(|_| CommerceError::UnknownWarehouse {
                            warehouse: warehouse.to_owned(),
                        })?;
                self.receive_import_stock(&shard, id, chunk.first, chunk.end, &items)
                    .await
            }
            .map_err(move |e: CommerceError| {
                let step = format!(
                    "the stock step of lines {}..{} in warehouse {warehouse}",
                    chunk.first, chunk.end
                );
                (step, e)
            })
        });
        futures::future::try_join_all(steps).await?;
        Ok(())
    }

    /// The catalog step of a chunk: the products of its lines at or after
    /// the import's cursor and the cursor moved to its end, in one
    /// transaction; `before` is the status the chunk before left.
    async fn write_catalog_chunk(
        &self,
        id: &str,
        chunk: &Chunk,
        before: &ImportStatus,
    ) -> Result<ImportStatus> {
        let now_ms = self.now_ms();
        let ((mut status, last_n), info) = self
            .catalog_db()?
            .run_with_info(|tx, _| async move {
                let mut status = get_json::<ImportStatus>(&tx, &keys::import(id), "import")
                    .await?
                    .unwrap_or_else(|| ImportStatus::new(id, now_ms));
                if status.cursor < chunk.first {
                    return Err(invalid(
                        "import",
                        format!(
                            "stands at line {} behind this chunk's first line {}",
                            status.cursor, chunk.first
                        ),
                    ));
                }
                if status.cursor >= chunk.end {
                    return Ok((status, None));
                }
                // The chunk before's change, known since its commit.
                if before.cursor == status.cursor && !before.feed_cursor.is_empty() {
                    status.feed_cursor.clone_from(&before.feed_cursor);
                }
                let todo: Vec<&(u64, Item)> = chunk
                    .products
                    .iter()
                    .filter(|(line, _)| *line >= status.cursor)
                    .collect();
                let mut last_n = None;
                if !todo.is_empty() {
                    let version = crate::catalog::bump_version(&tx).await?;
                    // Each category once, read (not a snapshot) so that a
                    // concurrent delete of one conflicts with the chunk.
                    let slugs: BTreeSet<&str> = todo
                        .iter()
                        .map(|(_, item)| item.product.category.as_str())
                        .collect();
                    for slug in slugs {
                        if tx.get(&keys::category(slug)).await?.is_none() {
                            return Err(CommerceError::UnknownCategory {
                                slug: slug.to_owned(),
                            });
                        }
                    }
                    let olds = read_products(&tx, todo.iter().map(|(_, i)| i.sku.as_str())).await?;
                    for (n, ((_, item), old)) in todo.iter().zip(olds).enumerate() {
                        let n = u16::try_from(n).unwrap_or(u16::MAX);
                        write_product(&tx, n, version, now_ms, (&item.sku, &item.product), old)?;
                        status.products += 1;
                        status.stock_units += item.stock.values().sum::<i64>();
                        last_n = Some(n);
                    }
                }
                status.cursor = chunk.end;
                status.updated_ms = now_ms;
                set_json(&tx, &keys::import(id), &status)?;
                Ok::<_, CommerceError>((status, last_n))
            })
            .await?;
        if let (Some(n), Some(stamp)) = (last_n, info.versionstamp) {
            status.feed_cursor =
                Cursor::from_stamp(*Versionstamp::complete(stamp, n).as_bytes()).to_string();
        }
        Ok(status)
    }

    /// Stores the feed cursor `status` holds when the import still stands
    /// where `status` does.
    async fn keep_feed_cursor(&self, id: &str, status: &ImportStatus) -> Result<()> {
        let key = &keys::import(id);
        self.catalog_db()?
            .run(|tx, _| async move {
                let stored = get_json::<ImportStatus>(&tx, key, "import").await?;
                if let Some(stored) = stored
                    && stored.cursor == status.cursor
                    && stored.feed_cursor != status.feed_cursor
                {
                    set_json(&tx, key, status)?;
                }
                Ok::<_, CommerceError>(())
            })
            .await
    }

    /// A warehouse's part of the warehouse step: the stock of `items`
    /// (line, SKU, units) of lines `[first, end)` that the warehouse has
    /// not taken in yet, in one transaction of its shard, which records
    /// `[first, end)` as taken in. Two steps over overlapping lines
    /// conflict (explicit conflict ranges over the lines); steps over
    /// other lines run side by side.
    async fn receive_import_stock(
        &self,
        warehouse: &ShardId,
        id: &str,
        first: u64,
        end: u64,
        items: &[(u64, &str, i64)],
    ) -> Result<()> {
        let slots = self.settings().stock_slots;
        let now_ms = self.now_ms();
        let this = self;
        self.warehouse_db(warehouse)?
            .run(|tx, _| async move {
                let space = keys::import_ranges(id);
                let line_key = |line: u64| space.pack(&(line,));
                tx.add_read_conflict_range(&line_key(first), &line_key(end))?;
                tx.add_write_conflict_range(&line_key(first), &line_key(end))?;
                // Ranges recorded are at most CHUNK_LINES lines long, so
                // only those starting that far before `first` can cover
                // a line of this one.
                let from = line_key(first.saturating_sub(CHUNK_LINES as u64));
                let taken = tx
                    .get_range_all(db::RangeOption::new(from, line_key(end)), true)
                    .await?;
                let mut covered = Vec::with_capacity(taken.len());
                let mut recorded_end = end;
                for kv in &taken {
                    let (start,): (u64,) = space
                        .unpack(&kv.key)
                        .map_err(|_| invalid("import range", "does not decode"))?;
                    let stop = u64::try_from(crate::counter(Some(&kv.value))).unwrap_or(0);
                    if start == first {
                        recorded_end = recorded_end.max(stop);
                    }
                    covered.push((start, stop));
                }
                let fresh = items
                    .iter()
                    .filter(|(line, ..)| !covered.iter().any(|(s, e)| (*s..*e).contains(line)));
                for (n, (_, sku, qty)) in fresh.enumerate() {
                    let n = u16::try_from(n).unwrap_or(u16::MAX);
                    this.receive_units(
                        &tx,
                        sku,
                        *qty,
                        n,
                        now_ms,
                        slots,
                        import_slots(*qty, slots),
                    )?;
                }
                let recorded_end = i64::try_from(recorded_end).unwrap_or(i64::MAX);
                tx.set(&line_key(first), &recorded_end.to_le_bytes())?;
                Ok::<_, CommerceError>(())
            })
            .await
    }
}

/// Parses and checks one line.
fn parse_line(
    line: &[u8],
    categories: &BTreeSet<String>,
    warehouses: &BTreeSet<String>,
) -> Result<Item> {
    let item = serde_json::from_slice::<ImportLine>(line)
        .map_err(|e| invalid("line", format!("is not a product: {e}")))?
        .into_item();
    validate_sku(&item.sku)?;
    item.product.validate()?;
    if !categories.contains(&item.product.category) {
        return Err(CommerceError::UnknownCategory {
            slug: item.product.category.clone(),
        });
    }
    for (warehouse, qty) in &item.stock {
        if !warehouses.contains(warehouse) {
            return Err(CommerceError::UnknownWarehouse {
                warehouse: warehouse.clone(),
            });
        }
        if !(0..=MAX_QTY).contains(qty) {
            return Err(invalid("stock", format!("units must be 0..={MAX_QTY}")));
        }
    }
    Ok(item)
}

/// The stored records of `skus`, read all at once (one round trip on
/// FoundationDB, not one per SKU).
pub(crate) async fn read_products<'a>(
    tx: &db::Transaction,
    skus: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Option<Product>>> {
    futures::future::try_join_all(
        skus.into_iter().map(|sku| async move {
            get_json::<Product>(tx, &keys::product(sku), "product").await
        }),
    )
    .await
}

/// Writes one product as a catalog change: the record, its category
/// membership (moved from `old`'s category when it changed) and its change
/// event (number `n` of the transaction) with its state.
pub(crate) fn write_product(
    tx: &db::Transaction,
    n: u16,
    version: u64,
    now_ms: u64,
    (sku, input): (&str, &ProductInput),
    old: Option<Product>,
) -> Result<Product> {
    let mut tags = vec![
        product_tag(sku),
        crate::catalog::category_tag(&input.category),
    ];
    if let Some(old) = &old
        && old.category != input.category
    {
        tx.clear(&keys::category_member(&old.category, sku))?;
        tags.push(crate::catalog::category_tag(&old.category));
    }
    let product = Product {
        sku: sku.to_owned(),
        title: input.title.clone(),
        description: input.description.clone(),
        category: input.category.clone(),
        price: input.price.clone(),
        attributes: input.attributes.clone(),
        images: input.images.clone(),
        version,
        updated_ms: now_ms,
    };
    set_json(tx, &keys::product(sku), &product)?;
    tx.set(&keys::category_member(&input.category, sku), b"")?;
    append_event(
        tx,
        n,
        version,
        now_ms,
        Change::ProductUpserted {
            sku: sku.to_owned(),
        },
        tags,
        &State::Product(product.clone()),
    )?;
    Ok(product)
}
