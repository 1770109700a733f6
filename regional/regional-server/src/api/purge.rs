//! The purge feed the edges long-poll.

use super::*;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FeedParams {
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
