//! The regional HTTP API (axum): JSON under `/v1/`, problem+json errors,
//! an OpenAPI document generated from these handlers' annotations and
//! types (`/v1/openapi.json`), health, readiness and metrics.
//!
//! This module holds what every route shares (state, the router and the
//! OpenAPI document, middleware, request helpers); each group of routes is
//! a module of its own: `sessions`, `catalog`, `carts`, `orders` (checkout
//! and orders), `purge`, `reviews`, `recommend`, `admin`, `import` (bulk
//! import of products), `replica` (the catalog replica's intake), `ops`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use commerce::cart::{Cart, CartChange};
use commerce::catalog::{Category, CategoryInput, Money, Product, ProductInput};
use commerce::feed::{Cursor, FeedPage};
use commerce::inventory::StockLevel;
use commerce::orders::{Order, OrderPage, OrderStatus};
use commerce::{Commerce, CommerceError};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use topology::{ShardId, ShardedId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{EdgeVerifier, Sessions, check_admin};
use crate::config::HttpConfig;
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::problem::{ApiError, Problem};
use doc::{IdParam, ImportIdParam, KeyParam, ShardParam, SkuParam, SlugParam, VersionParam};

mod admin;
mod carts;
mod catalog;
mod doc;
mod import;
mod ops;
mod orders;
mod purge;
mod recommend;
mod replica;
mod reviews;
mod sessions;

/// The largest catalog replica batch the intake takes: a batch's changes
/// and states, and the JSON around them.
pub const REPLICA_BODY_LIMIT: usize = commerce::replica::MAX_BATCH_BYTES * 2;

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub commerce: Commerce,
    /// `None` when edge signatures are not required.
    pub edge: Option<Arc<EdgeVerifier>>,
    pub sessions: Arc<Sessions>,
    /// Accepted admin tokens, primary first; admin is off when empty.
    pub admin_tokens: Arc<[Arc<str>]>,
    pub http: HttpConfig,
    /// Permits for checkout sagas running apart from their requests.
    pub checkouts: Arc<tokio::sync::Semaphore>,
    /// Permits for bulk imports (`commerce::import::MAX_RUNNING_IMPORTS`).
    pub imports: Arc<tokio::sync::Semaphore>,
    /// Searches admitted (running or waiting to run) and running.
    pub searches: SearchPermits,
    /// This service's own metrics registry.
    pub metrics: crate::metrics::Metrics,
}

/// The two bounds on search work: how many may be admitted (running plus
/// waiting) and how many run at once.
#[derive(Debug, Clone)]
pub struct SearchPermits {
    pub admitted: Arc<tokio::sync::Semaphore>,
    pub running: Arc<tokio::sync::Semaphore>,
}

impl SearchPermits {
    pub fn new(running: usize, queued: usize) -> Self {
        let running = running.max(1);
        SearchPermits {
            admitted: Arc::new(tokio::sync::Semaphore::new(running + queued)),
            running: Arc::new(tokio::sync::Semaphore::new(running)),
        }
    }
}

/// The service's router.
pub fn app(state: AppState) -> Router {
    routers(state).0
}

/// The OpenAPI document (what `/v1/openapi.json` serves).
pub fn openapi(state: AppState) -> Value {
    routers(state).1
}

/// Every route is registered here through utoipa-axum's `routes!`, which
/// puts the handler in the router and its annotation in the document at
/// once: nothing is routed undocumented or documented unrouted.
fn routers(state: AppState) -> (Router, Value) {
    let (shopper, shopper_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(sessions::create_session))
        .routes(routes!(catalog::get_product))
        .routes(routes!(catalog::product_availability))
        .routes(routes!(catalog::list_categories))
        .routes(routes!(catalog::search))
        .routes(routes!(carts::create_cart))
        .routes(routes!(carts::get_cart))
        .routes(routes!(carts::add_cart_item))
        .routes(routes!(carts::set_cart_item, carts::remove_cart_item))
        .routes(routes!(orders::checkout))
        .routes(routes!(orders::list_orders))
        .routes(routes!(orders::get_order))
        .routes(routes!(purge::purge_feed))
        .routes(routes!(reviews::list_reviews))
        .routes(routes!(reviews::review_summary))
        .routes(routes!(reviews::my_review, reviews::put_review))
        .routes(routes!(reviews::vote_helpful))
        .routes(routes!(recommend::bought_together))
        .routes(routes!(recommend::popular))
        .split_for_parts();
    let (admin, admin_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(admin::put_category, admin::delete_category))
        .routes(routes!(admin::put_product, admin::delete_product))
        .routes(routes!(admin::restock, admin::audit_stock))
        .routes(routes!(import::import_products, import::import_status))
        .routes(routes!(reviews::moderate_review))
        .routes(routes!(recommend::recommendation_status))
        .routes(routes!(recommend::sales_page))
        .routes(routes!(recommend::product_categories))
        .routes(routes!(recommend::begin_set))
        .routes(routes!(recommend::publish_set))
        .split_for_parts();
    // Region to region, with the admin token: larger bodies than the rest.
    let (internal, internal_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(
            replica::replica_standing,
            replica::apply_replica_batch
        ))
        // A set's pages: up to 500 records of 20 recommendations each.
        .routes(routes!(recommend::write_set_page))
        .split_for_parts();
    let (ops, ops_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics_text))
        .routes(routes!(ops::openapi_document))
        .split_for_parts();
    let doc = doc::assemble(vec![
        (
            shopper_doc,
            doc::Group::Shopper {
                edge: state.edge.is_some(),
            },
        ),
        (admin_doc, doc::Group::Admin),
        (internal_doc, doc::Group::Admin),
        (ops_doc, doc::Group::Ops),
    ]);
    let served_doc = Arc::new(doc.clone());
    let limit = state.http.body_limit_bytes;
    // Every answer names the region that gave it (region names are DNS
    // labels, so always a valid header value).
    let region = HeaderValue::from_str(state.commerce.region().as_str())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    // Admin calls are authenticated before anything else is looked at.
    let admin = admin.layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let internal = internal
        .layer(DefaultBodyLimit::max(REPLICA_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let shopper = match &state.edge {
        Some(_) => shopper.layer(middleware::from_fn_with_state(state.clone(), verify_edge)),
        None => shopper,
    };
    let router = Router::new()
        .merge(shopper)
        .merge(admin)
        .merge(internal)
        .merge(ops.layer(axum::Extension(served_doc)))
        // After every route: it is set on each route's method router.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        // A bug must still answer problem+json, never drop the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "internal error",
                )
                .into_response()
            },
        ))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static(regional_api::headers::REGION),
            region,
        ))
        .with_state(state);
    (router, doc)
}

