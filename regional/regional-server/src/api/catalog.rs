//! Catalog reads: products, availability, categories, search.

use super::*;

/// One product (served from this region's cache when hot). An edge that
/// has seen catalog version N for this product sends
/// `x-meridian-min-version: N`: a cached copy older than that is not used.
#[utoipa::path(get, path = "/v1/products/{sku}", tag = "catalog",
    params(("sku" = inline(SkuParam), Path),
           ("x-meridian-min-version" = inline(Option<VersionParam>), Header, description = "Least catalog version the caller accepts")),
    responses((status = 200, body = Product, headers(("etag" = String))),
        (status = 404, body = Problem, description = "No such product"),
        (status = 422, body = Problem, description = "The SKU is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn get_product(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(sku): ApiPath<String>,
) -> Result<Response, ApiError> {
    match state
        .commerce
        .product_at_least(&sku, min_version(&headers))
        .await
    {
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
pub(super) struct Availability {
    #[schema(value_type = String)]
    warehouse: ShardId,
    available: i64,
}

/// Units available to buy in each warehouse.
#[utoipa::path(get, path = "/v1/products/{sku}/availability", tag = "catalog",
    params(("sku" = inline(SkuParam), Path)),
    responses((status = 200, body = [Availability]),
        (status = 422, body = Problem, description = "The SKU is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn product_availability(
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
#[utoipa::path(get, path = "/v1/categories", tag = "catalog",
    responses((status = 200, body = [Category]),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn list_categories(
    State(state): State<AppState>,
) -> Result<Json<Vec<Category>>, ApiError> {
    Ok(Json(state.commerce.list_categories().await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchParams {
    /// Words to find in titles and descriptions.
    #[param(schema_with = query_text)]
    q: Option<String>,
    /// Only this category.
    #[param(schema_with = commerce::openapi::slug)]
    category: Option<String>,
    /// Least price, in minor units (a range with its least above its most
    /// matches nothing).
    price_min_minor: Option<i64>,
    /// Most price, in minor units.
    price_max_minor: Option<i64>,
    #[param(inline)]
    sort: Option<Sort>,
    /// Hits to skip.
    #[serde(default)]
    #[param(schema_with = offset)]
    offset: usize,
    /// Hits per page (20 when absent).
    #[param(schema_with = page_limit)]
    limit: Option<usize>,
}

/// The order of search hits.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum Sort {
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    TitleAsc,
}

fn query_text() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .max_length(Some(search::MAX_QUERY_TEXT_CHARS))
        .build()
}

fn offset() -> utoipa::openapi::Object {
    commerce::openapi::count(0, search::MAX_OFFSET as u64).build()
}

fn page_limit() -> utoipa::openapi::Object {
    commerce::openapi::count(1, search::MAX_PAGE_LIMIT as u64).build()
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SearchHitOut {
    sku: String,
    title: String,
    category: String,
    price: Money,
    score: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SearchOut {
    total: usize,
    offset: usize,
    limit: usize,
    hits: Vec<SearchHitOut>,
}

/// Full-text product search with filters, sort and pagination.
#[utoipa::path(get, path = "/v1/search", tag = "catalog", params(SearchParams),
    responses((status = 200, body = SearchOut),
        (status = 503, body = Problem, description = "Too many searches are waiting; retry")))]
pub(super) async fn search(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> Result<Json<SearchOut>, ApiError> {
    let sort = match p.sort.unwrap_or_default() {
        Sort::Relevance => search::Sort::Relevance,
        Sort::PriceAsc => search::Sort::PriceAsc,
        Sort::PriceDesc => search::Sort::PriceDesc,
        Sort::TitleAsc => search::Sort::TitleAsc,
    };
    if let Some(category) = &p.category {
        commerce::catalog::validate_slug(category)?;
    }
    let limit = p.limit.unwrap_or(search::DEFAULT_PAGE_LIMIT);
    // A price range whose least is above its most holds nothing.
    if let (Some(min), Some(max)) = (p.price_min_minor, p.price_max_minor)
        && min > max
    {
        return Ok(Json(SearchOut {
            total: 0,
            offset: p.offset,
            limit,
            hits: Vec::new(),
        }));
    }
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
    let page = commerce::off_task(index, move |index| {
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
