//! A database behind a network link pays one round trip per read and per
//! writing commit (plus one for the read version of a transaction that
//! read nothing), and nothing for what it only buffers.

use std::time::{Duration, Instant};

use db::Link;
use db_embedded::EmbeddedOptions;

use crate::open_temp;

#[tokio::test]
async fn reads_and_writing_commits_pay_the_links_round_trip() {
    let (_engine, db, _dir) = open_temp(EmbeddedOptions::default());
    let link = Link::new(Duration::from_millis(30));
    let remote = db.over_link(&link);

    // Two reads, buffered writes, one writing commit: three round trips.
    let started = Instant::now();
    remote
        .run(|tx, _| async move {
            tx.get(b"a").await?;
            tx.get_range(&db::RangeOption::new(b"a".to_vec(), b"z".to_vec()), false)
                .await?;
            tx.set(b"k", b"v")?;
            tx.add_i64(b"n", 1)?;
            Ok::<_, db::Error>(())
        })
        .await
        .expect("commit");
    assert_eq!(link.trips(), 3);
    // A lower bound only: the link's time is paid, whatever else it costs.
    assert!(started.elapsed() >= Duration::from_millis(90));

    // A read-only transaction's commit sends nothing.
    remote
        .run(|tx, _| async move { tx.get(b"k").await })
        .await
        .expect("read");
    assert_eq!(link.trips(), 4);

    // A blind write has no read version yet: its commit fetches one first.
    remote
        .run(|tx, _| async move {
            tx.set(b"blind", b"1")?;
            Ok::<_, db::Error>(())
        })
        .await
        .expect("blind write");
    assert_eq!(link.trips(), 6);

    // The original handle has no link; the time can change in use.
    db.run(|tx, _| async move { tx.get(b"k").await })
        .await
        .expect("local read");
    assert_eq!(link.trips(), 6);
    link.set_rtt(Duration::ZERO);
    assert_eq!(link.rtt(), Duration::ZERO);
    link.set_rtt(Duration::from_secs(3600));
    assert_eq!(link.rtt(), db::link::MAX_RTT);
}

/// A cut link fails every round trip at once and applies nothing; a
/// brownout fails its share of them; neither is ever "maybe applied".
#[tokio::test]
async fn a_cut_or_browned_out_link_fails_promptly_and_applies_nothing() {
    let (_engine, db, _dir) = open_temp(EmbeddedOptions::default());
    let link = Link::new(Duration::from_millis(5));
    let remote = db.over_link(&link);
    link.set_partitioned(true);
    let err = remote
        .run(|tx, _| async move {
            tx.set(b"cut", b"1")?;
            Ok::<_, db::Error>(())
        })
        .await
        .expect_err("cut");
    assert!(matches!(err, db::Error::Unreachable { .. }), "{err:?}");
    assert!(!err.is_maybe_committed() && !err.is_retryable());
    let read = remote
        .run(|tx, _| async move { tx.get(b"cut").await })
        .await;
    assert!(
        matches!(read, Err(db::Error::Unreachable { .. })),
        "{read:?}"
    );
    // Nothing reached the store.
    let stored = db
        .run(|tx, _| async move { tx.get(b"cut").await })
        .await
        .expect("local read");
    assert_eq!(stored, None);
    assert_eq!(link.failed(), 2);

    link.set_partitioned(false);
    remote
        .run(|tx, _| async move {
            tx.set(b"healed", b"1")?;
            Ok::<_, db::Error>(())
        })
        .await
        .expect("healed");

    // Half the round trips lost, deterministically by seed.
    link.set_brownout(0.5, 7);
    let (trips, failed) = (link.trips(), link.failed());
    let mut ok = 0;
    for _ in 0..40 {
        if remote
            .run(|tx, _| async move { tx.get(b"healed").await })
            .await
            .is_ok()
        {
            ok += 1;
        }
    }
    let lost = link.failed() - failed;
    assert_eq!(link.trips() - trips, 40);
    assert_eq!(lost + ok, 40);
    assert!((5..=35).contains(&lost), "{lost} of 40 lost");
    link.set_brownout(1.0, 7);
    assert!(
        remote
            .run(|tx, _| async move { tx.get(b"healed").await })
            .await
            .is_err()
    );
    link.set_brownout(0.0, 7);
    assert!(
        remote
            .run(|tx, _| async move { tx.get(b"healed").await })
            .await
            .is_ok()
    );
}

/// A watch set through a link learns of a change half a round trip after
/// it committed at the cluster (its notification crosses back), and over a
/// cut link it fails rather than fire.
#[tokio::test]
async fn a_watch_notification_crosses_the_link_one_way() {
    let (_engine, db, _dir) = open_temp(EmbeddedOptions::default());
    let rtt = Duration::from_millis(60);
    let link = Link::new(rtt);
    let remote = db.over_link(&link);
    let watch = remote
        .run(|tx, _| async move {
            tx.get(b"w").await?;
            tx.watch(b"w")
        })
        .await
        .expect("watch set");
    // Changed at the cluster itself (no link on this side).
    db.run(|tx, _| async move {
        tx.set(b"w", b"1")?;
        Ok::<_, db::Error>(())
    })
    .await
    .expect("change");
    let changed = Instant::now();
    watch.await.expect("fired");
    // A lower bound only.
    assert!(changed.elapsed() >= rtt / 2, "{:?}", changed.elapsed());

    let watch = remote
        .run(|tx, _| async move {
            tx.get(b"w").await?;
            tx.watch(b"w")
        })
        .await
        .expect("watch set");
    link.set_partitioned(true);
    db.run(|tx, _| async move {
        tx.set(b"w", b"2")?;
        Ok::<_, db::Error>(())
    })
    .await
    .expect("change");
    let cut = watch.await;
    assert!(matches!(cut, Err(db::Error::Unreachable { .. })), "{cut:?}");
}

/// A commit crosses the link twice: it is applied (and a watcher by the
/// cluster sees it) before its answer is back, and an answer lost on a cut
/// leaves it "maybe applied", never "failed", even when the retry that
/// follows is refused outright.
#[tokio::test]
async fn a_commit_is_visible_at_the_cluster_before_its_answer_and_a_lost_answer_is_maybe_applied() {
    let (_engine, db, _dir) = open_temp(EmbeddedOptions::default());
    // Long enough that the watcher below cuts the link while the answer
    // is still on its way (the answer takes half a second to come back).
    let link = Link::new(Duration::from_secs(1));
    let remote = db.over_link(&link);
    let watch = db
        .run(|tx, _| async move {
            tx.get(b"order").await?;
            tx.watch(b"order")
        })
        .await
        .expect("watch");
    let cutter = {
        let link = link.clone();
        tokio::spawn(async move {
            watch.await.expect("the commit reached the cluster");
            link.set_partitioned(true);
        })
    };
    let err = remote
        .run(|tx, _| async move {
            tx.get(b"order").await?;
            tx.set(b"order", b"placed")?;
            Ok::<_, db::Error>(())
        })
        .await
        .expect_err("the answer was lost");
    cutter.await.expect("cutter");
    assert!(err.is_maybe_committed(), "{err:?}");
    let stored = db
        .run(|tx, _| async move { tx.get(b"order").await })
        .await
        .expect("local read");
    assert_eq!(stored.as_deref(), Some(&b"placed"[..]));
}
