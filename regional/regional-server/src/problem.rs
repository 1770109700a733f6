//! The API's one error type: every failure leaves as an RFC 9457
//! problem+json document with a stable `type`, never a panic and never an
//! internal detail (storage errors are logged, not shown).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use commerce::CommerceError;
use serde::Serialize;

/// An RFC 9457 problem.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:meridian:problem:out-of-stock`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The order a failed checkout created, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

/// Any API failure.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    order_id: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            order_id: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn unauthorized(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, slug, "Unauthorized", detail)
    }

    pub fn with_order(mut self, order_id: String) -> Self {
        self.order_id = Some(order_id);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:meridian:problem:{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            order_id: self.order_id.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

impl From<CommerceError> for ApiError {
    fn from(e: CommerceError) -> Self {
        use CommerceError as E;
        let detail = e.to_string();
        match &e {
            E::Invalid { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid request",
                detail,
            ),
            E::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
            }
            E::UnknownSku { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-sku",
                "Unknown SKU",
                detail,
            ),
            E::UnknownCategory { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-category",
                "Unknown category",
                detail,
            ),
            E::OutOfStock { .. } => {
                Self::new(StatusCode::CONFLICT, "out-of-stock", "Out of stock", detail)
            }
            // Someone else's record: as far as this caller knows, it does
            // not exist (no probing of other shoppers' ids).
            E::Forbidden { what } => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("{what} not found"),
            ),
            E::IdempotencyKeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                detail,
            ),
            E::CartInCheckout { order_id } => Self::new(
                StatusCode::CONFLICT,
                "cart-in-checkout",
                "Cart is being checked out",
                detail.clone(),
            )
            .with_order(order_id.clone()),
            E::EmptyCart => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "empty-cart",
                "Cart is empty",
                detail,
            ),
            E::LimitExceeded { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit-exceeded",
                "Limit exceeded",
                detail,
            ),
            E::CategoryInUse { .. } => Self::new(
                StatusCode::CONFLICT,
                "category-in-use",
                "Category in use",
                detail,
            ),
            E::ReservationReleased { .. } | E::ReservationCommitted { .. } => Self::new(
                StatusCode::CONFLICT,
                "reservation-state",
                "Reservation state conflict",
                detail,
            ),
            E::Shard(db::ShardMapError::NotServed { shard }) => Self::new(
                StatusCode::MISDIRECTED_REQUEST,
                "shard-not-served",
                "Shard not served here",
                format!(
                    "shard {shard} is not served by this region; ask the routing table for its active region"
                ),
            ),
            E::Search(search::SearchError::InvalidQuery { .. }) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid request",
                error_chain(&e),
            ),
            E::Db(db_err)
                if db_err.is_retryable()
                    || matches!(
                        db_err,
                        db::Error::TimedOut { .. } | db::Error::RetryLimitReached { .. }
                    ) =>
            {
                tracing::warn!(error = %error_chain(&e), "storage busy");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "storage is busy; retry",
                )
            }
            _ => {
                tracing::error!(error = %error_chain(&e), "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "internal error",
                )
            }
        }
    }
}

/// An error and its sources, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
