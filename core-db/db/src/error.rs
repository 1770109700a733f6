//! The storage error type every engine reports through, classified the way
//! FoundationDB classifies its errors: may the transaction be retried, and may
//! its commit have happened anyway.

use std::time::Duration;

/// A boxed engine error, kept as a source so retry classification and
/// diagnostics never depend on its text.
pub type EngineSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from a transaction or the database that runs it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A concurrent commit wrote something this transaction read
    /// (FoundationDB `not_committed`, 1020). Retryable.
    #[error("transaction not committed: a concurrent transaction wrote data it read")]
    NotCommitted,

    /// The read version fell out of the engine's MVCC window
    /// (FoundationDB `transaction_too_old`, 1007). Retryable.
    #[error("transaction too old: its read version left the {window_ms} ms MVCC window")]
    TransactionTooOld { window_ms: u64 },

    /// The commit may or may not have happened (FoundationDB
    /// `commit_unknown_result`, 1021). Retryable, and maybe committed.
    #[error("commit result unknown")]
    CommitUnknownResult,

    /// FoundationDB `key_too_large` (2102).
    #[error("key of {size} bytes exceeds the {limit}-byte limit")]
    KeyTooLarge { size: usize, limit: usize },

    /// FoundationDB `value_too_large` (2103).
    #[error("value of {size} bytes exceeds the {limit}-byte limit")]
    ValueTooLarge { size: usize, limit: usize },

    /// FoundationDB `transaction_too_large` (2101).
    #[error("transaction of {size} bytes exceeds the {limit}-byte limit")]
    TransactionTooLarge { size: usize, limit: usize },

    /// The transaction (all its attempts together, under `Database::run`)
    /// ran past its timeout (FoundationDB `transaction_timed_out`, 1031).
    #[error("transaction timed out after {elapsed:?} (commit {})",
        if *maybe_committed { "may have happened" } else { "did not happen" })]
    TimedOut {
        elapsed: Duration,
        maybe_committed: bool,
    },

    /// `Database::run` gave up: after its retry bound, or on an error that
    /// ends the retries after an attempt that may have committed (so the
    /// caller still learns that it may have).
    #[error("transaction gave up after {attempts} attempts (commit {})",
        if *maybe_committed { "of an earlier attempt may have happened" } else { "did not happen" })]
    RetryLimitReached {
        attempts: u32,
        /// Whether any attempt's commit may have happened.
        maybe_committed: bool,
        #[source]
        last: Box<Error>,
    },

    /// Too many outstanding watches (FoundationDB `too_many_watches`, 1032).
    #[error("too many outstanding watches (limit {limit})")]
    TooManyWatches { limit: usize },

    /// A watch was dropped by the engine before its key changed (the database
    /// closed, or the watch's transaction did not commit).
    #[error("watch cancelled: {reason}")]
    WatchCancelled { reason: &'static str },

    /// The key lies in the system keyspace (`\xff` and above), which
    /// applications may not read or write (FoundationDB
    /// `key_outside_legal_range`, 2004).
    #[error("key of {len} bytes lies in the system keyspace (at or after 0xff)")]
    KeyOutsideLegalRange { len: usize },

    /// A mutation's arguments are malformed (e.g. a versionstamp offset
    /// outside the key, an inverted range).
    #[error("invalid mutation: {reason}")]
    InvalidMutation { reason: &'static str },

    /// The transaction was already committed or failed and cannot be used.
    #[error("transaction already finished")]
    UsedAfterFinish,

    /// The database has been closed or its engine stopped.
    #[error("database closed")]
    Closed,
    /// The cluster could not be reached (a network partition, or a call
    /// lost to a brownout): nothing was sent, so nothing was applied. Not
    /// retried here: a partitioned client fails promptly rather than hang.
    #[error("cluster unreachable: {reason}")]
    Unreachable { reason: &'static str },

    /// An error from the engine itself (I/O, the FoundationDB client), with
    /// its classification.
    #[error("storage engine error (code {code:?})")]
    Engine {
        #[source]
        source: EngineSource,
        code: Option<i32>,
        retryable: bool,
        maybe_committed: bool,
    },
}

impl Error {
    /// Whether `Database::run` may retry the transaction after this error.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::NotCommitted | Error::TransactionTooOld { .. } | Error::CommitUnknownResult => {
                true
            }
            Error::Engine { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether the transaction's commit may have happened despite the error.
    pub fn is_maybe_committed(&self) -> bool {
        match self {
            Error::CommitUnknownResult => true,
            Error::TimedOut {
                maybe_committed, ..
            }
            | Error::Engine {
                maybe_committed, ..
            } => *maybe_committed,
            Error::RetryLimitReached {
                maybe_committed,
                last,
                ..
            } => *maybe_committed || last.is_maybe_committed(),
            _ => false,
        }
    }

    /// Retryable and certainly not committed (FoundationDB's
    /// `retryable_not_committed` predicate).
    pub fn is_retryable_not_committed(&self) -> bool {
        self.is_retryable() && !self.is_maybe_committed()
    }
}

/// Errors a `Database::run` closure may return: the caller's own error type,
/// which must be able to carry (and give back) a storage [`Error`] so the
/// retry loop can classify it.
pub trait TxnError: From<Error> {
    /// The storage error inside, if this is one.
    fn as_db_error(&self) -> Option<&Error>;
    /// Gives the storage error back, or the value unchanged.
    fn into_db_error(self) -> Result<Error, Self>;
}

impl TxnError for Error {
    fn as_db_error(&self) -> Option<&Error> {
        Some(self)
    }
    fn into_db_error(self) -> Result<Error, Self> {
        Ok(self)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
