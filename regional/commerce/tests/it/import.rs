//! Bulk import: lines in chunks, resumed after a broken body or a lost
//! commit without writing any line twice (products, change events and
//! stock), stopping at a bad line with everything before it committed.

use std::collections::BTreeMap;

use commerce::catalog::{CategoryInput, Money, ProductInput};
use commerce::feed::{Change, Cursor};
use commerce::import::{CHUNK_LINES, ImportError, ImportLine};
use commerce::{Commerce, CommerceError};

use crate::harness::{World, shard};

/// Units line `i` brings to warehouse `eu` (and 2 to `ap`).
fn eu_units(i: usize) -> i64 {
    (i % 7) as i64 + 1
}

fn line(i: usize) -> ImportLine {
    ImportLine::new(
        format!("IMP-{i:05}"),
        ProductInput {
            title: format!("Imported thing {i}"),
            description: "Bulk loaded.".into(),
            category: "test".into(),
            price: Money {
                amount_minor: 100 + i as i64,
                currency: "USD".into(),
            },
            attributes: BTreeMap::new(),
            images: vec![],
        },
        [("eu".to_owned(), eu_units(i)), ("ap".to_owned(), 2)].into(),
    )
}

/// Lines `from..to` as NDJSON, in pieces of 100 lines.
fn pieces(from: usize, to: usize) -> Vec<Result<Vec<u8>, String>> {
    (from..to)
        .step_by(100)
        .map(|start| {
            let mut piece = Vec::new();
            for i in start..(start + 100).min(to) {
                serde_json::to_writer(&mut piece, &line(i)).expect("json");
                piece.push(b'\n');
            }
            Ok(piece)
        })
        .collect()
}

async fn category(c: &Commerce) {
    c.upsert_category(
        "test",
        &CategoryInput {
            name: "Test".into(),
            parent: None,
        },
    )
    .await
    .expect("category");
}

/// Every product-upsert event of the feed, by SKU.
async fn upserts(c: &Commerce) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    let mut cursor = Cursor::START;
    loop {
        let page = c.read_feed(cursor, 1_000, 0).await.expect("feed");
        if page.events.is_empty() {
            return seen;
        }
        for entry in &page.events {
            if let Change::ProductUpserted { sku } = &entry.event.change {
                *seen.entry(sku.clone()).or_default() += 1;
            }
        }
        cursor = Cursor::parse(&page.cursor).expect("cursor");
    }
}

/// Every product once, with one event each, and each warehouse's stock
/// taken in once, live and as rebuilt from the log.
async fn assert_imported_once(c: &Commerce, n: usize) {
    let count = c.for_each_product(500, |_| Ok(())).await.expect("products");
    assert_eq!(count, n);
    let events = upserts(c).await;
    assert_eq!(events.len(), n);
    assert!(events.values().all(|&k| k == 1), "an event written twice");
    for i in [0, 1, CHUNK_LINES - 1, CHUNK_LINES, n - 1] {
        let sku = format!("IMP-{i:05}");
        for (warehouse, units) in [("eu", eu_units(i)), ("ap", 2)] {
            let level = c.stock(&shard(warehouse), &sku).await.expect("stock");
            assert_eq!((level.received, level.available), (units, units), "{sku}");
            assert_eq!(
                c.rebuild_stock(&shard(warehouse), &sku).await.expect("log"),
                level
            );
        }
        assert_eq!(
            c.stock(&shard("us"), &sku).await.expect("stock").received,
            0
        );
    }
}

#[tokio::test]
async fn an_import_resumed_after_a_broken_body_writes_every_line_once() {
    let w = World::start().await;
    let c = &w.commerce;
    category(c).await;
    let n = 2 * CHUNK_LINES + 500;
    // The connection breaks after 1,700 lines: what was read is committed.
    let mut broken = pieces(0, 1_700);
    broken.push(Err("connection reset".into()));
    let mut seen = Vec::new();
    let err = c
        .import_products("catalog-1", 0, futures::stream::iter(broken), |s| {
            seen.push(s.cursor)
        })
        .await
        .expect_err("the body broke off");
    assert!(
        matches!(err, ImportError::Body { cursor: 1_700, .. }),
        "{err:?}"
    );
    assert_eq!(seen, [CHUNK_LINES as u64, 1_700]);
    // Resent whole: the first 1,700 lines are skipped.
    let report = c
        .import_products("catalog-1", 0, futures::stream::iter(pieces(0, n)), |_| {})
        .await
        .expect("import");
    assert_eq!(
        (report.skipped, report.committed),
        (1_700, (n - 1_700) as u64)
    );
    assert_eq!(report.status.cursor, n as u64);
    assert_eq!(report.status.products, n as u64);
    let units: i64 = (0..n).map(|i| eu_units(i) + 2).sum();
    assert_eq!(report.status.stock_units, units);
    assert!(!report.status.feed_cursor.is_empty());
    assert_eq!(
        c.import_status("catalog-1").await.expect("status"),
        report.status
    );
    // The rest sent from the cursor: nothing more to do.
    let again = c
        .import_products(
            "catalog-1",
            n as u64,
            futures::stream::iter(pieces(n, n)),
            |_| {},
        )
        .await
        .expect("nothing left");
    assert_eq!((again.skipped, again.committed), (0, 0));
    assert_imported_once(c, n).await;
    // A request from past the cursor would leave a hole.
    let gap = c
        .import_products(
            "catalog-1",
            n as u64 + 1,
            futures::stream::iter(pieces(0, 1)),
            |_| {},
        )
        .await
        .expect_err("gap");
    assert!(
        matches!(gap, ImportError::Gap { cursor, .. } if cursor == n as u64),
        "{gap:?}"
    );
}

