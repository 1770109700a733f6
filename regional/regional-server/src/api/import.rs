//! Bulk import of products (admin token): NDJSON streamed in, committed a
//! chunk at a time, resumable from the import's cursor.

use commerce::import::{ImportLine, ImportReport, ImportStatus};
use futures::StreamExt;

use super::*;

/// The import route, as axum matches it: the request timeout does not
/// apply to it (see [`import_products`]).
pub(super) const ROUTE: &str = "/v1/admin/imports/{id}";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportParams {
    /// The import's line this body starts at: 0 (resending everything),
    /// or at most the cursor an earlier request left. Lines below the
    /// cursor are skipped.
    #[serde(default)]
    #[param(schema_with = offset)]
    offset: u64,
}

fn offset() -> utoipa::openapi::Object {
    commerce::openapi::count(0, commerce::import::MAX_LINES).build()
}

/// Imports products: one JSON object per line (a product with its SKU
/// and the units each warehouse received), written in large
/// transactions with their stock, change events and (through the feed)
/// every region's search index. Lines below the import's cursor are
/// skipped, so resending after a failure never writes a line twice. The
/// body is read as it arrives (no request timeout; each piece of it must
/// come within the request timeout of the one before). A failure answers
/// with `cursor`, the lines committed, and for a bad line its `line`
/// (from 0): everything before it is committed.
#[utoipa::path(post, path = "/v1/admin/imports/{id}", tag = "admin",
    params(("id" = inline(ImportIdParam), Path), ImportParams),
    request_body(content = ImportLine, content_type = "application/x-ndjson",
        description = "One `ImportLine` per line"),
    responses((status = 200, body = ImportReport),
        (status = 400, body = Problem, description = "The body broke off, or a line is longer than 128 KiB; `cursor` is where to resume"),
        (status = 409, body = Problem, description = "`import-gap`: `offset` is past the import's `cursor`"),
        (status = 415, body = Problem, description = "The body is not application/x-ndjson"),
        (status = 421, body = Problem, description = "The catalog shard is not served here"),
        (status = 422, body = Problem, description = "Line `line` cannot be imported (`invalid`, `unknown-category`, `unknown-warehouse`); the lines before it are committed (`cursor`)"),
        (status = 503, body = Problem, description = "Storage is busy (`cursor` is where to resume), or `MAX_RUNNING_IMPORTS` imports are running (nothing was read; `Retry-After`)"),
        (status = 504, body = Problem, description = "`maybe-applied`: a chunk's commit was lost; resume from `cursor` (its lines are skipped if they were applied)")))]
pub(super) async fn import_products(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ImportParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportReport>, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media.is_some_and(|m| {
        m.eq_ignore_ascii_case(commerce::import::CONTENT_TYPE)
            || m.eq_ignore_ascii_case("application/jsonl")
    }) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/x-ndjson",
        ));
    }
    let _running = state.imports.clone().try_acquire_owned().map_err(|_| {
        ApiError::unavailable(format!(
            "{} imports are running; nothing was read; retry",
            commerce::import::MAX_RUNNING_IMPORTS
        ))
        .with_retry_after(1)
    })?;
    // Each piece of the body within the request timeout of the last.
    let idle = Duration::from_millis(state.http.request_timeout_ms);
    let pieces = body.into_data_stream();
    let pieces = futures::stream::unfold(pieces, move |mut pieces| async move {
        match tokio::time::timeout(idle, pieces.next()).await {
            Ok(Some(piece)) => Some((piece.map_err(|e| e.to_string()), pieces)),
            Ok(None) => None,
            Err(_) => Some((
                Err("no part of the body came within the request timeout".to_owned()),
                pieces,
            )),
        }
    });
    let report = state
        .commerce
        .import_products(&id, params.offset, Box::pin(pieces), |status| {
            tracing::debug!(import = %status.id, cursor = status.cursor, "import chunk committed");
        })
        .await?;
    tracing::info!(
        import = %report.status.id,
        cursor = report.status.cursor,
        committed = report.committed,
        skipped = report.skipped,
        "import request done"
    );
    Ok(Json(report))
}

/// Where an import stands.
#[utoipa::path(get, path = "/v1/admin/imports/{id}", tag = "admin",
    params(("id" = inline(ImportIdParam), Path)),
    responses((status = 200, body = ImportStatus),
        (status = 404, body = Problem, description = "No such import (nothing of it committed)"),
        (status = 422, body = Problem, description = "The id is malformed"),
        (status = 503, body = Problem, description = "Storage is busy; retry")))]
pub(super) async fn import_status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ImportStatus>, ApiError> {
    Ok(Json(state.commerce.import_status(&id).await?))
}
