//! The battery's cases. Each takes a fresh [`Fixture`] and panics with a
//! message naming the broken property.
#![expect(
    clippy::unwrap_used,
    reason = "the battery is test code: a failed step is a failed case"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use db::limits::{KEY_SIZE_LIMIT, TRANSACTION_SIZE_LIMIT, VALUE_SIZE_LIMIT};
use db::{Error, MaybeCommitted, MutationType, RangeOption, RetryPolicy, Versionstamp};
use futures::FutureExt;

use crate::Fixture;

/// Bound on waiting for something that must happen (a watch firing).
const MUST_HAPPEN: Duration = Duration::from_secs(10);

fn le_u64(v: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = v.len().min(8);
    buf[..n].copy_from_slice(&v[..n]);
    u64::from_le_bytes(buf)
}

async fn put(fx: &Fixture, key: &[u8], value: &[u8]) {
    let (key, value) = (key.to_vec(), value.to_vec());
    fx.db
        .run(|tx, _| {
            let (key, value) = (key.clone(), value.clone());
            async move { tx.set(&key, &value) }
        })
        .await
        .expect("setup write commits");
}

async fn read(fx: &Fixture, key: &[u8]) -> Option<Vec<u8>> {
    let key = key.to_vec();
    fx.db
        .run(|tx, _| {
            let key = key.clone();
            async move { tx.get(&key).await }
        })
        .await
        .expect("read commits")
}

/// Two transactions read the same key and both write it: the second to
/// commit must be refused, or the first one's update is lost.
pub async fn lost_update_is_refused(fx: &Fixture) {
    let k = fx.key(&("counter",));
    put(fx, &k, b"0").await;
    let t1 = fx.db.create_transaction().unwrap();
    let t2 = fx.db.create_transaction().unwrap();
    assert_eq!(t1.get(&k).await.unwrap().as_deref(), Some(&b"0"[..]));
    assert_eq!(t2.get(&k).await.unwrap().as_deref(), Some(&b"0"[..]));
    t1.set(&k, b"1").unwrap();
    t2.set(&k, b"1").unwrap();
    t1.commit().await.expect("first writer commits");
    let second = t2.commit().await;
    assert!(
        matches!(second, Err(Error::NotCommitted)),
        "second writer must conflict, got {second:?}"
    );
    assert_eq!(read(fx, &k).await.as_deref(), Some(&b"1"[..]));
}

