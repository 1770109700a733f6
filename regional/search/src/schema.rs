//! The tantivy schema of the product index and the analyzer of its text
//! fields.
//!
//! Changing a field here changes the schema: an index written with the old
//! one no longer opens (tantivy compares schemas on open) and must be rebuilt
//! in a fresh directory.

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RAW_TOKENIZER_NAME, RemoveLongFilter,
    SimpleTokenizer, Stemmer, TextAnalyzer,
};

/// Name under which [`analyzer`] is registered on the index. Tokenizers are
/// not persisted by tantivy, so it is registered again on every open.
pub(crate) const ANALYZER_NAME: &str = "meridian_en";

/// Tokens longer than this are dropped: they are noise (URLs, hashes, SKUs
/// glued together) and bloat the term dictionary.
const MAX_TOKEN_BYTES: usize = 40;

/// How much a title match outweighs a description match.
pub(crate) const TITLE_BOOST: f32 = 2.0;

/// Postings keep frequencies for BM25 but no positions: queries are bags of
/// terms, never phrases, so positions would only cost space.
pub(crate) const TEXT_RECORD: IndexRecordOption = IndexRecordOption::WithFreqs;

/// Field names, needed where tantivy addresses fast fields by name.
pub(crate) mod name {
    pub(crate) const ID: &str = "id";
    pub(crate) const TITLE: &str = "title";
    pub(crate) const TITLE_SORT: &str = "title_sort";
    pub(crate) const DESCRIPTION: &str = "description";
    pub(crate) const CATEGORY: &str = "category";
    pub(crate) const PRICE_MINOR: &str = "price_minor";
    pub(crate) const CURRENCY: &str = "currency";
}

/// Handles of the schema's fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// Raw, stored, fast: `delete_term` addresses it, hits return it and it
    /// breaks sort ties.
    pub(crate) id: Field,
    /// Analysed and stored.
    pub(crate) title: Field,
    /// The lowercased title as a raw fast field, only for sorting by title.
    pub(crate) title_sort: Field,
    /// Analysed, not stored: hits do not return it.
    pub(crate) description: Field,
    /// Raw (exact match) and stored.
    pub(crate) category: Field,
    /// Fast (range filter, sort) and stored.
    pub(crate) price_minor: Field,
    /// Stored only.
    pub(crate) currency: Field,
}

/// Builds the schema and the handles of its fields.
pub(crate) fn build() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER_NAME)
        .set_index_option(TEXT_RECORD);

    let fields = Fields {
        id: builder.add_text_field(name::ID, (STRING | STORED).set_fast(RAW_TOKENIZER_NAME)),
        title: builder.add_text_field(
            name::TITLE,
            TextOptions::default()
                .set_indexing_options(text_indexing.clone())
                .set_stored(),
        ),
        title_sort: builder.add_text_field(
            name::TITLE_SORT,
            TextOptions::default().set_fast(RAW_TOKENIZER_NAME),
        ),
        description: builder.add_text_field(
            name::DESCRIPTION,
            TextOptions::default().set_indexing_options(text_indexing),
        ),
        category: builder.add_text_field(name::CATEGORY, STRING | STORED),
        price_minor: builder.add_i64_field(
            name::PRICE_MINOR,
            NumericOptions::default().set_fast().set_stored(),
        ),
        currency: builder.add_text_field(name::CURRENCY, STORED),
    };
    (builder.build(), fields)
}

/// The analyzer of titles, descriptions and query text: split on
/// non-alphanumerics (Unicode-aware), drop overlong tokens, lowercase, fold
/// accents to ASCII ("Café" matches "cafe"), English stemming ("shoes"
/// matches "shoe").
pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The terms `text` analyses to, in order, without duplicates.
///
/// The caller bounds `text`, which bounds the number of terms (a term takes
/// at least one byte plus a separator), so the quadratic dedup stays cheap.
pub(crate) fn analyze(analyzer: &TextAnalyzer, text: &str) -> Vec<String> {
    let mut analyzer = analyzer.clone();
    let mut stream = analyzer.token_stream(text);
    let mut terms: Vec<String> = Vec::new();
    stream.process(&mut |token| {
        if !terms.contains(&token.text) {
            terms.push(token.text.clone());
        }
    });
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        analyze(&analyzer(), text)
    }

    #[test]
    fn analyzer_lowercases_stems_and_folds() {
        assert_eq!(terms("Running SHOES"), ["run", "shoe"]);
        assert_eq!(terms("Café crème"), ["cafe", "creme"]);
    }

    #[test]
    fn analyzer_splits_on_syntax_and_dedups() {
        assert_eq!(terms("title:( \"shoe\" shoes* -shoe"), ["titl", "shoe"]);
        assert!(terms("*  ()\"-+:").is_empty());
    }

    #[test]
    fn analyzer_drops_overlong_tokens() {
        let long = "x".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(terms(&format!("{long} red")), ["red"]);
    }

    #[test]
    fn schema_has_every_field_by_name() {
        let (schema, fields) = build();
        for (field, name) in [
            (fields.id, name::ID),
            (fields.title, name::TITLE),
            (fields.title_sort, name::TITLE_SORT),
            (fields.description, name::DESCRIPTION),
            (fields.category, name::CATEGORY),
            (fields.price_minor, name::PRICE_MINOR),
            (fields.currency, name::CURRENCY),
        ] {
            assert_eq!(schema.get_field(name).ok(), Some(field));
        }
    }
}
