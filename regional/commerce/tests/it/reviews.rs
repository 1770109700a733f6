//! Reviews: written and acknowledged in the author's shard, projected into
//! the catalog shard by the outbox, copied into every replica; the summary
//! always equals what the visible reviews add up to, whatever is delivered
//! twice, at once, or after a crash.

use commerce::Commerce;
use commerce::outbox::Topic;
use commerce::reviews::{ReviewInput, ReviewSort};
use topology::ShardedId;

use crate::harness::{World, eu_west, pull_all, shard};

fn input(rating: u8, title: &str) -> ReviewInput {
    ReviewInput {
        rating,
        title: title.into(),
        body: "Worth it.".into(),
        lang: "en".into(),
        name: None,
    }
}

/// Delivers every shard's review messages (as the outbox workers do).
async fn project(c: &Commerce) -> usize {
    let mut total = 0;
    for _ in 0..1_000 {
        let mut n = 0;
        for s in ["eu", "us", "ap"] {
            n += c
                .drain_outbox(&shard(s), Topic::Reviews)
                .await
                .expect("drain");
        }
        if n == 0 {
            return total;
        }
        total += n;
    }
    panic!("the reviews outbox never emptied");
}

async fn audit_holds(c: &Commerce, sku: &str) {
    let audit = c.audit_reviews(sku).await.expect("audit");
    assert!(audit.holds(), "{sku}: {audit:?}");
}

#[tokio::test]
async fn a_review_is_acknowledged_by_its_authors_shard_alone_and_reaches_another_regions_replica() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 1_000)], 0).await;
    let (eu, link) = eu_west(&w);
    pull_all(&eu).await;
    let author = eu.new_id(&shard("eu"));
    // The catalog shard is out of reach: the write still succeeds, in the
    // author's shard.
    link.set_partitioned(true);
    let written = eu
        .put_review(&author, "MUG-1", &input(4, "Good mug"), Some("op-1"))
        .await
        .expect("acknowledged without the catalog shard");
    assert!(written.created);
    assert_eq!(written.review.revision, 1);
    assert!(written.review.id.starts_with("eu."));
    assert_eq!(
        eu.my_review(&author, "MUG-1").await.unwrap().title,
        "Good mug"
    );
    // Not shown anywhere yet.
    let page = w
        .commerce
        .reviews("MUG-1", ReviewSort::Newest, 10, None, 0)
        .await
        .unwrap();
    assert!(page.reviews.is_empty());
    // Its region's outbox cannot deliver while the catalog shard is away;
    // nothing is lost.
    assert!(eu.drain_outbox(&shard("eu"), Topic::Reviews).await.is_err());
    link.set_partitioned(false);
    assert_eq!(project(&eu).await, 1);
    pull_all(&eu).await;
    // Read in eu-west from its own replica, the catalog shard cut off.
    link.set_partitioned(true);
    let page = eu
        .reviews("MUG-1", ReviewSort::Newest, 10, None, 0)
        .await
        .expect("read from the replica");
    assert_eq!(page.reviews.len(), 1);
    assert_eq!(page.reviews[0].title, "Good mug");
    assert_eq!(page.reviews[0].name, commerce::reviews::ANONYMOUS);
    let summary = eu.review_summary("MUG-1", 0).await.unwrap();
    assert_eq!(summary.count, 1);
    assert_eq!(summary.average, Some(4.0));
    assert_eq!(summary.histogram, [0, 0, 0, 1, 0]);
    let local = eu.audit_local_reviews("MUG-1").await.unwrap();
    assert!(local.holds(), "{local:?}");
    // A caller that saw a newer catalog version than the replica holds is
    // answered from the catalog shard (reachable again).
    link.set_partitioned(false);
    let version = w.commerce.catalog_version().await.unwrap();
    let author2 = eu.new_id(&shard("eu"));
    eu.put_review(&author2, "MUG-1", &input(2, "Chipped"), None)
        .await
        .unwrap();
    project(&eu).await;
    let newer = w.commerce.catalog_version().await.unwrap();
    assert!(newer > version);
    assert_eq!(eu.review_summary("MUG-1", 0).await.unwrap().count, 1);
    assert_eq!(eu.review_summary("MUG-1", newer).await.unwrap().count, 2);
}