/// Many concurrent read-modify-write increments under `run`: every one
/// lands (conflicts are retried, never lost).
pub async fn concurrent_read_modify_write_loses_nothing(fx: &Fixture) {
    const TASKS: u64 = 16;
    const EACH: u64 = 10;
    let k = fx.key(&("rmw",));
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let db = fx.db.clone();
        let k = k.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..EACH {
                db.run(|tx, _| {
                    let k = k.clone();
                    async move {
                        let n = tx.get(&k).await?.map_or(0, |v| le_u64(&v));
                        tx.set(&k, &(n + 1).to_le_bytes())
                    }
                })
                .await
                .expect("increment commits within the retry bound");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let total = read(fx, &k).await.map_or(0, |v| le_u64(&v));
    assert_eq!(total, TASKS * EACH, "an increment was lost");
}

/// Write skew: x + y ≥ 1 must hold; two transactions each check it and
/// zero a different key. Serializable isolation refuses one of them.
pub async fn write_skew_is_refused(fx: &Fixture) {
    let x = fx.key(&("oncall", "x"));
    let y = fx.key(&("oncall", "y"));
    put(fx, &x, b"1").await;
    put(fx, &y, b"1").await;
    let t1 = fx.db.create_transaction().unwrap();
    let t2 = fx.db.create_transaction().unwrap();
    for t in [&t1, &t2] {
        let on = t.get(&x).await.unwrap().is_some_and(|v| v == b"1") as u8
            + t.get(&y).await.unwrap().is_some_and(|v| v == b"1") as u8;
        assert_eq!(on, 2);
    }
    t1.set(&x, b"0").unwrap();
    t2.set(&y, b"0").unwrap();
    t1.commit().await.expect("first commits");
    let second = t2.commit().await;
    assert!(
        matches!(second, Err(Error::NotCommitted)),
        "write skew committed: {second:?}"
    );
}

/// A range read conflicts with a concurrent insert into the range (no
/// phantoms).
pub async fn phantom_insert_is_refused(fx: &Fixture) {
    let orders = fx.space.subspace(&("orders",));
    put(fx, &orders.pack(&(1,)), b"a").await;
    let reader = fx.db.create_transaction().unwrap();
    let seen = reader
        .get_range(&RangeOption::subspace(&orders), false)
        .await
        .unwrap();
    assert_eq!(seen.kvs.len(), 1);
    put(fx, &orders.pack(&(2,)), b"b").await;
    reader.set(&fx.key(&("count",)), b"1").unwrap();
    let result = reader.commit().await;
    assert!(
        matches!(result, Err(Error::NotCommitted)),
        "phantom insert went unnoticed: {result:?}"
    );
}

/// A write outside every range a transaction read does not conflict.
pub async fn insert_outside_read_range_does_not_conflict(fx: &Fixture) {
    let orders = fx.space.subspace(&("orders",));
    let reader = fx.db.create_transaction().unwrap();
    reader
        .get_range(&RangeOption::subspace(&orders), false)
        .await
        .unwrap();
    put(fx, &fx.key(&("elsewhere",)), b"x").await;
    reader.set(&fx.key(&("count",)), b"0").unwrap();
    reader
        .commit()
        .await
        .expect("no conflict outside the read range");
}

/// Reads inside a transaction see its own writes, clears and atomics.
pub async fn read_your_writes(fx: &Fixture) {
    let a = fx.key(&("a",));
    let b = fx.key(&("b",));
    let c = fx.key(&("c",));
    put(fx, &b, b"stored").await;
    put(fx, &c, &5u64.to_le_bytes()).await;
    let tx = fx.db.create_transaction().unwrap();
    assert_eq!(tx.get(&a).await.unwrap(), None);
    tx.set(&a, b"mine").unwrap();
    assert_eq!(tx.get(&a).await.unwrap().as_deref(), Some(&b"mine"[..]));
    tx.clear(&b).unwrap();
    assert_eq!(tx.get(&b).await.unwrap(), None);
    tx.add_i64(&c, 2).unwrap();
    tx.add_i64(&c, 3).unwrap();
    assert_eq!(tx.get(&c).await.unwrap().map(|v| le_u64(&v)), Some(10));
    tx.commit().await.unwrap();
    assert_eq!(read(fx, &a).await.as_deref(), Some(&b"mine"[..]));
    assert_eq!(read(fx, &b).await, None);
    assert_eq!(read(fx, &c).await.map(|v| le_u64(&v)), Some(10));
}

/// Range reads merge stored data with the transaction's own sets, clears
/// and clear-ranges.
pub async fn range_read_your_writes(fx: &Fixture) {
    let s = fx.space.subspace(&("r",));
    for i in 0..6i64 {
        put(fx, &s.pack(&(i,)), b"old").await;
    }
    let tx = fx.db.create_transaction().unwrap();
    tx.clear_range(&s.pack(&(1,)), &s.pack(&(3,))).unwrap(); // drops 1, 2
    tx.set(&s.pack(&(2,)), b"new").unwrap(); // back inside the cleared range
    tx.clear(&s.pack(&(4,))).unwrap();
    tx.set(&s.pack(&(9,)), b"new").unwrap();
    let expected: Vec<(i64, &[u8])> = vec![
        (0, b"old"),
        (2, b"new"),
        (3, b"old"),
        (5, b"old"),
        (9, b"new"),
    ];
    let got: Vec<(i64, Vec<u8>)> = tx
        .get_range_all(RangeOption::subspace(&s), false)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| (s.unpack::<(i64,)>(&kv.key).unwrap().0, kv.value))
        .collect();
    let got_ref: Vec<(i64, &[u8])> = got.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    assert_eq!(got_ref, expected, "forward merge");
    let rev: Vec<i64> = tx
        .get_range_all(RangeOption::subspace(&s).reverse(true).limit(3), false)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| s.unpack::<(i64,)>(&kv.key).unwrap().0)
        .collect();
    assert_eq!(rev, vec![9, 5, 3], "reverse merge with limit");
}

