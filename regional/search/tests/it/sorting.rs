//! Sort orders, tie-breaking and pagination, including over an index spread
//! across several segments and rewritten in place.

use std::collections::{BTreeMap, BTreeSet};

use search::{MAX_OFFSET, MAX_PAGE_LIMIT, SearchDoc, SearchError, SearchIndex, SearchQuery, Sort};

use crate::support::{catalog_index, doc, ids, run};

fn sorted(sort: Sort) -> SearchQuery {
    SearchQuery {
        sort,
        ..SearchQuery::default()
    }
}

#[test]
fn price_ascending_orders_prices_and_breaks_ties_by_id() {
    let index = catalog_index();
    let page = run(&index, &sorted(Sort::PriceAsc));
    let prices: Vec<i64> = page.hits.iter().map(|hit| hit.price_minor).collect();
    assert_eq!(
        prices,
        [900, 1_200, 1_500, 1_500, 8_999, 12_000, 14_999, 19_999]
    );
    assert_eq!(
        ids(&page),
        ["p07", "p06", "p05", "p08", "p01", "p03", "p02", "p04"]
    );
    assert!(page.hits.iter().all(|hit| hit.score == 0.0));
}

#[test]
fn price_descending_orders_prices_and_breaks_ties_by_id() {
    let index = catalog_index();
    let page = run(&index, &sorted(Sort::PriceDesc));
    let prices: Vec<i64> = page.hits.iter().map(|hit| hit.price_minor).collect();
    assert_eq!(
        prices,
        [19_999, 14_999, 12_000, 8_999, 1_500, 1_500, 1_200, 900]
    );
    assert_eq!(
        ids(&page),
        ["p04", "p02", "p03", "p01", "p05", "p08", "p06", "p07"]
    );
}

#[test]
fn title_ascending_ignores_case() {
    let index = catalog_index();
    let page = run(&index, &sorted(Sort::TitleAsc));
    assert_eq!(
        ids(&page),
        ["p07", "p04", "p02", "p03", "p06", "p08", "p01", "p05"]
    );
}

#[test]
fn relevance_without_text_is_id_order() {
    let index = catalog_index();
    let page = run(&index, &sorted(Sort::Relevance));
    assert_eq!(
        ids(&page),
        ["p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08"]
    );
    assert!(
        page.hits.iter().all(|hit| hit.score == 0.0),
        "{:?}",
        page.hits
    );
}

#[test]
fn sort_applies_to_text_matches() {
    let index = catalog_index();
    let query = SearchQuery {
        text: Some("socks".to_owned()),
        sort: Sort::PriceDesc,
        ..SearchQuery::default()
    };
    assert_eq!(ids(&run(&index, &query)), ["p05", "p06"]);
}

#[test]
fn offset_past_the_end_gives_an_empty_page_and_the_total() {
    let index = catalog_index();
    let page = run(
        &index,
        &SearchQuery {
            offset: 8,
            ..SearchQuery::default()
        },
    );
    assert_eq!(page.total, 8);
    assert!(page.hits.is_empty());
}

#[test]
fn page_bounds_are_enforced() {
    let index = catalog_index();
    for (offset, limit) in [(0, 0), (0, MAX_PAGE_LIMIT + 1), (MAX_OFFSET + 1, 10)] {
        let err = index
            .search(&SearchQuery {
                offset,
                limit,
                ..SearchQuery::default()
            })
            .expect_err("out of bounds");
        assert!(matches!(err, SearchError::InvalidQuery { .. }), "{err:?}");
    }
    let page = run(
        &index,
        &SearchQuery {
            offset: MAX_OFFSET,
            limit: MAX_PAGE_LIMIT,
            ..SearchQuery::default()
        },
    );
    assert_eq!(page.total, 8);
    assert!(page.hits.is_empty());
}

/// Titles repeat so that title order has ties too.
const WORDS: [&str; 5] = ["Anchor", "birch", "Cedar", "anchor", "delta"];
const DOCS: usize = 137;

fn generated(i: usize, generation: i64) -> SearchDoc {
    let word = WORDS[i % WORDS.len()];
    // Few distinct prices, so most documents tie on price.
    let price_minor = i64::try_from(i * 7 % 10).expect("small") * 100 + generation;
    let description = if i.is_multiple_of(3) {
        "lantern"
    } else {
        "tent"
    };
    doc(
        &format!("d{i:03}"),
        &format!("{word} kit"),
        description,
        "gear",
        price_minor,
    )
}

