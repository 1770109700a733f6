//! Regression tests from a review of the engine: a read-your-writes model
//! check, and one test per bug found (each failed before its fix).

use std::collections::BTreeMap;
use std::time::Duration;

use db::{Error, MutationType, RangeOption, RetryPolicy};
use db_embedded::EmbeddedOptions;

use crate::open_temp;

// ---------------------------------------------------------------- RYW model

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key(i: u64) -> Vec<u8> {
    vec![b'r', i as u8]
}

/// Random sets/clears/clear-ranges/atomics inside one transaction, checked
/// after every step against a BTreeMap model with get, forward/reverse,
/// limited range reads; then the commit is checked against the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ryw_matches_a_model() {
    let ops = [
        MutationType::Add,
        MutationType::BitOr,
        MutationType::Min,
        MutationType::ByteMax,
        MutationType::AppendIfFits,
        MutationType::CompareAndClear,
    ];
    for seed in 1..300u64 {
        let (_e, db, _dir) = open_temp(EmbeddedOptions::default());
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        // Stored base.
        let tx = db.create_transaction().unwrap();
        for i in 0..12 {
            if rng.below(2) == 0 {
                let v = vec![rng.below(4) as u8];
                tx.set(&key(i), &v).unwrap();
                model.insert(key(i), v);
            }
        }
        tx.commit().await.unwrap();
        let tx = db.create_transaction().unwrap();
        let mut log = Vec::new();
        for _step in 0..25 {
            match rng.below(5) {
                0 => {
                    let (k, v) = (key(rng.below(12)), vec![rng.below(4) as u8]);
                    log.push(format!("set {k:?} {v:?}"));
                    tx.set(&k, &v).unwrap();
                    model.insert(k, v);
                }
                1 => {
                    let k = key(rng.below(12));
                    log.push(format!("clear {k:?}"));
                    tx.clear(&k).unwrap();
                    model.remove(&k);
                }
                2 => {
                    let a = rng.below(12);
                    let b = a + 1 + rng.below(4);
                    log.push(format!("clear_range {a}..{b}"));
                    tx.clear_range(&key(a), &key(b)).unwrap();
                    let gone: Vec<_> = model
                        .range(key(a)..key(b))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in gone {
                        model.remove(&k);
                    }
                }
                _ => {
                    let k = key(rng.below(12));
                    let op = ops[rng.below(ops.len() as u64) as usize];
                    let p = vec![rng.below(4) as u8];
                    log.push(format!("atomic {op:?} {k:?} {p:?}"));
                    tx.atomic_op(&k, &p, op).unwrap();
                    match db::atomic::apply(op, model.get(&k).map(Vec::as_slice), &p) {
                        Some(v) => model.insert(k, v),
                        None => model.remove(&k),
                    };
                }
            }
            // Point reads.
            for i in 0..12 {
                let got = tx.get_snapshot(&key(i)).await.unwrap();
                assert_eq!(
                    got.as_ref(),
                    model.get(&key(i)),
                    "seed {seed} get {i} after {log:?}"
                );
            }
            // Range reads.
            let a = rng.below(12);
            let b = a + 1 + rng.below(12);
            let reverse = rng.below(2) == 0;
            let limit = 1 + rng.below(5) as usize;
            let batch = 1 + rng.below(3) as usize;
            let mut expect: Vec<(Vec<u8>, Vec<u8>)> = model
                .range(key(a)..key(b))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if reverse {
                expect.reverse();
            }
            expect.truncate(limit);
            let got: Vec<(Vec<u8>, Vec<u8>)> = tx
                .get_range_all(
                    RangeOption::new(key(a), key(b))
                        .reverse(reverse)
                        .limit(limit)
                        .batch_size(batch),
                    rng.below(2) == 0,
                )
                .await
                .unwrap()
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect();
            assert_eq!(
                got, expect,
                "seed {seed} range {a}..{b} rev={reverse} limit={limit} after {log:?}"
            );
        }
        tx.commit().await.unwrap();
        let tx = db.create_transaction().unwrap();
        let stored: BTreeMap<Vec<u8>, Vec<u8>> = tx
            .get_range_all(RangeOption::new(key(0), key(20)), true)
            .await
            .unwrap()
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        assert_eq!(stored, model, "seed {seed} committed state after {log:?}");
    }
}

// ------------------------------------------------- retry loop: maybe-committed

/// Attempt 1 may have committed (CommitUnknownResult), attempt 2 conflicts
/// and exhausts the retry budget. The caller is told nothing may have
/// committed, although attempt 1 may have.
#[tokio::test]
async fn retry_limit_remembers_an_earlier_maybe_committed() {
    let (_e, db, _dir) = open_temp(EmbeddedOptions::default());
    let db = db.with_retry_policy(RetryPolicy {
        max_retries: 1,
        ..RetryPolicy::default()
    });
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let result: Result<(), Error> = db
        .run(|_tx, _| {
            let n = attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                Err(if n == 0 {
                    Error::CommitUnknownResult
                } else {
                    Error::NotCommitted
                })
            }
        })
        .await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::RetryLimitReached { .. }), "{err:?}");
    assert!(
        err.is_maybe_committed(),
        "an earlier attempt may have committed, but the final error says it did not: {err:?}"
    );
}

// --------------------------------------------------------------- watches

