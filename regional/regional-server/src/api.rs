//! The regional HTTP API (axum): JSON under `/v1/`, problem+json errors,
//! an OpenAPI document generated from these handlers' annotations and
//! types (`/v1/openapi.json`), health, readiness and metrics.

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
use topology::{ShardId, ShardedId};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{EdgeVerifier, Sessions, check_admin};
use crate::config::HttpConfig;
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::problem::{ApiError, Problem};

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub commerce: Commerce,
    /// `None` when edge signatures are not required.
    pub edge: Option<Arc<EdgeVerifier>>,
    pub sessions: Arc<Sessions>,
    pub admin_token: Option<Arc<str>>,
    pub http: HttpConfig,
    /// Permits for checkout sagas running apart from their requests.
    pub checkouts: Arc<tokio::sync::Semaphore>,
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Meridian regional API",
        description = "Catalog, search, carts, checkout and orders of one region. Errors are RFC 9457 problem+json."
    ),
    components(schemas(Problem))
)]
struct ApiDoc;

/// The service's router, and the OpenAPI document of its routes.
pub fn app(state: AppState) -> Router {
    let (router, _) = routers(state);
    router
}

/// The OpenAPI document (what `/v1/openapi.json` serves).
pub fn openapi(state: AppState) -> utoipa::openapi::OpenApi {
    routers(state).1
}

fn routers(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (shopper, mut doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_session))
        .routes(routes!(get_product))
        .routes(routes!(product_availability))
        .routes(routes!(list_categories))
        .routes(routes!(search))
        .routes(routes!(create_cart))
        .routes(routes!(get_cart))
        .routes(routes!(add_cart_item))
        .routes(routes!(set_cart_item, remove_cart_item))
        .routes(routes!(checkout))
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
        .routes(routes!(purge_feed))
        .split_for_parts();
    let (admin, admin_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(put_category, delete_category))
        .routes(routes!(put_product, delete_product))
        .routes(routes!(restock, audit_stock))
        .split_for_parts();
    let (ops, ops_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .split_for_parts();
    doc.merge(admin_doc);
    doc.merge(ops_doc);
    doc.paths.paths.insert(
        "/v1/openapi.json".to_owned(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .response(
                    "200",
                    utoipa::openapi::Response::new("The OpenAPI document"),
                ),
        ),
    );
    doc.paths.paths.insert(
        "/metrics".to_owned(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("Prometheus metrics"))
                .response(
                    "200",
                    utoipa::openapi::Response::new("Prometheus text format"),
                ),
        ),
    );
    let served_doc = Arc::new(doc.clone());
    let limit = state.http.body_limit_bytes;
    // Admin calls are authenticated before anything else is looked at.
    let admin = admin.layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let shopper = match &state.edge {
        Some(_) => shopper.layer(middleware::from_fn_with_state(state.clone(), verify_edge)),
        None => shopper,
    };
    let router = Router::new()
        .merge(shopper)
        .merge(admin)
        .merge(ops)
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let doc = served_doc.clone();
                async move { Json((*doc).clone()) }
            }),
        )
        .route("/metrics", axum::routing::get(metrics_text))
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
    let started = Instant::now();
    let timeout = Duration::from_millis(state.http.request_timeout_ms);
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
        unix_s(),
    )?;
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn require_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check_admin(req.headers(), state.admin_token.as_deref())?;
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

// ---- sessions ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSession {
    /// The shard to create the shopper in; this region's home shard when absent.
    #[serde(default)]
    shard: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SessionOut {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    shopper_id: String,
    expires_ms: u64,
}

/// Starts a shopper session (a new shopper id in this region's shard).
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = NewSession,
    responses((status = 201, body = SessionOut), (status = 422, body = Problem), (status = 401, body = Problem)))]
async fn create_session(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewSession>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    let shard = match &body.shard {
        Some(text) => parse_shard(&state, text)?,
        None => state.commerce.home_shard().cloned().ok_or_else(|| {
            ApiError::from(CommerceError::Invalid {
                field: "shard",
                reason: "this region serves no shard".into(),
            })
        })?,
    };
    if !state.commerce.served().contains(&shard) {
        return Err(CommerceError::Shard(db::ShardMapError::NotServed { shard }).into());
    }
    let shopper = state.commerce.new_id(&shard);
    let (token, claims) = state.sessions.issue(shopper, state.commerce.now_ms());
    Ok((
        StatusCode::CREATED,
        Json(SessionOut {
            token,
            shopper_id: claims.sub.to_string(),
            expires_ms: claims.exp_ms,
        }),
    ))
}