/// A snapshot read adds no read conflict: a concurrent write to the key
/// does not abort the reader.
pub async fn snapshot_read_adds_no_conflict(fx: &Fixture) {
    let k = fx.key(&("hot",));
    put(fx, &k, b"1").await;
    let reader = fx.db.create_transaction().unwrap();
    reader.get_snapshot(&k).await.unwrap();
    reader
        .get_range(&RangeOption::subspace(&fx.space), true)
        .await
        .unwrap();
    put(fx, &k, b"2").await;
    reader.set(&fx.key(&("other",)), b"x").unwrap();
    reader
        .commit()
        .await
        .expect("snapshot reads must not conflict");
}

/// Explicit read and write conflict ranges behave like reads and writes.
pub async fn explicit_conflict_ranges(fx: &Fixture) {
    let guarded = fx.space.subspace(&("guard",));
    let (begin, end) = guarded.range();
    // A read conflict range catches a write inside it.
    let t1 = fx.db.create_transaction().unwrap();
    t1.add_read_conflict_range(&begin, &end).unwrap();
    put(fx, &guarded.pack(&("x",)), b"1").await;
    t1.set(&fx.key(&("t1",)), b"1").unwrap();
    assert!(matches!(t1.commit().await, Err(Error::NotCommitted)));
    // A write conflict range (no data written) aborts a reader of it.
    let reader = fx.db.create_transaction().unwrap();
    reader.get(&guarded.pack(&("y",))).await.unwrap();
    let writer = fx.db.create_transaction().unwrap();
    writer.add_write_conflict_range(&begin, &end).unwrap();
    writer.commit().await.unwrap();
    reader.set(&fx.key(&("reader",)), b"1").unwrap();
    assert!(matches!(reader.commit().await, Err(Error::NotCommitted)));
}