#[tokio::test]
async fn a_lost_catalog_commit_is_resumed_without_taking_stock_in_twice() {
    let w = World::start().await;
    category(&w.commerce).await;
    let faults = db::fault::Faults::new();
    let us = shard("us");
    // The catalog shard's commits fail (not applied, outcome unknown),
    // after the warehouses took the chunk's stock in.
    let region = w.region("us-east", |id, database| {
        if *id == us {
            database
                .with_faults(&faults)
                .with_retry_policy(db::RetryPolicy {
                    max_retries: 1,
                    ..Default::default()
                })
        } else {
            database.clone()
        }
    });
    let n = CHUNK_LINES + 10;
    faults.unknown_not_applied(db::fault::Faults::ALWAYS);
    let err = region
        .import_products("catalog-2", 0, futures::stream::iter(pieces(0, n)), |_| {})
        .await
        .expect_err("the catalog is down");
    assert!(
        matches!(&err, ImportError::Store { cursor: 0, step, .. }
            if step == "the catalog step of lines 0..1000"),
        "{err:?}"
    );
    let level = w
        .commerce
        .stock(&shard("eu"), "IMP-00000")
        .await
        .expect("stock");
    assert_eq!(level.received, eu_units(0), "the warehouse step ran first");
    // Then a commit is applied but its answer lost: the retry finds the
    // cursor moved and writes nothing twice.
    faults.clear();
    faults.unknown_after_apply(1);
    let report = region
        .import_products("catalog-2", 0, futures::stream::iter(pieces(0, n)), |_| {})
        .await
        .expect("import");
    assert_eq!(report.status.cursor, n as u64);
    assert_eq!(report.committed, n as u64);
    assert!(faults.injected() >= 1);
    assert_imported_once(&w.commerce, n).await;
}

