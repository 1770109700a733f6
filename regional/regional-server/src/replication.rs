//! The catalog's push to the other regions: in the catalog's home region,
//! one sender per peer region waits on the catalog feed and posts each new
//! batch of changes (with the states they left, `commerce::replica`) to
//! the peer's replica intake (`POST /v1/internal/catalog-replica`, admin
//! token), so a change crosses the ocean once, as one message.
//!
//! A sender does not wait for a batch's answer before sending the next
//! (up to [`MAX_IN_FLIGHT`] are on their way): the peer applies them in
//! feed order whatever order they arrive in. An answer that shows the peer
//! did not take a batch (it had not got the one before, or has no full
//! copy), and any failure, make the sender ask where the peer stands and
//! go on from there; resending is safe, the peer skips what it holds. A
//! peer that fell behind what the catalog trimmed is left to its own
//! puller, which copies the catalog anew.

use std::sync::Arc;
use std::time::Duration;

use commerce::Commerce;
use commerce::feed::Cursor;
use commerce::replica::{ReplicaBatch, ReplicaStanding};
use tokio::sync::watch;
use tokio::task::JoinSet;
use topology::RegionId;

use crate::metrics::Metrics;

/// The replica intake's route.
pub const PATH: &str = "/v1/internal/catalog-replica";
/// Batches on their way to one peer at most.
pub const MAX_IN_FLIGHT: usize = 8;
/// Longest a push may take, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from a peer.
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// Longest wait before asking an unready or unreachable peer again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A region the catalog's changes are pushed to.
#[derive(Debug, Clone)]
pub struct Peer {
    pub region: RegionId,
    /// The base URL of its regional API.
    pub url: String,
    /// The modelled network between the regions (the local platform's
    /// geography and faults); `None` on a real network.
    pub link: Option<Arc<db::Link>>,
}

/// Starts one sender per peer; they stop when `shutdown` turns true.
pub fn spawn(
    set: &mut JoinSet<()>,
    commerce: &Commerce,
    peers: &[Peer],
    admin_token: &str,
    wait_ms: u64,
    metrics: &Metrics,
    shutdown: &watch::Receiver<bool>,
) {
    if peers.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for the catalog's push; replicas rely on their pullers");
            return;
        }
    };
    let token: Arc<str> = Arc::from(admin_token);
    for peer in peers {
        let sender = Sender {
            commerce: commerce.clone(),
            peer: peer.clone(),
            client: client.clone(),
            token: token.clone(),
            metrics: metrics.clone(),
        };
        set.spawn(sender.run(wait_ms, shutdown.clone()));
    }
}

#[derive(Clone)]
struct Sender {
    commerce: Commerce,
    peer: Peer,
    client: reqwest::Client,
    token: Arc<str>,
    metrics: Metrics,
}

/// A batch's fate: where it reached, and where the peer said it stands.
type Flight = Result<(Cursor, ReplicaStanding), String>;

impl Sender {
    async fn run(self, wait_ms: u64, mut shutdown: watch::Receiver<bool>) {
        // Where the next batch starts: the end of the last one sent (not
        // yet answered), or unknown (ask the peer).
        let mut next: Option<Cursor> = None;
        let mut flights: JoinSet<Flight> = JoinSet::new();
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let Some(from) = next else {
                flights.abort_all();
                match self.standing().await {
                    Ok(ReplicaStanding {
                        position: Some(position),
                        ..
                    }) => match Cursor::parse(&position) {
                        Ok(position) => {
                            next = Some(position);
                            backoff = Duration::from_millis(100);
                            continue;
                        }
                        Err(e) => self.warn("its position does not parse", &e.to_string()),
                    },
                    // No full copy yet: its puller is making one.
                    Ok(_) => {}
                    Err(e) => self.warn("asking where it stands", &e),
                }
                if pause(&mut shutdown, &mut backoff).await {
                    return;
                }
                continue;
            };
            if flights.len() >= MAX_IN_FLIGHT {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    Some(done) = flights.join_next() => {
                        if self.settled(done, &mut next) {
                            backoff = Duration::from_millis(100);
                        } else if pause(&mut shutdown, &mut backoff).await {
                            return;
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(done) = flights.join_next(), if !flights.is_empty() => {
                    if self.settled(done, &mut next) {
                        backoff = Duration::from_millis(100);
                    } else if pause(&mut shutdown, &mut backoff).await {
                        return;
                    }
                }
                read = self.commerce.replica_batch(from, wait_ms) => match read {
                    // Behind what the catalog keeps: the peer's own puller
                    // copies the catalog anew.
                    Ok(read) if read.reset => {
                        next = None;
                        if pause(&mut shutdown, &mut backoff).await {
                            return;
                        }
                    }
                    Ok(read) if read.batch.changes.is_empty() => {}
                    Ok(read) => {
                        next = Some(read.to);
                        let sender = self.clone();
                        flights.spawn(async move { sender.send(read.batch, read.to).await });
                    }
                    Err(e) => {
                        self.warn("reading the catalog feed", &e.to_string());
                        if pause(&mut shutdown, &mut backoff).await {
                            return;
                        }
                    }
                },
            }
        }
    }

    /// Takes a flight's outcome; `false` when the sender must start again
    /// from where the peer stands (it has been told to: `next` is unset).
    fn settled(
        &self,
        done: Result<Flight, tokio::task::JoinError>,
        next: &mut Option<Cursor>,
    ) -> bool {
        let outcome = match done {
            // Aborted: a restart is under way already.
            Err(_) => return true,
            Ok(outcome) => outcome,
        };
        match outcome {
            Ok((to, standing)) => {
                let reached = standing
                    .position
                    .as_deref()
                    .and_then(|p| Cursor::parse(p).ok())
                    .is_some_and(|p| p >= to);
                if reached {
                    self.metrics.record_worker("catalog-push", standing.applied);
                    return true;
                }
                *next = None;
                false
            }
            Err(e) => {
                self.warn("pushing changes", &e);
                *next = None;
                false
            }
        }
    }

    fn url(&self) -> String {
        format!("{}{PATH}", self.peer.url.trim_end_matches('/'))
    }

    /// Where the peer's replica stands.
    async fn standing(&self) -> Result<ReplicaStanding, String> {
        self.call(self.client.get(self.url())).await
    }

    /// Posts one batch; gives where it reaches and the peer's answer.
    async fn send(self, batch: ReplicaBatch, to: Cursor) -> Flight {
        let standing = self.call(self.client.post(self.url()).json(&batch)).await?;
        Ok((to, standing))
    }

    /// One call to the peer, over the modelled link when there is one.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<ReplicaStanding, String> {
        if let Some(link) = &self.peer.link {
            link.send().await.map_err(|e| e.to_string())?;
        }
        let mut response = request
            .bearer_auth(&*self.token)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{e}"))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!("an answer over {MAX_ANSWER_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        if let Some(link) = &self.peer.link {
            link.reply().await.map_err(|e| e.to_string())?;
        }
        if !status.is_success() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("an answer that does not parse: {e}"))
    }

    fn warn(&self, doing: &str, error: &str) {
        tracing::warn!(peer = %self.peer.region, error, "catalog push: {doing} failed");
    }
}

/// Waits the back-off (doubling it, bounded); `true` when shutting down.
async fn pause(shutdown: &mut watch::Receiver<bool>, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        _ = shutdown.changed() => true,
        _ = tokio::time::sleep(wait) => false,
    }
}
