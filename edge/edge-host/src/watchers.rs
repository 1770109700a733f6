//! Each POP's two long polls, on the same edge-core code the component
//! runs, natively: the routing table (`GET /v1/table/watch`) and the purge
//! feed (`GET /v1/purge?wait_ms=…`). Both write into the POP's store, where
//! the component reads them on its next request.

use std::sync::Arc;
use std::time::Duration;

use edge_core::Edge;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::native::NativeHost;

/// How long one long poll waits.
const POLL_MS: u64 = 25_000;

/// Starts the POP's routing-table and purge-feed watchers.
pub(crate) fn spawn(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    edge: Arc<Edge<NativeHost>>,
    stop: watch::Receiver<bool>,
) {
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
