//! Admin: catalog writes, restock, stock audit (admin token).

use super::*;

/// Creates or replaces a category.
#[utoipa::path(put, path = "/v1/admin/categories/{slug}", tag = "admin", request_body = CategoryInput,
    params(("slug" = inline(SlugParam), Path)),
    responses((status = 200, body = Category),
        (status = 422, body = Problem, description = "`unknown-category` (the parent) or `category-cycle`"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn put_category(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    JsonBody(body): JsonBody<CategoryInput>,
) -> Result<Json<Category>, ApiError> {
    Ok(Json(state.commerce.upsert_category(&slug, &body).await?))
}

/// Deletes an empty category.
#[utoipa::path(delete, path = "/v1/admin/categories/{slug}", tag = "admin",
    params(("slug" = inline(SlugParam), Path)),
    responses((status = 204, description = "Deleted"),
        (status = 404, body = Problem, description = "No such category"),
        (status = 409, body = Problem, description = "`category-in-use`"),
        (status = 422, body = Problem, description = "The slug is malformed"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn delete_category(
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.commerce.delete_category(&slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates or replaces a product.
#[utoipa::path(put, path = "/v1/admin/products/{sku}", tag = "admin", request_body = ProductInput,
    params(("sku" = inline(SkuParam), Path)),
    responses((status = 200, body = Product),
        (status = 422, body = Problem, description = "`unknown-category`"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn put_product(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
    JsonBody(body): JsonBody<ProductInput>,
) -> Result<Json<Product>, ApiError> {
    Ok(Json(state.commerce.upsert_product(&sku, &body).await?))
}

/// Deletes a product.
#[utoipa::path(delete, path = "/v1/admin/products/{sku}", tag = "admin",
    params(("sku" = inline(SkuParam), Path)),
    responses((status = 204, description = "Deleted"),
        (status = 404, body = Problem, description = "No such product"),
        (status = 422, body = Problem, description = "The SKU is malformed"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn delete_product(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.commerce.delete_product(&sku).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RestockIn {
    /// Units received.
    #[schema(schema_with = restock_qty)]
    qty: i64,
}

fn restock_qty() -> utoipa::openapi::Object {
    commerce::openapi::integer(1, commerce::inventory::MAX_QTY).build()
}

/// Adds stock of a SKU to a warehouse.
#[utoipa::path(post, path = "/v1/admin/stock/{warehouse}/{sku}", tag = "admin", request_body = RestockIn,
    params(("warehouse" = inline(ShardParam), Path, description = "The warehouse's shard"), ("sku" = inline(SkuParam), Path)),
    responses((status = 200, body = StockLevel),
        (status = 404, body = Problem, description = "No such warehouse"),
        (status = 421, body = Problem, description = "The warehouse's shard is not served here"),
        (status = 422, body = Problem, description = "`unknown-sku`, or stock past its bound"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn restock(
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
pub(super) struct StockAudit {
    live: StockLevel,
    /// The same numbers, rebuilt from the SKU's event log alone.
    rebuilt: StockLevel,
    /// Live equals rebuilt and available + reserved + sold = received.
    consistent: bool,
}

/// Stock of a SKU in a warehouse, live and rebuilt from its event log.
#[utoipa::path(get, path = "/v1/admin/stock/{warehouse}/{sku}", tag = "admin",
    params(("warehouse" = inline(ShardParam), Path, description = "The warehouse's shard"), ("sku" = inline(SkuParam), Path)),
    responses((status = 200, body = StockAudit),
        (status = 404, body = Problem, description = "No such warehouse"),
        (status = 421, body = Problem, description = "The warehouse's shard is not served here"),
        (status = 422, body = Problem, description = "The SKU is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn audit_stock(
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
