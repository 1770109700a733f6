//! Carts: create, read, change (every write idempotent by key).

use super::*;

/// A new empty cart for the session's shopper. With an `Idempotency-Key`,
/// a repeat of the request returns the cart the first one made.
#[utoipa::path(post, path = "/v1/carts", tag = "carts",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters")),
    responses((status = 201, body = Cart), (status = 401, body = Problem), (status = 421, body = Problem), (status = 422, body = Problem), (status = 504, body = Problem)))]
pub(super) async fn create_cart(
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
pub(super) async fn get_cart(
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
pub(super) struct AddItem {
    sku: String,
    /// 1 to 99 units, added to what the cart holds.
    qty: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetItem {
    /// 0 to 99 units; 0 removes the line.
    qty: i64,
}

/// Adds units of a SKU to the cart.
#[utoipa::path(post, path = "/v1/carts/{cart_id}/items", tag = "carts", request_body = AddItem,
    params(("cart_id" = String, Path, description = "`<shard>.<ulid>`")),
    responses((status = 200, body = Cart), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn add_cart_item(
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
pub(super) async fn set_cart_item(
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
pub(super) async fn remove_cart_item(
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
