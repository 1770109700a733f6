//! Each POP's two long polls, on the same edge-core code the component
//! runs, natively: the routing table (`GET /v1/table/watch`) and the purge
//! feed (`GET /v1/purge?wait_ms=…`). Both write into the POP's store, where
//! the component reads them on its next request.

use std::sync::Arc;
use std::time::Duration;

use edge_core::http::Response;
use edge_core::origin::Failure;
use edge_core::{Edge, EdgeConfig, Host, Outbound};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::PopState;

/// How long one long poll waits.
const POLL_MS: u64 = 25_000;
/// An HTTP call of a watcher gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(35);

struct NativeHost {
    pop: Arc<PopState>,
    client: reqwest::Client,
}

impl Host for NativeHost {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn nonce(&self) -> String {
        use std::hash::{BuildHasher, Hasher};
        let mut out = String::with_capacity(32);
        for salt in 0..2u8 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(salt);
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.pop.kv.get(key)
    }

    async fn set(&self, key: &str, value: &[u8]) {
        self.pop.kv.set(key, value);
    }

    async fn fetch(&self, request: Outbound) -> Result<Response, Failure> {
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| Failure::Connect)?;
        let mut builder = self
            .client
            .request(method, &request.url)
            .timeout(CALL_TIMEOUT);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = builder.body(request.body).send().await.map_err(|e| {
            if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Timeout
            }
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|_| Failure::Timeout)?
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Starts the POP's routing-table and purge-feed watchers.
pub(crate) fn spawn(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    pop: Arc<PopState>,
    config: EdgeConfig,
    stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for the watchers");
            return;
        }
    };
    let edge = Arc::new(Edge::new(NativeHost { pop, client }, config));
    {
        let edge = edge.clone();
        let mut stop = stop.clone();
        tasks.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    result = edge.watch_table(POLL_MS) => {
                        if result.is_some() {
                            backoff = Duration::from_millis(100);
                            continue;
                        }
                    }
                }
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }
    let mut stop = stop;
    tasks.spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                result = edge.sync_purge(POLL_MS) => {
                    if result.is_some() {
                        backoff = Duration::from_millis(100);
                        continue;
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}
