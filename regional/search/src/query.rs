//! Search requests and results, their bounds, and the translation of a
//! request into a tantivy query.

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;

use crate::document::MAX_CATEGORY_BYTES;
use crate::error::SearchError;
use crate::schema::{self, Fields, TEXT_RECORD, TITLE_BOOST};

/// Longest free-text query, in characters (at most four bytes each).
pub const MAX_QUERY_TEXT_CHARS: usize = 256;
/// Largest page.
pub const MAX_PAGE_LIMIT: usize = 100;
/// Deepest page start: deep pagination costs `offset + limit` per segment.
pub const MAX_OFFSET: usize = 10_000;
/// Page size of [`SearchQuery::default`].
pub const DEFAULT_PAGE_LIMIT: usize = 20;

/// Order of the hits. Every order ends with the id ascending, so ties are
/// broken the same way whatever the segment layout, and pages never overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best BM25 score first; with no text every score is 0, so this is id
    /// order.
    #[default]
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Title A to Z, case-insensitively.
    TitleAsc,
}

/// A search request. `text` is free user text: it is analysed like the
/// indexed text, never parsed as query syntax; a document matches when it
/// has every term of it in its title or description. Absent or term-less
/// text (`None`, `""`, `"*"`) matches every document. Filters combine with
/// AND.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchQuery {
    /// At most [`MAX_QUERY_TEXT_CHARS`].
    pub text: Option<String>,
    /// Exact category; at most `MAX_CATEGORY_BYTES`.
    pub category: Option<String>,
    /// Inclusive lower price bound, in minor units.
    pub price_min_minor: Option<i64>,
    /// Inclusive upper price bound, in minor units.
    pub price_max_minor: Option<i64>,
    pub sort: Sort,
    /// Hits to skip; at most [`MAX_OFFSET`].
    pub offset: usize,
    /// Hits to return; 1 to [`MAX_PAGE_LIMIT`].
    pub limit: usize,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self {
            text: None,
            category: None,
            price_min_minor: None,
            price_max_minor: None,
            sort: Sort::default(),
            offset: 0,
            limit: DEFAULT_PAGE_LIMIT,
        }
    }
}

/// One product of a result page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub id: String,
    pub title: String,
    pub category: String,
    pub price_minor: i64,
    pub currency: String,
    /// BM25 score under [`Sort::Relevance`] (0 when there is no text);
    /// 0 under the other sorts, which do not compute scores.
    pub score: f32,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPage {
    /// Number of documents matching the query, over all pages.
    pub total: usize,
    /// The hits from `offset`, at most `limit` of them.
    pub hits: Vec<SearchHit>,
}

impl SearchQuery {
    /// Checks the bounds; nothing reaches tantivy before this passes.
    pub(crate) fn validate(&self) -> Result<(), SearchError> {
        let invalid = |reason| Err(SearchError::InvalidQuery { reason });
        if self
            .text
            .as_ref()
            .is_some_and(|text| text.chars().count() > MAX_QUERY_TEXT_CHARS)
        {
            return invalid("text longer than MAX_QUERY_TEXT_CHARS");
        }
        if self
            .category
            .as_ref()
            .is_some_and(|category| category.len() > MAX_CATEGORY_BYTES)
        {
            return invalid("category longer than MAX_CATEGORY_BYTES");
        }
        if let (Some(min), Some(max)) = (self.price_min_minor, self.price_max_minor)
            && min > max
        {
            return invalid("price_min_minor above price_max_minor");
        }
        if self.limit == 0 {
            return invalid("limit is 0");
        }
        if self.limit > MAX_PAGE_LIMIT {
            return invalid("limit above MAX_PAGE_LIMIT");
        }
        if self.offset > MAX_OFFSET {
            return invalid("offset above MAX_OFFSET");
        }
        Ok(())
    }

    /// The tantivy query for this request. Call [`Self::validate`] first.
    pub(crate) fn to_tantivy(&self, fields: &Fields, analyzer: &TextAnalyzer) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();