/// N tasks × M atomic increments of one key total N·M, and atomic
/// increments never conflict with each other (every attempt commits).
pub async fn atomic_add_under_concurrency(fx: &Fixture) {
    const TASKS: u32 = 32;
    const EACH: u32 = 25;
    let k = fx.key(&("stock",));
    let attempts = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let (db, k, attempts) = (fx.db.clone(), k.clone(), attempts.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..EACH {
                db.run(|tx, _| {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let k = k.clone();
                    async move { tx.add_i64(&k, 1) }
                })
                .await
                .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(
        read(fx, &k).await.map(|v| le_u64(&v)),
        Some(u64::from(TASKS * EACH))
    );
    assert_eq!(
        attempts.load(Ordering::Relaxed),
        TASKS * EACH,
        "atomic adds conflicted with each other"
    );
}

/// Min, max, compare-and-clear and byte-min/max as FoundationDB applies them.
pub async fn atomic_ops_follow_foundationdb(fx: &Fixture) {
    let k = |name: &str| fx.key(&("atomic", name));
    put(fx, &k("max"), &7u64.to_le_bytes()).await;
    put(fx, &k("min"), &7u64.to_le_bytes()).await;
    put(fx, &k("cac"), b"gone").await;
    put(fx, &k("cac-keep"), b"kept").await;
    let keys: Vec<Vec<u8>> = [
        "max",
        "min",
        "min-missing",
        "cac",
        "cac-keep",
        "bytemax",
        "neg",
    ]
    .iter()
    .map(|n| k(n))
    .collect();
    fx.db
        .run(|tx, _| {
            let keys = keys.clone();
            async move {
                tx.atomic_op(&keys[0], &9u64.to_le_bytes(), MutationType::Max)?;
                tx.atomic_op(&keys[1], &3u64.to_le_bytes(), MutationType::Min)?;
                tx.atomic_op(&keys[2], &4u64.to_le_bytes(), MutationType::Min)?;
                tx.atomic_op(&keys[3], b"gone", MutationType::CompareAndClear)?;
                tx.atomic_op(&keys[4], b"other", MutationType::CompareAndClear)?;
                tx.atomic_op(&keys[5], b"abc", MutationType::ByteMax)?;
                tx.atomic_op(&keys[5], b"abd", MutationType::ByteMax)?;
                tx.add_i64(&keys[6], 10)?;
                tx.add_i64(&keys[6], -15)
            }
        })
        .await
        .unwrap();
    assert_eq!(read(fx, &k("max")).await.map(|v| le_u64(&v)), Some(9));
    assert_eq!(read(fx, &k("min")).await.map(|v| le_u64(&v)), Some(3));
    assert_eq!(
        read(fx, &k("min-missing")).await.map(|v| le_u64(&v)),
        Some(4)
    );
    assert_eq!(read(fx, &k("cac")).await, None);
    assert_eq!(
        read(fx, &k("cac-keep")).await.as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(read(fx, &k("bytemax")).await.as_deref(), Some(&b"abd"[..]));
    let neg = read(fx, &k("neg")).await.unwrap();
    assert_eq!(i64::from_le_bytes(neg.try_into().unwrap()), -5);
}

/// Versionstamped keys sort in commit order, across concurrent
/// transactions and within one (by user version), and each transaction's
/// versionstamp increases.
pub async fn versionstamps_order_commits(fx: &Fixture) {
    let log = fx.space.subspace(&("log",));
    let mut stamps = Vec::new();
    for i in 0..5i64 {
        let log = log.clone();
        let (_, info) = fx
            .db
            .run_with_info(|tx, _| {
                let log = log.clone();
                async move {
                    tx.set_versionstamped_key(
                        &log.pack_with_versionstamp(&(Versionstamp::incomplete(0),)),
                        &i.to_le_bytes(),
                    )?;
                    tx.set_versionstamped_key(
                        &log.pack_with_versionstamp(&(Versionstamp::incomplete(1),)),
                        &(100 + i).to_le_bytes(),
                    )
                }
            })
            .await
            .unwrap();
        stamps.push(
            info.versionstamp
                .expect("a writing commit has a versionstamp"),
        );
    }
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "versionstamps not increasing: {stamps:?}"
    );
    // Concurrent writers: log order must equal versionstamp order.
    let mut handles = Vec::new();
    for i in 0..16i64 {
        let (db, log) = (fx.db.clone(), log.clone());
        handles.push(tokio::spawn(async move {
            let (_, info) = db
                .run_with_info(|tx, _| {
                    let log = log.clone();
                    async move {
                        tx.set_versionstamped_key(
                            &log.pack_with_versionstamp(&(Versionstamp::incomplete(0),)),
                            &(1000 + i).to_le_bytes(),
                        )
                    }
                })
                .await
                .unwrap();
            (info.versionstamp.unwrap(), 1000 + i)
        }));
    }
    let mut concurrent = Vec::new();
    for h in handles {
        concurrent.push(h.await.unwrap());
    }
    concurrent.sort();
    let entries = {
        let log = log.clone();
        fx.db
            .run(|tx, _| {
                let log = log.clone();
                async move { tx.get_range_all(RangeOption::subspace(&log), false).await }
            })
            .await
            .unwrap()
    };
    let values: Vec<i64> = entries
        .iter()
        .map(|kv| i64::from_le_bytes(kv.value.clone().try_into().unwrap()))
        .collect();
    let mut expected: Vec<i64> = (0..5).flat_map(|i| [i, 100 + i]).collect();
    expected.extend(concurrent.iter().map(|(_, v)| *v));
    assert_eq!(values, expected, "log order differs from commit order");
    for (kv, (stamp, _)) in entries[10..].iter().zip(&concurrent) {
        let (vs,): (Versionstamp,) = log.unpack(&kv.key).unwrap();
        assert_eq!(vs.transaction_version(), stamp.as_slice());
    }
}

/// A versionstamped value receives the commit's versionstamp.
pub async fn versionstamped_value_matches_commit(fx: &Fixture) {
    let k = fx.key(&("stamped",));
    let mut value = b"v:".to_vec();
    value.extend_from_slice(&[0xff; 10]);
    value.extend_from_slice(&2u32.to_le_bytes());
    let (_, info) = {
        let (k, value) = (k.clone(), value.clone());
        fx.db
            .run_with_info(|tx, _| {
                let (k, value) = (k.clone(), value.clone());
                async move { tx.set_versionstamped_value(&k, &value) }
            })
            .await
            .unwrap()
    };
    let stored = read(fx, &k).await.unwrap();
    assert_eq!(&stored[..2], b"v:");
    assert_eq!(&stored[2..], info.versionstamp.unwrap().as_slice());
}

/// A watch resolves when its key changes, and not when another key does.
pub async fn watch_fires_on_change_not_on_unrelated_key(fx: &Fixture) {
    let k = fx.key(&("watched",));
    let other = fx.key(&("unrelated",));
    put(fx, &k, b"before").await;
    let watch = {
        let tx = fx.db.create_transaction().unwrap();
        tx.get(&k).await.unwrap();
        let w = tx.watch(&k).unwrap();
        tx.commit().await.unwrap();
        w
    };
    let mut watch = Box::pin(watch);
    put(fx, &other, b"x").await;
    put(fx, &k, b"before").await; // same value: not a change
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        watch.as_mut().now_or_never().is_none(),
        "watch fired without its key changing"
    );
    put(fx, &k, b"after").await;
    tokio::time::timeout(MUST_HAPPEN, watch)
        .await
        .expect("watch fires after its key changed")
        .expect("watch resolves Ok");
}

/// A watch set by a transaction that writes the key compares with the
/// written value; a watch whose transaction fails is cancelled.
pub async fn watch_in_writing_transaction(fx: &Fixture) {
    let k = fx.key(&("w2",));
    let tx = fx.db.create_transaction().unwrap();
    tx.set(&k, b"mine").unwrap();
    let watch = tx.watch(&k).unwrap();
    tx.commit().await.unwrap();
    let mut watch = Box::pin(watch);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        watch.as_mut().now_or_never().is_none(),
        "fired on its own write"
    );
    put(fx, &k, b"theirs").await;
    tokio::time::timeout(MUST_HAPPEN, watch)
        .await
        .unwrap()
        .unwrap();

    let loser = fx.db.create_transaction().unwrap();
    loser.get(&k).await.unwrap();
    let doomed = loser.watch(&k).unwrap();
    put(fx, &k, b"conflict").await;
    loser.set(&k, b"x").unwrap();
    assert!(loser.commit().await.is_err());
    let outcome = tokio::time::timeout(MUST_HAPPEN, doomed).await.unwrap();
    assert!(
        outcome.is_err(),
        "a failed transaction's watch must not fire Ok"
    );
}

