//! The one error type of the crate.

use std::path::PathBuf;

use tantivy::TantivyError;
use tantivy::directory::error::OpenDirectoryError;

/// Why a search-index operation failed.
///
/// Validation variants (`Invalid*`) are raised before tantivy is touched, so
/// nothing was written. [`SearchError::maybe_committed`] tells whether a
/// failed write may nevertheless be durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// The search request is out of bounds; nothing was searched.
    #[error("invalid search query: {reason}")]
    InvalidQuery { reason: &'static str },

    /// The write batch as a whole is out of bounds; nothing was written.
    #[error("invalid write batch: {reason}")]
    InvalidBatch { reason: &'static str },

    /// A document of the batch is out of bounds; nothing was written.
    /// `position` is its index in the upserts (or in the rebuild iterator).
    #[error("invalid document at position {position}: {reason}")]
    InvalidDocument {
        position: usize,
        reason: &'static str,
    },

    /// An id to delete is out of bounds; nothing was written.
    #[error("invalid id to delete at position {position}: {reason}")]
    InvalidDeleteId {
        position: usize,
        reason: &'static str,
    },

    /// The index directory could not be created.
    #[error("cannot create index directory {}", path.display())]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The index directory exists but could not be opened.
    #[error("cannot open index directory {}", path.display())]
    OpenDirectory {
        path: PathBuf,
        #[source]
        source: OpenDirectoryError,
    },

    /// Tantivy failed before anything was committed.
    #[error("search index failed while {context}")]
    Tantivy {
        context: &'static str,
        #[source]
        source: TantivyError,
    },

    /// Tantivy failed while committing: the batch may or may not be durable.
    /// Re-applying it is safe (upserts and deletes are idempotent); the
    /// durable position is [`SearchIndex::cursor`](crate::SearchIndex::cursor).
    #[error("search index commit failed; the batch may have been committed")]
    Commit {
        #[source]
        source: TantivyError,
    },

    /// The batch was committed but the reader could not be reloaded, so
    /// searches may not see it yet.
    #[error("search index committed but could not reload its reader")]
    Reload {
        #[source]
        source: TantivyError,
    },

    /// A staged rebuild holds the writer: other writes wait for its commit
    /// (or its drop); nothing was written.
    #[error("a rebuild of the search index is in progress")]
    RebuildInProgress,

    /// The staged rebuild was discarded (a failed write dropped the
    /// writer): nothing of it will be committed; start it again.
    #[error("the staged rebuild was discarded")]
    RebuildLost,

    /// A stored document lacks a field the schema always writes: the index
    /// was written by something else or is corrupt.
    #[error("stored document lacks field {field}")]
    StoredFieldMissing { field: &'static str },
}

impl SearchError {
    /// Whether the write this error ended may have been committed anyway.
    pub fn maybe_committed(&self) -> bool {
        matches!(self, Self::Commit { .. } | Self::Reload { .. })
    }

    /// Shorthand for a [`SearchError::Tantivy`] with its context.
    pub(crate) fn tantivy(context: &'static str) -> impl FnOnce(TantivyError) -> Self {
        move |source| Self::Tantivy { context, source }
    }
}
