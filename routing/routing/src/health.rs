//! One region's health as a pure state machine fed with probe outcomes, so
//! hysteresis is tested without clocks or sockets: `fall` consecutive
//! failures take a region down, `rise` consecutive successes bring it back,
//! and a serving region is degraded while its recent probes are slow or
//! failing above a threshold.

use std::collections::VecDeque;
use std::time::Duration;

use topology::routing::Health;

/// Thresholds of the state machine. Every field is a bound.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthPolicy {
    /// Time between probes of one region.
    pub interval_ms: u64,
    /// A probe not answered within this is a failure.
    pub timeout_ms: u64,
    /// Consecutive failures that take a serving region down.
    pub fall: u32,
    /// Consecutive successes that bring a down region back.
    pub rise: u32,
    /// Average probe latency above which a serving region is degraded.
    pub degraded_latency_ms: f64,
    /// Share of failed probes in the window above which it is degraded.
    pub degraded_error_ratio: f64,
    /// Probes the degraded rule looks back over.
    pub window: usize,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            interval_ms: 100,
            timeout_ms: 250,
            fall: 3,
            rise: 2,
            degraded_latency_ms: 150.0,
            degraded_error_ratio: 0.2,
            window: 20,
        }
    }
}

impl HealthPolicy {
    /// Clamps the policy into workable bounds (config may say anything).
    pub fn bounded(mut self) -> Self {
        self.interval_ms = self.interval_ms.clamp(10, 60_000);
        self.timeout_ms = self.timeout_ms.clamp(1, 60_000);
        self.fall = self.fall.clamp(1, 100);
        self.rise = self.rise.clamp(1, 100);
        self.window = self.window.clamp(1, 1_000);
        self
    }
}

/// What one probe saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeOutcome {
    /// `/readyz` answered 2xx within the timeout.
    Ready { latency: Duration },
    /// Connect error, timeout, or a non-2xx answer.
    Failed,
}

/// A region's probe-driven state (draining is the table's business).
#[derive(Debug, Clone)]
pub struct RegionHealth {
    health: Health,
    consecutive_failures: u32,
    consecutive_successes: u32,
    /// Recent outcomes: `Some(latency_ms)` for ready, `None` for failed.
    window: VecDeque<Option<f64>>,
    /// The probe's round trip at rest (distance from the prober): only
    /// latency above it counts toward degraded.
    baseline_ms: f64,
}

impl Default for RegionHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl RegionHealth {
    /// A region starts down: it must pass `rise` probes before it gets
    /// traffic, so a region dead at start-up is never routed to.
    pub fn new() -> Self {
        RegionHealth {
            health: Health::Down,
            consecutive_failures: 0,
            consecutive_successes: 0,
            window: VecDeque::new(),
            baseline_ms: 0.0,
        }
    }

    /// The same, judged against a probe round trip of `baseline_ms` at
    /// rest: a far region is not degraded by its distance alone.
    pub fn with_baseline(mut self, baseline_ms: f64) -> Self {
        self.baseline_ms = if baseline_ms.is_finite() {
            baseline_ms.max(0.0)
        } else {
            0.0
        };
        self
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Average latency of the ready probes in the window.
    pub fn latency_ms(&self) -> Option<f64> {
        let ready: Vec<f64> = self.window.iter().flatten().copied().collect();
        (!ready.is_empty()).then(|| ready.iter().sum::<f64>() / ready.len() as f64)
    }

    fn error_ratio(&self) -> f64 {
        if self.window.is_empty() {
            return 0.0;
        }
        self.window.iter().filter(|o| o.is_none()).count() as f64 / self.window.len() as f64
    }

    /// Feeds one probe outcome; returns the new health if it changed.
    pub fn observe(&mut self, outcome: ProbeOutcome, policy: &HealthPolicy) -> Option<Health> {
        let sample = match outcome {
            ProbeOutcome::Ready { latency } => Some(latency.as_secs_f64() * 1_000.0),
            ProbeOutcome::Failed => None,
        };
        self.window.push_back(sample);
        while self.window.len() > policy.window.max(1) {
            self.window.pop_front();
        }
        if sample.is_some() {
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.consecutive_successes = 0;
        }
        let next = match self.health {
            Health::Down if self.consecutive_successes >= policy.rise => {
                // Failures from while it was down say nothing about how it
                // serves now: judge it on the probes since it came back.
                let keep = self.consecutive_successes as usize;
                while self.window.len() > keep {
                    self.window.pop_front();
                }
                self.serving_state(policy)
            }
            Health::Down => Health::Down,
            _ if self.consecutive_failures >= policy.fall => Health::Down,
            _ => self.serving_state(policy),
        };
        (next != self.health).then(|| {
            self.health = next;
            next
        })
    }

    /// Healthy or degraded, with hysteresis: a region becomes degraded
    /// above the thresholds and healthy again only well below them (80 % of
    /// the latency threshold, half the error ratio), so a region hovering at
    /// a threshold does not flip the table back and forth.
    fn serving_state(&self, policy: &HealthPolicy) -> Health {
        let latency = (self.latency_ms().unwrap_or(0.0) - self.baseline_ms).max(0.0);
        let errors = self.error_ratio();
        let degrade = latency > policy.degraded_latency_ms || errors > policy.degraded_error_ratio;
        let recover = latency <= policy.degraded_latency_ms * 0.8
            && errors <= policy.degraded_error_ratio / 2.0;
        match self.health {
            Health::Degraded if !recover => Health::Degraded,
            _ if degrade => Health::Degraded,
            _ => Health::Healthy,
        }
    }
}
