//! The commerce error type: what went wrong, with enough context for the
//! HTTP layer to pick a status and for the retry loop to classify storage
//! errors.

use db::TxnError;

use crate::payments::GatewayError;

/// Errors from the commerce domain.
#[derive(Debug, thiserror::Error)]
pub enum CommerceError {
    #[error("storage error")]
    Db(#[from] db::Error),
    #[error("shard not available here")]
    Shard(#[from] db::ShardMapError),
    /// A field of a request is malformed or out of bounds.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("unknown sku {sku}")]
    UnknownSku { sku: String },
    #[error("unknown category {slug}")]
    UnknownCategory { slug: String },
    /// A warehouse (a shard) the topology does not name.
    #[error("unknown warehouse {warehouse}")]
    UnknownWarehouse { warehouse: String },
    #[error("not enough stock of {sku}: {requested} requested, {available} available")]
    OutOfStock {
        sku: String,
        requested: i64,
        available: i64,
    },
    /// The caller may not touch this record (another shopper's cart or order).
    #[error("{what} belongs to another shopper")]
    Forbidden { what: &'static str },
    /// A shopper voted for their own review.
    #[error("a review cannot be voted helpful by its own author")]
    OwnReview,
    /// Another recommendation job holds the lease on writing a set.
    #[error(
        "recommendation job {job} is writing set {version} (its lease runs until {until_ms} ms)"
    )]
    JobRunning {
        job: String,
        version: u64,
        until_ms: u64,
    },
    /// A recommendation set that cannot be written or published (again):
    /// not the caller's, or a newer one is published.
    #[error("recommendation set {version} cannot be written: {reason}")]
    SetNotWritable { version: u64, reason: &'static str },
    #[error("idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("cart is empty")]
    EmptyCart,
    /// The cart is being checked out (by another request).
    #[error("cart is being checked out as order {order_id}")]
    CartInCheckout { order_id: String },
    #[error("{what} would exceed its limit of {limit}")]
    LimitExceeded { what: &'static str, limit: u64 },
    /// A stored record does not decode: never expected, never hidden.
    #[error("stored {what} does not decode")]
    Corrupt {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("reservation {id} was released")]
    ReservationReleased { id: String },
    #[error("reservation {id} is already committed")]
    ReservationCommitted { id: String },
    #[error("category {slug} still has products")]
    CategoryInUse { slug: String },
    /// The cart cannot be paid as one payment (mixed currencies, a total
    /// past the bound).
    #[error("cart cannot be paid: {reason}")]
    Unpayable { reason: &'static str },
    /// A category would become its own ancestor.
    #[error("category {slug} cannot be its own parent")]
    CategoryCycle { slug: String },
    /// A replica batch breaks a rule across its fields (changes out of
    /// order, a state that is not its event's record).
    #[error("replica batch: {reason}")]
    BadReplicaBatch { reason: &'static str },
    /// This region keeps no replica of the catalog (it is the catalog's
    /// home, or homes no other shard).
    #[error("this region keeps no replica of the catalog")]
    NoReplica,
    #[error("payment gateway")]
    Gateway(#[from] GatewayError),
    #[error("search index")]
    Search(#[from] search::SearchError),
    /// A test-injected crash point was reached: the process "died" here.
    #[error("injected crash after {step}")]
    InjectedCrash { step: &'static str },
}

impl TxnError for CommerceError {
    fn as_db_error(&self) -> Option<&db::Error> {
        match self {
            CommerceError::Db(e) => Some(e),
            _ => None,
        }
    }

    fn into_db_error(self) -> Result<db::Error, Self> {
        match self {
            CommerceError::Db(e) => Ok(e),
            other => Err(other),
        }
    }
}

pub type Result<T, E = CommerceError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> CommerceError {
    CommerceError::Invalid {
        field,
        reason: reason.into(),
    }
}
