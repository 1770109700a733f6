//! Checkout (the saga, run apart from the request) and orders.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckoutIn {
    #[schema(schema_with = cart_id)]
    cart_id: String,
}

fn cart_id() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    <IdParam as utoipa::PartialSchema>::schema()
}

/// Checks out a cart. Needs an `Idempotency-Key` header: a retry with the
/// same key returns the same order and never charges twice. 201: confirmed;
/// 202: still running (payment outcome pending), retry with the same key;
/// 409: failed and compensated (out of stock, payment declined).
#[utoipa::path(post, path = "/v1/checkout", tag = "orders", request_body = CheckoutIn, security(("session" = [])),
    params(("Idempotency-Key" = inline(KeyParam), Header, description = "Unique per checkout; a retry with the same key never charges twice")),
    responses((status = 201, body = Order, description = "Confirmed"),
        (status = 202, body = Order, description = "Still running (payment outcome pending): retry with the same key"),
        (status = 404, body = Problem, description = "No such cart of this shopper"),
        (status = 409, body = Problem, description = "`checkout-failed` (compensated: out of stock, payment declined; `order_id` names the order) or `cart-in-checkout`"),
        (status = 421, body = Problem, description = "The cart's shard is not served here"),
        (status = 422, body = Problem, description = "`empty-cart`, `unpayable` (mixed currencies, a total past the bound), `idempotency-key-reused`, or a missing Idempotency-Key"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CheckoutIn>,
) -> Result<Response, ApiError> {
    let owner = shopper(&state, &headers)?;
    let key = op_id(&headers)?.ok_or_else(|| {
        ApiError::from(CommerceError::Invalid {
            field: "Idempotency-Key",
            reason: "header is required".into(),
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
pub(super) struct ListParams {
    /// One of the shopper's order ids: list orders older than it.
    #[param(schema_with = cart_id)]
    before: Option<String>,
    /// Orders per page (20 when absent).
    #[param(schema_with = page_limit)]
    limit: Option<usize>,
}

fn page_limit() -> utoipa::openapi::Object {
    commerce::openapi::count(1, commerce::orders::MAX_PAGE as u64).build()
}

/// The session's orders, newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(ListParams), security(("session" = [])),
    responses((status = 200, body = OrderPage),
        (status = 404, body = Problem, description = "`before` is not one of this shopper's orders"),
        (status = 421, body = Problem, description = "The shopper's shard is not served here"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn list_orders(
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
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "orders", security(("session" = [])),
    params(("order_id" = inline(IdParam), Path)),
    responses((status = 200, body = Order),
        (status = 404, body = Problem, description = "No such order of this shopper"),
        (status = 421, body = Problem, description = "The order's shard is not served here"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn get_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Order>, ApiError> {
    let owner = shopper(&state, &headers)?;
    let id = parse_id(&state, &order_id, "order")?;
    Ok(Json(state.commerce.order(&owner, &id).await?))
}
