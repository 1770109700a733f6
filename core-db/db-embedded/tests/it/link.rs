//! A database behind a network link pays one round trip per read and per
//! writing commit, and nothing for what it only buffers.

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

    // The original handle has no link; the time can change in use.
    db.run(|tx, _| async move { tx.get(b"k").await })
        .await
        .expect("local read");
    assert_eq!(link.trips(), 4);
    link.set_rtt(Duration::ZERO);
    assert_eq!(link.rtt(), Duration::ZERO);
    link.set_rtt(Duration::from_secs(3600));
    assert_eq!(link.rtt(), db::link::MAX_RTT);
}
