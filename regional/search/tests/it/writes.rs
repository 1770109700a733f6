//! Upserts, deletes and rebuilds, and what searches see after them.

use search::{SearchError, SearchIndex, SearchQuery, Sort};

use crate::support::{all, catalog, catalog_index, doc, id_set, ids, index_with, run, text};

#[test]
fn finds_by_a_word_of_the_title() {
    let index = catalog_index();
    let page = run(&index, &text("jacket"));
    assert_eq!(id_set(&page), ["p03", "p04"]);
    assert_eq!(page.total, 2);
}

#[test]
fn finds_by_a_word_of_the_description() {
    let index = catalog_index();
    assert_eq!(ids(&run(&index, &text("grippy"))), ["p01"]);
    assert_eq!(ids(&run(&index, &text("merino"))), ["p05"]);
}

#[test]
fn hits_carry_the_stored_fields() {
    let index = catalog_index();
    let page = run(&index, &text("mug"));
    assert_eq!(page.hits.len(), 1);
    let hit = &page.hits[0];
    assert_eq!(hit.id, "p07");
    assert_eq!(hit.title, "Café mug");
    assert_eq!(hit.category, "kitchen");
    assert_eq!(hit.price_minor, 900);
    assert_eq!(hit.currency, "EUR");
    assert!(hit.score > 0.0, "a text match scores above 0: {hit:?}");
}

#[test]
fn text_is_stemmed_lowercased_and_folded() {
    let index = catalog_index();
    assert_eq!(id_set(&run(&index, &text("JACKETS"))), ["p03", "p04"]);
    assert_eq!(id_set(&run(&index, &text("run"))), ["p01", "p06"]);
    assert_eq!(ids(&run(&index, &text("cafe"))), ["p07"]);
}

#[test]
fn every_term_must_match() {
    let index = catalog_index();
    assert_eq!(id_set(&run(&index, &text("trail"))), ["p01", "p08"]);
    assert_eq!(ids(&run(&index, &text("trail shoe"))), ["p01"]);
    assert_eq!(run(&index, &text("trail jacket")).total, 0);
}

#[test]
fn a_title_match_outranks_a_description_match() {
    let index = catalog_index();
    // p02 has "boot" in its title, p05 only in its description.
    let page = run(&index, &text("boot"));
    assert_eq!(ids(&page), ["p02", "p05"]);
    assert!(page.hits[0].score > page.hits[1].score, "{:?}", page.hits);
}

#[test]
fn absent_or_empty_text_matches_everything() {
    let index = catalog_index();
    assert_eq!(run(&index, &all()).total, 8);
    assert_eq!(run(&index, &text("")).total, 8);
    assert_eq!(run(&index, &text("   ")).total, 8);
    assert_eq!(index.num_docs(), 8);
}

#[test]
fn upserting_an_id_again_replaces_the_document() {
    let index = index_with(vec![doc("p01", "Old kettle", "Rusty.", "kitchen", 100)]);
    index
        .apply(
            vec![doc("p01", "New teapot", "Shiny.", "kitchen", 250)],
            Vec::new(),
            "c1",
        )
        .expect("second upsert");

    assert_eq!(index.num_docs(), 1);
    let page = run(&index, &all());
    assert_eq!(page.total, 1);
    assert_eq!(page.hits[0].title, "New teapot");
    assert_eq!(page.hits[0].price_minor, 250);
    assert_eq!(run(&index, &text("kettle")).total, 0);
    assert_eq!(run(&index, &text("teapot")).total, 1);
}

#[test]
fn the_last_upsert_of_an_id_in_a_batch_wins() {
    let index = index_with(vec![
        doc("p01", "First", "", "c", 1),
        doc("p01", "Second", "", "c", 2),
        doc("p01", "Third", "", "c", 3),
    ]);
    assert_eq!(index.num_docs(), 1);
    let page = run(&index, &all());
    assert_eq!(page.total, 1);
    assert_eq!(page.hits[0].title, "Third");
}

#[test]
fn delete_removes_the_document() {
    let index = catalog_index();
    index
        .apply(
            Vec::new(),
            vec!["p03".to_owned(), "absent".to_owned()],
            "c1",
        )
        .expect("delete");
    assert_eq!(index.num_docs(), 7);
    assert_eq!(ids(&run(&index, &text("jacket"))), ["p04"]);
    assert_eq!(run(&index, &text("packable")).total, 0);
}

