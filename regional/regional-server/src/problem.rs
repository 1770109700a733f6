//! The API's one error type: every failure leaves as an RFC 9457
//! problem+json document with a stable `type`, never a panic and never an
//! internal detail (storage errors are logged, not shown).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use commerce::CommerceError;

/// The problem document, defined once for the edges and the regions.
pub use regional_api::Problem;
use regional_api::problem::{ImportPosition, kinds};

/// Any API failure.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    order_id: Option<String>,
    retry_after_s: Option<u64>,
    /// A bulk import's cursor and the line it stopped at.
    import: Option<Box<ImportPosition>>,
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
            retry_after_s: None,
            import: None,
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

    /// Adds `Retry-After` (seconds) to the answer.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn with_order(mut self, order_id: String) -> Self {
        self.order_id = Some(order_id);
        self
    }

    /// Names a bulk import's cursor (where to resume) and the line it
    /// stopped at.
    pub fn with_import(mut self, cursor: u64, line: Option<u64>) -> Self {
        self.import = Some(Box::new(ImportPosition { cursor, line }));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A write whose outcome this region does not know (its commit's
    /// result was lost, or it ran past the deadline): 504, never 503, so
    /// an edge resends it only with its idempotency key.
    pub fn maybe_applied(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(regional_api::delivery::MAYBE_APPLIED_STATUS)
                .unwrap_or(StatusCode::GATEWAY_TIMEOUT),
            kinds::MAYBE_APPLIED,
            "Outcome unknown",
            detail,
        )
    }

    /// Nothing was applied; the caller may retry here or elsewhere.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(regional_api::delivery::NOT_APPLIED_STATUS)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            kinds::UNAVAILABLE,
            "Service unavailable",
            detail,
        )
    }

    pub fn problem(&self) -> Problem {
        let mut problem = Problem::new(self.status.as_u16(), self.slug, self.title, &self.detail);
        problem.order_id = self.order_id.clone();
        problem.import = self.import.clone();
        problem
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, regional_api::problem::CONTENT_TYPE)],
            self.problem().to_json(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<commerce::import::ImportError> for ApiError {
    fn from(e: commerce::import::ImportError) -> Self {
        use commerce::import::ImportError as E;
        let cursor = e.cursor();
        match e {
            E::Line { line, source, .. } => {
                let detail = format!("line {line}: {source}");
                let mut error = ApiError::from(source);
                error.detail = detail;
                error.with_import(cursor, Some(line))
            }
            E::Gap { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "import-gap",
                "Import gap",
                e.to_string(),
            )
            .with_import(cursor, None),
            E::Body { .. } => ApiError::bad_request(e.to_string()).with_import(cursor, None),
            E::Store { step, source, .. } => {
                // Which transaction failed, for the operator (the answer's
                // detail stays generic, as every storage error's).
                tracing::warn!(cursor, step, error = %error_chain(&source), "import stopped");
                let mut error = ApiError::from(source);
                // Not an Idempotency-Key's retry: the import's own cursor
                // makes a resend safe.
                error.detail = format!(
                    "{}; resend the lines from `cursor` ({cursor}), which skips any already committed",
                    error.detail.split("; retry").next().unwrap_or_default()
                );
                error.with_import(cursor, None)
            }
        }
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
            E::UnknownWarehouse { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-warehouse",
                "Unknown warehouse",
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
            E::OwnReview => Self::new(StatusCode::CONFLICT, "own-review", "Own review", detail),
            E::JobRunning { .. } => {
                Self::new(StatusCode::CONFLICT, "job-running", "Job running", detail)
            }
            E::SetNotWritable { .. } => Self::new(
                StatusCode::CONFLICT,
                "set-not-writable",
                "Set not writable",
                detail,
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
            E::Unpayable { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unpayable",
                "Cart cannot be paid",
                detail,
            ),
            E::BadReplicaBatch { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-replica-batch",
                "Bad replica batch",
                detail,
            ),
            E::NoReplica => Self::new(
                StatusCode::NOT_FOUND,
                "no-replica",
                "No replica here",
                detail,
            ),
            E::CategoryCycle { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "category-cycle",
                "Category cycle",
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
            // Cut off from the cluster (a partition, a brownout's lost
            // call): nothing was sent, so nothing was applied; another
            // region may take it.
            E::Db(db::Error::Unreachable { .. }) => {
                tracing::warn!(error = %error_chain(&e), "storage unreachable");
                Self::unavailable(
                    "this region cannot reach the data's cluster; nothing was applied; retry",
                )
                .with_retry_after(1)
            }
            // A bound of the engine, not a fault: come back shortly.
            E::Db(db::Error::TooManyWatches { .. }) => {
                Self::unavailable("too many long polls are waiting; retry").with_retry_after(1)
            }
            // The commit may have happened: say so, so that nobody takes it
            // for a failure and applies it again elsewhere.
            E::Db(db_err) if db_err.is_maybe_committed() => {
                tracing::warn!(error = %error_chain(&e), "outcome unknown");
                Self::maybe_applied(
                    "the change may or may not have been applied; retry with the same Idempotency-Key",
                )
            }
            E::Db(db_err)
                if db_err.is_retryable()
                    || matches!(
                        db_err,
                        db::Error::TimedOut { .. } | db::Error::RetryLimitReached { .. }
                    ) =>
            {
                tracing::warn!(error = %error_chain(&e), "storage busy");
                Self::unavailable("storage is busy; nothing was changed; retry").with_retry_after(1)
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
