//! Carts: create, read, change (every write idempotent by key).

use super::*;

/// A new empty cart for the session's shopper. With an `Idempotency-Key`,
/// a repeat of the request returns the cart the first one made.
#[utoipa::path(post, path = "/v1/carts", tag = "carts", security(("session" = [])),
    params(("Idempotency-Key" = inline(Option<KeyParam>), Header, description = "Makes a repeat return the first request's cart")),
    responses((status = 201, body = Cart, headers(("x-cart-version" = u64), ("etag" = String))),
        (status = 421, body = Problem, description = "The session's shard is not served here"),
        (status = 422, body = Problem, description = "`idempotency-key-reused` or an invalid key"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn create_cart(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let owner = shopper(&state, &headers)?;
    let cart = state.commerce.create_cart(&owner, op_id(&headers)?).await?;
    Ok(with_cart_version(cart, StatusCode::CREATED))
}

/// The session's cart (`x-cart-version` carries its version).
#[utoipa::path(get, path = "/v1/carts/{cart_id}", tag = "carts", security(("session" = [])),
    params(("cart_id" = inline(IdParam), Path)),
    responses((status = 200, body = Cart, headers(("x-cart-version" = u64), ("etag" = String))),
        (status = 404, body = Problem, description = "No such cart of this shopper"),
        (status = 421, body = Problem, description = "The cart's shard is not served here"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
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
    #[schema(schema_with = commerce::openapi::sku)]
    sku: String,
    /// Units added to what the cart holds.
    #[schema(schema_with = add_qty)]
    qty: i64,
}

fn add_qty() -> utoipa::openapi::Object {
    commerce::openapi::integer(1, commerce::cart::MAX_LINE_QTY).build()
}

fn set_qty() -> utoipa::openapi::Object {
    commerce::openapi::integer(0, commerce::cart::MAX_LINE_QTY).build()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetItem {
    /// The line's units; 0 removes the line.
    #[schema(schema_with = set_qty)]
    qty: i64,
}

/// Adds units of a SKU to the cart.
#[utoipa::path(post, path = "/v1/carts/{cart_id}/items", tag = "carts", request_body = AddItem, security(("session" = [])),
    params(("cart_id" = inline(IdParam), Path),
        ("Idempotency-Key" = inline(Option<KeyParam>), Header, description = "A repeat with the same key is applied once")),
    responses((status = 200, body = Cart, headers(("x-cart-version" = u64), ("etag" = String))),
        (status = 404, body = Problem, description = "No such cart of this shopper"),
        (status = 409, body = Problem, description = "`cart-in-checkout`: the cart is being checked out"),
        (status = 421, body = Problem, description = "The cart's shard is not served here"),
        (status = 422, body = Problem, description = "`unknown-sku`, `limit-exceeded` (lines or units per line), `idempotency-key-reused`"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
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
#[utoipa::path(put, path = "/v1/carts/{cart_id}/items/{sku}", tag = "carts", request_body = SetItem, security(("session" = [])),
    params(("cart_id" = inline(IdParam), Path), ("sku" = inline(SkuParam), Path),
        ("Idempotency-Key" = inline(Option<KeyParam>), Header, description = "A repeat with the same key is applied once")),
    responses((status = 200, body = Cart, headers(("x-cart-version" = u64), ("etag" = String))),
        (status = 404, body = Problem, description = "No such cart of this shopper"),
        (status = 409, body = Problem, description = "`cart-in-checkout`: the cart is being checked out"),
        (status = 421, body = Problem, description = "The cart's shard is not served here"),
        (status = 422, body = Problem, description = "`unknown-sku`, `limit-exceeded`, `idempotency-key-reused`"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
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
#[utoipa::path(delete, path = "/v1/carts/{cart_id}/items/{sku}", tag = "carts", security(("session" = [])),
    params(("cart_id" = inline(IdParam), Path), ("sku" = inline(SkuParam), Path),
        ("Idempotency-Key" = inline(Option<KeyParam>), Header, description = "A repeat with the same key is applied once")),
    responses((status = 200, body = Cart, headers(("x-cart-version" = u64), ("etag" = String))),
        (status = 404, body = Problem, description = "No such cart of this shopper"),
        (status = 409, body = Problem, description = "`cart-in-checkout`: the cart is being checked out"),
        (status = 421, body = Problem, description = "The cart's shard is not served here"),
        (status = 422, body = Problem, description = "`idempotency-key-reused`"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
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
