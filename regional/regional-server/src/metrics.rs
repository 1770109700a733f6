//! Prometheus metrics of the regional service: requests by route and
//! status with latency, checkout outcomes, worker passes.

use std::sync::OnceLock;
use std::time::Duration;

use commerce::orders::OrderStatus;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use (a process has
/// one global recorder; several services in one process share it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

pub(crate) fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    handle();
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("regional_http_requests_total", &labels).increment(1);
    metrics::histogram!("regional_http_request_seconds", "route" => route.to_owned())
        .record(elapsed.as_secs_f64());
}

pub(crate) fn record_checkout(status: OrderStatus) {
    let outcome = match status {
        OrderStatus::Confirmed => "confirmed",
        OrderStatus::Pending => "pending",
        OrderStatus::Failed => "failed",
    };
    metrics::counter!("regional_checkouts_total", "outcome" => outcome).increment(1);
}

pub(crate) fn record_worker(worker: &'static str, handled: usize) {
    metrics::counter!("regional_worker_items_total", "worker" => worker).increment(handled as u64);
}