#[tokio::test]
async fn one_review_per_shopper_per_product_and_an_edit_moves_the_summary() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 1_000), ("MUG-2", 1_000)], 0).await;
    let c = &w.commerce;
    let author = c.new_id(&shard("us"));
    let first = c
        .put_review(&author, "MUG-1", &input(5, "Great"), Some("k1"))
        .await
        .unwrap();
    w.clock.advance_ms(1_000);
    let edit = c
        .put_review(
            &author,
            "MUG-1",
            &input(2, "Cracked after a week"),
            Some("k2"),
        )
        .await
        .unwrap();
    assert!(!edit.created);
    assert_eq!(edit.review.id, first.review.id);
    assert_eq!(edit.review.revision, 2);
    // A repeat of the first write (same key) returns the review as it is,
    // applying nothing; so does a write that changes nothing.
    let repeat = c
        .put_review(&author, "MUG-1", &input(5, "Great"), Some("k1"))
        .await
        .unwrap();
    assert_eq!(repeat.review.revision, 2);
    assert_eq!(repeat.review.rating, 2);
    let same = c
        .put_review(&author, "MUG-1", &input(2, "Cracked after a week"), None)
        .await
        .unwrap();
    assert_eq!(same.review.revision, 2);
    // Another product is another review.
    let other = c
        .put_review(&author, "MUG-2", &input(3, "Fine"), None)
        .await
        .unwrap();
    assert!(other.created);
    project(c).await;
    let summary = c.review_summary("MUG-1", 0).await.unwrap();
    assert_eq!(summary.count, 1);
    assert_eq!(summary.histogram, [0, 1, 0, 0, 0]);
    let page = c
        .reviews("MUG-1", ReviewSort::Newest, 10, None, 0)
        .await
        .unwrap();
    assert_eq!(page.reviews.len(), 1);
    assert!(page.reviews[0].edited);
    assert_eq!(page.reviews[0].title, "Cracked after a week");
    audit_holds(c, "MUG-1").await;
    // What is refused.
    for bad in [
        input(0, "x"),
        input(6, "x"),
        input(3, ""),
        input(3, "   "),
        ReviewInput {
            body: "x".repeat(commerce::reviews::MAX_BODY_LEN + 1),
            ..input(3, "long")
        },
        ReviewInput {
            lang: "english".into(),
            ..input(3, "lang")
        },
        ReviewInput {
            name: Some("two\nlines".into()),
            ..input(3, "name")
        },
    ] {
        assert!(matches!(
            c.put_review(&author, "MUG-1", &bad, None).await,
            Err(commerce::CommerceError::Invalid { .. })
        ));
    }
    assert!(matches!(
        c.put_review(&author, "NO-SUCH", &input(3, "x"), None).await,
        Err(commerce::CommerceError::UnknownSku { .. })
    ));
}

#[tokio::test]
async fn a_review_is_verified_when_its_author_bought_the_product() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 1_000)], 10).await;
    let c = &w.commerce;
    let (buyer, cart) = w.cart("eu", &[("MUG-1", 1)]).await;
    let order = c.checkout(&buyer, &cart, "buy-1").await.expect("checkout");
    assert_eq!(order.status, commerce::orders::OrderStatus::Confirmed);
    let bought = c
        .put_review(&buyer, "MUG-1", &input(5, "Bought it"), None)
        .await
        .unwrap();
    assert!(bought.review.verified);
    let browser = c.new_id(&shard("eu"));
    let not = c
        .put_review(&browser, "MUG-1", &input(1, "Never had it"), None)
        .await
        .unwrap();
    assert!(!not.review.verified);
    project(c).await;
    let page = c
        .reviews("MUG-1", ReviewSort::RatingHigh, 10, None, 0)
        .await
        .unwrap();
    assert_eq!(
        page.reviews.iter().map(|r| r.verified).collect::<Vec<_>>(),
        vec![true, false]
    );
}

