//! A client of the routing API: the table, waiting for it to reach a
//! state by following its long poll (`GET /v1/table/watch`, never by
//! polling on a clock), drain / undrain, and failure drills (posting one's
//! progress, listing and following them). `meridian status`, `drain`,
//! drills and tests use it.

use anyhow::Context;
use serde::de::DeserializeOwned;
use topology::routing::{MAX_WATCH_MS, RoutingTable};

use crate::drills::{Drill, DrillFinish, DrillStart, DrillSummary, DrillUpdate};

/// The table at `api` (e.g. `http://127.0.0.1:8080`) once `holds` is true
/// of it. Follows each change; fails when a whole long poll
/// ([`MAX_WATCH_MS`]) passes with no change and the condition still false,
/// or after `max_changes` changes without it.
pub async fn table_when(
    client: &reqwest::Client,
    api: &str,
    max_changes: usize,
    holds: impl Fn(&RoutingTable) -> bool,
) -> anyhow::Result<RoutingTable> {
    let mut table = fetch(client, &format!("{api}/v1/table")).await?;
    for _ in 0..max_changes {
        if holds(&table) {
            return Ok(table);
        }
        let next = watch(client, api, table.version, MAX_WATCH_MS).await?;
        anyhow::ensure!(
            next.version > table.version || holds(&next),
            "the routing table did not change for {MAX_WATCH_MS} ms and the condition does not hold: {next:?}"
        );
        table = next;
    }
    anyhow::ensure!(
        holds(&table),
        "{max_changes} routing table changes and the condition still does not hold: {table:?}"
    );
    Ok(table)
}

/// The table now.
pub async fn table(client: &reqwest::Client, api: &str) -> anyhow::Result<RoutingTable> {
    fetch(client, &format!("{api}/v1/table")).await
}

/// The table once its version passes `since`, or after `timeout_ms`
/// (capped at [`MAX_WATCH_MS`]) as it is then: one long poll.
pub async fn watch(
    client: &reqwest::Client,
    api: &str,
    since: u64,
    timeout_ms: u64,
) -> anyhow::Result<RoutingTable> {
    let timeout_ms = timeout_ms.clamp(1, MAX_WATCH_MS);
    fetch(
        client,
        &format!("{api}/v1/table/watch?since={since}&timeout_ms={timeout_ms}"),
    )
    .await
}

/// Takes `region` out of traffic (`drained`) or puts it back, with the
/// routing layer's admin token; returns the table after the change.
pub async fn set_drained(
    client: &reqwest::Client,
    api: &str,
    region: &str,
    token: &str,
    drained: bool,
) -> anyhow::Result<RoutingTable> {
    let action = if drained { "drain" } else { "undrain" };
    let url = format!("{api}/v1/regions/{region}/{action}");
    send(client.post(&url).bearer_auth(token), &url)
        .await
        .with_context(|| format!("{action} {region}"))
}

/// Starts a drill on the routing layer (admin token): its id and version.
pub async fn drill_start(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    start: &DrillStart,
) -> anyhow::Result<DrillSummary> {
    let url = format!("{api}/v1/drills");
    send(client.post(&url).bearer_auth(token).json(start), &url).await
}

/// Posts a running drill's new moments and seconds (admin token).
pub async fn drill_update(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    id: &str,
    update: &DrillUpdate,
) -> anyhow::Result<DrillSummary> {
    let url = format!("{api}/v1/drills/{id}/updates");
    send(client.post(&url).bearer_auth(token).json(update), &url).await
}

/// Ends a drill with its verdict and report (admin token).
pub async fn drill_finish(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    id: &str,
    finish: &DrillFinish,
) -> anyhow::Result<DrillSummary> {
    let url = format!("{api}/v1/drills/{id}/finish");
    send(client.post(&url).bearer_auth(token).json(finish), &url).await
}

/// The drills the routing layer keeps, newest first.
pub async fn drills(client: &reqwest::Client, api: &str) -> anyhow::Result<Vec<DrillSummary>> {
    let url = format!("{api}/v1/drills");
    send(client.get(&url), &url).await
}

/// One drill, once its version passes `since` or after `timeout_ms`
/// (capped at [`MAX_WATCH_MS`]): one long poll. `since` 0 answers at once.
pub async fn drill_watch(
    client: &reqwest::Client,
    api: &str,
    id: &str,
    since: u64,
    timeout_ms: u64,
) -> anyhow::Result<Drill> {
    let timeout_ms = timeout_ms.clamp(1, MAX_WATCH_MS);
    let url = format!("{api}/v1/drills/{id}/watch?since={since}&timeout_ms={timeout_ms}");
    send(client.get(&url), &url).await
}

/// Sends `request` (to `url`); its JSON answer (at most 8 MiB), or an
/// error with the problem document's detail. Also `meridian`'s control
/// API client.
pub async fn send<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
) -> anyhow::Result<T> {
    let response = request.send().await.with_context(|| url.to_owned())?;
    let status = response.status();
    let body = read_bounded(response, url).await?;
    if !status.is_success() {
        // A problem document: say what it says.
        let detail = serde_json::from_slice::<regional_api::Problem>(&body)
            .map(|p| p.detail)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        anyhow::bail!("{status}: {detail}");
    }
    serde_json::from_slice(&body).with_context(|| format!("decoding {url}"))
}

/// Largest body read: a table, or a drill with an hour of figures.
const MAX_BODY_BYTES: usize = 8 << 20;

async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<RoutingTable> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()
        .with_context(|| format!("GET {url}"))?;
    let body = read_bounded(response, url).await?;
    serde_json::from_slice(&body).with_context(|| format!("decoding {url}"))
}

async fn read_bounded(mut response: reqwest::Response, url: &str) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading {url}"))?
    {
        anyhow::ensure!(
            body.len() + chunk.len() <= MAX_BODY_BYTES,
            "{url} answered more than {MAX_BODY_BYTES} bytes"
        );
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
