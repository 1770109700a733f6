//! The routing API (axum): the table, a long poll for its changes, the
//! timeline, drain and undrain (admin token), failure drills (posted by a
//! running drill with the admin token, listed, followed by long poll, their
//! reports), health and metrics, and the SRE dashboard (`/dashboard`).
//! Errors are RFC 9457 problem+json.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use topology::RegionId;
use topology::routing::RoutingTable;

use crate::drills::{
    Drill, DrillError, DrillFinish, DrillStart, DrillSummary, DrillUpdate, Drills, MAX_REPORT_BYTES,
};
use crate::table::{Event, MAX_EVENTS, RegionTable, TableError};

/// Largest request body: a drill's report and its envelope.
pub const MAX_BODY_BYTES: usize = MAX_REPORT_BYTES + (64 << 10);

/// Longest a long poll is held open (the routing API's contract with the
/// edges, in `topology::routing`).
pub use topology::routing::MAX_WATCH_MS;

/// What the API serves from.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub table: RegionTable,
    /// Bearer token for drain/undrain and for posting drills; `None`
    /// disables them.
    pub admin_token: Option<Arc<str>>,
    /// Also accepted during a rotation (only beside `admin_token`).
    pub admin_token_secondary: Option<Arc<str>>,
    pub drills: Drills,
}

/// An RFC 9457 problem: the platform's one problem document
/// (`regional_api::Problem`), with a slug naming its kind.
#[derive(Debug)]
pub struct Problem(regional_api::Problem);

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem(regional_api::Problem::new(
            status.as_u16(),
            slug,
            title,
            detail,
        ))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(header::CONTENT_TYPE, regional_api::problem::CONTENT_TYPE)],
            self.0.to_json(),
        )
            .into_response()
    }
}

impl From<DrillError> for Problem {
    fn from(e: DrillError) -> Self {
        let (status, slug, title) = match e {
            DrillError::NotFound { .. } => {
                (StatusCode::NOT_FOUND, "unknown-drill", "Unknown drill")
            }
            DrillError::NoReport { .. } => (StatusCode::NOT_FOUND, "no-report", "No report yet"),
            DrillError::Ended { .. } => (StatusCode::CONFLICT, "drill-ended", "Drill ended"),
            DrillError::Full => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-drills",
                "Too many drills running",
            ),
            DrillError::TooMany { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit-exceeded",
                "Limit exceeded",
            ),
        };
        Problem::new(status, slug, title, e.to_string())
    }
}

/// A JSON body, or the problem its rejection is.
pub fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(v)| v).map_err(|e| {
        let status = e.status();
        let (slug, title) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "Body too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported-media-type", "Unsupported media type")
            }
            StatusCode::UNPROCESSABLE_ENTITY => ("invalid", "Invalid body"),
            _ => ("malformed-json", "Malformed JSON"),
        };
        Problem::new(status, slug, title, e.body_text())
    })
}

impl From<TableError> for Problem {
    fn from(e: TableError) -> Self {
        match e {
            TableError::UnknownRegion { .. } => Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-region",
                "Unknown region",
                e.to_string(),
            ),
            TableError::UnknownPop { .. } => Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-pop",
                "Unknown POP",
                e.to_string(),
            ),
            TableError::MissingEndpoint { .. } | TableError::DuplicatePop { .. } => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "misconfigured",
                "Routing misconfigured",
                e.to_string(),
            ),
        }
    }
}

/// The 405 every route answers a method it does not take, and the 404 of a
/// path no route has: problem+json. Set after every route.
pub fn problem_fallbacks<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                regional_api::problem::kinds::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "this route does not take that method",
            )
        })
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                regional_api::problem::kinds::NOT_FOUND,
                "Not found",
                "no such route",
            )
        })
}

