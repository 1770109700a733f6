//! The search index: one tantivy index, its single writer and its reader.
//!
//! Writes go through one `IndexWriter` behind a mutex, each batch in one
//! commit that carries the change-feed cursor as its payload. The reader is
//! reloaded by hand right after each commit, so a search that starts after
//! a write returned sees it, and never sees half of a batch.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue, SortByString};
use tantivy::collector::{Count, SortKeyComputer, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::Query;
use tantivy::schema::Value;
use tantivy::tokenizer::{TextAnalyzer, TokenizerManager};
use tantivy::{
    DocAddress, Index, IndexBuilder, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher,
    TantivyDocument, Term,
};

use crate::document::{SearchDoc, validate_id};
use crate::error::SearchError;
use crate::query::{SearchHit, SearchPage, SearchQuery, Sort};
use crate::schema::{self, Fields, name};

/// Memory the writer may buffer before it flushes a segment.
pub const WRITER_MEMORY_BUDGET_BYTES: usize = 50_000_000;
/// One indexing thread: the machines are small, and search serves from the
/// same process.
const WRITER_THREADS: usize = 1;
/// Most upserts plus deletes in one [`SearchIndex::apply`].
pub const MAX_APPLY_OPS: usize = 20_000;
/// Most documents one [`SearchIndex::rebuild`] takes.
pub const MAX_REBUILD_DOCS: usize = 10_000_000;
/// Longest change-feed cursor, in bytes (it is stored in every commit).
pub const MAX_CURSOR_BYTES: usize = 1024;

/// A product search index, in memory or in a directory.
///
/// `Send + Sync`: share it through an `Arc`. Searches run concurrently with
/// each other and with a write; writes are serialised.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    /// The writer and what it has staged (see [`WriterSlot`]).
    writer: Mutex<WriterSlot>,
    /// Payload of the last commit, cached so that reading it needs no I/O.
    cursor: RwLock<Option<String>>,
    fields: Fields,
    analyzer: TextAnalyzer,
    location: Location,
    /// Whether callers run index work in their own task rather than on a
    /// blocking pool (see [`SearchIndex::inline`]).
    inline: bool,
}

/// The single writer. `writer` is `None` after a failed write dropped it
/// (which discards what it had staged); the next write opens a fresh one.
struct WriterSlot {
    writer: Option<IndexWriter>,
    /// Bumped each time the writer is dropped with what it staged, so a
    /// staged rebuild can tell that its documents are gone.
    epoch: u64,
    /// The epoch a staged rebuild began in, while one is open.
    rebuild: Option<u64>,
}

impl WriterSlot {
    fn writer(&mut self, index: &Index) -> Result<&mut IndexWriter, SearchError> {
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => open_writer(index)?,
        };
        Ok(self.writer.insert(writer))
    }

    /// Drops the writer and everything it staged, an open rebuild's too.
    fn discard(&mut self) {
        self.writer = None;
        self.epoch += 1;
        self.rebuild = None;
    }

    /// The writer of the rebuild that began in `epoch`, if it still stands.
    fn rebuild_writer(&mut self, epoch: u64) -> Result<&mut IndexWriter, SearchError> {
        match (&mut self.writer, self.rebuild) {
            (Some(writer), Some(open)) if open == epoch && self.epoch == epoch => Ok(writer),
            _ => Err(SearchError::RebuildLost),
        }
    }
}

/// A rebuild staged a batch of documents at a time and published in one
/// commit ([`SearchIndex::begin_rebuild`]): the whole content is replaced
/// without holding it in memory. Searches see the old content until
/// [`Rebuild::commit`]; other writes are refused with
/// [`SearchError::RebuildInProgress`] meanwhile. Dropped uncommitted (or
/// after an error), it discards what it staged and leaves the old content.
#[must_use = "a rebuild is discarded unless committed"]
pub struct Rebuild {
    index: Arc<SearchIndex>,
    epoch: u64,
    taken: usize,
    open: bool,
}

