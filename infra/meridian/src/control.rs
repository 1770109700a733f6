//! `meridian up`'s control API: what an operator does to the running stack
//! that the routing API does not, today a failure drill against it
//! (`meridian drill --target`). The drill runs inside `up`, where the
//! platform's fault layer and its data are, one at a time; the request is
//! held until it ends and answers the verdict and the report, while the
//! drill posts its progress to the routing API for anyone to follow.
//!
//! Routes (the routing layer's admin token, problem+json errors, bodies
//! bounded): `POST /v1/control/drills` with a [`DrillRequest`], answering a
//! [`DrillAnswer`]; `GET /healthz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use routing::api::Problem;
use topology::RegionId;

use crate::drill::{DrillOptions, Scenario};

/// Where the control API listens unless `control_listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7001";
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 64 << 10;

/// A drill as asked of a running stack: `meridian drill`'s options.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    pub scenario: Scenario,
    pub region: RegionId,
    pub duration_s: u64,
    pub fault_at_s: u64,
    pub fault_for_s: u64,
    pub rate: f64,
    pub shoppers: usize,
    pub seed: u64,
    pub cluster_recovery_ms: u64,
    pub catalog_changes: usize,
}

impl From<&DrillOptions> for DrillRequest {
    fn from(o: &DrillOptions) -> Self {
        DrillRequest {
            scenario: o.scenario,
            region: o.region.clone(),
            duration_s: o.duration.as_secs(),
            fault_at_s: o.fault_at.as_secs(),
            fault_for_s: o.fault_for.as_secs(),
            rate: o.rate,
            shoppers: o.shoppers,
            seed: o.seed,
            cluster_recovery_ms: o.cluster_recovery.as_millis() as u64,
            catalog_changes: o.catalog_changes,
        }
    }
}

impl From<DrillRequest> for DrillOptions {
    fn from(r: DrillRequest) -> Self {
        DrillOptions {
            scenario: r.scenario,
            region: r.region,
            duration: Duration::from_secs(r.duration_s),
            fault_at: Duration::from_secs(r.fault_at_s),
            fault_for: Duration::from_secs(r.fault_for_s),
            rate: r.rate,
            shoppers: r.shoppers,
            seed: r.seed,
            cluster_recovery: Duration::from_millis(r.cluster_recovery_ms),
            catalog_changes: r.catalog_changes,
        }
    }
}

/// A finished drill: its verdict and report, and its id at the routing
/// layer when it was posted there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DrillAnswer {
    pub passed: bool,
    pub markdown: String,
    pub html: String,
    pub drill_id: Option<String>,
}

/// A drill handed to whoever owns the platform (`up`'s main loop), with
/// where its answer goes. The control API refuses another drill until the
/// job is dropped (after its drill ran, whether or not anyone still waits
/// for the answer).
#[derive(Debug)]
pub struct Job {
    pub options: DrillOptions,
    pub reply: tokio::sync::oneshot::Sender<anyhow::Result<DrillAnswer>>,
    pub busy: Busy,
}

#[derive(Clone)]
struct ControlState {
    token: Option<Arc<str>>,
    jobs: tokio::sync::mpsc::Sender<Job>,
    busy: Arc<AtomicBool>,
}

/// The one drill that may run; clears the flag when dropped.
#[derive(Debug)]
pub struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The control API's routes; drills go to `jobs`.
pub fn app(token: Option<String>, jobs: tokio::sync::mpsc::Sender<Job>) -> Router {
    let state = ControlState {
        token: token.map(Arc::from),
        jobs,
        busy: Arc::default(),
    };
    let router = Router::new()
        .route("/v1/control/drills", post(drill))
        .route("/healthz", get(|| async { "ok" }));
    routing::api::problem_fallbacks(router)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn drill(
    State(state): State<ControlState>,
    headers: HeaderMap,
    request: Result<Json<DrillRequest>, JsonRejection>,
) -> Result<Json<DrillAnswer>, Problem> {
    routing::api::check_bearer(state.token.as_deref(), &headers)?;
    let options = DrillOptions::from(routing::api::body(request)?);
    options.validate().map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid drill",
            format!("{e:#}"),
        )
    })?;
    if state.busy.swap(true, Ordering::SeqCst) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "drill-running",
            "A drill is running",
            "one drill at a time; follow the running one at the routing API's /v1/drills",
        ));
    }
    let busy = Busy(state.busy.clone());
    let (reply, answer) = tokio::sync::oneshot::channel();
    let unavailable = |detail: String| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Drill not run",
            detail,
        )
    };
    state
        .jobs
        .send(Job {
            options,
            reply,
            busy,
        })
        .await
        .map_err(|_| unavailable("the platform is stopping".into()))?;
    match answer.await {
        Ok(Ok(answer)) => Ok(Json(answer)),
        Ok(Err(e)) if e.downcast_ref::<crate::drill::InvalidDrill>().is_some() => {
            Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid drill",
                format!("{e:#}"),
            ))
        }
        Ok(Err(e)) => Err(unavailable(format!("{e:#}"))),
        Err(_) => Err(unavailable("the platform stopped during the drill".into())),
    }
}

