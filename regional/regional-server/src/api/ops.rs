//! Health, readiness and metrics.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Status {
    status: &'static str,
    region: String,
}

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Status)))]
pub(super) async fn healthz(State(state): State<AppState>) -> Json<Status> {
    Json(Status {
        status: "ok",
        region: state.commerce.region().to_string(),
    })
}

/// Ready: every shard homed in this region answers a read within 1 s (the
/// catalog shard when none is): the region's own data tier, so a probe's
/// time is not a remote cluster's round trip. And its search index has
/// been built from the catalog (at start the feed worker builds it): a
/// region that would answer every search with nothing is not ready.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Status), (status = 503, body = Problem)))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let commerce = &state.commerce;
    let mut shards: Vec<ShardId> = commerce
        .topology()
        .shards()
        .iter()
        .filter(|s| s.home() == commerce.region() && commerce.served().contains(s.id()))
        .map(|s| s.id().clone())
        .collect();
    if shards.is_empty() {
        shards.push(commerce.catalog_shard().clone());
    }
    let probes = shards.into_iter().map(|shard| async move {
        let db = commerce.shards().get(&shard).map_err(CommerceError::from)?;
        let probe = db.run(|tx, _| async move { tx.get_snapshot(b"\x01readyz").await.map(|_| ()) });
        match tokio::time::timeout(Duration::from_secs(1), probe).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                format!("shard {shard} does not answer"),
            )),
        }
    });
    for outcome in futures::future::join_all(probes).await {
        outcome?;
    }
    if commerce.search_index().cursor().is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "the search index is being built from the catalog",
        ));
    }
    Ok(Json(Status {
        status: "ready",
        region: commerce.region().to_string(),
    }))
}

/// Prometheus metrics of this service (its own series only).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4")))]
pub(super) async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops",
    responses((status = 200, body = Object, description = "The OpenAPI document")))]
pub(super) async fn openapi_document(
    axum::Extension(doc): axum::Extension<Arc<Value>>,
) -> Json<Value> {
    Json((*doc).clone())
}
