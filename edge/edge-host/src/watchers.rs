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
    let table = edge.clone();
    tasks.spawn(poll_forever(stop.clone(), move || {
        let edge = table.clone();
        async move { edge.watch_table(POLL_MS).await.is_some() }
    }));
    tasks.spawn(poll_forever(stop, move || {
        let edge = edge.clone();
        async move { edge.sync_purge(POLL_MS).await.is_some() }
    }));
}

/// Runs `poll` (one long poll; `true` when it got an answer) again and
/// again until `stop` changes, backing off from 100 ms to 5 s while it
/// gets none.
async fn poll_forever<F, Fut>(mut stop: watch::Receiver<bool>, poll: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            answered = poll() => {
                if answered {
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
}
