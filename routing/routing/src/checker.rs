//! The health checker: one task per region probing its `/readyz` (and per
//! POP probing its `/healthz`) every
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

/// A prober far from what it probes: each probe of a URL it knows first
/// waits that URL's round trip (the latency model's distance from the
/// routing layer's place), which the probe's latency then includes. The
/// round trips can change while probing (a drill's latency fault).
pub struct DelayedProber {
    inner: Arc<dyn Prober>,
    delays: parking_lot::RwLock<std::collections::BTreeMap<String, Duration>>,
    /// URLs whose probes fail at once (a partition between the routing
    /// layer and the endpoint).
    cut: parking_lot::RwLock<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for DelayedProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayedProber")
            .field("delays", &*self.delays.read())
            .finish_non_exhaustive()
    }
}

impl DelayedProber {
    pub fn new(inner: Arc<dyn Prober>) -> Self {
        DelayedProber {
            inner,
            delays: Default::default(),
            cut: Default::default(),
        }
    }

    /// Probes of `url` fail at once (`true`) or go out again.
    pub fn set_cut(&self, url: &str, cut: bool) {
        let mut set = self.cut.write();
        if cut {
            set.insert(url.to_owned());
        } else {
            set.remove(url);
        }
    }

    /// The round trip probes of `url` pay now.
    pub fn delay(&self, url: &str) -> Duration {
        self.delays.read().get(url).copied().unwrap_or_default()
    }

    /// Probes of `url` wait `delay` first (at most the latency model's
    /// longest round trip).
    pub fn set_delay(&self, url: &str, delay: Duration) {
        self.delays
            .write()
            .insert(url.to_owned(), delay.min(topology::latency::MAX_RTT));
    }
}

impl Prober for DelayedProber {
    fn probe<'a>(&'a self, url: &'a str, timeout: Duration) -> BoxFuture<'a, ProbeOutcome> {
        async move {
            if self.cut.read().contains(url) {
                return ProbeOutcome::Failed;
            }
            let delay = self.delay(url);
            tokio::time::sleep(delay).await;
            match self.inner.probe(url, timeout).await {
                ProbeOutcome::Ready { latency } => ProbeOutcome::Ready {
                    latency: latency + delay,
                },
                ProbeOutcome::Failed => ProbeOutcome::Failed,
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
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        for endpoint in table.endpoints() {
            let table = table.clone();
            tasks.push(tokio::spawn(probe_loop(
                prober.clone(),
                endpoint.readyz_url.clone(),
                interval,
                timeout,
                move |outcome| {
                    table.metrics().record_probe(&endpoint.name, outcome);
                    table.observe(&endpoint.name, outcome)
                },
            )));
        }
        // POPs, on their health route, by the same policy.
        for pop in table.pop_endpoints() {
            let table = table.clone();
            tasks.push(tokio::spawn(probe_loop(
                prober.clone(),
                pop.endpoint.readyz_url.clone(),
                interval,
                timeout,
                move |outcome| table.observe_pop(&pop.endpoint.name, outcome),
            )));
        }
        Checker { tasks }
    }
}

/// Probes `url` every `interval` until `observe` refuses an outcome.
async fn probe_loop(
    prober: Arc<dyn Prober>,
    url: String,
    interval: Duration,
    timeout: Duration,
    observe: impl Fn(ProbeOutcome) -> Result<(), crate::table::TableError>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outcome = prober.probe(&url, timeout).await;
        if let Err(e) = observe(outcome) {
            tracing::error!(error = %e, url, "probe of an endpoint the table lacks");
            return;
        }
    }
}