// ---- catalog ----

/// One product (served from this region's cache when hot). An edge that
/// has seen catalog version N for this product sends
/// `x-meridian-min-version: N`: a cached copy older than that is not used.
#[utoipa::path(get, path = "/v1/products/{sku}", tag = "catalog",
    params(("sku" = String, Path, description = "The product's SKU"),
           ("x-meridian-min-version" = Option<u64>, Header, description = "Least catalog version the caller accepts")),
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn get_product(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(sku): ApiPath<String>,
) -> Result<Response, ApiError> {
    let min_version: u64 = headers
        .get("x-meridian-min-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    match state.commerce.product_at_least(&sku, min_version).await {
        Ok(product) => {
            let etag = format!("\"v{}\"", product.version);
            let mut response = Json(product).into_response();
            if let Ok(value) = HeaderValue::from_str(&etag) {
                response.headers_mut().insert(header::ETAG, value);
            }
            Ok(response)
        }
        Err(CommerceError::UnknownSku { sku }) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no product {sku}"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct Availability {
    #[schema(value_type = String)]
    warehouse: ShardId,
    available: i64,
}

/// Units available to buy in each warehouse.
#[utoipa::path(get, path = "/v1/products/{sku}/availability", tag = "catalog",
    params(("sku" = String, Path, description = "The product's SKU")),
    responses((status = 200, body = [Availability]), (status = 422, body = Problem)))]
async fn product_availability(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> Result<Json<Vec<Availability>>, ApiError> {
    let levels = state.commerce.availability(&sku).await?;
    Ok(Json(
        levels
            .into_iter()
            .map(|l| Availability {
                warehouse: l.warehouse,
                available: l.available,
            })
            .collect(),
    ))
}

/// Every category.
#[utoipa::path(get, path = "/v1/categories", tag = "catalog", responses((status = 200, body = [Category])))]
async fn list_categories(State(state): State<AppState>) -> Result<Json<Vec<Category>>, ApiError> {
    Ok(Json(state.commerce.list_categories().await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// Words to find in titles and descriptions.
    q: Option<String>,
    category: Option<String>,
    price_min_minor: Option<i64>,
    price_max_minor: Option<i64>,
    /// `relevance` (default), `price_asc`, `price_desc`, `title_asc`.
    sort: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SearchHitOut {
    sku: String,
    title: String,
    category: String,
    price: Money,
    score: f32,
}

#[derive(Debug, Serialize, ToSchema)]
struct SearchOut {
    total: usize,
    offset: usize,
    limit: usize,
    hits: Vec<SearchHitOut>,
}

/// Full-text product search with filters, sort and pagination.
#[utoipa::path(get, path = "/v1/search", tag = "catalog", params(SearchParams),
    responses((status = 200, body = SearchOut), (status = 422, body = Problem)))]
async fn search(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> Result<Json<SearchOut>, ApiError> {
    let sort = match p.sort.as_deref() {
        None | Some("relevance") => search::Sort::Relevance,
        Some("price_asc") => search::Sort::PriceAsc,
        Some("price_desc") => search::Sort::PriceDesc,
        Some("title_asc") => search::Sort::TitleAsc,
        Some(other) => {
            return Err(CommerceError::Invalid {
                field: "sort",
                reason: format!(
                    "unknown sort {other:?}; use relevance, price_asc, price_desc or title_asc"
                ),
            }
            .into());
        }
    };
    let limit = p.limit.unwrap_or(20);
    let query = search::SearchQuery {
        text: p.q.filter(|q| !q.trim().is_empty()),
        category: p.category,
        price_min_minor: p.price_min_minor,
        price_max_minor: p.price_max_minor,
        sort,
        offset: p.offset,
        limit,
    };
    // Bounded: admitted or refused at once (nothing done), then waiting
    // for a running slot; a request that ends while waiting runs nothing.
    let _admitted = state.searches.admitted.try_acquire().map_err(|_| {
        ApiError::unavailable("too many searches are waiting; retry").with_retry_after(1)
    })?;
    let running = state
        .searches
        .running
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable("search is shutting down"))?;
    let index = state.commerce.search_index().clone();
    let page = tokio::task::spawn_blocking(move || {
        let _running = running;
        index.search(&query)
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "internal error",
        )
    })?
    .map_err(CommerceError::from)?;
    Ok(Json(SearchOut {
        total: page.total,
        offset: p.offset,
        limit,
        hits: page
            .hits
            .into_iter()
            .map(|h| SearchHitOut {
                sku: h.id,
                title: h.title,
                category: h.category,
                price: Money {
                    amount_minor: h.price_minor,
                    currency: h.currency,
                },
                score: h.score,
            })
            .collect(),
    }))
}

// ---- carts ----

/// A new empty cart for the session's shopper. With an `Idempotency-Key`,
/// a repeat of the request returns the cart the first one made.
#[utoipa::path(post, path = "/v1/carts", tag = "carts",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters")),
    responses((status = 201, body = Cart), (status = 401, body = Problem), (status = 421, body = Problem), (status = 422, body = Problem), (status = 504, body = Problem)))]
