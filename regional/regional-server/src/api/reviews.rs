//! Reviews: a product's reviews and summary (read where this region keeps
//! the catalog), the shopper's own review (written in their shard), helpful
//! votes, and moderation (admin token).

use commerce::reviews::{AuthoredReview, ReviewInput, ReviewPage, ReviewSort, ReviewSummary};

use super::*;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    #[param(inline)]
    sort: Option<ReviewSort>,
    /// Reviews per page (10 when absent).
    #[param(schema_with = page_limit)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    #[param(schema_with = after)]
    after: Option<String>,
}

fn page_limit() -> utoipa::openapi::Object {
    commerce::openapi::count(1, commerce::reviews::MAX_PAGE as u64).build()
}

fn after() -> utoipa::openapi::Object {
    commerce::openapi::string("^([0-9a-f]{2})*$", 0, 256).build()
}

/// A product's visible reviews, a page at a time, in one of four orders.
/// An edge that saw a purge of `reviews:<sku>` at catalog version N sends
/// `x-meridian-min-version: N`.
#[utoipa::path(get, path = "/v1/products/{sku}/reviews", tag = "reviews",
    params(("sku" = inline(SkuParam), Path), ListParams,
        ("x-meridian-min-version" = inline(Option<VersionParam>), Header, description = "Least catalog version the caller accepts")),
    responses((status = 200, body = ReviewPage),
        (status = 422, body = Problem, description = "The SKU, `limit` or `after` is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn list_reviews(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(sku): ApiPath<String>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ReviewPage>, ApiError> {
    Ok(Json(
        state
            .commerce
            .reviews(
                &sku,
                p.sort.unwrap_or_default(),
                p.limit.unwrap_or(commerce::reviews::DEFAULT_PAGE),
                p.after.as_deref(),
                min_version(&headers),
            )
            .await?,
    ))
}

/// A product's review summary: how many, the mean rating, how many of
/// each rating.
#[utoipa::path(get, path = "/v1/products/{sku}/reviews/summary", tag = "reviews",
    params(("sku" = inline(SkuParam), Path),
        ("x-meridian-min-version" = inline(Option<VersionParam>), Header, description = "Least catalog version the caller accepts")),
    responses((status = 200, body = ReviewSummary),
        (status = 422, body = Problem, description = "The SKU is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn review_summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(sku): ApiPath<String>,
) -> Result<Json<ReviewSummary>, ApiError> {
    Ok(Json(
        state
            .commerce
            .review_summary(&sku, min_version(&headers))
            .await?,
    ))
}

/// The session's shopper's review of a product, as their shard holds it
/// (shown there at once; everywhere else once projected).
#[utoipa::path(get, path = "/v1/products/{sku}/reviews/mine", tag = "reviews", security(("session" = [])),
    params(("sku" = inline(SkuParam), Path)),
    responses((status = 200, body = AuthoredReview),
        (status = 404, body = Problem, description = "This shopper has not reviewed the product"),
        (status = 421, body = Problem, description = "The session's shard is not served here"),
        (status = 422, body = Problem, description = "The SKU is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn my_review(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(sku): ApiPath<String>,
) -> Result<Json<AuthoredReview>, ApiError> {
    let author = shopper(&state, &headers)?;
    Ok(Json(public(state.commerce.my_review(&author, &sku).await?)))
}

/// Writes the session's shopper's review of a product (one per shopper
/// per product: a second write edits the first). Acknowledged by the
/// shopper's own shard; shown in every region shortly after.
#[utoipa::path(put, path = "/v1/products/{sku}/reviews/mine", tag = "reviews", request_body = ReviewInput, security(("session" = [])),
    params(("sku" = inline(SkuParam), Path),
        ("Idempotency-Key" = inline(Option<KeyParam>), Header, description = "A repeat with the same key is applied once")),
    responses((status = 201, body = AuthoredReview, description = "Written"),
        (status = 200, body = AuthoredReview, description = "Edited (or a repeat)"),
        (status = 421, body = Problem, description = "The session's shard is not served here"),
        (status = 422, body = Problem, description = "`unknown-sku`, or a field out of bounds"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn put_review(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(sku): ApiPath<String>,
    JsonBody(body): JsonBody<ReviewInput>,
) -> Result<Response, ApiError> {
    let author = shopper(&state, &headers)?;
    let written = state
        .commerce
        .put_review(&author, &sku, &body, op_id(&headers)?)
        .await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(public(written.review))).into_response())
}

/// What a helpful vote answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Voted {
    review_id: String,
    /// The shopper's vote is counted (once, however often it is sent).
    voted: bool,
}

/// The session's shopper found a review helpful: counted once per shopper.
#[utoipa::path(post, path = "/v1/reviews/{review_id}/helpful", tag = "reviews", security(("session" = [])),
    params(("review_id" = inline(IdParam), Path)),
    responses((status = 200, body = Voted),
        (status = 404, body = Problem, description = "No such visible review"),
        (status = 409, body = Problem, description = "`own-review`: a shopper cannot vote for their own review"),
        (status = 421, body = Problem, description = "The session's shard is not served here"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn vote_helpful(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(review_id): ApiPath<String>,
) -> Result<Json<Voted>, ApiError> {
    let voter = shopper(&state, &headers)?;
    let id = parse_id(&state, &review_id, "review")?;
    state.commerce.vote_helpful(&voter, &id.to_string()).await?;
    Ok(Json(Voted {
        review_id: id.to_string(),
        voted: true,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Visibility {
    /// Hide the review from every listing and summary (or show it again).
    hidden: bool,
}

/// Hides or restores a review.
#[utoipa::path(put, path = "/v1/admin/reviews/{review_id}/visibility", tag = "admin", request_body = Visibility,
    params(("review_id" = inline(IdParam), Path)),
    responses((status = 200, body = AuthoredReview),
        (status = 404, body = Problem, description = "No such review"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn moderate_review(
    State(state): State<AppState>,
    ApiPath(review_id): ApiPath<String>,
    JsonBody(body): JsonBody<Visibility>,
) -> Result<Json<AuthoredReview>, ApiError> {
    let id = parse_id(&state, &review_id, "review")?;
    Ok(Json(public(
        state
            .commerce
            .moderate_review(&id.to_string(), body.hidden)
            .await?,
    )))
}

/// Internal: the write-deduplication ids are not part of the API.
fn public(mut review: AuthoredReview) -> AuthoredReview {
    review.recent_ops.clear();
    review
}