impl Rebuild {
    /// Stages `docs` (each replacing an earlier one with its id). An invalid
    /// document, or more than [`MAX_REBUILD_DOCS`] in all, discards the
    /// rebuild.
    pub fn add(&mut self, docs: impl IntoIterator<Item = SearchDoc>) -> Result<(), SearchError> {
        let added = self.index.rebuild_add(self.epoch, &mut self.taken, docs);
        if added.is_err() {
            self.open = false;
        }
        added
    }

    /// Documents staged so far.
    pub fn taken(&self) -> usize {
        self.taken
    }

    /// Publishes the staged documents in one commit whose payload is
    /// `cursor`; returns how many were staged.
    pub fn commit(mut self, cursor: &str) -> Result<usize, SearchError> {
        validate_cursor(cursor)?;
        self.open = false;
        self.index.rebuild_commit(self.epoch, cursor)?;
        Ok(self.taken)
    }
}

impl Drop for Rebuild {
    fn drop(&mut self) {
        if self.open {
            let mut slot = self.index.lock_writer();
            if slot.rebuild == Some(self.epoch) {
                slot.discard();
            }
        }
    }
}

impl fmt::Debug for Rebuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rebuild")
            .field("taken", &self.taken)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Location {
    Memory,
    Directory(PathBuf),
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory and an empty index
    /// if needed; `None` keeps the index in memory.
    ///
    /// Takes tantivy's writer lock on the directory: a second open of the
    /// same directory fails while the first index is alive. An index written
    /// with another schema fails to open.
    pub fn open_or_create(dir: Option<&Path>) -> Result<Self, SearchError> {
        let (schema, fields) = schema::build();
        let analyzer = schema::analyzer();
        let tokenizers = TokenizerManager::default();
        tokenizers.register(schema::ANALYZER_NAME, analyzer.clone());
        let builder = IndexBuilder::new().schema(schema).tokenizers(tokenizers);

        let (index, location) = match dir {
            None => (
                builder
                    .create_in_ram()
                    .map_err(SearchError::tantivy("creating the index in memory"))?,
                Location::Memory,
            ),
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| SearchError::CreateDirectory {
                    path: dir.to_owned(),
                    source,
                })?;
                let directory =
                    MmapDirectory::open(dir).map_err(|source| SearchError::OpenDirectory {
                        path: dir.to_owned(),
                        source,
                    })?;
                let index = builder
                    .open_or_create(directory)
                    .map_err(SearchError::tantivy("opening or creating the index"))?;
                (index, Location::Directory(dir.to_owned()))
            }
        };

        let cursor = index
            .load_metas()
            .map_err(SearchError::tantivy("reading the index metadata"))?
            .payload;
        let writer = open_writer(&index)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(SearchError::tantivy("opening the reader"))?;
        tracing::debug!(?location, ?cursor, "search index opened");

        Ok(Self {
            index,
            reader,
            writer: Mutex::new(WriterSlot {
                writer: Some(writer),
                epoch: 0,
                rebuild: None,
            }),
            cursor: RwLock::new(cursor),
            fields,
            analyzer,
            location,
            inline: false,
        })
    }

    /// Marks the index for the deterministic simulator: its callers run
    /// index work (writes, searches) in their own task, not on a blocking
    /// pool, whose threads finish at moments no seed decides. The index
    /// itself is the same; only who waits for it changes.
    #[must_use]
    pub fn inline(mut self) -> Self {
        self.inline = true;
        self
    }

    /// See [`SearchIndex::inline`].
    pub fn runs_inline(&self) -> bool {
        self.inline
    }

    /// Applies one change-feed batch in one commit whose payload is `cursor`.
    ///
    /// Each upsert replaces any document with its id (also one earlier in the
    /// same batch); deletes run after the upserts, so an id in both ends up
    /// deleted. Deleting an absent id is a no-op. The whole batch is checked
    /// before anything is written; on error nothing of it is visible, except
    /// that a [`SearchError::maybe_committed`] error may have committed it.
    pub fn apply(
        &self,
        upserts: Vec<SearchDoc>,
        deletes: Vec<String>,
        cursor: &str,
    ) -> Result<(), SearchError> {
        if upserts.len().saturating_add(deletes.len()) > MAX_APPLY_OPS {
            return Err(SearchError::InvalidBatch {
                reason: "more than MAX_APPLY_OPS upserts and deletes",
            });
        }
        validate_cursor(cursor)?;
        for (position, doc) in upserts.iter().enumerate() {
            doc.validate()
                .map_err(|reason| SearchError::InvalidDocument { position, reason })?;
        }
        for (position, id) in deletes.iter().enumerate() {
            validate_id(id).map_err(|reason| SearchError::InvalidDeleteId { position, reason })?;
        }

        self.write(cursor, |writer| {
            for doc in &upserts {
                self.stage_upsert(writer, doc)?;
            }
            for id in &deletes {
                writer.delete_term(Term::from_field_text(self.fields.id, id));
            }
            Ok(())
        })?;
        tracing::debug!(
            upserts = upserts.len(),
            deletes = deletes.len(),
            cursor,
            "search batch applied"
        );
        Ok(())
    }

    /// Replaces the whole content with `docs` in one commit whose payload is
    /// `cursor`; returns how many documents it took. Searches see the old
    /// content until the commit. Duplicate ids keep the last document.
    ///
    /// Documents are checked as they come; an invalid one, or more than
    /// [`MAX_REBUILD_DOCS`], aborts the rebuild and leaves the old content.
    /// Other writes meanwhile wait or are refused with
    /// [`SearchError::RebuildInProgress`]; searches go on. For more
    /// documents than fit in memory, see [`SearchIndex::begin_rebuild`].
    pub fn rebuild(
        &self,
        docs: impl IntoIterator<Item = SearchDoc>,
        cursor: &str,
    ) -> Result<usize, SearchError> {
        validate_cursor(cursor)?;
        let epoch = self.rebuild_begin()?;
        let mut taken = 0;
        self.rebuild_add(epoch, &mut taken, docs)?;
        self.rebuild_commit(epoch, cursor)?;
        tracing::info!(documents = taken, cursor, "search index rebuilt");
        Ok(taken)
    }

    /// Begins a rebuild staged a batch at a time (see [`Rebuild`]): the
    /// way to replace the content with more documents than fit in memory.
    pub fn begin_rebuild(self: &Arc<Self>) -> Result<Rebuild, SearchError> {
        let epoch = self.rebuild_begin()?;
        Ok(Rebuild {
            index: Arc::clone(self),
            epoch,
            taken: 0,
            open: true,
        })
    }

    /// Stages the deletion of every document and opens a rebuild; returns
    /// its epoch.
    fn rebuild_begin(&self) -> Result<u64, SearchError> {
        let mut slot = self.lock_writer();
        if slot.rebuild.is_some() {
            return Err(SearchError::RebuildInProgress);
        }
        let deleted = slot.writer(&self.index)?.delete_all_documents();
        if let Err(source) = deleted {
            slot.discard();
            return Err(SearchError::tantivy("deleting all documents")(source));
        }
        slot.rebuild = Some(slot.epoch);
        Ok(slot.epoch)
    }

    /// Stages `docs` in the rebuild of `epoch`, `taken` staged before; an
    /// invalid document, or one past [`MAX_REBUILD_DOCS`], discards it.
    fn rebuild_add(
        &self,
        epoch: u64,
        taken: &mut usize,
        docs: impl IntoIterator<Item = SearchDoc>,
    ) -> Result<(), SearchError> {
        let mut slot = self.lock_writer();
        let writer = slot.rebuild_writer(epoch)?;
        let result = (|| {
            for doc in docs {
                let position = *taken;
                if position >= MAX_REBUILD_DOCS {
                    return Err(SearchError::InvalidBatch {
                        reason: "rebuild yields more than MAX_REBUILD_DOCS documents",
                    });
                }
                doc.validate()
                    .map_err(|reason| SearchError::InvalidDocument { position, reason })?;
                self.stage_upsert(writer, &doc)?;
                *taken += 1;
            }
            Ok(())
        })();
        if result.is_err() {
            slot.discard();
        }
        result
    }

    /// Commits the rebuild of `epoch` with `cursor` as payload.
    fn rebuild_commit(&self, epoch: u64, cursor: &str) -> Result<(), SearchError> {
        let mut slot = self.lock_writer();
        slot.rebuild_writer(epoch)?;
        slot.rebuild = None;
        self.commit_locked(&mut slot, cursor)
    }

    /// The change-feed cursor of the last commit; `None` for an index that
    /// was never written to.
    pub fn cursor(&self) -> Option<String> {
        self.cursor
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The directory the index lives in; `None` when it is in memory.
    pub fn dir(&self) -> Option<&Path> {
        match &self.location {
            Location::Memory => None,
            Location::Directory(dir) => Some(dir),
        }
    }

    /// Number of documents searches currently see.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Runs `query` against the last committed state.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        query.validate()?;
        let tantivy_query = query.to_tantivy(&self.fields, &self.analyzer);
        let searcher = self.reader.searcher();
        let page = TopDocs::with_limit(query.limit).and_offset(query.offset);
        // Every order ends on the id so that ties do not depend on which
        // segment a document sits in.
        let by_id = (SortByString::for_field(name::ID), Order::Asc);
        let price = SortByStaticFastValue::<i64>::for_field(name::PRICE_MINOR);

        let (total, docs) = match query.sort {
            Sort::Relevance => {
                let sort = ((SortBySimilarityScore, Order::Desc), by_id);
                let (total, docs) = collect(&searcher, &*tantivy_query, page, sort)?;
                let docs = docs
                    .into_iter()
                    .map(|((score, _), address)| (score, address))
                    .collect();
                (total, docs)
            }
            Sort::PriceAsc => unscored(collect(
                &searcher,
                &*tantivy_query,
                page,
                ((price, Order::Asc), by_id),
            )?),
            Sort::PriceDesc => unscored(collect(
                &searcher,
                &*tantivy_query,
                page,
                ((price, Order::Desc), by_id),
            )?),
            Sort::TitleAsc => {
                let title = SortByString::for_field(name::TITLE_SORT);
                unscored(collect(
                    &searcher,
                    &*tantivy_query,
                    page,
                    ((title, Order::Asc), by_id),
                )?)
            }
        };

        let hits = docs
            .into_iter()
            .map(|(score, address)| self.hit(&searcher, address, score))
            .collect::<Result<_, _>>()?;
        Ok(SearchPage { total, hits })
    }

    /// Stages `doc` in place of any document with its id.
    fn stage_upsert(&self, writer: &IndexWriter, doc: &SearchDoc) -> Result<(), SearchError> {
        // A delete applies to documents added before it, in earlier commits
        // or in this one, so it removes the old version and never this one.
        writer.delete_term(Term::from_field_text(self.fields.id, &doc.id));
        writer
            .add_document(doc.to_tantivy(&self.fields))
            .map_err(SearchError::tantivy("adding a document"))?;
        Ok(())
    }

    /// Runs `stage` on the writer, then commits with `cursor` as payload and
    /// reloads the reader. If anything before the commit fails, the writer is
    /// dropped, which discards all it staged.
    fn write(
        &self,
        cursor: &str,
        stage: impl FnOnce(&IndexWriter) -> Result<(), SearchError>,
    ) -> Result<(), SearchError> {
        let mut slot = self.lock_writer();
        if slot.rebuild.is_some() {
            return Err(SearchError::RebuildInProgress);
        }
        let staged = stage(slot.writer(&self.index)?);
        if let Err(err) = staged {
            slot.discard();
            return Err(err);
        }
        self.commit_locked(&mut slot, cursor)
    }

    /// Commits what the writer staged with `cursor` as payload, then
    /// reloads the reader. A failed commit drops the writer.
    fn commit_locked(&self, slot: &mut WriterSlot, cursor: &str) -> Result<(), SearchError> {
        let committed = slot
            .writer(&self.index)?
            .prepare_commit()
            .and_then(|mut prepared| {
                prepared.set_payload(cursor);
                prepared.commit()
            });
        if let Err(source) = committed {
            slot.discard();
            // The commit may have reached the disk: take the cursor and the
            // documents from whatever is durable now.
            self.reload_cursor();
            if let Err(err) = self.reader.reload() {
                tracing::warn!(error = %err, "cannot reload the search reader after a failed commit");
            }
            return Err(SearchError::Commit { source });
        }

        *self.cursor.write().unwrap_or_else(PoisonError::into_inner) = Some(cursor.to_owned());
        self.reader
            .reload()
            .map_err(|source| SearchError::Reload { source })
    }

    fn lock_writer(&self) -> MutexGuard<'_, WriterSlot> {
        self.writer.lock().unwrap_or_else(|poisoned| {
            // A panic mid-write may have left operations staged: drop the
            // writer so that the next commit cannot publish them.
            let mut slot = poisoned.into_inner();
            slot.discard();
            self.writer.clear_poison();
            slot
        })
    }

    fn reload_cursor(&self) {
        match self.index.load_metas() {
            Ok(metas) => {
                *self.cursor.write().unwrap_or_else(PoisonError::into_inner) = metas.payload;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the search index cursor after a failed commit");
            }
        }
    }

    fn hit(
        &self,
        searcher: &Searcher,
        address: DocAddress,
        score: f32,
    ) -> Result<SearchHit, SearchError> {
        let doc: TantivyDocument = searcher
            .doc(address)
            .map_err(SearchError::tantivy("loading a hit"))?;
        let text = |field, name| {
            doc.get_first(field)
                .and_then(|value| value.as_str())
                .map(str::to_owned)
                .ok_or(SearchError::StoredFieldMissing { field: name })
        };
        Ok(SearchHit {
            id: text(self.fields.id, name::ID)?,
            title: text(self.fields.title, name::TITLE)?,
            category: text(self.fields.category, name::CATEGORY)?,
            price_minor: doc
                .get_first(self.fields.price_minor)
                .and_then(|value| value.as_i64())
                .ok_or(SearchError::StoredFieldMissing {
                    field: name::PRICE_MINOR,
                })?,
            currency: text(self.fields.currency, name::CURRENCY)?,
            score,
        })
    }
}

