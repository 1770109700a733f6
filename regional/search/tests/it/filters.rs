//! Category and price filters, alone and with text.

use search::{SearchError, SearchQuery};

use crate::support::{catalog_index, id_set, ids, run};

fn category(category: &str) -> SearchQuery {
    SearchQuery {
        category: Some(category.to_owned()),
        ..SearchQuery::default()
    }
}

fn price(min: Option<i64>, max: Option<i64>) -> SearchQuery {
    SearchQuery {
        price_min_minor: min,
        price_max_minor: max,
        ..SearchQuery::default()
    }
}

#[test]
fn category_filter_is_an_exact_match() {
    let index = catalog_index();
    let page = run(&index, &category("socks"));
    assert_eq!(id_set(&page), ["p05", "p06"]);
    assert_eq!(page.total, 2);
    assert_eq!(run(&index, &category("Socks")).total, 0);
    assert_eq!(run(&index, &category("sock")).total, 0);
    assert_eq!(run(&index, &category("")).total, 0);
}

#[test]
fn price_range_includes_both_edges() {
    let index = catalog_index();
    let page = run(&index, &price(Some(1_200), Some(1_500)));
    assert_eq!(id_set(&page), ["p05", "p06", "p08"]);
    assert_eq!(page.total, 3);
    assert_eq!(ids(&run(&index, &price(Some(900), Some(900)))), ["p07"]);
    assert_eq!(run(&index, &price(Some(901), Some(1_199))).total, 0);
}

#[test]
fn price_range_may_be_open_on_either_side() {
    let index = catalog_index();
    assert_eq!(
        id_set(&run(&index, &price(Some(14_999), None))),
        ["p02", "p04"]
    );
    assert_eq!(
        id_set(&run(&index, &price(None, Some(1_200)))),
        ["p06", "p07"]
    );
    assert_eq!(run(&index, &price(Some(i64::MIN), Some(i64::MAX))).total, 8);
}

#[test]
fn filters_and_text_combine() {
    let index = catalog_index();
    let warm = |category: Option<&str>, max: Option<i64>| SearchQuery {
        text: Some("warm".to_owned()),
        category: category.map(str::to_owned),
        price_max_minor: max,
        ..SearchQuery::default()
    };
    assert_eq!(id_set(&run(&index, &warm(None, None))), ["p04", "p05"]);
    assert_eq!(ids(&run(&index, &warm(Some("jackets"), None))), ["p04"]);
    assert_eq!(ids(&run(&index, &warm(None, Some(10_000)))), ["p05"]);
    assert_eq!(run(&index, &warm(Some("jackets"), Some(10_000))).total, 0);
}

#[test]
fn filters_do_not_change_relevance_scores() {
    let index = catalog_index();
    let plain = run(&index, &crate::support::text("warm"));
    let filtered = run(
        &index,
        &SearchQuery {
            text: Some("warm".to_owned()),
            category: Some("socks".to_owned()),
            price_min_minor: Some(0),
            ..SearchQuery::default()
        },
    );
    let score_of = |id: &str, page: &search::SearchPage| {
        page.hits
            .iter()
            .find(|hit| hit.id == id)
            .map(|hit| hit.score)
    };
    assert_eq!(score_of("p05", &filtered), score_of("p05", &plain));
    assert!(score_of("p05", &plain).is_some());
}

#[test]
fn inverted_price_range_is_invalid() {
    let index = catalog_index();
    let err = index
        .search(&price(Some(2), Some(1)))
        .expect_err("min above max");
    assert!(
        matches!(
            err,
            SearchError::InvalidQuery {
                reason: "price_min_minor above price_max_minor"
            }
        ),
        "{err:?}"
    );
}
