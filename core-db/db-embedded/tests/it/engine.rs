//! Engine-specific properties: group commit, reopen, MVCC window, watch
//! bound, shard map.

use std::sync::Arc;
use std::time::Duration;

use db::{Database, Error, RetryPolicy, Subspace};
use db_embedded::{EmbeddedDatabase, EmbeddedOptions, open_shard_map};
use topology::{LOCAL_TOPOLOGY, ShardedId, Topology};

use crate::open_temp;

/// 64 concurrent committers share fsyncs: fewer groups than transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_groups() {
    let (engine, db, _dir) = open_temp(EmbeddedOptions::default());
    let mut handles = Vec::new();
    for t in 0..64u32 {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..20u32 {
                db.run(|tx, _| async move { tx.set(format!("k/{t}/{i}").as_bytes(), b"v") })
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let stats = engine.stats();
    assert_eq!(stats.transactions_committed, 64 * 20);
    assert!(
        stats.groups_committed < stats.transactions_committed / 2,
        "no group commit: {stats:?}"
    );
}

/// The commit queue is bounded in bytes as well as in count: commits that
/// do not fit wait for room instead of piling up in memory, and each gives
/// its room back once written (else the later ones here would wait
/// forever). One transaction larger than the whole budget still commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commit_queue_is_bounded_in_bytes() {
    const BUDGET: usize = 4 * 1024;
    let (engine, db, _dir) = open_temp(EmbeddedOptions {
        commit_queue_bytes: BUDGET,
        durability: db_embedded::Durability::Buffer,
        ..EmbeddedOptions::default()
    });
    let writers = async {
        let mut handles = Vec::new();
        for t in 0..32u32 {
            let db = db.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..10u32 {
                    // 1 KiB each: at most three fit the budget at a time.
                    let value = vec![u8::try_from(t).unwrap(); 1024];
                    db.run(|tx, _| {
                        let value = value.clone();
                        async move { tx.set(format!("b/{t}/{i}").as_bytes(), &value) }
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        // Four times the budget in one transaction.
        db.run(|tx, _| async move { tx.set(b"big", &vec![7u8; 4 * BUDGET]) })
            .await
            .unwrap();
    };
    tokio::time::timeout(Duration::from_secs(30), writers)
        .await
        .expect("commits waiting for the byte budget all got through");
    assert_eq!(engine.stats().transactions_committed, 32 * 10 + 1);
    let (first, big) = db
        .run(|tx, _| async move { Ok::<_, Error>((tx.get(b"b/31/9").await?, tx.get(b"big").await?)) })
        .await
        .unwrap();
    assert_eq!(first, Some(vec![31u8; 1024]));
    assert_eq!(big.map(|v| v.len()), Some(4 * BUDGET));
}

/// Data, the commit version and versionstamp order survive a clean reopen.
#[tokio::test]
async fn reopen_keeps_data_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let first_stamp;
    {
        let db = EmbeddedDatabase::open_database(
            dir.path(),
            EmbeddedOptions::default(),
            RetryPolicy::default(),
        )
        .unwrap();
        let (_, info) = db
            .run_with_info(|tx, _| async move { tx.set(b"persisted", b"yes") })
            .await
            .unwrap();
        first_stamp = info.versionstamp.unwrap();
    }
    let engine = EmbeddedDatabase::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert!(engine.version() >= 1);
    let db = Database::new(Arc::new(engine));
    let (value, info) = db
        .run_with_info(|tx, _| async move {
            tx.set(b"second", b"1")?;
            tx.get(b"persisted").await
        })
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some(&b"yes"[..]));
    assert!(
        info.versionstamp.unwrap() > first_stamp,
        "versionstamps went backwards after reopen"
    );
}

/// A transaction older than the MVCC window is refused as too old.
#[tokio::test]
async fn transactions_past_the_mvcc_window_are_too_old() {
    let (_engine, db, _dir) = open_temp(EmbeddedOptions {
        mvcc_window: Duration::from_millis(20),
        ..EmbeddedOptions::default()
    });
    let tx = db.create_transaction().unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    let err = tx.get(b"k").await.unwrap_err();
    assert!(matches!(err, Error::TransactionTooOld { .. }), "{err:?}");
    assert!(err.is_retryable());
}

/// Watches are bounded; a dropped watch frees its slot.
#[tokio::test]
async fn watches_are_bounded() {
    let (_engine, db, _dir) = open_temp(EmbeddedOptions {
        max_watches: 2,
        ..EmbeddedOptions::default()
    });
    let mut held = Vec::new();
    for i in 0..2u8 {
        let tx = db.create_transaction().unwrap();
        held.push(tx.watch(&[i]).unwrap());
        tx.commit().await.unwrap();
    }
    let tx = db.create_transaction().unwrap();
    assert!(matches!(
        tx.watch(b"x"),
        Err(Error::TooManyWatches { limit: 2 })
    ));
    held.pop();
    tx.watch(b"x").expect("a dropped watch frees its slot");
}

/// Closing the database cancels outstanding watches instead of leaving
/// them pending forever.
#[tokio::test]
async fn closing_cancels_watches() {
    let (engine, db, _dir) = open_temp(EmbeddedOptions::default());
    let tx = db.create_transaction().unwrap();
    let watch = tx.watch(b"w").unwrap();
    tx.commit().await.unwrap();
    drop(tx);
    drop(db);
    drop(engine);
    let outcome = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Err(Error::WatchCancelled { .. })),
        "{outcome:?}"
    );
}

/// One store per shard of the local topology; ids route to their shard's
/// store and stores are independent.
#[tokio::test]
async fn shard_map_opens_one_store_per_shard() {
    let topology = Topology::from_toml_str(LOCAL_TOPOLOGY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shards = open_shard_map(
        dir.path(),
        &topology,
        &EmbeddedOptions::default(),
        RetryPolicy::default(),
    )
    .unwrap();
    assert_eq!(shards.len(), topology.shards().len());
    for shard in topology.shards() {
        assert!(dir.path().join(shard.id().as_str()).is_dir());
    }
    let cart: ShardedId = "eu.01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let carts = Subspace::from_bytes(b"cart".to_vec());
    let key = carts.pack(&(cart.to_string(),));
    {
        let key = key.clone();
        shards
            .for_id(&cart)
            .unwrap()
            .run(|tx, _| {
                let key = key.clone();
                async move { tx.set(&key, b"in eu") }
            })
            .await
            .unwrap();
    }
    for (shard, db) in shards.iter() {
        let key = key.clone();
        let found = db
            .run(|tx, _| {
                let key = key.clone();
                async move { tx.get(&key).await }
            })
            .await
            .unwrap();
        assert_eq!(found.is_some(), shard.as_str() == "eu", "shard {shard}");
    }
    let foreign: ShardedId = "zz.01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    assert!(shards.for_id(&foreign).is_err());
}