pub async fn key_size_limit(fx: &Fixture) {
    let prefix = fx.key(&("k",));
    let mut ok = prefix.clone();
    ok.resize(KEY_SIZE_LIMIT, b'k');
    let mut big = prefix.clone();
    big.resize(KEY_SIZE_LIMIT + 1, b'k');
    let tx = fx.db.create_transaction().unwrap();
    tx.set(&ok, b"v").unwrap();
    let err = tx.set(&big, b"v").unwrap_err();
    assert!(
        matches!(err, Error::KeyTooLarge { size, limit } if size == KEY_SIZE_LIMIT + 1 && limit == KEY_SIZE_LIMIT),
        "{err:?}"
    );
    assert!(matches!(tx.get(&big).await, Err(Error::KeyTooLarge { .. })));
    assert!(matches!(tx.clear(&big), Err(Error::KeyTooLarge { .. })));
    tx.commit().await.unwrap();
    assert_eq!(read(fx, &ok).await.as_deref(), Some(&b"v"[..]));
}

/// The system keyspace (`\xff` and after) is off limits, as in
/// FoundationDB; a range may end exactly at it.
pub async fn system_keyspace_is_refused(fx: &Fixture) {
    let tx = fx.db.create_transaction().unwrap();
    let outside = |r: Result<(), Error>| matches!(r, Err(Error::KeyOutsideLegalRange { .. }));
    assert!(outside(tx.set(b"\xff/conf", b"x")));
    assert!(outside(tx.set(b"\xff", b"x")));
    assert!(outside(tx.clear(b"\xff\x00")));
    assert!(outside(tx.add_i64(b"\xffcounter", 1)));
    assert!(outside(tx.clear_range(b"\xff", b"\xff\xff")));
    assert!(outside(tx.get(b"\xff/x").await.map(|_| ())));
    assert!(outside(
        tx.get_range(
            &RangeOption::new(fx.space.bytes().to_vec(), b"\xff\x01".to_vec()),
            false
        )
        .await
        .map(|_| ())
    ));
    // The user keyspace's end is a legal exclusive bound.
    tx.get_range(
        &RangeOption::new(fx.space.bytes().to_vec(), b"\xff".to_vec()),
        false,
    )
    .await
    .unwrap();
    tx.set(&fx.key(&("fine",)), b"x").unwrap();
    tx.commit().await.unwrap();
}