/// A known route asked with a method it does not take (axum adds `Allow`).
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        regional_api::problem::kinds::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "this route does not take that method",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such route",
    )
}

/// Per-request timeout (as problem+json) and metrics.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let safe = req.method().is_safe();
    let _in_flight = state.metrics.in_flight();
    let started = Instant::now();
    // A bulk import streams for as long as its body lasts (bounded by its
    // lines); it bounds the wait for each piece of the body itself.
    let timeout = if route == import::ROUTE {
        Duration::MAX
    } else {
        Duration::from_millis(state.http.request_timeout_ms)
    };
    let response = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        // 504, not 503: a write may have been applied, and an edge must
        // not send it to another region without an idempotency key.
        Err(_) if safe => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "Request timed out",
            "the request took longer than the server's limit",
        )
        .into_response(),
        Err(_) => ApiError::maybe_applied(
            "the request took longer than the server's limit and may have been applied; \
             retry with the same Idempotency-Key",
        )
        .into_response(),
    };
    state.metrics.record_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Checks the edge signature over the buffered (bounded) body, then hands
/// the request on with the body restored.
async fn verify_edge(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(verifier) = &state.edge else {
        return Ok(next.run(req).await);
    };
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, state.http.body_limit_bytes);
    let bytes: Bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Body too large",
                "the request body exceeds the size limit",
            ));
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    verifier.verify(
        parts.method.as_str(),
        path,
        &parts.headers,
        &bytes,
        // The region's clock (the simulator's, when it runs one).
        state.commerce.now_ms() / 1000,
    )?;
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

async fn require_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check_admin(req.headers(), &state.admin_tokens)?;
    Ok(next.run(req).await)
}

fn shopper(state: &AppState, headers: &HeaderMap) -> Result<ShardedId, ApiError> {
    state.sessions.verify(headers, state.commerce.now_ms())
}

/// Parses an id from a path; an id of a shard the topology does not know
/// is as absent as any other unknown id.
fn parse_id(state: &AppState, text: &str, what: &'static str) -> Result<ShardedId, ApiError> {
    let id: ShardedId = text.parse().map_err(|e: topology::IdError| {
        ApiError::bad_request(format!("malformed {what} id: {e}"))
    })?;
    if state.commerce.topology().shard(id.shard()).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("{what} not found"),
        ));
    }
    Ok(id)
}

/// The least catalog version an edge that saw a purge accepts
/// (`x-meridian-min-version`; absent or unreadable: any).
fn min_version(headers: &HeaderMap) -> u64 {
    headers
        .get(regional_api::headers::MIN_VERSION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A write's `Idempotency-Key`, if it has one.
fn op_id(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get(regional_api::headers::IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::from(CommerceError::Invalid {
                    field: "Idempotency-Key",
                    reason: "must be visible ASCII".into(),
                })
            })
        })
        .transpose()
}

fn parse_shard(state: &AppState, text: &str) -> Result<ShardId, ApiError> {
    let shard: ShardId = text
        .parse()
        .map_err(|e: topology::NameError| ApiError::bad_request(format!("malformed shard: {e}")))?;
    if state.commerce.topology().shard(&shard).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no shard {shard}"),
        ));
    }
    Ok(shard)
}

fn with_cart_version(mut cart: Cart, status: StatusCode) -> Response {
    // Internal: the write-deduplication ids are not part of the API.
    cart.recent_ops.clear();
    cart.created_by = None;
    let version =
        HeaderValue::from_str(&cart.version.to_string()).unwrap_or(HeaderValue::from_static("0"));
    let etag = HeaderValue::from_str(&format!("\"{}\"", cart.version))
        .unwrap_or(HeaderValue::from_static("\"0\""));
    let mut response = (status, Json(cart)).into_response();
    response
        .headers_mut()
        .insert(regional_api::headers::CART_VERSION, version);
    response.headers_mut().insert(header::ETAG, etag);
    response
}
