//! The health checker: one task per region probing its `/readyz` every
//! `interval_ms` with a `timeout_ms` bound, feeding the outcomes to the
//! region table. Probing is behind [`Prober`] so tests can inject faults.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use crate::health::ProbeOutcome;
use crate::table::RegionTable;

/// Asks a region whether it is ready.
pub trait Prober: Send + Sync + 'static {
    fn probe<'a>(&'a self, url: &'a str, timeout: Duration) -> BoxFuture<'a, ProbeOutcome>;
}

/// Probes over HTTP: 2xx within the timeout is ready, anything else failed.
#[derive(Debug, Clone)]
pub struct HttpProber {
    client: reqwest::Client,
}

impl HttpProber {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            // Probes go straight to the region, never through a proxy.
            .no_proxy()
            .pool_max_idle_per_host(2)
            .build()?;
        Ok(HttpProber { client })
    }
}

impl Prober for HttpProber {
    fn probe<'a>(&'a self, url: &'a str, timeout: Duration) -> BoxFuture<'a, ProbeOutcome> {
        async move {
            let started = Instant::now();
            match self.client.get(url).timeout(timeout).send().await {
                Ok(response) if response.status().is_success() => ProbeOutcome::Ready {
                    latency: started.elapsed(),
                },
                _ => ProbeOutcome::Failed,
            }
        }
        .boxed()
    }
}

/// The running probe tasks; dropping it stops them.
#[derive(Debug)]
pub struct Checker {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Checker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Checker {
    /// Starts probing every region of `table`.
    pub fn spawn(table: RegionTable, prober: Arc<dyn Prober>) -> Self {
        let policy = table.policy().clone();
        let interval = Duration::from_millis(policy.interval_ms);
        let timeout = Duration::from_millis(policy.timeout_ms);
        let tasks = table
            .endpoints()
            .into_iter()
            .map(|endpoint| {
                let (table, prober) = (table.clone(), prober.clone());
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(interval);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        ticks.tick().await;
                        let outcome = prober.probe(&endpoint.readyz_url, timeout).await;
                        table.metrics().record_probe(&endpoint.name, outcome);
                        if let Err(e) = table.observe(&endpoint.name, outcome) {
                            tracing::error!(error = %e, "probe of a region the table lacks");
                            return;
                        }
                    }
                })
            })
            .collect();
        Checker { tasks }
    }
}