pub async fn value_size_limit(fx: &Fixture) {
    let k = fx.key(&("v",));
    let tx = fx.db.create_transaction().unwrap();
    tx.set(&k, &vec![1u8; VALUE_SIZE_LIMIT]).unwrap();
    let err = tx.set(&k, &vec![1u8; VALUE_SIZE_LIMIT + 1]).unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { size, .. } if size == VALUE_SIZE_LIMIT + 1),
        "{err:?}"
    );
    assert!(matches!(
        tx.atomic_op(&k, &vec![1u8; VALUE_SIZE_LIMIT + 1], MutationType::Add),
        Err(Error::ValueTooLarge { .. })
    ));
    tx.commit().await.unwrap();
    assert_eq!(read(fx, &k).await.map(|v| v.len()), Some(VALUE_SIZE_LIMIT));
}

pub async fn transaction_size_limit(fx: &Fixture) {
    let tx = fx.db.create_transaction().unwrap();
    let value = vec![7u8; VALUE_SIZE_LIMIT];
    let mut written = 0usize;
    let mut refused = None;
    for i in 0..(TRANSACTION_SIZE_LIMIT / VALUE_SIZE_LIMIT + 2) as i64 {
        match tx.set(&fx.key(&("big", i)), &value) {
            Ok(()) => written += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(Error::TransactionTooLarge { limit, .. }) if limit == TRANSACTION_SIZE_LIMIT),
        "{refused:?}"
    );
    assert!(written >= TRANSACTION_SIZE_LIMIT / VALUE_SIZE_LIMIT - 1);
    assert!(tx.size() <= TRANSACTION_SIZE_LIMIT);
}

