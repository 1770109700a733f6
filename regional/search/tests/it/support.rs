//! Fixtures shared by the tests: a small catalog and query shorthands.

use search::{SearchDoc, SearchIndex, SearchPage, SearchQuery};

pub fn doc(
    id: &str,
    title: &str,
    description: &str,
    category: &str,
    price_minor: i64,
) -> SearchDoc {
    SearchDoc {
        id: id.to_owned(),
        title: title.to_owned(),
        description: description.to_owned(),
        category: category.to_owned(),
        price_minor,
        currency: "EUR".to_owned(),
    }
}

/// Eight products; p05 and p08 share a price, to exercise tie-breaking.
pub fn catalog() -> Vec<SearchDoc> {
    vec![
        doc(
            "p01",
            "Trail running shoe",
            "Lightweight shoe with a grippy sole for muddy trails.",
            "shoes",
            8_999,
        ),
        doc(
            "p02",
            "Leather boot",
            "Waterproof boot for winter hiking.",
            "shoes",
            14_999,
        ),
        doc(
            "p03",
            "Rain jacket",
            "Packable shell that keeps the rain out.",
            "jackets",
            12_000,
        ),
        doc(
            "p04",
            "Down jacket",
            "Warm goose down, for cold mornings.",
            "jackets",
            19_999,
        ),
        doc(
            "p05",
            "Wool socks",
            "Merino socks, warm and soft. Pairs well with a boot.",
            "socks",
            1_500,
        ),
        doc(
            "p06",
            "Running socks",
            "Thin socks for running.",
            "socks",
            1_200,
        ),
        doc("p07", "Café mug", "Ceramic mug.", "kitchen", 900),
        doc(
            "p08",
            "Trail map",
            "Folding map of mountain trails.",
            "books",
            1_500,
        ),
    ]
}

/// An in-memory index holding `docs`, committed with cursor "c0".
pub fn index_with(docs: Vec<SearchDoc>) -> SearchIndex {
    let index = SearchIndex::open_or_create(None).expect("in-memory index opens");
    index
        .apply(docs, Vec::new(), "c0")
        .expect("fixture applies");
    index
}

pub fn catalog_index() -> SearchIndex {
    index_with(catalog())
}

pub fn text(text: &str) -> SearchQuery {
    SearchQuery {
        text: Some(text.to_owned()),
        ..SearchQuery::default()
    }
}

pub fn all() -> SearchQuery {
    SearchQuery::default()
}

/// Runs `query`, which must succeed.
pub fn run(index: &SearchIndex, query: &SearchQuery) -> SearchPage {
    index
        .search(query)
        .unwrap_or_else(|err| panic!("search {query:?} failed: {err}"))
}

pub fn ids(page: &SearchPage) -> Vec<&str> {
    page.hits.iter().map(|hit| hit.id.as_str()).collect()
}

/// Ids of the hits, sorted: for checks that do not depend on order.
pub fn id_set(page: &SearchPage) -> Vec<&str> {
    let mut ids = ids(page);
    ids.sort_unstable();
    ids
}
