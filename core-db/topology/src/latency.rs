//! The latency model: a round-trip time between any two places (regions,
//! edge POPs, the routing layer), set by hand where the topology file says
//! (`[latency] rtt_ms`) and otherwise from the great-circle distance between
//! them: light covers about 200 km per millisecond in fibre, and real routes
//! run about 1.5 times the great circle, so Ashburn–Dublin (5,450 km) comes
//! to about 82 ms, Ashburn–Singapore about 233 ms.
//!
//! The local platform makes every call that crosses the model pay it: a
//! region's reads and commits to a shard homed elsewhere, an edge's calls
//! to a region, the routing layer's probes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::routing::great_circle_km;

/// Longest round trip the model gives or takes, and the most any delay
/// layer (a storage link, an edge's origin call, a probe) waits.
pub const MAX_RTT: Duration = Duration::from_secs(10);
/// [`MAX_RTT`] in milliseconds.
pub const MAX_RTT_MS: f64 = MAX_RTT.as_secs_f64() * 1_000.0;

/// `[latency]` in the topology file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// Round trips set by hand between two places, by name (either order).
    pub rtt_ms: Vec<Rtt>,
    /// Kilometres light covers in fibre per millisecond, one way.
    pub fibre_km_per_ms: f64,
    /// How much longer a real route is than the great circle.
    pub route_factor: f64,
    /// The round trip between two places in one city (and its floor).
    pub min_rtt_ms: f64,
}

/// A round trip set by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rtt {
    pub a: String,
    pub b: String,
    pub ms: f64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            rtt_ms: Vec::new(),
            fibre_km_per_ms: 200.0,
            route_factor: 1.5,
            min_rtt_ms: 1.0,
        }
    }
}

/// A named point on the globe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place<'a> {
    pub name: &'a str,
    pub latitude: f64,
    pub longitude: f64,
}

impl LatencyConfig {
    /// Checks the numbers (finite, in range); the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let in_range = |v: f64, min: f64, max: f64| v.is_finite() && v >= min && v <= max;
        if !in_range(self.fibre_km_per_ms, 1.0, 300.0) {
            return Err("latency.fibre_km_per_ms must be 1 to 300".into());
        }
        if !in_range(self.route_factor, 1.0, 10.0) {
            return Err("latency.route_factor must be 1 to 10".into());
        }
        if !in_range(self.min_rtt_ms, 0.0, MAX_RTT_MS) {
            return Err(format!("latency.min_rtt_ms must be 0 to {MAX_RTT_MS}"));
        }
        for rtt in &self.rtt_ms {
            if !in_range(rtt.ms, 0.0, MAX_RTT_MS) {
                return Err(format!(
                    "latency.rtt_ms between {} and {} must be 0 to {MAX_RTT_MS}",
                    rtt.a, rtt.b
                ));
            }
        }
        Ok(())
    }

    /// The round trip between `a` and `b`: the one set by hand for the
    /// pair, else from their distance. A place to itself is `min_rtt_ms`.
    pub fn rtt(&self, a: Place<'_>, b: Place<'_>) -> Duration {
        let set = self
            .rtt_ms
            .iter()
            .find(|r| (r.a == a.name && r.b == b.name) || (r.a == b.name && r.b == a.name));
        let ms = match set {
            Some(rtt) => rtt.ms,
            None => {
                let km = great_circle_km(a.latitude, a.longitude, b.latitude, b.longitude);
                (2.0 * km / self.fibre_km_per_ms * self.route_factor).max(self.min_rtt_ms)
            }
        };
        // Whole microseconds: what a link keeps.
        Duration::from_micros((ms.clamp(0.0, MAX_RTT_MS) * 1_000.0).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASHBURN: Place<'static> = Place {
        name: "us-east",
        latitude: 39.04,
        longitude: -77.49,
    };
    const DUBLIN: Place<'static> = Place {
        name: "eu-west",
        latitude: 53.35,
        longitude: -6.26,
    };

    #[test]
    fn distance_sets_the_round_trip_unless_set_by_hand() {
        let model = LatencyConfig::default();
        let ms = model.rtt(ASHBURN, DUBLIN).as_secs_f64() * 1_000.0;
        assert!((78.0..88.0).contains(&ms), "{ms}");
        assert_eq!(model.rtt(ASHBURN, DUBLIN), model.rtt(DUBLIN, ASHBURN));
        assert_eq!(model.rtt(ASHBURN, ASHBURN), Duration::from_millis(1));
        let set = LatencyConfig {
            rtt_ms: vec![Rtt {
                a: "eu-west".into(),
                b: "us-east".into(),
                ms: 70.0,
            }],
            ..LatencyConfig::default()
        };
        assert_eq!(set.rtt(ASHBURN, DUBLIN), Duration::from_millis(70));
        assert!(set.validate().is_ok());
        let bad = LatencyConfig {
            route_factor: f64::NAN,
            ..LatencyConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("route_factor"));
    }
}