#[tokio::test]
async fn a_helpful_vote_counts_once_per_shopper_and_survives_redelivery() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 1_000)], 0).await;
    let c = &w.commerce;
    let author = c.new_id(&shard("us"));
    let review = c
        .put_review(&author, "MUG-1", &input(4, "Good"), None)
        .await
        .unwrap()
        .review;
    // Not in the projection yet: no such review to vote on.
    let voter = c.new_id(&shard("ap"));
    assert!(matches!(
        c.vote_helpful(&voter, &review.id).await,
        Err(commerce::CommerceError::NotFound { .. })
    ));
    project(c).await;
    assert!(matches!(
        c.vote_helpful(&author, &review.id).await,
        Err(commerce::CommerceError::OwnReview)
    ));
    c.vote_helpful(&voter, &review.id).await.unwrap();
    c.vote_helpful(&voter, &review.id).await.unwrap();
    let second = c.new_id(&shard("eu"));
    c.vote_helpful(&second, &review.id).await.unwrap();
    // The batch is delivered, then the worker "dies" before deleting it:
    // delivered again, counted once.
    c.faults().arm_outbox_crash();
    assert!(c.drain_outbox(&shard("ap"), Topic::Reviews).await.is_err());
    project(c).await;
    let page = c
        .reviews("MUG-1", ReviewSort::Helpful, 10, None, 0)
        .await
        .unwrap();
    assert_eq!(page.reviews[0].helpful, 2);
    audit_holds(c, "MUG-1").await;
    for bad in ["", "not-an-id", "eu.nope"] {
        assert!(matches!(
            c.vote_helpful(&voter, bad).await,
            Err(commerce::CommerceError::Invalid { .. })
        ));
    }
}

#[tokio::test]
async fn a_hidden_review_leaves_every_listing_and_the_summary_until_restored() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 1_000)], 0).await;
    let c = &w.commerce;
    let mut ids = Vec::new();
    for (i, rating) in [5u8, 1, 4].into_iter().enumerate() {
        let author = c.new_id(&shard(["eu", "us", "ap"][i]));
        let r = c
            .put_review(&author, "MUG-1", &input(rating, "r"), None)
            .await
            .unwrap();
        ids.push(r.review.id);
    }
    project(c).await;
    let hidden = c.moderate_review(&ids[1], true).await.unwrap();
    assert!(hidden.hidden);
    // Hiding twice changes nothing more.
    assert_eq!(
        c.moderate_review(&ids[1], true).await.unwrap().revision,
        hidden.revision
    );
    project(c).await;
    let summary = c.review_summary("MUG-1", 0).await.unwrap();
    assert_eq!((summary.count, summary.histogram), (2, [0, 0, 0, 1, 1]));
    for sort in [
        ReviewSort::Newest,
        ReviewSort::Helpful,
        ReviewSort::RatingHigh,
        ReviewSort::RatingLow,
    ] {
        let page = c.reviews("MUG-1", sort, 10, None, 0).await.unwrap();
        assert!(page.reviews.iter().all(|r| r.id != ids[1]), "{sort:?}");
        assert_eq!(page.reviews.len(), 2);
    }
    audit_holds(c, "MUG-1").await;
    c.moderate_review(&ids[1], false).await.unwrap();
    project(c).await;
    assert_eq!(c.review_summary("MUG-1", 0).await.unwrap().count, 3);
    audit_holds(c, "MUG-1").await;
    assert!(matches!(
        c.moderate_review("eu.01ARZ3NDEKTSV4RRFFQ69G5FAV", true)
            .await,
        Err(commerce::CommerceError::NotFound { .. })
    ));
}

#[tokio::test]
async fn pages_follow_each_order_to_the_end() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 1_000)], 0).await;
    let c = &w.commerce;
    let mut authors = Vec::new();
    for i in 0..23u64 {
        w.clock.advance_ms(10);
        let author = c.new_id(&shard(["eu", "us", "ap"][(i % 3) as usize]));
        c.put_review(
            &author,
            "MUG-1",
            &input((i % 5 + 1) as u8, &format!("r{i}")),
            None,
        )
        .await
        .unwrap();
        authors.push(author);
    }
    project(c).await;
    // Some votes, so the helpful order means something.
    let page = c
        .reviews("MUG-1", ReviewSort::Newest, 50, None, 0)
        .await
        .unwrap();
    for (n, review) in page.reviews.iter().take(4).enumerate() {
        for voter in authors.iter().take(n + 1) {
            let _ = c.vote_helpful(voter, &review.id).await;
        }
    }
    project(c).await;
    for sort in [
        ReviewSort::Newest,
        ReviewSort::Helpful,
        ReviewSort::RatingHigh,
        ReviewSort::RatingLow,
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = c
                .reviews("MUG-1", sort, 10, after.as_deref(), 0)
                .await
                .unwrap();
            seen.extend(page.reviews);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{sort:?}");
        let mut ids: Vec<_> = seen.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 23, "{sort:?}: a review on two pages");
        let ordered = seen.windows(2).all(|p| {
            let (a, b) = (&p[0], &p[1]);
            match sort {
                ReviewSort::Newest => a.created_ms >= b.created_ms,
                ReviewSort::Helpful => (a.helpful, a.created_ms) >= (b.helpful, b.created_ms),
                ReviewSort::RatingHigh => (a.rating, a.created_ms) >= (b.rating, b.created_ms),
                ReviewSort::RatingLow => {
                    a.rating < b.rating || (a.rating == b.rating && a.created_ms >= b.created_ms)
                }
            }
        });
        assert!(ordered, "{sort:?}");
    }
    assert!(
        c.reviews("MUG-1", ReviewSort::Newest, 10, Some("zz"), 0)
            .await
            .is_err()
    );
    assert!(
        c.reviews("MUG-1", ReviewSort::Newest, 0, None, 0)
            .await
            .is_err()
    );
    assert!(
        c.reviews("MUG-1", ReviewSort::Newest, 51, None, 0)
            .await
            .is_err()
    );
}