pub fn app(state: ApiState) -> Router {
    let router = Router::new()
        .route("/v1/table", get(table))
        .route("/v1/table/watch", get(watch_table))
        .route("/v1/events", get(events))
        .route("/v1/regions/{region}/drain", post(drain))
        .route("/v1/regions/{region}/undrain", post(undrain))
        .route("/v1/drills", get(list_drills).post(start_drill))
        .route("/v1/drills/{id}", get(get_drill))
        .route("/v1/drills/{id}/watch", get(watch_drill))
        .route("/v1/drills/{id}/updates", post(update_drill))
        .route("/v1/drills/{id}/finish", post(finish_drill))
        .route("/v1/drills/{id}/report.md", get(report_md))
        .route("/v1/drills/{id}/report.html", get(report_html))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes());
    // After every route: it is set on each route's method router.
    problem_fallbacks(router)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn table(State(state): State<ApiState>) -> Json<RoutingTable> {
    Json(state.table.snapshot())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchQuery {
    /// Answer once the table's version is above this.
    since: u64,
    /// Wait at most this long (capped at `MAX_WATCH_MS`), then answer with
    /// the current table anyway.
    timeout_ms: Option<u64>,
}

/// Long poll: held until the version passes `since`, so an edge learns of
/// a failover the moment it happens.
async fn watch_table(
    State(state): State<ApiState>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RoutingTable>, Problem> {
    let Query(query) = query.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad query",
            e.body_text(),
        )
    })?;
    let wait = Duration::from_millis(query.timeout_ms.unwrap_or(MAX_WATCH_MS).min(MAX_WATCH_MS));
    let mut changes = state.table.subscribe();
    let _ = tokio::time::timeout(wait, changes.wait_for(|t| t.version > query.since)).await;
    Ok(Json(state.table.snapshot()))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(
    State(state): State<ApiState>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Event>>, Problem> {
    let Query(query) = query.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad query",
            e.body_text(),
        )
    })?;
    Ok(Json(
        state
            .table
            .events(query.limit.unwrap_or(MAX_EVENTS).min(MAX_EVENTS)),
    ))
}

/// Compares in time independent of where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), Problem> {
    check_bearer(state.admin_token.as_deref(), headers).or_else(|refused| {
        match (&state.admin_token, &state.admin_token_secondary) {
            (Some(_), Some(secondary)) => check_bearer(Some(secondary), headers),
            _ => Err(refused),
        }
    })
}

/// The operator's bearer token check, shared by the routing API and
/// `meridian up`'s control API: 403 when no token is configured, 401 when
/// the request's is missing or wrong (compared in constant time).
pub fn check_bearer(expected: Option<&str>, headers: &HeaderMap) -> Result<(), Problem> {
    let Some(expected) = expected else {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "admin-disabled",
            "Admin disabled",
            "no admin token is configured for this server",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "this needs `Authorization: Bearer <admin token>`",
        )),
    }
}

fn parse_region(raw: &str) -> Result<RegionId, Problem> {
    raw.parse().map_err(|e: topology::NameError| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad region name",
            e.to_string(),
        )
    })
}

async fn set_drain(
    state: ApiState,
    headers: HeaderMap,
    region: String,
    drained: bool,
) -> Result<Json<RoutingTable>, Problem> {
    authorize(&state, &headers)?;
    let region = parse_region(&region)?;
    state.table.set_drained(&region, drained)?;
    Ok(Json(state.table.snapshot()))
}

async fn drain(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(region): Path<String>,
) -> Result<Json<RoutingTable>, Problem> {
    set_drain(state, headers, region, true).await
}

async fn undrain(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(region): Path<String>,
) -> Result<Json<RoutingTable>, Problem> {
    set_drain(state, headers, region, false).await
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.table.metrics().render(),
    )
        .into_response()
}

async fn list_drills(State(state): State<ApiState>) -> Json<Vec<DrillSummary>> {
    Json(state.drills.list())
}

async fn start_drill(
    State(state): State<ApiState>,
    headers: HeaderMap,
    start: Result<Json<DrillStart>, JsonRejection>,
) -> Result<(StatusCode, Json<DrillSummary>), Problem> {
    authorize(&state, &headers)?;
    let start = body(start)?;
    Ok((StatusCode::CREATED, Json(state.drills.start(start)?)))
}

async fn get_drill(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Drill>, Problem> {
    Ok(Json(state.drills.get(&id)?))
}

/// Long poll: held until the drill's version passes `since`.
async fn watch_drill(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Drill>, Problem> {
    let Query(query) = query.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad query",
            e.body_text(),
        )
    })?;
    let wait = Duration::from_millis(query.timeout_ms.unwrap_or(MAX_WATCH_MS).min(MAX_WATCH_MS));
    Ok(Json(state.drills.watch(&id, query.since, wait).await?))
}

async fn update_drill(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    update: Result<Json<DrillUpdate>, JsonRejection>,
) -> Result<Json<DrillSummary>, Problem> {
    authorize(&state, &headers)?;
    let update = body(update)?;
    Ok(Json(state.drills.update(&id, update)?))
}

async fn finish_drill(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    finish: Result<Json<DrillFinish>, JsonRejection>,
) -> Result<Json<DrillSummary>, Problem> {
    authorize(&state, &headers)?;
    let finish = body(finish)?;
    Ok(Json(state.drills.finish(&id, finish)?))
}

async fn report_md(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let report = state.drills.report(&id)?;
    Ok((
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        report.0.clone(),
    )
        .into_response())
}

/// The HTML report, under a policy that runs no script and loads nothing:
/// it is a drill's own page, served from the routing API's origin.
async fn report_html(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let report = state.drills.report(&id)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        report.1.clone(),
    )
        .into_response())
}
