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
///
/// A probe starts on every tick whether or not the one before has
/// answered (at most [`max_in_flight`] at once), and outcomes are observed
/// in the order their probes started, each within `timeout` of its start.
/// So a region that stops answering is seen failing `fall` times within
/// `fall × interval + timeout` of its end, the bound the routing table
/// promises (and the deterministic simulator checks): waiting for each hung
/// probe before starting the next would stretch every failed probe to
/// `timeout` and the detection to `fall × timeout`.
async fn probe_loop(
    prober: Arc<dyn Prober>,
    url: String,
    interval: Duration,
    timeout: Duration,
    observe: impl Fn(ProbeOutcome) -> Result<(), crate::table::TableError>,
) {
    use futures::StreamExt;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let most = max_in_flight(interval, timeout);
    let mut in_flight = futures::stream::FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => {
                if let Err(e) = observe(outcome) {
                    tracing::error!(error = %e, url, "probe of an endpoint the table lacks");
                    return;
                }
            }
            _ = ticks.tick(), if in_flight.len() < most => {
                let probe = prober.probe(&url, timeout);
                in_flight.push_back(async move {
                    tokio::time::timeout(timeout, probe)
                        .await
                        .unwrap_or(ProbeOutcome::Failed)
                });
            }
        }
    }
}

/// Probes of one endpoint in flight at once: enough for a probe to start on
/// every tick while each waits out its timeout.
pub fn max_in_flight(interval: Duration, timeout: Duration) -> usize {
    let per_timeout = timeout.as_millis() / interval.as_millis().max(1);
    usize::try_from(per_timeout)
        .unwrap_or(usize::MAX)
        .saturating_add(2)
        .min(64)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::health::HealthPolicy;
    use crate::table::RegionEndpoint;

    /// Ready until `dead`, then never answers (a host gone without a reset).
    struct Hangs {
        dead: AtomicBool,
    }

    impl Prober for Hangs {
        fn probe<'a>(&'a self, url: &'a str, _timeout: Duration) -> BoxFuture<'a, ProbeOutcome> {
            let hang = self.dead.load(Ordering::SeqCst) && url.contains("us-east");
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                ProbeOutcome::Ready {
                    latency: Duration::from_millis(1),
                }
            }
            .boxed()
        }
    }

    /// A region whose probes hang is out of the table within
    /// fall × interval + timeout of its end, though each probe takes the
    /// whole timeout (the bound the deterministic simulator found broken
    /// when each probe waited for the one before).
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_hung_region_is_out_within_fall_intervals_and_a_timeout() {
        let topology =
            topology::Topology::from_toml_str(topology::LOCAL_TOPOLOGY).expect("topology");
        let endpoints = topology
            .regions()
            .iter()
            .map(|r| RegionEndpoint {
                name: r.name().clone(),
                base_url: format!("http://{}", r.name()),
                readyz_url: format!("http://{}/readyz", r.name()),
                addresses: Vec::new(),
                baseline_ms: 0.0,
            })
            .collect();
        let policy = HealthPolicy {
            interval_ms: 250,
            timeout_ms: 500,
            fall: 3,
            rise: 2,
            ..HealthPolicy::default()
        };
        let bound = Duration::from_millis(3 * 250 + 500);
        let table = RegionTable::new(&topology, endpoints, policy).expect("table");
        let prober = Arc::new(Hangs {
            dead: AtomicBool::new(false),
        });
        let _checker = Checker::spawn(table.clone(), prober.clone());
        let us_east: topology::RegionId = "us-east".parse().expect("region");
        let serves = |t: &RegionTable| {
            t.snapshot()
                .region(&us_east)
                .is_some_and(|r| r.health.serves())
        };
        while !serves(&table) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Mid-way between two probes.
        tokio::time::sleep(Duration::from_millis(125)).await;
        prober.dead.store(true, Ordering::SeqCst);
        let died = tokio::time::Instant::now();
        while serves(&table) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let detected = died.elapsed();
        assert!(
            detected <= bound,
            "out after {detected:?}, past fall × interval + timeout = {bound:?}"
        );
    }
}