/// Shoppers of three shards write, edit, vote and get hidden at once,
/// while two regions deliver the same queues at once and deliveries crash
/// before deleting their batch: the summary equals the visible reviews,
/// every helpful count the votes counted, in the catalog shard and in a
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_equals_the_visible_reviews_under_concurrency_and_redelivery() {
    let w = World::start().await;
    w.catalog(&[("MUG-1", 1_000), ("MUG-2", 1_000)], 0).await;
    let c = w.commerce.clone();
    let (eu, _link) = eu_west(&w);
    pull_all(&eu).await;
    let shoppers: Vec<ShardedId> = (0..24)
        .map(|i| c.new_id(&shard(["eu", "us", "ap"][i % 3])))
        .collect();
    // Round 1: everyone reviews both products at once.
    let mut writes = tokio::task::JoinSet::new();
    for (i, s) in shoppers.iter().enumerate() {
        for sku in ["MUG-1", "MUG-2"] {
            let (c, s) = (c.clone(), s.clone());
            writes.spawn(async move {
                c.put_review(&s, sku, &input((i % 5 + 1) as u8, "first"), None)
                    .await
                    .map(|w| w.review.id)
            });
        }
    }
    let mut ids = Vec::new();
    while let Some(r) = writes.join_next().await {
        ids.push(r.unwrap().unwrap());
    }
    // Both regions deliver at once; eu-west's deliveries crash now and
    // then before deleting what they delivered.
    let deliver = |region: Commerce, crashes: bool| async move {
        for round in 0..200 {
            if crashes && round % 3 == 0 {
                region.faults().arm_outbox_crash();
            }
            let mut n = 0;
            for s in ["eu", "us", "ap"] {
                n += region
                    .drain_outbox(&shard(s), Topic::Reviews)
                    .await
                    .unwrap_or(1);
            }
            if n == 0 {
                break;
            }
        }
    };
    tokio::join!(deliver(c.clone(), false), deliver(eu.clone(), true));
    project(&c).await;
    // Round 2: edits, votes and moderation at once, delivered the same way.
    let mut work = tokio::task::JoinSet::new();
    for (i, s) in shoppers.iter().enumerate() {
        let (c, s) = (c.clone(), s.clone());
        let ids = ids.clone();
        work.spawn(async move {
            if i % 2 == 0 {
                c.put_review(&s, "MUG-1", &input(((i + 2) % 5 + 1) as u8, "edited"), None)
                    .await
                    .map(|_| ())
                    .unwrap();
            }
            for id in ids.iter().skip(i % 5).step_by(4) {
                match c.vote_helpful(&s, id).await {
                    Ok(()) | Err(commerce::CommerceError::OwnReview) => {}
                    Err(e) => panic!("vote: {e}"),
                }
            }
        });
    }
    for id in ids.iter().step_by(7) {
        let (c, id) = (c.clone(), id.clone());
        work.spawn(async move {
            c.moderate_review(&id, true).await.unwrap();
        });
    }
    while let Some(r) = work.join_next().await {
        r.unwrap();
    }
    tokio::join!(deliver(c.clone(), true), deliver(eu.clone(), true));
    project(&c).await;
    pull_all(&eu).await;
    for sku in ["MUG-1", "MUG-2"] {
        let audit = c.audit_reviews(sku).await.unwrap();
        assert!(audit.holds(), "{sku}: {audit:?}");
        assert_eq!(audit.reviews, 24);
        assert!(audit.stored.count < 24, "some were hidden");
        let local = eu.audit_local_reviews(sku).await.unwrap();
        assert!(local.holds(), "{sku} in eu-west's replica: {local:?}");
        assert_eq!(local.stored, audit.stored);
    }
}