#[tokio::test]
async fn a_bad_line_stops_the_import_with_the_lines_before_it_committed() {
    let w = World::start().await;
    let c = &w.commerce;
    category(c).await;
    let mut body = pieces(0, 30);
    let mut bad = serde_json::to_value(line(30)).expect("json");
    bad["category"] = "nowhere".into();
    body.push(Ok(format!("{bad}\n").into_bytes()));
    body.extend(pieces(31, 40));
    let err = c
        .import_products("catalog-3", 0, futures::stream::iter(body.clone()), |_| {})
        .await
        .expect_err("unknown category");
    match &err {
        ImportError::Line {
            line: 30,
            cursor: 30,
            source: CommerceError::UnknownCategory { slug },
        } => assert_eq!(slug, "nowhere"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.for_each_product(100, |_| Ok(())).await.expect("count"),
        30
    );
    // Malformed lines, unknown fields, unknown warehouses, stock out of
    // bounds and lines past the limit are refused the same way.
    let long = format!(
        "{{\"sku\":\"{}\"}}\n",
        "A".repeat(commerce::import::MAX_LINE_BYTES)
    );
    for text in [
        "{not json}\n".to_owned(),
        r#"{"sku":"X-1","title":"t","category":"test","price":{"amount_minor":1,"currency":"USD"},"colour":"red"}"#.to_owned() + "\n",
        r#"{"sku":"X-1","title":"t","category":"test","price":{"amount_minor":1,"currency":"USD"},"stock":{"mars":1}}"#.to_owned() + "\n",
        r#"{"sku":"X-1","title":"t","category":"test","price":{"amount_minor":1,"currency":"USD"},"stock":{"eu":-1}}"#.to_owned() + "\n",
        r#"{"sku":"x 1","title":"t","category":"test","price":{"amount_minor":1,"currency":"USD"}}"#.to_owned() + "\n",
    ] {
        let err = c
            .import_products("catalog-3", 30, futures::stream::iter([Ok::<_, String>(text.clone())]), |_| {})
            .await
            .expect_err(&text);
        assert!(
            matches!(
                err,
                ImportError::Line {
                    line: 30,
                    cursor: 30,
                    source: CommerceError::Invalid { .. } | CommerceError::UnknownWarehouse { .. }
                }
            ),
            "{text}: {err:?}"
        );
    }
    let err = c
        .import_products(
            "catalog-3",
            30,
            futures::stream::iter([Ok::<_, String>(long)]),
            |_| {},
        )
        .await
        .expect_err("too long");
    assert!(
        matches!(err, ImportError::Body { cursor: 30, .. }),
        "{err:?}"
    );
    // Fixed, and resent from the cursor with blank lines between.
    let mut rest = vec![Ok(b"\n\r\n".to_vec())];
    rest.extend(pieces(32, 40));
    let report = c
        .import_products("catalog-3", 30, futures::stream::iter(rest), |_| {})
        .await
        .expect("import");
    assert_eq!(report.status.cursor, 40);
    assert_eq!(report.status.products, 38);
}

/// A bulk load reaches the search index in pages of the size asked for,
/// not in a range read's default chunks, and a full page brings the next
/// into the same pass: one pass of the feed takes an import of 5,000
/// products (more than a page) into one commit of the index, and a feed
/// read returns as many events as its limit.
#[tokio::test]
async fn one_feed_pass_indexes_an_import_of_a_few_thousand_products() {
    let w = World::start().await;
    let c = &w.commerce;
    category(c).await;
    // The first pass builds the (empty) index and gives it a cursor.
    assert_eq!(c.apply_feed(0).await.expect("rebuild"), 0);
    let n = 5 * CHUNK_LINES;
    assert!(n > commerce::feed::APPLY_PAGE && n <= commerce::feed::APPLY_BATCH);
    c.import_products("catalog-6", 0, futures::stream::iter(pieces(0, n)), |_| {})
        .await
        .expect("import");
    let page = c.read_feed(Cursor::START, 1_000, 0).await.expect("feed");
    assert_eq!(page.events.len(), 1_000);
    assert_eq!(c.apply_feed(0).await.expect("one pass"), n);
    assert_eq!(c.search_index().num_docs(), n as u64);
    assert_eq!(c.apply_feed(0).await.expect("caught up"), 0);
    // A rebuild reads and stages the catalog a page at a time: every page.
    assert!(n > 2 * commerce::feed::REBUILD_PAGE);
    assert_eq!(c.rebuild_search().await.expect("rebuild"), n);
    assert_eq!(c.search_index().num_docs(), n as u64);
}

#[tokio::test]
async fn two_requests_of_one_import_at_once_write_every_line_once() {
    let w = World::start().await;
    let c = &w.commerce;
    category(c).await;
    let n = 3 * CHUNK_LINES + 250;
    let (a, b) = futures::join!(
        c.import_products("catalog-4", 0, futures::stream::iter(pieces(0, n)), |_| {}),
        c.import_products("catalog-4", 0, futures::stream::iter(pieces(0, n)), |_| {}),
    );
    // Each line was written by one of them (or the other found it done).
    for report in [a, b] {
        assert_eq!(report.expect("import").status.cursor, n as u64);
    }
    assert_imported_once(c, n).await;
}

#[tokio::test]
async fn imported_stock_sits_in_few_slots_and_sells_to_the_last_unit() {
    let w = World::start().await;
    let c = &w.commerce;
    category(c).await;
    let slots = c.settings().stock_slots;
    assert_eq!(commerce::import::import_slots(1, slots), 1);
    assert_eq!(commerce::import::import_slots(200, slots), 4);
    assert_eq!(commerce::import::import_slots(1_000_000, slots), slots);
    let mut item = line(0);
    item.stock = [("eu".to_owned(), 200)].into();
    let body = format!("{}\n", serde_json::to_string(&item).expect("json"));
    c.import_products(
        "catalog-5",
        0,
        futures::stream::iter([Ok::<_, String>(body)]),
        |_| {},
    )
    .await
    .expect("import");
    let eu = shard("eu");
    // Units taken one reservation at a time, each starting at a random
    // slot: every unit sells, never one more.
    for n in 0..200 {
        c.reserve(&eu, &format!("r-{n}"), "IMP-00000", 1, 60_000)
            .await
            .expect("a unit");
    }
    assert!(matches!(
        c.reserve(&eu, "r-more", "IMP-00000", 1, 60_000).await,
        Err(CommerceError::OutOfStock { available: 0, .. })
    ));
    let level = c.stock(&eu, "IMP-00000").await.expect("stock");
    assert_eq!((level.available, level.reserved), (0, 200));
    assert_eq!(c.rebuild_stock(&eu, "IMP-00000").await.expect("log"), level);
}
