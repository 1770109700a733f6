//! The catalog's push between regions: the catalog's home region posts
//! each change to another region's replica intake as it is written, and
//! the change arrives even when that region cannot reach the catalog
//! shard at all (so it was pushed, not pulled). The intake refuses what a
//! peer must not send.

use commerce::feed::Cursor;
use regional_server::replication::{PATH, Peer};
use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{ADMIN, Fixture, problem, shard};

/// Waits (bounded) until `region`'s replica holds `cursor`, woken by the
/// replica's own feed (a long poll), not by a timer.
async fn replica_reaches(region: &regional_server::Region, cursor: Cursor) {
    let commerce = &region.commerce;
    for _ in 0..30 {
        match commerce.replica_position().await.expect("position") {
            Some(held) if held >= cursor => {
                assert!(commerce.refresh_replica().await.expect("refresh"));
                return;
            }
            Some(held) => {
                commerce
                    .read_feed(held, 1, 1_000)
                    .await
                    .expect("long poll on the replica");
            }
            // No copy yet: make it here (as the region's puller does).
            None => {
                commerce.pull_replica(0).await.expect("copy");
            }
        }
    }
    panic!("the replica never reached {cursor}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_pushed_to_a_region_that_cannot_reach_the_catalog() {
    let f = Fixture::start().await;
    f.catalog(&[("PUSH-1", "Before", 100)]).await;
    // eu-west reaches the catalog shard over a link the test can cut.
    let link = db::Link::new(std::time::Duration::ZERO);
    let eu = f
        .other_region(
            "eu-west",
            |id, database| {
                if id == &shard("us") {
                    database.over_link(&link)
                } else {
                    database.clone()
                }
            },
            Vec::new(),
        )
        .await;
    // Its own puller makes the first copy.
    let tail = f.region.commerce.feed_tail().await.expect("tail");
    replica_reaches(&eu.region, tail).await;

    // Now eu-west cannot pull; a pushing region names it as its peer.
    link.set_partitioned(true);
    let _pusher = f
        .other_region(
            "us-east",
            |_, database| database.clone(),
            vec![Peer {
                region: "eu-west".parse().expect("region"),
                url: eu.base.clone(),
                link: None,
            }],
        )
        .await;
    f.product("PUSH-1", "After", 200).await;
    f.product("PUSH-2", "New", 300).await;
    let tail = f.region.commerce.feed_tail().await.expect("tail");
    replica_reaches(&eu.region, tail).await;
    let commerce = &eu.region.commerce;
    assert!(commerce.reads_replica());
    assert_eq!(
        commerce
            .product_uncached("PUSH-1")
            .await
            .expect("pushed")
            .title,
        "After"
    );
    assert_eq!(
        commerce
            .product_uncached("PUSH-2")
            .await
            .expect("pushed")
            .title,
        "New"
    );
    assert!(link.failed() > 0, "eu-west's puller did try, and could not");
}

#[tokio::test]
async fn the_replica_intake_takes_only_what_a_peer_may_send() {
    let f = Fixture::start().await;
    f.catalog(&[("INTAKE-1", "One", 100)]).await;
    let eu = f
        .other_region("eu-west", |_, database| database.clone(), Vec::new())
        .await;
    let url = format!("{}{PATH}", eu.base);
    let batch = f
        .region
        .commerce
        .replica_batch(Cursor::START, 0)
        .await
        .expect("batch")
        .batch;

    // No token, a wrong token: 401.
    for token in [None, Some("wrong")] {
        let mut request = f.client.post(&url).json(&batch);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        problem(
            request.send().await.expect("send"),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    // Malformed: changes out of order, unknown fields.
    let mut reversed = batch.clone();
    reversed.changes.reverse();
    let r = f
        .client
        .post(&url)
        .bearer_auth(ADMIN)
        .json(&reversed)
        .send()
        .await
        .expect("send");
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["type"], "urn:meridian:problem:bad-replica-batch");
    let r = f
        .client
        .post(&url)
        .bearer_auth(ADMIN)
        .json(&json!({ "after": "", "changes": [], "trimmed": "", "extra": 1 }))
        .send()
        .await
        .expect("send");
    assert!(r.status().is_client_error(), "{}", r.status());
    // Larger than the intake takes: 413.
    let r = f
        .client
        .post(&url)
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(vec![b' '; regional_server::api::REPLICA_BODY_LIMIT + 1])
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    // The catalog's home keeps no replica: 404, not a write anywhere.
    let r = f
        .client
        .post(format!("{}{PATH}", f.base))
        .bearer_auth(ADMIN)
        .json(&batch)
        .send()
        .await
        .expect("send");
    let body = problem(r, StatusCode::NOT_FOUND).await;
    assert_eq!(body["type"], "urn:meridian:problem:no-replica");
    // Where eu-west stands, asked as a pushing region asks.
    let standing: serde_json::Value = f
        .client
        .get(&url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(standing.get("position").is_some(), "{standing}");
}