/// `max_watches` is checked but not reserved: one transaction can register
/// any number of watches past the bound.
#[tokio::test]
async fn watch_bound_holds_within_one_transaction() {
    let (_e, db, _dir) = open_temp(EmbeddedOptions {
        max_watches: 2,
        ..EmbeddedOptions::default()
    });
    let tx = db.create_transaction().unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..100u8 {
        match tx.watch(&[b'w', i]) {
            Ok(w) => held.push(w),
            Err(Error::TooManyWatches { .. }) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    tx.commit().await.unwrap();
    assert!(
        held.len() <= 2,
        "{} watches registered with max_watches = 2 ({refused} refused)",
        held.len()
    );
}

/// A read-only transaction committed after the store closed "succeeds" and
/// registers its watch in a registry nobody will ever notify or cancel.
#[tokio::test]
async fn watch_committed_after_close_resolves() {
    let (engine, db, _dir) = open_temp(EmbeddedOptions::default());
    let tx = db.create_transaction().unwrap();
    let watch = tx.watch(b"w").unwrap();
    drop(db);
    drop(engine); // EmbeddedDatabase::drop: shutdown, join, cancel_all
    let committed = tx.commit().await;
    let outcome = tokio::time::timeout(Duration::from_secs(2), watch).await;
    assert!(
        outcome.is_ok(),
        "watch still pending 2 s after the store closed (commit said {committed:?})"
    );
}

// ---------------------------------------------------- FoundationDB semantics

/// FoundationDB's resolver only reports transaction_too_old for a
/// transaction that has read conflict ranges; a blind write commits.
#[tokio::test]
async fn blind_write_with_an_old_read_version_commits() {
    let (_e, db, _dir) = open_temp(EmbeddedOptions {
        mvcc_window: Duration::from_millis(20),
        ..EmbeddedOptions::default()
    });
    let blind = db.create_transaction().unwrap();
    let other = db.create_transaction().unwrap();
    other.set(b"a", b"1").unwrap();
    other.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    let other = db.create_transaction().unwrap();
    other.set(b"b", b"1").unwrap();
    other.commit().await.unwrap(); // evicts the first group: floor moves past `blind`
    blind.set(b"c", b"1").unwrap();
    blind.add_i64(b"n", 1).unwrap();
    blind
        .commit()
        .await
        .expect("a blind write has nothing to check, FoundationDB commits it");
}

/// FoundationDB adds no read conflict for a read answered entirely from the
/// transaction's own writes (ReadYourWrites updateConflictMap). Here
/// set-then-get conflicts with a concurrent blind write of the same key.
#[tokio::test]
async fn reading_back_own_write_adds_no_read_conflict() {
    let (_e, db, _dir) = open_temp(EmbeddedOptions::default());
    let tx = db.create_transaction().unwrap();
    tx.set(b"k", b"mine").unwrap();
    assert_eq!(tx.get(b"k").await.unwrap().as_deref(), Some(&b"mine"[..]));
    tx.clear(b"c").unwrap();
    assert_eq!(tx.get(b"c").await.unwrap(), None);
    let other = db.create_transaction().unwrap();
    other.set(b"k", b"theirs").unwrap();
    other.set(b"c", b"theirs").unwrap();
    other.commit().await.unwrap();
    tx.commit()
        .await
        .expect("FoundationDB commits: nothing read came from the database");
}

/// A writing transaction's watch compares with the value at its commit
/// point, not with what the transaction saw. A change between its read and
/// its commit is lost: the waiter sleeps although the value it acted on is
/// stale. FoundationDB (and this engine's own read-only path) fire at once.
#[tokio::test]
async fn writing_transaction_watch_sees_change_before_its_commit() {
    let (_e, db, _dir) = open_temp(EmbeddedOptions::default());
    for writing in [false, true] {
        let k: &[u8] = if writing { b"queue/w" } else { b"queue/r" };
        let waiter = db.create_transaction().unwrap();
        assert_eq!(
            waiter.get_snapshot(k).await.unwrap(),
            None,
            "queue empty: wait"
        );
        if writing {
            waiter.set(b"waiting", b"1").unwrap();
        }
        let watch = waiter.watch(k).unwrap();
        let producer = db.create_transaction().unwrap();
        producer.set(k, b"item").unwrap();
        producer.commit().await.unwrap();
        waiter.commit().await.unwrap();
        let fired = tokio::time::timeout(Duration::from_secs(1), watch).await;
        assert!(
            fired.is_ok(),
            "writing = {writing}: the item arrived after the waiter looked but the watch never fires"
        );
    }
}

/// Range bounds are not checked against the key limit; fjall keys are
/// limited to u16::MAX bytes.
#[tokio::test]
async fn huge_range_bounds() {
    let (_e, db, _dir) = open_temp(EmbeddedOptions::default());
    let tx = db.create_transaction().unwrap();
    tx.set(b"a", b"1").unwrap();
    tx.commit().await.unwrap();
    let tx = db.create_transaction().unwrap();
    let begin = vec![b'a'; 70_000];
    let end = vec![b'b'; 70_000];
    let r = tx
        .get_range(&RangeOption::new(begin, end.clone()), false)
        .await
        .unwrap();
    assert!(r.kvs.is_empty());
    let r = tx
        .get_range(&RangeOption::new(&b""[..], end).reverse(true), false)
        .await
        .unwrap();
    assert_eq!(
        r.kvs.len(),
        1,
        "the stored key is inside the (clamped) range"
    );
}
