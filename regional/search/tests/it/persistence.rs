//! On-disk indexes: the cursor and the documents survive reopening.

use search::{SearchError, SearchIndex};

use crate::support::{all, catalog, doc, ids, run, text};

#[test]
fn cursor_round_trips_in_memory() {
    let index = SearchIndex::open_or_create(None).expect("open");
    assert_eq!(index.cursor(), None);
    index
        .apply(catalog(), Vec::new(), "feed:41")
        .expect("apply");
    assert_eq!(index.cursor().as_deref(), Some("feed:41"));
    // An empty batch still moves the cursor.
    index
        .apply(Vec::new(), Vec::new(), "feed:42")
        .expect("empty apply");
    assert_eq!(index.cursor().as_deref(), Some("feed:42"));
    assert_eq!(index.num_docs(), 8);
}

#[test]
fn cursor_and_documents_survive_reopening() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A missing directory, two levels deep, is created.
    let dir = tmp.path().join("regional").join("search");
    {
        let index = SearchIndex::open_or_create(Some(&dir)).expect("create");
        assert_eq!(index.cursor(), None);
        assert_eq!(index.dir(), Some(dir.as_path()));
        index.apply(catalog(), Vec::new(), "feed:7").expect("apply");
        index
            .apply(
                vec![doc("p09", "Camp stove", "", "kitchen", 4_000)],
                vec!["p01".to_owned()],
                "feed:8",
            )
            .expect("apply");
    }
    let index = SearchIndex::open_or_create(Some(&dir)).expect("reopen");
    assert_eq!(index.cursor().as_deref(), Some("feed:8"));
    assert_eq!(index.num_docs(), 8);
    assert_eq!(ids(&run(&index, &text("stove"))), ["p09"]);
    assert_eq!(run(&index, &text("grippy")).total, 0);

    // And the reopened index takes writes.
    index
        .apply(Vec::new(), vec!["p09".to_owned()], "feed:9")
        .expect("apply after reopen");
    assert_eq!(index.num_docs(), 7);
    assert_eq!(index.cursor().as_deref(), Some("feed:9"));
}

#[test]
fn rebuild_survives_reopening() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let index = SearchIndex::open_or_create(Some(tmp.path())).expect("create");
        index.apply(catalog(), Vec::new(), "feed:1").expect("apply");
        index
            .rebuild(
                vec![doc("n1", "Kayak paddle", "", "water", 20_000)],
                "snapshot:5",
            )
            .expect("rebuild");
    }
    let index = SearchIndex::open_or_create(Some(tmp.path())).expect("reopen");
    assert_eq!(index.cursor().as_deref(), Some("snapshot:5"));
    assert_eq!(ids(&run(&index, &all())), ["n1"]);
}

#[test]
fn a_directory_is_opened_by_one_index_at_a_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = SearchIndex::open_or_create(Some(tmp.path())).expect("first");
    let err = SearchIndex::open_or_create(Some(tmp.path())).expect_err("locked");
    assert!(matches!(err, SearchError::Tantivy { .. }), "{err:?}");
    drop(first);
    SearchIndex::open_or_create(Some(tmp.path())).expect("free again");
}

#[test]
fn a_file_where_the_directory_should_be_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write file");
    let err = SearchIndex::open_or_create(Some(&file)).expect_err("a file");
    assert!(
        matches!(
            err,
            SearchError::CreateDirectory { .. } | SearchError::OpenDirectory { .. }
        ),
        "{err:?}"
    );
}
