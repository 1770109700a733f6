//! The memory store, as the deterministic simulator uses it: on a
//! single-threaded runtime with tokio's clock paused (the simulator's
//! clock), and across crashes of its host.

use std::sync::Arc;
use std::time::Duration;

use db::{Database, Error, RetryPolicy};
use db_embedded::{CrashReport, Durability, EmbeddedDatabase, EmbeddedOptions};

fn memory(durability: Durability) -> (Arc<EmbeddedDatabase>, Database) {
    let engine = Arc::new(EmbeddedDatabase::open_memory(EmbeddedOptions {
        durability,
        ..EmbeddedOptions::default()
    }));
    let db = Database::new(engine.clone()).with_retry_policy(RetryPolicy::default());
    (engine, db)
}

async fn put(db: &Database, key: &'static [u8], value: &'static [u8]) {
    db.run(|tx, _| async move {
        tx.set(key, value)?;
        Ok::<_, Error>(())
    })
    .await
    .expect("commit");
}

async fn get(db: &Database, key: &'static [u8]) -> Option<Vec<u8>> {
    db.run(|tx, _| async move { tx.get(key).await })
        .await
        .expect("read")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_crash_with_sync_durability_loses_nothing_acknowledged() {
    let (engine, db) = memory(Durability::Sync);
    put(&db, b"a", b"1").await;
    put(&db, b"b", b"2").await;
    assert_eq!(
        engine.crash(),
        Some(CrashReport {
            durable_version: 2,
            lost_groups: 0
        })
    );
    assert_eq!(get(&db, b"a").await, Some(b"1".to_vec()));
    assert_eq!(get(&db, b"b").await, Some(b"2".to_vec()));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_crash_with_buffer_durability_loses_what_was_not_synced() {
    let (engine, db) = memory(Durability::Buffer);
    put(&db, b"a", b"1").await;
    engine.sync();
    put(&db, b"a", b"2").await;
    put(&db, b"b", b"3").await;
    let report = engine.crash().expect("a memory store");
    assert_eq!(report.lost_groups, 2);
    assert_eq!(get(&db, b"a").await, Some(b"1".to_vec()));
    assert_eq!(get(&db, b"b").await, None);
    // Versions stay monotone across the crash: a new commit's versionstamp
    // is newer than every one handed out before it.
    let before = engine.version();
    put(&db, b"c", b"4").await;
    assert!(engine.version() > before);
    assert_eq!(get(&db, b"c").await, Some(b"4".to_vec()));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_transaction_across_a_crash_is_too_old_and_not_committed() {
    let (engine, db) = memory(Durability::Buffer);
    put(&db, b"a", b"1").await;
    let tx = db.create_transaction().expect("begin");
    assert_eq!(tx.get(b"a").await.expect("read"), Some(b"1".to_vec()));
    tx.set(b"a", b"from before the crash").expect("set");
    engine.crash();
    assert!(matches!(
        tx.get(b"a").await,
        Err(Error::TransactionTooOld { .. })
    ));
    let committed = tx.commit().await;
    assert!(
        matches!(committed, Err(Error::TransactionTooOld { .. })),
        "{committed:?}"
    );
    assert_eq!(get(&db, b"a").await, None, "the unsynced write is gone");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_watch_fires_when_a_crash_takes_its_value_back() {
    let (engine, db) = memory(Durability::Buffer);
    put(&db, b"w", b"1").await;
    engine.sync();
    put(&db, b"w", b"2").await;
    let watch = db
        .run(|tx, _| async move { tx.watch(b"w") })
        .await
        .expect("watch");
    engine.crash();
    tokio::time::timeout(Duration::from_secs(1), watch)
        .await
        .expect("the watch fires")
        .expect("without error");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_mvcc_window_runs_on_the_simulated_clock() {
    let (_engine, db) = memory(Durability::Sync);
    put(&db, b"a", b"1").await;
    let tx = db.create_transaction().expect("begin");
    tx.get(b"a").await.expect("read inside the window");
    // Paused time: no wall-clock wait, the simulator's clock moves.
    tokio::time::advance(EmbeddedOptions::default().mvcc_window + Duration::from_millis(1)).await;
    assert!(matches!(
        tx.get(b"a").await,
        Err(Error::TransactionTooOld { .. })
    ));
}
