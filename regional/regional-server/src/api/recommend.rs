//! Recommendations, as the batch job's current set holds them: what is
//! bought with a product, and what is popular in a region now.

use commerce::recommend::{MAX_ITEMS, Recommendations};

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
