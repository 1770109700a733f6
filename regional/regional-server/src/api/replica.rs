//! The intake of this region's replica of the catalog: where the catalog's
//! home region pushes each change as it is written (admin token; see
//! `commerce::replica` and the replication worker).

use super::*;
use commerce::replica::{ReplicaBatch, ReplicaStanding};

/// Where this region's replica of the catalog stands.
#[utoipa::path(get, path = "/v1/internal/catalog-replica", tag = "internal",
    responses((status = 200, body = ReplicaStanding),
        (status = 404, body = Problem, description = "`no-replica`: this region keeps no replica of the catalog"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn replica_standing(
    State(state): State<AppState>,
) -> Result<Json<ReplicaStanding>, ApiError> {
    let position = state.commerce.replica_position().await?;
    Ok(Json(ReplicaStanding {
        position: position.map(|p| p.to_string()),
        applied: 0,
    }))
}

/// Applies catalog changes to this region's replica, in feed order, each
/// with the state it left. Changes it holds already are skipped; a batch
/// that continues past where the replica stands waits (2 s at most) for
/// the ones before it, then applies what follows on or nothing. The answer
/// says where the replica stands: a sender whose batch did not fit
/// continues from there. Safe to repeat.
#[utoipa::path(post, path = "/v1/internal/catalog-replica", tag = "internal",
    request_body = ReplicaBatch,
    responses((status = 200, body = ReplicaStanding),
        (status = 413, body = Problem, description = "The batch is larger than the replica intake takes"),
        (status = 404, body = Problem, description = "`no-replica`: this region keeps no replica of the catalog"),
        (status = 422, body = Problem, description = "`bad-replica-batch`: changes out of order, or a state that is not its event's record"),
        (status = 503, body = Problem, description = "Nothing was applied; retry")))]
pub(super) async fn apply_replica_batch(
    State(state): State<AppState>,
    JsonBody(batch): JsonBody<ReplicaBatch>,
) -> Result<Json<ReplicaStanding>, ApiError> {
    Ok(Json(state.commerce.apply_replica_batch(&batch).await?))
}
