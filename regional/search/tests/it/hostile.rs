//! Free text that would be query syntax, or junk, never fails a search.

use search::{MAX_QUERY_TEXT_CHARS, SearchError};

use crate::support::{catalog, doc, ids, index_with, run, text};

const HOSTILE: [&str; 24] = [
    "title:(",
    "\"unterminated",
    "*",
    "?",
    "AND OR NOT",
    "-",
    "+++",
    "a:b:c",
    "\\",
    "((((((((",
    "))))",
    "[1 TO",
    "{*",
    "~2",
    "^3",
    "id:p01",
    "price_minor:[0 TO 10]",
    "category:socks",
    "jacket^1000",
    "\0\u{1}\u{7f}",
    "\u{202e}שלום\u{200b}",
    "e\u{301}\u{301}\u{301}",
    "👟🧦🧥",
    "靴 ÉCOLE Ünïcödé",
];

#[test]
fn hostile_text_never_fails() {
    let index = index_with(catalog());
    for hostile in HOSTILE {
        let page = index
            .search(&text(hostile))
            .unwrap_or_else(|err| panic!("{hostile:?} failed: {err}"));
        assert!(page.hits.len() <= page.total, "{hostile:?}");
    }
}

#[test]
fn syntax_is_not_interpreted() {
    let index = index_with(catalog());
    // No terms at all: every document.
    assert_eq!(run(&index, &text("*")).total, 8);
    assert_eq!(run(&index, &text("((((")).total, 8);
    // Field syntax is just words: "id", "p01" and "category" are in no
    // title or description, so nothing matches.
    assert_eq!(run(&index, &text("id:p01")).total, 0);
    assert_eq!(run(&index, &text("category:socks")).total, 0);
    // Operators are separators: "jacket^1000" is "jacket" and "1000".
    assert_eq!(run(&index, &text("jacket^1000")).total, 0);
    assert_eq!(run(&index, &text("\"rain jacket")).total, 1);
    assert_eq!(run(&index, &text("-jacket")).total, 2);
}

#[test]
fn unicode_text_is_searchable() {
    let index = index_with(vec![
        doc("u1", "Chaussure d'été", "Légère.", "shoes", 1),
        doc("u2", "長靴", "雨の日に", "shoes", 2),
        doc("u3", "Ünïcödé tee", "", "shirts", 3),
    ]);
    assert_eq!(ids(&run(&index, &text("ete"))), ["u1"]);
    assert_eq!(ids(&run(&index, &text("ÉTÉ"))), ["u1"]);
    assert_eq!(ids(&run(&index, &text("長靴"))), ["u2"]);
    assert_eq!(ids(&run(&index, &text("unicode"))), ["u3"]);
}

#[test]
fn text_over_the_length_limit_is_invalid() {
    let index = index_with(catalog());
    let err = index
        .search(&text(&"a".repeat(300)))
        .expect_err("300 characters");
    assert!(
        matches!(
            err,
            SearchError::InvalidQuery {
                reason: "text longer than MAX_QUERY_TEXT_CHARS"
            }
        ),
        "{err:?}"
    );
    // The limit counts characters (what an API document's maxLength
    // states), so its work is bounded by four bytes each.
    let err = index
        .search(&text(&"é".repeat(MAX_QUERY_TEXT_CHARS + 1)))
        .expect_err("257 characters");
    assert!(matches!(err, SearchError::InvalidQuery { .. }), "{err:?}");
    // Right at the limit it runs, multi-byte characters included.
    run(&index, &text(&"é".repeat(MAX_QUERY_TEXT_CHARS)));
    run(&index, &text(&"𝄞".repeat(MAX_QUERY_TEXT_CHARS)));
    run(&index, &text(&"a ".repeat(MAX_QUERY_TEXT_CHARS / 2)));
}
