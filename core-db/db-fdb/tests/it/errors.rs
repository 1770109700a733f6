//! FoundationDB error codes map to the storage errors both engines share,
//! and everything else keeps FoundationDB's own error and classification.
//! Needs no cluster: `FdbError::from_code` and the error predicates are
//! plain libfdb_c functions.

use db::Error;
use db_fdb::{MAX_WATCHES, MVCC_WINDOW_MS, map_fdb_error};
use foundationdb::FdbError;

fn mapped(code: i32) -> Error {
    map_fdb_error(FdbError::from_code(code))
}

/// The engine error's code and classification, and its source's code
/// (proving the source is the `FdbError` itself, not a string).
fn engine_parts(err: &Error) -> (Option<i32>, bool, bool, i32) {
    match err {
        Error::Engine {
            source,
            code,
            retryable,
            maybe_committed,
        } => {
            let fdb = source
                .downcast_ref::<FdbError>()
                .expect("the source is the FdbError itself");
            (*code, *retryable, *maybe_committed, fdb.code())
        }
        other => panic!("expected Error::Engine, got {other:?}"),
    }
}

#[test]
fn not_committed_is_a_conflict() {
    let err = mapped(1020);
    assert!(matches!(err, Error::NotCommitted), "{err:?}");
    assert!(err.is_retryable_not_committed());
}

#[test]
fn transaction_too_old_names_the_mvcc_window() {
    let err = mapped(1007);
    assert!(
        matches!(err, Error::TransactionTooOld { window_ms } if window_ms == MVCC_WINDOW_MS),
        "{err:?}"
    );
    assert_eq!(MVCC_WINDOW_MS, 5_000);
    assert!(err.is_retryable_not_committed());
}

#[test]
fn commit_unknown_result_may_have_committed() {
    let err = mapped(1021);
    assert!(matches!(err, Error::CommitUnknownResult), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.is_maybe_committed());
}

#[test]
fn too_many_watches_names_the_limit() {
    let err = mapped(1032);
    assert!(
        matches!(err, Error::TooManyWatches { limit } if limit == MAX_WATCHES),
        "{err:?}"
    );
}

#[test]
fn reading_an_unreadable_key_is_refused_like_the_embedded_engine() {
    let err = mapped(1036);
    assert!(matches!(err, Error::InvalidMutation { .. }), "{err:?}");
}

#[test]
fn other_retryable_errors_keep_fdb_classification() {
    // future_version: retryable, certainly not committed.
    let err = mapped(1009);
    assert_eq!(engine_parts(&err), (Some(1009), true, false, 1009));
    assert!(err.is_retryable_not_committed());
    // process_behind: retryable, not committed.
    assert_eq!(engine_parts(&mapped(1037)), (Some(1037), true, false, 1037));
}

#[test]
fn other_maybe_committed_errors_stay_maybe_committed() {
    // cluster_version_changed: the commit may have happened.
    let err = mapped(1039);
    let (code, retryable, maybe_committed, source) = engine_parts(&err);
    assert_eq!((code, source), (Some(1039), 1039));
    assert_eq!(maybe_committed, err.is_maybe_committed());
    assert!(maybe_committed);
    assert!(retryable);
}

#[test]
fn non_retryable_errors_are_not_retried() {
    for code in [
        1031, // transaction_timed_out
        2000, // client_invalid_operation
        2004, // key_outside_legal_range
    ] {
        let err = mapped(code);
        assert_eq!(engine_parts(&err), (Some(code), false, false, code));
        assert!(!err.is_retryable());
    }
}

/// FoundationDB's size errors carry no sizes: without one, they stay engine
/// errors with their code (the wrapper refuses oversized keys, values and
/// transactions with the exact error before FoundationDB sees them).
#[test]
fn size_errors_without_sizes_keep_their_code() {
    for code in [2101, 2102, 2103] {
        let (mapped_code, retryable, maybe_committed, source) = engine_parts(&mapped(code));
        assert_eq!((mapped_code, source), (Some(code), code));
        assert!(!retryable && !maybe_committed);
    }
}

/// The pure-Rust predicates (`db::fdb_codes`, which CI tests without the
/// library) agree with libfdb_c's own `fdb_error_predicate` for every code
/// FoundationDB defines (1000 to 4199).
#[test]
fn pure_rust_predicates_agree_with_the_library() {
    for code in 1000..4200 {
        let fdb = FdbError::from_code(code);
        assert_eq!(
            db::fdb_codes::is_retryable(code),
            fdb.is_retryable(),
            "retryable, code {code}"
        );
        assert_eq!(
            db::fdb_codes::is_maybe_committed(code),
            fdb.is_maybe_committed(),
            "maybe committed, code {code}"
        );
    }
}
