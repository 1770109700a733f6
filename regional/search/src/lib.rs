//! Regional product search on tantivy: full-text over titles and
//! descriptions, category and price filters, sorting and pagination.
//!
//! The crate knows nothing of the rest of the platform. The commerce crate
//! feeds it [`SearchDoc`]s from its change feed through
//! [`SearchIndex::apply`] (or [`SearchIndex::rebuild`] from a full scan) and
//! serves [`SearchIndex::search`]. Every commit stores the change-feed
//! position it reflects, so after a restart the feed resumes from
//! [`SearchIndex::cursor`].
//!
//! Invariants:
//! - an id is in the index at most once: an upsert deletes the id before it
//!   adds the document, in the same commit;
//! - a search that starts after `apply` or `rebuild` returned `Ok` sees its
//!   changes (the reader is reloaded before they return);
//! - every input is bounded (see the `MAX_*` constants) and checked before
//!   tantivy sees it; free text is analysed, never parsed, so no query syntax
//!   can make a search fail.

mod document;
mod error;
mod index;
mod query;
mod schema;

pub use document::{
    MAX_CATEGORY_BYTES, MAX_CURRENCY_BYTES, MAX_DESCRIPTION_BYTES, MAX_ID_BYTES, MAX_TITLE_BYTES,
    SearchDoc,
};
pub use error::SearchError;
pub use index::{
    MAX_APPLY_OPS, MAX_CURSOR_BYTES, MAX_REBUILD_DOCS, Rebuild, SearchIndex,
    WRITER_MEMORY_BUDGET_BYTES,
};
pub use query::{
    DEFAULT_PAGE_LIMIT, MAX_OFFSET, MAX_PAGE_LIMIT, MAX_QUERY_TEXT_CHARS, SearchHit, SearchPage,
    SearchQuery, Sort,
};
