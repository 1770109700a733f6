//! Key arithmetic and classification.

use db::keys::{key_after, prefix_range, strinc, versionstamp_bytes};
use db::{Error, Subspace, versionstamp_placeholder};
use proptest::prelude::*;

proptest! {
    #[test]
    fn strinc_bounds_every_extension(prefix in proptest::collection::vec(any::<u8>(), 1..8), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut key = prefix.clone();
        key.extend(&tail);
        if let Some(end) = strinc(&prefix) {
            prop_assert!(key < end);
            prop_assert!(prefix < end);
        } else {
            prop_assert!(prefix.iter().all(|b| *b == 0xff));
        }
    }

    #[test]
    fn key_after_is_the_next_key(key in proptest::collection::vec(any::<u8>(), 0..8)) {
        let next = key_after(&key);
        prop_assert!(key < next);
        prop_assert_eq!(next.len(), key.len() + 1);
    }

    #[test]
    fn versionstamps_sort_by_version_then_order(a: (u64, u16), b: (u64, u16)) {
        prop_assert_eq!(versionstamp_bytes(a.0, a.1).cmp(&versionstamp_bytes(b.0, b.1)), a.cmp(&b));
    }
}

#[test]
fn strinc_examples() {
    assert_eq!(strinc(b"ab"), Some(b"ac".to_vec()));
    assert_eq!(strinc(b"a\xff\xff"), Some(b"b".to_vec()));
    assert_eq!(strinc(b"\xff"), None);
    assert_eq!(prefix_range(b"").1, vec![0xff]);
}

#[test]
fn subspace_versionstamp_placeholder_is_found() {
    let s = Subspace::from_bytes(b"log".to_vec());
    let key = s.pack_with_versionstamp(&(db::Versionstamp::incomplete(3),));
    let (offset, real_len) = versionstamp_placeholder(&key).expect("placeholder");
    assert_eq!(real_len, key.len() - 4);
    assert_eq!(&key[offset..offset + 10], &[0xff; 10]);
}

#[test]
fn classification_matches_foundationdb() {
    assert!(Error::NotCommitted.is_retryable_not_committed());
    assert!(Error::TransactionTooOld { window_ms: 5000 }.is_retryable_not_committed());
    assert!(
        Error::CommitUnknownResult.is_retryable()
            && Error::CommitUnknownResult.is_maybe_committed()
    );
    let timed_out = Error::TimedOut {
        elapsed: std::time::Duration::from_secs(1),
        maybe_committed: true,
    };
    assert!(!timed_out.is_retryable() && timed_out.is_maybe_committed());
    let gave_up = Error::RetryLimitReached {
        attempts: 3,
        maybe_committed: false,
        last: Box::new(Error::CommitUnknownResult),
    };
    assert!(!gave_up.is_retryable() && gave_up.is_maybe_committed());
    let earlier = Error::RetryLimitReached {
        attempts: 3,
        maybe_committed: true,
        last: Box::new(Error::NotCommitted),
    };
    assert!(earlier.is_maybe_committed());
    assert!(!Error::KeyTooLarge { size: 1, limit: 0 }.is_retryable());
}
