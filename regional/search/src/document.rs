//! The product document the index takes in, its bounds, and its mapping to
//! a tantivy document.

use serde::{Deserialize, Serialize};
use tantivy::TantivyDocument;

use crate::schema::Fields;

/// Longest id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// Longest category, in bytes.
pub const MAX_CATEGORY_BYTES: usize = 128;
/// Longest currency code, in bytes (ISO 4217 codes take 3).
pub const MAX_CURRENCY_BYTES: usize = 8;

/// One product as the index sees it. `id` is its identity: upserting an id
/// replaces the previous document with that id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchDoc {
    /// Non-empty, at most [`MAX_ID_BYTES`].
    pub id: String,
    /// At most [`MAX_TITLE_BYTES`]; searched with a boost.
    pub title: String,
    /// At most [`MAX_DESCRIPTION_BYTES`]; searched, not returned in hits.
    pub description: String,
    /// At most [`MAX_CATEGORY_BYTES`]; filtered by exact match.
    pub category: String,
    /// Price in the currency's minor unit (cents).
    pub price_minor: i64,
    /// Non-empty, at most [`MAX_CURRENCY_BYTES`].
    pub currency: String,
}

impl SearchDoc {
    /// Checks the bounds; the reason names the first one broken.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        validate_id(&self.id)?;
        if self.title.len() > MAX_TITLE_BYTES {
            return Err("title longer than MAX_TITLE_BYTES");
        }
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            return Err("description longer than MAX_DESCRIPTION_BYTES");
        }
        if self.category.len() > MAX_CATEGORY_BYTES {
            return Err("category longer than MAX_CATEGORY_BYTES");
        }
        if self.currency.is_empty() {
            return Err("currency is empty");
        }
        if self.currency.len() > MAX_CURRENCY_BYTES {
            return Err("currency longer than MAX_CURRENCY_BYTES");
        }
        Ok(())
    }

    /// The tantivy document for this product.
    pub(crate) fn to_tantivy(&self, fields: &Fields) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_text(fields.id, &self.id);
        doc.add_text(fields.title, &self.title);
        doc.add_text(fields.title_sort, self.title.to_lowercase());
        doc.add_text(fields.description, &self.description);
        doc.add_text(fields.category, &self.category);
        doc.add_i64(fields.price_minor, self.price_minor);
        doc.add_text(fields.currency, &self.currency);
        doc
    }
}

/// Checks an id's bounds (for upserts and deletes alike).
pub(crate) fn validate_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("id is empty");
    }
    if id.len() > MAX_ID_BYTES {
        return Err("id longer than MAX_ID_BYTES");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> SearchDoc {
        SearchDoc {
            id: "p-1".into(),
            title: "Trail shoe".into(),
            description: "Grippy.".into(),
            category: "shoes".into(),
            price_minor: 5_999,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn valid_document_passes() {
        assert_eq!(doc().validate(), Ok(()));
    }

    #[test]
    fn each_bound_is_enforced() {
        type BreakIt = fn(&mut SearchDoc);
        let cases: [(BreakIt, &str); 6] = [
            (|d| d.id.clear(), "id is empty"),
            (
                |d| d.id = "i".repeat(MAX_ID_BYTES + 1),
                "id longer than MAX_ID_BYTES",
            ),
            (
                |d| d.title = "t".repeat(MAX_TITLE_BYTES + 1),
                "title longer than MAX_TITLE_BYTES",
            ),
            (
                |d| d.description = "d".repeat(MAX_DESCRIPTION_BYTES + 1),
                "description longer than MAX_DESCRIPTION_BYTES",
            ),
            (
                |d| d.category = "c".repeat(MAX_CATEGORY_BYTES + 1),
                "category longer than MAX_CATEGORY_BYTES",
            ),
            (|d| d.currency.clear(), "currency is empty"),
        ];
        for (break_it, reason) in cases {
            let mut d = doc();
            break_it(&mut d);
            assert_eq!(d.validate(), Err(reason));
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        let mut d = doc();
        d.id = "i".repeat(MAX_ID_BYTES);
        d.title = "t".repeat(MAX_TITLE_BYTES);
        d.currency = "c".repeat(MAX_CURRENCY_BYTES);
        assert_eq!(d.validate(), Ok(()));
    }
}