impl fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchIndex")
            .field("location", &self.location)
            .field("num_docs", &self.num_docs())
            .field("cursor", &self.cursor())
            .finish_non_exhaustive()
    }
}

fn open_writer(index: &Index) -> Result<IndexWriter, SearchError> {
    index
        .writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY_BUDGET_BYTES)
        .map_err(SearchError::tantivy("opening the writer"))
}

fn validate_cursor(cursor: &str) -> Result<(), SearchError> {
    if cursor.len() > MAX_CURSOR_BYTES {
        return Err(SearchError::InvalidBatch {
            reason: "cursor longer than MAX_CURSOR_BYTES",
        });
    }
    Ok(())
}

/// Counts all matches and collects one page of them in `sort` order.
fn collect<K>(
    searcher: &Searcher,
    query: &dyn Query,
    page: TopDocs,
    sort: impl SortKeyComputer<SortKey = K> + Send + 'static,
) -> Result<(usize, Vec<(K, DocAddress)>), SearchError>
where
    K: 'static + Clone + Send + Sync + fmt::Debug,
{
    searcher
        .search(query, &(Count, page.order_by(sort)))
        .map_err(SearchError::tantivy("searching"))
}

/// Drops the sort keys of a page that was not sorted by score.
fn unscored<K>((total, docs): (usize, Vec<(K, DocAddress)>)) -> (usize, Vec<(f32, DocAddress)>) {
    (
        total,
        docs.into_iter()
            .map(|(_, address)| (0.0, address))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SearchIndex>();
    }

    #[test]
    fn overlong_cursor_is_rejected_before_writing() {
        let index = SearchIndex::open_or_create(None).expect("in-memory index");
        let err = index
            .apply(Vec::new(), Vec::new(), &"c".repeat(MAX_CURSOR_BYTES + 1))
            .expect_err("cursor too long");
        assert!(matches!(err, SearchError::InvalidBatch { .. }), "{err:?}");
        assert_eq!(index.cursor(), None);
    }

    #[test]
    fn oversized_batch_is_rejected_before_writing() {
        let index = SearchIndex::open_or_create(None).expect("in-memory index");
        let deletes = vec!["x".to_owned(); MAX_APPLY_OPS + 1];
        let err = index
            .apply(Vec::new(), deletes, "c1")
            .expect_err("batch too large");
        assert!(matches!(err, SearchError::InvalidBatch { .. }), "{err:?}");
        assert_eq!(index.cursor(), None);
    }
}
