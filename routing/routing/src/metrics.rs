//! Prometheus metrics of the routing layer: probe outcomes and latency,
//! each region's health, the table version.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use topology::RegionId;
use topology::routing::{Health, RoutingTable};

use crate::health::ProbeOutcome;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use (a process
/// has one global recorder; several servers in one test process share it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// Health as a number for a gauge: 0 healthy, 1 degraded, 2 down, 3 drained.
pub fn health_code(health: Health) -> f64 {
    match health {
        Health::Healthy => 0.0,
        Health::Degraded => 1.0,
        Health::Down => 2.0,
        Health::Drained => 3.0,
    }
}

pub(crate) fn record_probe(region: &RegionId, outcome: ProbeOutcome) {
    let region = region.as_str().to_owned();
    match outcome {
        ProbeOutcome::Ready { latency } => {
            metrics::counter!("routing_probes_total", "region" => region.clone(), "outcome" => "ready")
                .increment(1);
            metrics::histogram!("routing_probe_latency_seconds", "region" => region)
                .record(latency.as_secs_f64());
        }
        ProbeOutcome::Failed => {
            metrics::counter!("routing_probes_total", "region" => region, "outcome" => "failed")
                .increment(1);
        }
    }
}

pub(crate) fn record_table(table: &RoutingTable) {
    metrics::gauge!("routing_table_version").set(table.version as f64);
    for region in &table.regions {
        metrics::gauge!("routing_region_health", "region" => region.name.as_str().to_owned())
            .set(health_code(region.health));
    }
}