pub async fn invalid_ranges_are_refused(fx: &Fixture) {
    let a = fx.key(&("a",));
    let b = fx.key(&("b",));
    let tx = fx.db.create_transaction().unwrap();
    assert!(matches!(
        tx.clear_range(&b, &a),
        Err(Error::InvalidMutation { .. })
    ));
    assert!(matches!(
        tx.add_read_conflict_range(&b, &a),
        Err(Error::InvalidMutation { .. })
    ));
    assert!(matches!(
        tx.set_versionstamped_key(b"\x01\x02", b"v"),
        Err(Error::InvalidMutation { .. })
    ));
    let mut bad_offset = b"short".to_vec();
    bad_offset.extend_from_slice(&3u32.to_le_bytes());
    assert!(matches!(
        tx.set_versionstamped_key(&bad_offset, b"v"),
        Err(Error::InvalidMutation { .. })
    ));
    // An empty range reads nothing.
    let chunk = tx
        .get_range(&RangeOption::new(b.clone(), a.clone()), false)
        .await
        .unwrap();
    assert!(chunk.kvs.is_empty() && !chunk.more);
}

/// A transaction that conflicts every time hits the retry bound and says
/// so, with the last conflict as its source.
pub async fn retry_bound_gives_a_clear_error(fx: &Fixture) {
    let db = fx.db.clone().with_retry_policy(RetryPolicy {
        max_retries: 3,
        ..fx.db.retry_policy()
    });
    let k = fx.key(&("contended",));
    let attempts = Arc::new(AtomicU32::new(0));
    let result = db
        .run(|tx, _| {
            let (db, k, attempts) = (db.clone(), k.clone(), attempts.clone());
            async move {
                attempts.fetch_add(1, Ordering::Relaxed);
                tx.get(&k).await?;
                // Someone else writes what we read, every time.
                let n = attempts.load(Ordering::Relaxed);
                db.run(|other, _| {
                    let k = k.clone();
                    async move { other.set(&k, &n.to_le_bytes()) }
                })
                .await?;
                tx.set(&k, b"mine")
            }
        })
        .await;
    match result {
        Err(Error::RetryLimitReached {
            attempts: n,
            maybe_committed,
            last,
        }) => {
            assert_eq!(n, 4);
            assert!(!maybe_committed, "no attempt could have committed");
            assert!(matches!(*last, Error::NotCommitted), "{last:?}");
        }
        other => panic!("expected RetryLimitReached, got {other:?}"),
    }
    assert_eq!(attempts.load(Ordering::Relaxed), 4);
}

pub async fn timeout_gives_a_clear_error(fx: &Fixture) {
    let db = fx.db.clone().with_retry_policy(RetryPolicy {
        timeout_ms: 50,
        ..fx.db.retry_policy()
    });
    let result: Result<(), Error> = db
        .run(|_tx, _| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        })
        .await;
    assert!(
        matches!(
            result,
            Err(Error::TimedOut {
                maybe_committed: false,
                ..
            })
        ),
        "{result:?}"
    );
}

/// After a maybe-committed error the retried closure is told so.
pub async fn maybe_committed_is_reported_to_the_retry(fx: &Fixture) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let result = fx
        .db
        .run(|_tx, MaybeCommitted(maybe)| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push(maybe);
                if seen.len() == 1 {
                    Err(Error::CommitUnknownResult)
                } else {
                    Ok(())
                }
            }
        })
        .await;
    result.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![false, true]);
}

#[derive(Debug)]
enum AppError {
    OutOfStock,
    Db(Error),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Db(e)
    }
}

impl db::TxnError for AppError {
    fn as_db_error(&self) -> Option<&Error> {
        match self {
            AppError::Db(e) => Some(e),
            AppError::OutOfStock => None,
        }
    }
    fn into_db_error(self) -> Result<Error, Self> {
        match self {
            AppError::Db(e) => Ok(e),
            other => Err(other),
        }
    }
}