#[test]
fn a_delete_in_the_same_batch_as_an_upsert_wins() {
    let index = catalog_index();
    index
        .apply(
            vec![doc("p09", "Camp stove", "", "kitchen", 4_000)],
            vec!["p09".to_owned()],
            "c1",
        )
        .expect("batch");
    assert_eq!(index.num_docs(), 8);
    assert_eq!(run(&index, &text("stove")).total, 0);
}

#[test]
fn a_deleted_id_can_come_back() {
    let index = catalog_index();
    index
        .apply(Vec::new(), vec!["p07".to_owned()], "c1")
        .expect("delete");
    index
        .apply(
            vec![doc("p07", "Enamel mug", "", "kitchen", 1_100)],
            Vec::new(),
            "c2",
        )
        .expect("re-add");
    let page = run(&index, &text("mug"));
    assert_eq!(ids(&page), ["p07"]);
    assert_eq!(page.hits[0].title, "Enamel mug");
}

#[test]
fn an_invalid_document_rejects_the_whole_batch() {
    let index = catalog_index();
    let err = index
        .apply(
            vec![doc("p09", "Fine", "", "c", 1), doc("", "No id", "", "c", 1)],
            vec!["p01".to_owned()],
            "c1",
        )
        .expect_err("empty id");
    assert!(
        matches!(
            err,
            SearchError::InvalidDocument {
                position: 1,
                reason: "id is empty"
            }
        ),
        "{err:?}"
    );
    assert!(!err.maybe_committed());
    assert_eq!(index.num_docs(), 8);
    assert_eq!(index.cursor().as_deref(), Some("c0"));
    assert_eq!(run(&index, &text("fine")).total, 0);
}

#[test]
fn an_invalid_delete_id_rejects_the_whole_batch() {
    let index = catalog_index();
    let err = index
        .apply(
            Vec::new(),
            vec!["p01".to_owned(), "x".repeat(search::MAX_ID_BYTES + 1)],
            "c1",
        )
        .expect_err("id too long");
    assert!(
        matches!(err, SearchError::InvalidDeleteId { position: 1, .. }),
        "{err:?}"
    );
    assert_eq!(index.num_docs(), 8);
}

#[test]
fn writes_after_a_rejected_batch_still_work() {
    let index = catalog_index();
    index
        .apply(vec![doc("", "", "", "", 0)], Vec::new(), "bad")
        .expect_err("invalid");
    index
        .apply(
            vec![doc("p09", "Camp stove", "", "kitchen", 4_000)],
            Vec::new(),
            "c1",
        )
        .expect("valid batch");
    assert_eq!(index.num_docs(), 9);
    assert_eq!(index.cursor().as_deref(), Some("c1"));
}

#[test]
fn rebuild_replaces_all_content() {
    let index = catalog_index();
    let taken = index
        .rebuild(
            vec![
                doc("n1", "Kayak paddle", "Carbon shaft.", "water", 20_000),
                doc("n2", "Dry bag", "Keeps your jacket dry.", "water", 2_500),
            ],
            "rebuilt-1",
        )
        .expect("rebuild");
    assert_eq!(taken, 2);
    assert_eq!(index.num_docs(), 2);
    assert_eq!(index.cursor().as_deref(), Some("rebuilt-1"));
    assert_eq!(id_set(&run(&index, &all())), ["n1", "n2"]);
    // "jacket" now only matches the new description.
    assert_eq!(ids(&run(&index, &text("jacket"))), ["n2"]);
    assert_eq!(run(&index, &text("trail")).total, 0);
}

#[test]
fn rebuild_accepts_any_iterator_and_dedups_ids() {
    let index = catalog_index();
    let docs = (0..5).map(|i| doc("same", &format!("Version {i}"), "", "c", i));
    assert_eq!(index.rebuild(docs, "r").expect("rebuild"), 5);
    assert_eq!(index.num_docs(), 1);
    assert_eq!(run(&index, &all()).hits[0].title, "Version 4");
}

#[test]
fn rebuild_to_nothing_empties_the_index() {
    let index = catalog_index();
    assert_eq!(index.rebuild(Vec::new(), "empty").expect("rebuild"), 0);
    assert_eq!(index.num_docs(), 0);
    assert_eq!(run(&index, &all()).total, 0);
}

