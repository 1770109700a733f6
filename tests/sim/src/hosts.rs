//! The simulated hosts' software: a region (the real regional service on
//! a simulated listener), the routing layer (the real table, checker and
//! API), an edge POP (edge-core's request flow over a simulated host), and
//! the capabilities they share (the clock each host reads, with its skew).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::IntoResponse;
use futures::FutureExt;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use routing::health::ProbeOutcome;
use tokio::sync::watch;

use crate::net;

/// Milliseconds since the epoch when every simulation starts.
pub const EPOCH_MS: u64 = 1_800_000_000_000;

/// A host's clock: the simulation's time plus this host's skew (a fault
/// the seed sets). Never goes back on one host, whatever the skew does.
#[derive(Debug, Default)]
pub struct SimClock {
    pub skew_ms: AtomicI64,
    last: AtomicU64,
}

impl SimClock {
    pub fn now_ms(&self) -> u64 {
        let elapsed = turmoil::sim_elapsed().map(|d| d.as_millis() as u64);
        let now = match elapsed {
            Some(e) => (EPOCH_MS + e).saturating_add_signed(self.skew_ms.load(Ordering::Relaxed)),
            None => self.last.load(Ordering::Relaxed),
        };
        self.last.fetch_max(now, Ordering::Relaxed).max(now)
    }
}

impl commerce::Clock for SimClock {
    fn now_ms(&self) -> u64 {
        SimClock::now_ms(self)
    }
}

/// The routing layer's probes of `/readyz`, over the simulated network on
/// keep-alive connections (as `HttpProber`'s client keeps them).
#[derive(Debug, Default)]
pub struct SimProber {
    pool: net::Pool,
}

impl routing::checker::Prober for SimProber {
    fn probe<'a>(&'a self, url: &'a str, timeout: Duration) -> BoxFuture<'a, ProbeOutcome> {
        async move {
            let started = tokio::time::Instant::now();
            match self.pool.call("GET", url, &[], Vec::new(), timeout).await {
                Ok(answer) if (200..300).contains(&answer.status) => ProbeOutcome::Ready {
                    latency: started.elapsed(),
                },
                _ => ProbeOutcome::Failed,
            }
        }
        .boxed()
    }
}

// ---------------------------------------------------------------- edge

/// Keys one POP's store holds at most; past it a new key is not stored
/// (a read is then a miss, never a wrong answer).
const EDGE_STORE_KEYS: usize = 20_000;
/// An origin call gives up after this long (a long poll waits 25 s).
const EDGE_CALL_TIMEOUT: Duration = Duration::from_secs(35);

/// edge-core's `Host` on a simulated POP: its store in memory, the POP's
/// clock, nonces from the seed, origin calls over the simulated network.
#[derive(Debug)]
pub struct EdgeHost {
    pub clock: Arc<SimClock>,
    pub store: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    pub nonces: Arc<commerce::SeededEntropy>,
    /// Keep-alive connections to the regions and routing, as edge-host's.
    pub pool: net::Pool,
    /// Where the POP notes its writes' calls that failed.
    pub trace: crate::world::Trace,
    pub name: String,
}

impl edge_core::Host for EdgeHost {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn nonce(&self) -> String {
        use commerce::Entropy;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut out = String::with_capacity(32);
        for _ in 0..4 {
            let mut v = self.nonces.next_u64();
            for _ in 0..8 {
                out.push(ALPHABET[(v % ALPHABET.len() as u64) as usize] as char);
                v /= ALPHABET.len() as u64;
            }
        }
        out
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.store.lock().get(key).cloned()
    }

    async fn set(&self, key: &str, value: &[u8]) {
        let mut store = self.store.lock();
        if store.len() < EDGE_STORE_KEYS || store.contains_key(key) {
            store.insert(key.to_owned(), value.to_vec());
        }
    }

