//! The purge feed the edges long-poll.

use super::*;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FeedParams {
    /// The cursor of the last event seen (empty: from the oldest kept).
    #[serde(default)]
    #[param(schema_with = cursor)]
    after: String,
    /// Events per page (100 when absent).
    #[param(schema_with = feed_limit)]
    limit: Option<usize>,
    /// Hold the request up to this long when there is nothing new.
    #[serde(default)]
    #[param(schema_with = wait_ms)]
    wait_ms: u64,
}

/// Catalog change (purge) events after a cursor; long-polls with `wait_ms`.
#[utoipa::path(get, path = "/v1/purge", tag = "edge", params(FeedParams),
    responses((status = 200, body = FeedPage),
        (status = 503, body = Problem, description = "Too many long polls are waiting, or storage is busy; retry")))]
pub(super) async fn purge_feed(
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

fn cursor() -> utoipa::openapi::Object {
    commerce::openapi::string(Cursor::PATTERN, 0, 24).build()
}

fn feed_limit() -> utoipa::openapi::Object {
    commerce::openapi::count(1, regional_api::purge::MAX_LIMIT as u64).build()
}

fn wait_ms() -> utoipa::openapi::Object {
    commerce::openapi::count(0, regional_api::purge::MAX_WAIT_MS).build()
}