/// A caller's own error ends `run` at once, uncommitted.
pub async fn user_errors_are_not_retried(fx: &Fixture) {
    let k = fx.key(&("never",));
    let attempts = Arc::new(AtomicU32::new(0));
    let result: Result<(), AppError> = fx
        .db
        .run(|tx, _| {
            let (k, attempts) = (k.clone(), attempts.clone());
            async move {
                attempts.fetch_add(1, Ordering::Relaxed);
                tx.set(&k, b"x")?;
                Err(AppError::OutOfStock)
            }
        })
        .await;
    assert!(matches!(result, Err(AppError::OutOfStock)));
    assert_eq!(attempts.load(Ordering::Relaxed), 1);
    assert_eq!(
        read(fx, &k).await,
        None,
        "an aborted transaction's write landed"
    );
}

pub async fn range_reads_limit_reverse_and_stream(fx: &Fixture) {
    use futures::StreamExt;
    let s = fx.space.subspace(&("items",));
    fx.db
        .run(|tx, _| {
            let s = s.clone();
            async move {
                for i in 0..10i64 {
                    tx.set(&s.pack(&(i,)), &i.to_le_bytes())?;
                }
                Ok::<_, Error>(())
            }
        })
        .await
        .unwrap();
    let tx = fx.db.create_transaction().unwrap();
    let first = tx
        .get_range(&RangeOption::subspace(&s).limit(4), false)
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 4);
    assert!(first.more);
    let all = tx
        .get_range(&RangeOption::subspace(&s).limit(100), false)
        .await
        .unwrap();
    assert_eq!(all.kvs.len(), 10);
    assert!(!all.more);
    let last3: Vec<i64> = tx
        .get_range(&RangeOption::subspace(&s).reverse(true).limit(3), false)
        .await
        .unwrap()
        .kvs
        .iter()
        .map(|kv| s.unpack::<(i64,)>(&kv.key).unwrap().0)
        .collect();
    assert_eq!(last3, vec![9, 8, 7]);
    let chunks: Vec<Vec<db::KeyValue>> = tx
        .get_ranges(RangeOption::subspace(&s).batch_size(3), false)
        .map(|c| c.unwrap())
        .collect()
        .await;
    assert_eq!(
        chunks.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 3, 1]
    );
    let limited: usize = tx
        .get_ranges(
            RangeOption::subspace(&s)
                .batch_size(3)
                .limit(7)
                .reverse(true),
            false,
        )
        .map(|c| c.unwrap().len())
        .fold(0, |a, b| async move { a + b })
        .await;
    assert_eq!(limited, 7);
}

/// Clear-range removes exactly its range; tuple keys sort by value.
pub async fn clear_range_and_tuple_order(fx: &Fixture) {
    let s = fx.space.subspace(&("n",));
    fx.db
        .run(|tx, _| {
            let s = s.clone();
            async move {
                for i in [-5i64, -1, 0, 3, 1_000_000] {
                    tx.set(&s.pack(&(i, "x")), b"")?;
                }
                Ok::<_, Error>(())
            }
        })
        .await
        .unwrap();
    let order = |fx: &Fixture, s: db::Subspace| {
        let db = fx.db.clone();
        async move {
            db.run(|tx, _| {
                let s = s.clone();
                async move {
                    Ok::<_, Error>(
                        tx.get_range_all(RangeOption::subspace(&s), false)
                            .await?
                            .iter()
                            .map(|kv| s.unpack::<(i64, String)>(&kv.key).unwrap().0)
                            .collect::<Vec<i64>>(),
                    )
                }
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(order(fx, s.clone()).await, vec![-5, -1, 0, 3, 1_000_000]);
    fx.db
        .run(|tx, _| {
            let s = s.clone();
            async move { tx.clear_range(&s.pack(&(-1,)), &s.pack(&(4,))) }
        })
        .await
        .unwrap();
    assert_eq!(order(fx, s).await, vec![-5, 1_000_000]);
}
