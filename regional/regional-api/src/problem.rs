//! The RFC 9457 problem document every Meridian HTTP error is.

use serde::{Deserialize, Serialize};

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Every problem's `type` is this followed by a slug.
pub const TYPE_PREFIX: &str = "urn:meridian:problem:";

/// Slugs both sides act on.
pub mod kinds {
    /// The write may or may not have been applied (a commit whose result is
    /// unknown, a request that ran past its deadline): resend only with the
    /// same idempotency key. Always status 504.
    pub const MAYBE_APPLIED: &str = "maybe-applied";
    /// Nothing was applied; try again (or another region). Status 503.
    pub const UNAVAILABLE: &str = "unavailable";
    /// The method is not one the route takes. Status 405.
    pub const METHOD_NOT_ALLOWED: &str = "method-not-allowed";
    pub const NOT_FOUND: &str = "not-found";
}

/// An RFC 9457 problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:meridian:problem:out-of-stock`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The order a failed checkout created, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Where a failed bulk-import request left its import (the members
    /// `cursor` and `line`). Boxed: every `Result<_, Problem>` stays small.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = ImportPosition))]
    pub import: Option<Box<ImportPosition>>,
}

/// A bulk import's position after a failed request, as problem members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportPosition {
    /// The lines the import has committed: where to resume (the next
    /// request's `offset`). Present whenever `line` is; most problems have
    /// neither.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub cursor: u64,
    /// The line (from 0) that could not be imported, when one was at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

impl Problem {
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("{TYPE_PREFIX}{slug}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            order_id: None,
            import: None,
        }
    }

    /// The slug of a Meridian problem type.
    pub fn slug(&self) -> Option<&str> {
        self.kind.strip_prefix(TYPE_PREFIX)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_members_sit_beside_the_others_and_only_when_set() {
        let mut problem = Problem::new(422, "invalid", "Invalid", "line 10: no title");
        let plain = serde_json::to_value(&problem).unwrap();
        assert!(plain.get("cursor").is_none() && plain.get("line").is_none());
        assert_eq!(serde_json::from_value::<Problem>(plain).unwrap(), problem);
        problem.import = Some(Box::new(ImportPosition {
            cursor: 10,
            line: Some(10),
        }));
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!((&json["cursor"], &json["line"]), (&10.into(), &10.into()));
        assert_eq!(serde_json::from_value::<Problem>(json).unwrap(), problem);
    }

    #[test]
    fn a_problem_stays_under_clippys_large_error_bound() {
        // Every `Result<_, Problem>` of the routing API returns it by value.
        assert!(size_of::<Problem>() < 128, "{}", size_of::<Problem>());
    }
}