#[test]
fn a_failed_rebuild_keeps_the_old_content() {
    let index = catalog_index();
    let mut docs = catalog();
    docs[3].currency.clear();
    let err = index.rebuild(docs, "r1").expect_err("empty currency");
    assert!(
        matches!(
            err,
            SearchError::InvalidDocument {
                position: 3,
                reason: "currency is empty"
            }
        ),
        "{err:?}"
    );
    assert_eq!(index.num_docs(), 8);
    assert_eq!(index.cursor().as_deref(), Some("c0"));
    // ...and the writer is usable again.
    index
        .apply(Vec::new(), vec!["p01".to_owned()], "c1")
        .expect("apply");
    assert_eq!(index.num_docs(), 7);
}

/// A staged rebuild takes its documents a batch at a time; searches see
/// the old content until its commit, and other writes are refused
/// meanwhile rather than publish half of it.
#[test]
fn a_staged_rebuild_publishes_its_batches_at_its_commit() {
    let index = std::sync::Arc::new(catalog_index());
    let mut rebuild = index.begin_rebuild().expect("begin");
    rebuild
        .add(vec![doc(
            "n1",
            "Kayak paddle",
            "Carbon shaft.",
            "water",
            20_000,
        )])
        .expect("first batch");
    rebuild
        .add((2..5).map(|i| doc(&format!("n{i}"), "Dry bag", "Roll top.", "water", i)))
        .expect("second batch");
    assert_eq!(rebuild.taken(), 4);
    assert_eq!(index.num_docs(), 8, "the old content until the commit");
    let err = index
        .apply(Vec::new(), vec!["p01".to_owned()], "c1")
        .expect_err("a write during the rebuild");
    assert!(matches!(err, SearchError::RebuildInProgress), "{err:?}");
    assert!(matches!(
        index.begin_rebuild().expect_err("a second rebuild"),
        SearchError::RebuildInProgress
    ));
    assert_eq!(rebuild.commit("rebuilt-2").expect("commit"), 4);
    assert_eq!(id_set(&run(&index, &all())), ["n1", "n2", "n3", "n4"]);
    assert_eq!(index.cursor().as_deref(), Some("rebuilt-2"));
    index
        .apply(Vec::new(), vec!["n1".to_owned()], "c3")
        .expect("writes go on after the commit");
    assert_eq!(index.num_docs(), 3);
}

/// A staged rebuild dropped before its commit, or ended by a bad
/// document, leaves the old content and the writer free.
#[test]
fn a_dropped_or_failed_staged_rebuild_keeps_the_old_content() {
    let index = std::sync::Arc::new(catalog_index());
    let mut rebuild = index.begin_rebuild().expect("begin");
    rebuild
        .add(vec![doc("n1", "Kayak", "", "water", 1)])
        .expect("add");
    drop(rebuild);
    assert_eq!(index.num_docs(), 8);
    index
        .apply(Vec::new(), vec!["p01".to_owned()], "c1")
        .expect("the writer is free again");
    assert_eq!(index.num_docs(), 7);

    let mut rebuild = index.begin_rebuild().expect("begin");
    rebuild
        .add(vec![doc("n1", "Kayak", "", "water", 1)])
        .expect("add");
    let mut bad = doc("n2", "Paddle", "", "water", 2);
    bad.currency.clear();
    let err = rebuild.add(vec![bad]).expect_err("empty currency");
    assert!(
        matches!(err, SearchError::InvalidDocument { position: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(
        rebuild.commit("r").expect_err("nothing left to commit"),
        SearchError::RebuildLost
    ));
    assert_eq!(index.num_docs(), 7);
    assert_eq!(index.cursor().as_deref(), Some("c1"));
    index
        .apply(Vec::new(), vec!["p02".to_owned()], "c2")
        .expect("the writer is free again");
    assert_eq!(index.num_docs(), 6);
}

#[test]
fn a_search_query_round_trips_through_its_defaults() {
    let index = catalog_index();
    let query = SearchQuery {
        sort: Sort::PriceAsc,
        limit: 3,
        ..SearchQuery::default()
    };
    assert_eq!(ids(&run(&index, &query)), ["p07", "p06", "p05"]);
}

#[test]
fn a_fresh_index_is_empty() {
    let index = SearchIndex::open_or_create(None).expect("open");
    assert_eq!(index.num_docs(), 0);
    assert_eq!(index.cursor(), None);
    assert_eq!(index.dir(), None);
    let page = run(&index, &text("anything"));
    assert_eq!(page.total, 0);
    assert!(page.hits.is_empty());
    assert!(format!("{index:?}").contains("num_docs: 0"));
}
