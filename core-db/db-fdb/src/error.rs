//! How FoundationDB's errors become Meridian's storage errors: the errors
//! `db::Error` names get their own variant (so both engines report them the
//! same way); every other error stays an `Error::Engine` that keeps the
//! `FdbError` itself as its source, with FoundationDB's own retryable and
//! maybe-committed classification.

use db::Error;
use foundationdb::FdbError;

/// FoundationDB error codes this backend treats specially
/// (<https://apple.github.io/foundationdb/api-error-codes.html>).
pub(crate) mod code {
    pub const TRANSACTION_TOO_OLD: i32 = 1007;
    pub const NOT_COMMITTED: i32 = 1020;
    pub const COMMIT_UNKNOWN_RESULT: i32 = 1021;
    pub const TRANSACTION_CANCELLED: i32 = 1025;
    pub const TOO_MANY_WATCHES: i32 = 1032;
    pub const ACCESSED_UNREADABLE: i32 = 1036;
    pub const OPERATION_CANCELLED: i32 = 1101;
    pub const TRANSACTION_TOO_LARGE: i32 = 2101;
    pub const KEY_OUTSIDE_LEGAL_RANGE: i32 = 2004;
}

/// FoundationDB's MVCC window: a read version older than this is too old
/// (the `MAX_READ_TRANSACTION_LIFE_VERSIONS` knob, 5 s by default).
pub const MVCC_WINDOW_MS: u64 = 5_000;

/// Outstanding watches per database handle (FoundationDB's `max_watches`
/// database option, left at its default).
pub const MAX_WATCHES: usize = 10_000;

/// Maps a FoundationDB error to a storage error.
///
/// `key_too_large` (2102), `value_too_large` (2103) and
/// `transaction_too_large` (2101) carry no sizes, so they stay
/// `Error::Engine` here: the `db::Transaction` wrapper rejects oversized
/// keys, values and transactions before they reach FoundationDB, and the
/// commit path reconstructs `TransactionTooLarge` from FoundationDB's own
/// size estimate when it can.
pub fn map_fdb_error(err: FdbError) -> Error {
    match err.code() {
        code::NOT_COMMITTED => Error::NotCommitted,
        code::TRANSACTION_TOO_OLD => Error::TransactionTooOld {
            window_ms: MVCC_WINDOW_MS,
        },
        code::COMMIT_UNKNOWN_RESULT => Error::CommitUnknownResult,
        code::TOO_MANY_WATCHES => Error::TooManyWatches { limit: MAX_WATCHES },
        code::KEY_OUTSIDE_LEGAL_RANGE => Error::KeyOutsideLegalRange { len: 0 },
        // Reading a key whose value holds this transaction's versionstamp:
        // the embedded engine reports the same thing this way.
        code::ACCESSED_UNREADABLE => Error::InvalidMutation {
            reason: "reading a key whose value holds this transaction's versionstamp",
        },
        // Classified by FoundationDB's predicates in pure Rust (tested
        // without libfdb_c; `tests/it` checks them against the library).
        code => Error::Engine {
            source: Box::new(err),
            code: Some(code),
            retryable: db::fdb_codes::is_retryable(code),
            maybe_committed: db::fdb_codes::is_maybe_committed(code),
        },
    }
}

/// Maps the error a watch future ends with. A watch whose transaction never
/// committed fails with whatever ended the transaction (its commit error, or
/// `transaction_cancelled` when it was dropped); the storage API calls that
/// a cancelled watch, as the embedded engine does.
pub(crate) fn map_watch_error(err: FdbError, committed: bool) -> Error {
    match err.code() {
        code::TOO_MANY_WATCHES => map_fdb_error(err),
        code::TRANSACTION_CANCELLED | code::OPERATION_CANCELLED => Error::WatchCancelled {
            reason: "cancelled by the FoundationDB client before its key changed",
        },
        _ if !committed => Error::WatchCancelled {
            reason: "its transaction did not commit",
        },
        _ => map_fdb_error(err),
    }
}
