//! Prometheus metrics of the routing layer: probe outcomes and latency,
//! each region's health, the table version. The routing layer has a
//! registry of its own (not the process-global recorder), labelled
//! `service="routing"`, so it serves only its own series when it shares a
//! process with the regions (`meridian up`).

use std::sync::Arc;

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use topology::RegionId;
use topology::routing::{Health, RoutingTable};

use crate::health::ProbeOutcome;

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Health as a number for a gauge: 0 healthy, 1 degraded, 2 down, 3 drained.
pub fn health_code(health: Health) -> f64 {
    match health {
        Health::Healthy => 0.0,
        Health::Degraded => 1.0,
        Health::Down => 2.0,
        Health::Drained => 3.0,
    }
}

/// The routing layer's registry.
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

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .add_global_label("service", "routing")
            .build_recorder();
        let handle = recorder.handle();
        Metrics {
            recorder: Arc::new(recorder),
            handle,
        }
    }
}

impl Metrics {
    /// The Prometheus text of the routing layer's series.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    pub(crate) fn record_probe(&self, region: &RegionId, outcome: ProbeOutcome) {
        let region = Label::new("region", region.as_str().to_owned());
        let (outcome, latency) = match outcome {
            ProbeOutcome::Ready { latency } => ("ready", Some(latency)),
            ProbeOutcome::Failed => ("failed", None),
        };
        self.recorder
            .register_counter(
                &Key::from_parts(
                    "routing_probes_total",
                    vec![region.clone(), Label::new("outcome", outcome)],
                ),
                &METADATA,
            )
            .increment(1);
        if let Some(latency) = latency {
            self.recorder
                .register_histogram(
                    &Key::from_parts("routing_probe_latency_seconds", vec![region]),
                    &METADATA,
                )
                .record(latency.as_secs_f64());
        }
    }

    pub(crate) fn record_table(&self, table: &RoutingTable) {
        self.recorder
            .register_gauge(&Key::from_name("routing_table_version"), &METADATA)
            .set(table.version as f64);
        for region in &table.regions {
            self.recorder
                .register_gauge(
                    &Key::from_parts(
                        "routing_region_health",
                        vec![Label::new("region", region.name.as_str().to_owned())],
                    ),
                    &METADATA,
                )
                .set(health_code(region.health));
        }
    }
}