/// An index built over many commits (so many segments), with documents
/// updated and deleted along the way, and the model of what it holds.
fn churned() -> (SearchIndex, BTreeMap<String, SearchDoc>) {
    let index = SearchIndex::open_or_create(None).expect("open");
    let mut model = BTreeMap::new();
    let all: Vec<SearchDoc> = (0..DOCS).map(|i| generated(i, 0)).collect();
    for (batch, chunk) in all.chunks(20).enumerate() {
        index
            .apply(chunk.to_vec(), Vec::new(), &format!("b{batch}"))
            .expect("batch");
        for doc in chunk {
            model.insert(doc.id.clone(), doc.clone());
        }
    }
    // Re-price every fourth document and delete every eleventh.
    let updates: Vec<SearchDoc> = (0..DOCS).step_by(4).map(|i| generated(i, 1)).collect();
    let deletes: Vec<String> = (0..DOCS).step_by(11).map(|i| format!("d{i:03}")).collect();
    index
        .apply(updates.clone(), deletes.clone(), "churn")
        .expect("churn");
    for doc in updates {
        model.insert(doc.id.clone(), doc);
    }
    for id in deletes {
        model.remove(&id);
    }
    (index, model)
}

/// Pages through `query` with `limit`, checking every page's total.
fn every_page(index: &SearchIndex, query: &SearchQuery, limit: usize, total: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for page_number in 0..=total / limit {
        let page = run(
            index,
            &SearchQuery {
                offset: page_number * limit,
                limit,
                ..query.clone()
            },
        );
        assert_eq!(page.total, total, "page {page_number}");
        assert!(page.hits.len() <= limit);
        seen.extend(page.hits.into_iter().map(|hit| hit.id));
    }
    seen
}

#[test]
fn pages_cover_every_hit_once_in_order_for_every_sort() {
    let (index, model) = churned();
    assert_eq!(index.num_docs(), u64::try_from(model.len()).expect("small"));
    let docs: Vec<&SearchDoc> = model.values().collect(); // id order

    let mut by_price_asc = docs.clone();
    by_price_asc.sort_by(|a, b| a.price_minor.cmp(&b.price_minor).then(a.id.cmp(&b.id)));
    let mut by_price_desc = docs.clone();
    by_price_desc.sort_by(|a, b| b.price_minor.cmp(&a.price_minor).then(a.id.cmp(&b.id)));
    let mut by_title = docs.clone();
    by_title.sort_by(|a, b| {
        a.title
            .to_lowercase()
            .cmp(&b.title.to_lowercase())
            .then(a.id.cmp(&b.id))
    });

    for (sort, expected) in [
        (Sort::Relevance, docs.clone()),
        (Sort::PriceAsc, by_price_asc),
        (Sort::PriceDesc, by_price_desc),
        (Sort::TitleAsc, by_title),
    ] {
        let expected: Vec<String> = expected.iter().map(|doc| doc.id.clone()).collect();
        for limit in [1, 7, MAX_PAGE_LIMIT] {
            let seen = every_page(&index, &sorted(sort), limit, expected.len());
            assert_eq!(seen, expected, "{sort:?}, limit {limit}");
        }
    }
}

#[test]
fn relevance_pages_cover_every_text_match_once() {
    let (index, model) = churned();
    let expected: BTreeSet<String> = model
        .values()
        .filter(|doc| doc.description == "lantern")
        .map(|doc| doc.id.clone())
        .collect();
    let query = SearchQuery {
        text: Some("lantern".to_owned()),
        ..SearchQuery::default()
    };
    let seen = every_page(&index, &query, 7, expected.len());
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a hit appeared on two pages");
    assert_eq!(unique, expected);
    // Every match has the same description, so the same score: id order.
    assert_eq!(seen, expected.iter().cloned().collect::<Vec<_>>());

    let scores: Vec<f32> = run(
        &index,
        &SearchQuery {
            limit: MAX_PAGE_LIMIT,
            ..query
        },
    )
    .hits
    .iter()
    .map(|hit| hit.score)
    .collect();
    assert!(
        scores.windows(2).all(|pair| pair[0] >= pair[1]),
        "{scores:?}"
    );
}
