//! Prometheus metrics of one regional service: requests by route and
//! status with latency, checkout outcomes, worker passes. Each service has
//! a registry of its own (not the process-global recorder), labelled
//! `service="regional"` and `region="<name>"`, so several regions in one
//! process (`meridian up`) each serve only their own series.

use std::sync::Arc;
use std::time::Duration;

use commerce::orders::OrderStatus;
use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// The gauge of requests being served (the HTTP queue's length): what the
/// HorizontalPodAutoscaler in infra/k8s scales on, through the Prometheus
/// adapter.
pub const IN_FLIGHT: &str = "regional_http_requests_in_flight";

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One service's registry.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(region: &str) -> Metrics {
        let recorder = PrometheusBuilder::new()
            .add_global_label("service", "regional")
            .add_global_label("region", region)
            .build_recorder();
        let handle = recorder.handle();
        Metrics {
            recorder: Arc::new(recorder),
            handle,
        }
    }

    /// The Prometheus text of this service's series.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>, by: u64) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .increment(by);
    }

    /// Counts one request in [`IN_FLIGHT`] until the guard drops (also
    /// when its handler is cancelled).
    pub(crate) fn in_flight(&self) -> InFlight {
        let gauge = self
            .recorder
            .register_gauge(&Key::from_name(IN_FLIGHT), &METADATA);
        gauge.increment(1.0);
        InFlight(gauge)
    }

    pub(crate) fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.counter(
            "regional_http_requests_total",
            vec![
                Label::new("method", method.to_owned()),
                Label::new("route", route.to_owned()),
                Label::new("status", status.to_string()),
            ],
            1,
        );
        self.recorder
            .register_histogram(
                &Key::from_parts(
                    "regional_http_request_seconds",
                    vec![Label::new("route", route.to_owned())],
                ),
                &METADATA,
            )
            .record(elapsed.as_secs_f64());
    }

    pub(crate) fn record_checkout(&self, status: OrderStatus) {
        let outcome = match status {
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Pending => "pending",
            OrderStatus::Failed => "failed",
        };
        self.counter(
            "regional_checkouts_total",
            vec![Label::new("outcome", outcome)],
            1,
        );
    }

    pub(crate) fn record_worker(&self, worker: &'static str, handled: usize) {
        self.counter(
            "regional_worker_items_total",
            vec![Label::new("worker", worker)],
            handled as u64,
        );
    }
}

/// One request counted in [`IN_FLIGHT`].
pub(crate) struct InFlight(metrics::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
