//! The region's background workers, each a bounded loop: every pass handles
//! at most one batch, sleeps between passes, and stops when shutdown is
//! signalled. They keep the consistency rules that do not fit in a request:
//! the catalog feed applied to this region's cache and search index, the
//! catalog pulled into this region's replica, the outbox delivered (and, in
//! the region serving the catalog shard, every shard's reviews projected),
//! sagas recovered, expired reservations and carts swept,
//! the feed trimmed.

use std::future::Future;
use std::time::Duration;

use commerce::Commerce;
use commerce::outbox::Topic;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::WorkerConfig;
use crate::problem::error_chain;

/// Starts every worker on `commerce`; they stop when `shutdown` turns true.
pub fn spawn(
    commerce: &Commerce,
    config: &WorkerConfig,
    metrics: &crate::metrics::Metrics,
    shutdown: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let served: Vec<_> = commerce.served().iter().cloned().collect();
    let warehouses = served.clone();

    // The catalog feed: long-polled, so changes apply within milliseconds.
    {
        let c = commerce.clone();
        let wait_ms = config.feed_wait_ms;
        set.spawn(repeat(
            metrics.clone(),
            "feed",
            Duration::ZERO,
            shutdown.clone(),
            move || {
                let c = c.clone();
                async move { c.apply_feed(wait_ms).await }
            },
        ));
    }
    // This region's replica of the catalog, pulled from the catalog shard
    // (long-polled): its first full copy, and every change the catalog's
    // home region did not push (while it is away, say).
    if commerce.replica_shard().is_some() {
        let c = commerce.clone();
        let wait_ms = config.feed_wait_ms;
        set.spawn(repeat(
            metrics.clone(),
            "catalog-pull",
            Duration::ZERO,
            shutdown.clone(),
            move || {
                let c = c.clone();
                async move { c.pull_replica(wait_ms).await }
            },
        ));
    }
    {
        let c = commerce.clone();
        let served = served.clone();
        set.spawn(repeat(
            metrics.clone(),
            "outbox",
            Duration::from_millis(config.outbox_interval_ms),
            shutdown.clone(),
            move || {
                let (c, served) = (c.clone(), served.clone());
                async move {
                    let mut n = 0;
                    for shard in &served {
                        for topic in Topic::PER_SHARD {
                            n += c.drain_outbox(shard, topic).await?;
                        }
                    }
                    Ok(n)
                }
            },
        ));
    }
    // Reviews are projected into the catalog shard by the region serving
    // it, from every shard's queue: one loop per shard, so a far shard's
    // round trips never hold back a near one's reviews. A region that does
    // not serve the catalog shard (now) passes.
    for shard in commerce.warehouses() {
        let c = commerce.clone();
        set.spawn(repeat(
            metrics.clone(),
            "reviews",
            Duration::from_millis(config.outbox_interval_ms),
            shutdown.clone(),
            move || {
                let (c, shard) = (c.clone(), shard.clone());
                async move {
                    if !c.served().contains(c.catalog_shard()) {
                        return Ok(0);
                    }
                    c.drain_outbox(&shard, Topic::Reviews).await
                }
            },
        ));
    }
    {
        let c = commerce.clone();
        let served = served.clone();
        set.spawn(repeat(
            metrics.clone(),
            "saga-recovery",
            Duration::from_millis(config.recovery_interval_ms),
            shutdown.clone(),
            move || {
                let (c, served) = (c.clone(), served.clone());
                async move {
                    let mut n = 0;
                    for shard in &served {
                        n += c.recover_sagas(shard).await?;
                    }
                    Ok(n)
                }
            },
        ));
    }
    {
        let c = commerce.clone();
        set.spawn(repeat(
            metrics.clone(),
            "sweep",
            Duration::from_millis(config.sweep_interval_ms),
            shutdown.clone(),
            move || {
                let (c, served, warehouses) = (c.clone(), served.clone(), warehouses.clone());
                async move {
                    let mut n = 0;
                    for shard in &warehouses {
                        n += c.sweep_expired_reservations(shard).await?;
                        n += c.collect_reservations(shard).await?;
                    }
                    for shard in &served {
                        n += c.sweep_expired_carts(shard).await?;
                        n += c.collect_seen_events(shard).await?;
                    }
                    // Only the region that homes the catalog trims its feed.
                    if c.served().contains(c.catalog_shard()) {
                        n += c.trim_feed().await?;
                    }
                    Ok(n)
                }
            },
        ));
    }
    set
}

/// Runs `pass` until shutdown: immediately again while it finds work,
/// else after `idle`. An error is logged and retried after a back-off.
async fn repeat<F, Fut>(
    metrics: crate::metrics::Metrics,
    name: &'static str,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = commerce::Result<usize>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let sleep = tokio::select! {
            _ = shutdown.changed() => return,
            result = pass() => match result {
                Ok(handled) => {
                    backoff = Duration::from_millis(50);
                    metrics.record_worker(name, handled);
                    if handled > 0 { Duration::ZERO } else { idle }
                }
                Err(e) => {
                    tracing::warn!(worker = name, error = %error_chain(&e), "worker pass failed");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff.max(idle)
                }
            },
        };
        if !sleep.is_zero() {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(sleep) => {}
            }
        } else {
            // Let other tasks run between back-to-back passes.
            tokio::task::yield_now().await;
        }
    }
}