    async fn fetch(
        &self,
        request: edge_core::Outbound,
    ) -> Result<edge_core::http::Response, edge_core::origin::Failure> {
        use edge_core::origin::Failure;
        let write = request.method != "GET";
        let key = request
            .headers
            .iter()
            .find(|(n, _)| n == regional_api::headers::IDEMPOTENCY_KEY)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let answer = self
            .pool
            .call(
                &request.method,
                &request.url,
                &request.headers,
                request.body,
                EDGE_CALL_TIMEOUT,
            )
            .await;
        if write {
            let at = turmoil::sim_elapsed().unwrap_or_default();
            let outcome = match &answer {
                Ok(a) => a.status.to_string(),
                Err(e) => format!("{e:?}"),
            };
            self.trace.push(
                at,
                format!(
                    "{}: {} {} [{key}] → {outcome}",
                    self.name, request.method, request.url
                ),
            );
        }
        match answer {
            Ok(answer) => Ok(edge_core::http::Response {
                status: answer.status,
                headers: answer
                    .headers
                    .into_iter()
                    .map(|(n, v)| (n.to_ascii_lowercase(), v))
                    .collect(),
                body: answer.body,
            }),
            Err(net::CallError::NotSent) => Err(Failure::NotSent),
            Err(net::CallError::Lost) => Err(Failure::Lost),
        }
    }
}

/// One POP: its long polls (routing table, purge feed) and its HTTP server,
/// every request through edge-core's `Edge::handle`, deferred work after.
pub async fn serve_edge(edge: Arc<edge_core::Edge<EdgeHost>>, port: u16) -> turmoil::Result {
    let (_stop, stop) = watch::channel(false);
    let table = edge.clone();
    tokio::task::spawn_local(poll_forever(stop.clone(), move || {
        let edge = table.clone();
        async move { edge.watch_table(25_000).await.is_some() }
    }));
    let purge = edge.clone();
    tokio::task::spawn_local(poll_forever(stop, move || {
        let edge = purge.clone();
        async move { edge.sync_purge(25_000).await.is_some() }
    }));
    let app = axum::Router::new().fallback(edge_request).with_state(edge);
    let listener = net::Listener::bind(port).await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<net::Peer>(),
    )
    .await?;
    Ok(())
}

/// A long poll again and again, backing off from 100 ms to 5 s while it
/// gets no answer (edge-host's watchers do the same).
async fn poll_forever<F, Fut>(mut stop: watch::Receiver<bool>, poll: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            answered = poll() => {
                if answered {
                    backoff = Duration::from_millis(100);
                    continue;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn edge_request(
    axum::extract::State(edge): axum::extract::State<Arc<edge_core::Edge<EdgeHost>>>,
    ConnectInfo(net::Peer(peer)): ConnectInfo<net::Peer>,
    request: Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = match http_body_util::Limited::new(body, edge_core::http::MAX_REQUEST_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(n, _)| n.as_str() != edge_core::http::CLIENT_ADDR_HEADER)
        .filter_map(|(n, v)| Some((n.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
        .collect();
    headers.push((
        edge_core::http::CLIENT_ADDR_HEADER.to_owned(),
        peer.to_string(),
    ));
    let client = edge_core::http::client_ip(&headers);
    let handled = edge
        .handle(edge_core::http::Request {
            method: parts.method.as_str().to_ascii_uppercase(),
            path: parts.uri.path().to_owned(),
            query: parts
                .uri
                .query()
                .filter(|q| !q.is_empty())
                .map(str::to_owned),
            headers,
            body,
            client,
        })
        .await;
    for deferred in handled.deferred {
        let edge = edge.clone();
        tokio::spawn(async move { edge.run_deferred(deferred).await });
    }
    let mut builder = axum::http::Response::builder().status(handled.response.status);
    for (name, value) in &handled.response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(axum::body::Body::from(handled.response.body))
        .unwrap_or_else(|_| axum::http::StatusCode::BAD_GATEWAY.into_response())
}
