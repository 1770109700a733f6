//! FoundationDB's error codes and its error predicates
//! (`fdb_error_predicate` of the C client, API 7.3), in pure Rust: the
//! model `Error`'s retry classification follows. The FoundationDB backend
//! classifies every error it does not map to a variant of its own with
//! these, so the classification is tested here without `libfdb_c`, and a
//! test against a live cluster checks it against the real library.

/// Codes whose commit may have happened (`MAYBE_COMMITTED`).
pub const MAYBE_COMMITTED: &[i32] = &[
    1021, // commit_unknown_result
    1039, // cluster_version_changed
];

/// Codes that certainly did not commit and may be retried
/// (`RETRYABLE_NOT_COMMITTED`).
pub const RETRYABLE_NOT_COMMITTED: &[i32] = &[
    1007, // transaction_too_old
    1009, // future_version
    1020, // not_committed
    1037, // process_behind
    1038, // database_locked
    1042, // commit_proxy_memory_limit_exceeded
    1051, // batch_transaction_throttled
    1078, // grv_proxy_memory_limit_exceeded
    1213, // tag_throttled
    1223, // proxy_tag_throttled
    1235, // transaction_throttled_hot_shard
];

/// Whether an error with this code may have committed.
pub fn is_maybe_committed(code: i32) -> bool {
    MAYBE_COMMITTED.contains(&code)
}

/// Whether an error with this code may be retried (`RETRYABLE`: maybe
/// committed, or retryable and not committed).
pub fn is_retryable(code: i32) -> bool {
    is_maybe_committed(code) || RETRYABLE_NOT_COMMITTED.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_foundationdb() {
        // Conflicts and too-old reads: retry, nothing committed.
        for code in [1007, 1020] {
            assert!(is_retryable(code) && !is_maybe_committed(code), "{code}");
        }
        // Unknown results: retry, but it may have committed.
        for code in [1021, 1039] {
            assert!(is_retryable(code) && is_maybe_committed(code), "{code}");
        }
        // Timed out, too large, cancelled, unknown: final.
        for code in [1031, 2101, 2102, 2103, 1025, 1101, 4000, 0, -1] {
            assert!(!is_retryable(code) && !is_maybe_committed(code), "{code}");
        }
        // The lists do not overlap.
        assert!(
            RETRYABLE_NOT_COMMITTED
                .iter()
                .all(|c| !is_maybe_committed(*c))
        );
    }
}
