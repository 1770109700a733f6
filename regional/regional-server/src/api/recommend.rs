//! Recommendations, as the batch job's current set holds them: what is
//! bought with a product, and what is popular in a region now.

use commerce::recommend::{
    BeginSet, MAX_ITEMS, MAX_SALES_PAGE, ProductCategory, PublishSet, Published,
    RecommendationStatus, Recommendations, SalesPage, SetBegun, SetPage,
};

use super::*;

fn items_limit() -> utoipa::openapi::Object {
    commerce::openapi::count(1, MAX_ITEMS as u64).build()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct LimitParams {
    /// Products at most (10 when absent).
    #[param(schema_with = items_limit)]
    limit: Option<usize>,
}

/// Products often bought with this one (the current set; empty when none
/// is published or the product has none).
#[utoipa::path(get, path = "/v1/products/{sku}/recommendations", tag = "catalog",
    params(("sku" = inline(SkuParam), Path), LimitParams),
    responses((status = 200, body = Recommendations),
        (status = 422, body = Problem, description = "The SKU or `limit` is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn bought_together(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
    ApiQuery(p): ApiQuery<LimitParams>,
) -> Result<Json<Recommendations>, ApiError> {
    Ok(Json(
        state
            .commerce
            .bought_together(&sku, p.limit.unwrap_or(10))
            .await?,
    ))
}

fn region_name() -> utoipa::openapi::Object {
    commerce::openapi::string(topology::RegionId::PATTERN, 1, topology::RegionId::MAX_LEN).build()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PopularParams {
    /// The region (absent: the one answering).
    #[param(schema_with = region_name)]
    region: Option<String>,
    /// Only this category (absent: every category).
    #[param(schema_with = commerce::openapi::slug)]
    category: Option<String>,
    /// Products at most (10 when absent).
    #[param(schema_with = items_limit)]
    limit: Option<usize>,
}

/// What sells in a region now (recency-weighted), in one category or all.
#[utoipa::path(get, path = "/v1/popular", tag = "catalog", params(PopularParams),
    responses((status = 200, body = Recommendations),
        (status = 422, body = Problem, description = "The region, category or `limit` is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn popular(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<PopularParams>,
) -> Result<Json<Recommendations>, ApiError> {
    let region = match &p.region {
        Some(name) => name
            .parse::<topology::RegionId>()
            .map_err(|e| {
                ApiError::from(CommerceError::Invalid {
                    field: "region",
                    reason: e.to_string(),
                })
            })?
            .to_string(),
        None => state.commerce.region().to_string(),
    };
    Ok(Json(
        state
            .commerce
            .popular(&region, p.category.as_deref(), p.limit.unwrap_or(10))
            .await?,
    ))
}

// The batch job's side (admin token): it reads the sales logs and the
// products' categories, then writes a set through the region serving the
// catalog shard, under a lease, and publishes it.

/// Where recommendations stand: the published set, the job writing one,
/// and the shard the sets live in.
#[utoipa::path(get, path = "/v1/admin/recommendations", tag = "admin",
    responses((status = 200, body = RecommendationStatus),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn recommendation_status(
    State(state): State<AppState>,
) -> Result<Json<RecommendationStatus>, ApiError> {
    Ok(Json(state.commerce.recommendation_status().await?))
}

fn sales_limit() -> utoipa::openapi::Object {
    commerce::openapi::count(1, MAX_SALES_PAGE as u64).build()
}

fn sales_after() -> utoipa::openapi::Object {
    commerce::openapi::string("^([0-9a-f]{2})*$", 0, 256).build()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SalesParams {
    /// The `after` of the previous page (absent: the log's start).
    #[param(schema_with = sales_after)]
    after: Option<String>,
    /// Lines at most (the most when absent).
    #[param(schema_with = sales_limit)]
    limit: Option<usize>,
}

/// A page of a shard's sales log, in commit order: what the job exports.
/// Any region answers (a read); the job asks the shard's active region.
#[utoipa::path(get, path = "/v1/admin/sales/{shard}", tag = "admin",
    params(("shard" = inline(ShardParam), Path), SalesParams),
    responses((status = 200, body = SalesPage),
        (status = 404, body = Problem, description = "No such shard"),
        (status = 422, body = Problem, description = "`after` or `limit` is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn sales_page(
    State(state): State<AppState>,
    ApiPath(shard): ApiPath<String>,
    ApiQuery(p): ApiQuery<SalesParams>,
) -> Result<Json<SalesPage>, ApiError> {
    let shard = parse_shard(&state, &shard)?;
    let limit = p.limit.unwrap_or(MAX_SALES_PAGE);
    if limit == 0 || limit > MAX_SALES_PAGE {
        return Err(CommerceError::Invalid {
            field: "limit",
            reason: format!("must be 1..={MAX_SALES_PAGE}"),
        }
        .into());
    }
    Ok(Json(
        state
            .commerce
            .sales_page(&shard, p.after.as_deref(), limit)
            .await?,
    ))
}

fn categories_limit() -> utoipa::openapi::Object {
    commerce::openapi::count(1, db::MAX_RANGE_BATCH as u64).build()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct CategoriesParams {
    /// The last SKU of the previous page (absent: the first SKU).
    #[param(schema_with = commerce::openapi::sku)]
    after: Option<String>,
    /// Products at most (the most when absent).
    #[param(schema_with = categories_limit)]
    limit: Option<usize>,
}

/// The catalog's SKUs with their categories, in SKU order, a page at a
/// time (a page shorter than `limit` is the last).
#[utoipa::path(get, path = "/v1/admin/product-categories", tag = "admin", params(CategoriesParams),
    responses((status = 200, body = Vec<ProductCategory>),
        (status = 422, body = Problem, description = "`after` or `limit` is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn product_categories(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<CategoriesParams>,
) -> Result<Json<Vec<ProductCategory>>, ApiError> {
    let limit = p.limit.unwrap_or(db::MAX_RANGE_BATCH);
    if limit == 0 || limit > db::MAX_RANGE_BATCH {
        return Err(CommerceError::Invalid {
            field: "limit",
            reason: format!("must be 1..={}", db::MAX_RANGE_BATCH),
        }
        .into());
    }
    Ok(Json(
        state
            .commerce
            .product_categories(p.after.as_deref(), limit)
            .await?,
    ))
}

/// Starts a set: the job takes the lease on writing it. A job that
/// begins again (a retried call) gets its set back, cleared.
#[utoipa::path(post, path = "/v1/admin/recommendations/sets", tag = "admin", request_body = BeginSet,
    responses((status = 201, body = SetBegun),
        (status = 409, body = Problem, description = "`job-running`: another job holds the lease"),
        (status = 421, body = Problem, description = "The catalog shard is not served here"),
        (status = 422, body = Problem, description = "The job id or lease is malformed"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn begin_set(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BeginSet>,
) -> Result<(StatusCode, Json<SetBegun>), ApiError> {
    let version = state
        .commerce
        .begin_recommendations(&body.job, body.lease_ms)
        .await?;
    Ok((StatusCode::CREATED, Json(SetBegun { version })))
}

/// Writes a page of the set being written (idempotent: a page written
/// twice holds the same records).
#[utoipa::path(put, path = "/v1/admin/recommendations/sets/{version}/page", tag = "admin", request_body = SetPage,
    params(("version" = inline(VersionParam), Path)),
    responses((status = 204, description = "Written"),
        (status = 409, body = Problem, description = "`set-not-writable`: this job is not writing that set, or it is published"),
        (status = 421, body = Problem, description = "The catalog shard is not served here"),
        (status = 422, body = Problem, description = "A record past its bounds (`limit-exceeded`)"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn write_set_page(
    State(state): State<AppState>,
    ApiPath(version): ApiPath<u64>,
    JsonBody(body): JsonBody<SetPage>,
) -> Result<StatusCode, ApiError> {
    state.commerce.write_set_page(version, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publishes the set: readers switch to all of it at once; older sets
/// are cleared.
#[utoipa::path(post, path = "/v1/admin/recommendations/sets/{version}/publish", tag = "admin", request_body = PublishSet,
    params(("version" = inline(VersionParam), Path)),
    responses((status = 200, body = Published),
        (status = 409, body = Problem, description = "`set-not-writable`: this job is not writing that set, or it or a newer one is published"),
        (status = 421, body = Problem, description = "The catalog shard is not served here"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn publish_set(
    State(state): State<AppState>,
    ApiPath(version): ApiPath<u64>,
    JsonBody(body): JsonBody<PublishSet>,
) -> Result<Json<Published>, ApiError> {
    Ok(Json(
        state
            .commerce
            .publish_recommendations(version, &body)
            .await?,
    ))
}