/// Asks the control API at `base` (e.g. `http://127.0.0.1:7001`) for a
/// drill; waits for it to end.
pub async fn request_drill(
    base: &str,
    token: &str,
    options: &DrillOptions,
) -> anyhow::Result<DrillAnswer> {
    use anyhow::Context;
    // The whole drill, its invariants and its catalog changes, with room.
    let patience = options.duration + Duration::from_secs(600);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(patience)
        .build()
        .context("an HTTP client")?;
    let url = format!("{}/v1/control/drills", base.trim_end_matches('/'));
    let request = client
        .post(&url)
        .bearer_auth(token)
        .json(&DrillRequest::from(options));
    routing::client::send(request, &url)
        .await
        .with_context(|| format!("POST {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DrillOptions {
        DrillOptions {
            scenario: Scenario::RegionOutage,
            region: "eu-west".parse().expect("region"),
            duration: Duration::from_secs(10),
            fault_at: Duration::from_secs(2),
            fault_for: Duration::from_secs(3),
            rate: 10.0,
            shoppers: 2,
            seed: 1,
            cluster_recovery: Duration::ZERO,
            catalog_changes: 0,
        }
    }

    /// One drill at a time: a second is refused while the first's job is
    /// alive (here, queued and never run), even if its requester left; the
    /// token is required; bad options are refused before anything runs.
    #[tokio::test]
    async fn one_drill_at_a_time_with_the_token() {
        let (jobs, mut queue) = tokio::sync::mpsc::channel(1);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app(Some("t0ken".into()), jobs)).await });

        let wrong = request_drill(&base, "nope", &options()).await;
        assert!(format!("{:#}", wrong.expect_err("refused")).contains("401"));
        let mut bad = options();
        bad.fault_at = Duration::from_secs(20);
        let bad = request_drill(&base, "t0ken", &bad).await;
        assert!(format!("{:#}", bad.expect_err("refused")).contains("422"));

        // The first drill's requester gives up; its job lives on.
        let first = tokio::spawn({
            let base = base.clone();
            async move { request_drill(&base, "t0ken", &options()).await }
        });
        let job = queue.recv().await.expect("the first drill's job");
        first.abort();
        let second = request_drill(&base, "t0ken", &options()).await;
        assert!(format!("{:#}", second.expect_err("busy")).contains("409"));
        // Its drill done (the job dropped), the next one is taken.
        drop(job);
        let third = tokio::spawn({
            let base = base.clone();
            async move { request_drill(&base, "t0ken", &options()).await }
        });
        let job = queue.recv().await.expect("the third drill's job");
        let _ = job.reply.send(Ok(DrillAnswer {
            passed: true,
            markdown: "# ok".into(),
            html: "<p>ok".into(),
            drill_id: None,
        }));
        let answer = third.await.expect("task").expect("answered");
        assert!(answer.passed);
        assert_eq!(answer.markdown, "# ok");
        drop(job.busy);
        // A drill the platform cannot run as asked is the caller's mistake.
        let fourth = tokio::spawn({
            let base = base.clone();
            async move { request_drill(&base, "t0ken", &options()).await }
        });
        let job = queue.recv().await.expect("the fourth drill's job");
        let _ = job.reply.send(Err(
            crate::drill::InvalidDrill("no such region".into()).into()
        ));
        let refused = fourth.await.expect("task").expect_err("refused");
        assert!(format!("{refused:#}").contains("422"), "{refused:#}");
    }

    #[test]
    fn a_drill_request_carries_every_option() {
        let options = DrillOptions {
            scenario: Scenario::Partition,
            region: "us-east".parse().expect("region"),
            duration: Duration::from_secs(30),
            fault_at: Duration::from_secs(8),
            fault_for: Duration::from_secs(10),
            rate: 60.0,
            shoppers: 24,
            seed: 3,
            cluster_recovery: Duration::from_millis(1500),
            catalog_changes: 5,
        };
        let wire = serde_json::to_string(&DrillRequest::from(&options)).expect("json");
        let back: DrillRequest = serde_json::from_str(&wire).expect("parse");
        assert_eq!(
            DrillRequest::from(&DrillOptions::from(back)),
            DrillRequest::from(&options)
        );
        assert!(wire.contains("\"scenario\":\"partition\""), "{wire}");
    }
}