        let text = self.text.as_deref().unwrap_or_default();
        for term in schema::analyze(analyzer, text) {
            let in_title = BoostQuery::new(
                Box::new(TermQuery::new(
                    Term::from_field_text(fields.title, &term),
                    TEXT_RECORD,
                )),
                TITLE_BOOST,
            );
            let in_description = TermQuery::new(
                Term::from_field_text(fields.description, &term),
                TEXT_RECORD,
            );
            clauses.push((
                Occur::Must,
                Box::new(BooleanQuery::union(vec![
                    Box::new(in_title),
                    Box::new(in_description),
                ])),
            ));
        }

        // Filters score 0 so that they do not skew relevance.
        if let Some(category) = &self.category {
            let term = TermQuery::new(
                Term::from_field_text(fields.category, category),
                IndexRecordOption::Basic,
            );
            clauses.push((Occur::Must, filter(term)));
        }
        if self.price_min_minor.is_some() || self.price_max_minor.is_some() {
            let bound = |price: Option<i64>| match price {
                Some(price) => Bound::Included(Term::from_field_i64(fields.price_minor, price)),
                None => Bound::Unbounded,
            };
            let range = RangeQuery::new(bound(self.price_min_minor), bound(self.price_max_minor));
            clauses.push((Occur::Must, filter(range)));
        }

        if clauses.is_empty() {
            // Scored 0 like the filters, so that "no text" always means score 0.
            return filter(AllQuery);
        }
        Box::new(BooleanQuery::new(clauses))
    }
}

/// A clause that restricts the matches without adding to the score.
fn filter(query: impl Query) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(Box::new(query), 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(query: &SearchQuery) -> Option<&'static str> {
        match query.validate() {
            Ok(()) => None,
            Err(SearchError::InvalidQuery { reason }) => Some(reason),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn default_query_is_valid() {
        assert_eq!(reason(&SearchQuery::default()), None);
    }

    #[test]
    fn bounds_are_inclusive() {
        let query = SearchQuery {
            text: Some("é".repeat(MAX_QUERY_TEXT_CHARS)),
            category: Some("c".repeat(MAX_CATEGORY_BYTES)),
            price_min_minor: Some(7),
            price_max_minor: Some(7),
            offset: MAX_OFFSET,
            limit: MAX_PAGE_LIMIT,
            ..SearchQuery::default()
        };
        assert_eq!(reason(&query), None);
    }

    #[test]
    fn out_of_bounds_requests_are_rejected() {
        let base = SearchQuery::default;
        let cases = [
            (
                SearchQuery {
                    text: Some("a".repeat(MAX_QUERY_TEXT_CHARS + 1)),
                    ..base()
                },
                "text longer than MAX_QUERY_TEXT_CHARS",
            ),
            (
                SearchQuery {
                    category: Some("c".repeat(MAX_CATEGORY_BYTES + 1)),
                    ..base()
                },
                "category longer than MAX_CATEGORY_BYTES",
            ),
            (
                SearchQuery {
                    price_min_minor: Some(2),
                    price_max_minor: Some(1),
                    ..base()
                },
                "price_min_minor above price_max_minor",
            ),
            (SearchQuery { limit: 0, ..base() }, "limit is 0"),
            (
                SearchQuery {
                    limit: MAX_PAGE_LIMIT + 1,
                    ..base()
                },
                "limit above MAX_PAGE_LIMIT",
            ),
            (
                SearchQuery {
                    offset: MAX_OFFSET + 1,
                    ..base()
                },
                "offset above MAX_OFFSET",
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(reason(&query), Some(expected), "{query:?}");
        }
    }

    #[test]
    fn sort_uses_snake_case_names_and_defaults_to_relevance() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StrDeserializer};

        let parse = |name: &str| {
            Sort::deserialize::<StrDeserializer<'_, Error>>(name.into_deserializer()).ok()
        };
        assert_eq!(parse("relevance"), Some(Sort::Relevance));
        assert_eq!(parse("price_asc"), Some(Sort::PriceAsc));
        assert_eq!(parse("price_desc"), Some(Sort::PriceDesc));
        assert_eq!(parse("title_asc"), Some(Sort::TitleAsc));
        assert_eq!(parse("PriceAsc"), None);
        assert_eq!(Sort::default(), Sort::Relevance);
    }
}