async fn create_cart(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let owner = shopper(&state, &headers)?;
    let cart = state.commerce.create_cart(&owner, op_id(&headers)?).await?;
    Ok(with_cart_version(cart, StatusCode::CREATED))
}

/// The session's cart (`x-cart-version` carries its version).
#[utoipa::path(get, path = "/v1/carts/{cart_id}", tag = "carts",
    params(("cart_id" = String, Path, description = "`<shard>.<ulid>`")),
    responses((status = 200, body = Cart), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn get_cart(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(cart_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let owner = shopper(&state, &headers)?;
    let id = parse_id(&state, &cart_id, "cart")?;
    let cart = state.commerce.cart(&owner, &id).await?;
    Ok(with_cart_version(cart, StatusCode::OK))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddItem {
    sku: String,
    /// 1 to 99 units, added to what the cart holds.
    qty: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetItem {
    /// 0 to 99 units; 0 removes the line.
    qty: i64,
}

/// Adds units of a SKU to the cart.
#[utoipa::path(post, path = "/v1/carts/{cart_id}/items", tag = "carts", request_body = AddItem,
    params(("cart_id" = String, Path, description = "`<shard>.<ulid>`")),
    responses((status = 200, body = Cart), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn add_cart_item(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(cart_id): ApiPath<String>,
    JsonBody(body): JsonBody<AddItem>,
) -> Result<Response, ApiError> {
    let owner = shopper(&state, &headers)?;
    let id = parse_id(&state, &cart_id, "cart")?;
    let cart = state
        .commerce
        .change_cart(
            &owner,
            &id,
            &CartChange::Add {
                sku: body.sku,
                qty: body.qty,
            },
            op_id(&headers)?,
        )
        .await?;
    Ok(with_cart_version(cart, StatusCode::OK))
}

/// Sets the units of a SKU in the cart.
#[utoipa::path(put, path = "/v1/carts/{cart_id}/items/{sku}", tag = "carts", request_body = SetItem,
    params(("cart_id" = String, Path, description = "`<shard>.<ulid>`"), ("sku" = String, Path, description = "The SKU")),
    responses((status = 200, body = Cart), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_cart_item(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((cart_id, sku)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody<SetItem>,
) -> Result<Response, ApiError> {
    let owner = shopper(&state, &headers)?;
    let id = parse_id(&state, &cart_id, "cart")?;
    let cart = state
        .commerce
        .change_cart(
            &owner,
            &id,
            &CartChange::Set { sku, qty: body.qty },
            op_id(&headers)?,
        )
        .await?;
    Ok(with_cart_version(cart, StatusCode::OK))
}

/// Removes a SKU from the cart.
#[utoipa::path(delete, path = "/v1/carts/{cart_id}/items/{sku}", tag = "carts",
    params(("cart_id" = String, Path, description = "`<shard>.<ulid>`"), ("sku" = String, Path, description = "The SKU")),
    responses((status = 200, body = Cart), (status = 404, body = Problem)))]
async fn remove_cart_item(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((cart_id, sku)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let owner = shopper(&state, &headers)?;
    let id = parse_id(&state, &cart_id, "cart")?;
    let cart = state
        .commerce
        .change_cart(&owner, &id, &CartChange::Remove { sku }, op_id(&headers)?)
        .await?;
    Ok(with_cart_version(cart, StatusCode::OK))
}

// ---- checkout and orders ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckoutIn {
    cart_id: String,
}

/// Checks out a cart. Needs an `Idempotency-Key` header: a retry with the
/// same key returns the same order and never charges twice. 201: confirmed;
/// 202: still running (payment outcome pending), retry with the same key;
/// 409: failed and compensated (out of stock, payment declined).
#[utoipa::path(post, path = "/v1/checkout", tag = "orders", request_body = CheckoutIn,
    params(("Idempotency-Key" = String, Header, description = "1 to 128 visible ASCII characters, unique per checkout")),
    responses((status = 201, body = Order), (status = 202, body = Order), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CheckoutIn>,
) -> Result<Response, ApiError> {
    let owner = shopper(&state, &headers)?;
    let Some(key) = headers.get(regional_api::headers::IDEMPOTENCY_KEY) else {
        return Err(CommerceError::Invalid {
            field: "Idempotency-Key",
            reason: "header is required".into(),
        }
        .into());
    };
    let key = key.to_str().map_err(|_| {
        ApiError::from(CommerceError::Invalid {
            field: "Idempotency-Key",
            reason: "must be visible ASCII".into(),
        })
    })?;
    let cart_id = parse_id(&state, &body.cart_id, "cart")?;
    // The saga runs apart from the request: a client that hangs up (or a
    // request past its deadline) does not stop it midway with its lease
    // held, so a retry with the same key gets the outcome once it exists.
    let permit = state.checkouts.clone().try_acquire_owned().map_err(|_| {
        ApiError::unavailable("too many checkouts are running; nothing was applied; retry")
            .with_retry_after(1)
    })?;
    let commerce = state.commerce.clone();
    let key = key.to_owned();
    let saga = tokio::spawn(async move {
        let _permit = permit;
        commerce.checkout(&owner, &cart_id, &key).await
    });
    let order = match saga.await {
        Ok(outcome) => outcome?,
        // The saga task panicked: the order may exist; a retry with the
        // same key resumes it.
        Err(_) => {
            return Err(ApiError::maybe_applied(
                "the checkout stopped unexpectedly; retry with the same Idempotency-Key",
            ));
        }
    };
    state.metrics.record_checkout(order.status);
    match order.status {
        OrderStatus::Confirmed => Ok((StatusCode::CREATED, Json(order)).into_response()),
        OrderStatus::Pending => Ok((StatusCode::ACCEPTED, Json(order)).into_response()),
        OrderStatus::Failed => Err(ApiError::new(
            StatusCode::CONFLICT,
            "checkout-failed",
            "Checkout failed",
            order
                .failure
                .clone()
                .unwrap_or_else(|| "checkout failed".into()),
        )
        .with_order(order.id)),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// An order id: list orders older than it.
    before: Option<String>,
    limit: Option<usize>,
}

/// The session's orders, newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(ListParams),
    responses((status = 200, body = OrderPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn list_orders(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let owner = shopper(&state, &headers)?;
    let before = p
        .before
        .as_deref()
        .map(|b| parse_id(&state, b, "order"))
        .transpose()?;
    Ok(Json(
        state
            .commerce
            .list_orders(&owner, before.as_ref(), p.limit.unwrap_or(20))
            .await?,
    ))
}

/// One of the session's orders.
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = String, Path, description = "`<shard>.<ulid>`")),
    responses((status = 200, body = Order), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn get_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Order>, ApiError> {
    let owner = shopper(&state, &headers)?;
    let id = parse_id(&state, &order_id, "order")?;
    Ok(Json(state.commerce.order(&owner, &id).await?))
}

// ---- purge feed ----

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FeedParams {
    /// The cursor of the last event seen (empty: from the oldest kept).
    #[serde(default)]
    after: String,
    limit: Option<usize>,
    /// Hold the request up to this long (≤ 30000) when there is nothing new.
    #[serde(default)]
    wait_ms: u64,
}

/// Catalog change (purge) events after a cursor; long-polls with `wait_ms`.
#[utoipa::path(get, path = "/v1/purge", tag = "edge", params(FeedParams),
    responses((status = 200, body = FeedPage), (status = 422, body = Problem)))]
async fn purge_feed(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<FeedParams>,
) -> Result<Json<FeedPage>, ApiError> {
    let cursor = Cursor::parse(&p.after)?;
    Ok(Json(
        state
            .commerce
            .read_feed(cursor, p.limit.unwrap_or(100), p.wait_ms)
            .await?,
    ))
}

// ---- admin ----

/// Creates or replaces a category.
#[utoipa::path(put, path = "/v1/admin/categories/{slug}", tag = "admin", request_body = CategoryInput,
    params(("slug" = String, Path, description = "a-z, 0-9, -")),
    responses((status = 200, body = Category), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn put_category(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    JsonBody(body): JsonBody<CategoryInput>,
) -> Result<Json<Category>, ApiError> {
    Ok(Json(state.commerce.upsert_category(&slug, &body).await?))
}

/// Deletes an empty category.
#[utoipa::path(delete, path = "/v1/admin/categories/{slug}", tag = "admin",
    params(("slug" = String, Path, description = "a-z, 0-9, -")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_category(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.commerce.delete_category(&slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates or replaces a product.
#[utoipa::path(put, path = "/v1/admin/products/{sku}", tag = "admin", request_body = ProductInput,
    params(("sku" = String, Path, description = "A-Z, 0-9, -")),
    responses((status = 200, body = Product), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn put_product(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
    JsonBody(body): JsonBody<ProductInput>,
) -> Result<Json<Product>, ApiError> {
    Ok(Json(state.commerce.upsert_product(&sku, &body).await?))
}

/// Deletes a product.
#[utoipa::path(delete, path = "/v1/admin/products/{sku}", tag = "admin",
    params(("sku" = String, Path, description = "A-Z, 0-9, -")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_product(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.commerce.delete_product(&sku).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RestockIn {
    qty: i64,
}

/// Adds stock of a SKU to a warehouse.
#[utoipa::path(post, path = "/v1/admin/stock/{warehouse}/{sku}", tag = "admin", request_body = RestockIn,
    params(("warehouse" = String, Path, description = "The warehouse's shard"), ("sku" = String, Path, description = "The SKU")),
    responses((status = 200, body = StockLevel), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn restock(
    State(state): State<AppState>,
    ApiPath((warehouse, sku)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody<RestockIn>,
) -> Result<Json<StockLevel>, ApiError> {
    let warehouse = parse_shard(&state, &warehouse)?;
    Ok(Json(
        state.commerce.restock(&warehouse, &sku, body.qty).await?,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
struct StockAudit {
    live: StockLevel,
    /// The same numbers, rebuilt from the SKU's event log alone.
    rebuilt: StockLevel,
    /// Live equals rebuilt and available + reserved + sold = received.
    consistent: bool,
}

/// Stock of a SKU in a warehouse, live and rebuilt from its event log.
#[utoipa::path(get, path = "/v1/admin/stock/{warehouse}/{sku}", tag = "admin",
    params(("warehouse" = String, Path, description = "The warehouse's shard"), ("sku" = String, Path, description = "The SKU")),
    responses((status = 200, body = StockAudit), (status = 401, body = Problem)))]
async fn audit_stock(
    State(state): State<AppState>,
    ApiPath((warehouse, sku)): ApiPath<(String, String)>,
) -> Result<Json<StockAudit>, ApiError> {
    let warehouse = parse_shard(&state, &warehouse)?;
    let live = state.commerce.stock(&warehouse, &sku).await?;
    let rebuilt = state.commerce.rebuild_stock(&warehouse, &sku).await?;
    let consistent = live == rebuilt && live.is_consistent();
    Ok(Json(StockAudit {
        live,
        rebuilt,
        consistent,
    }))
}

// ---- operations ----

#[derive(Debug, Serialize, ToSchema)]
struct Status {
    status: &'static str,
    region: String,
}

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Status)))]
async fn healthz(State(state): State<AppState>) -> Json<Status> {
    Json(Status {
        status: "ok",
        region: state.commerce.region().to_string(),
    })
}

/// Ready: every served shard (and the catalog shard) answers a read within 1 s.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Status), (status = 503, body = Problem)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let mut shards: Vec<ShardId> = state.commerce.served().iter().cloned().collect();
    shards.push(state.commerce.catalog_shard().clone());
    for shard in shards {
        let db = state
            .commerce
            .shards()
            .get(&shard)
            .map_err(CommerceError::from)?;
        let probe = db.run(|tx, _| async move { tx.get_snapshot(b"\x01readyz").await.map(|_| ()) });
        match tokio::time::timeout(Duration::from_secs(1), probe).await {
            Ok(Ok(())) => {}
            _ => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not-ready",
                    "Not ready",
                    format!("shard {shard} does not answer"),
                ));
            }
        }
    }
    Ok(Json(Status {
        status: "ready",
        region: state.commerce.region().to_string(),
    }))
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
