//! The edge's settings, parsed once for every platform.

use crate::ratelimit::{RateLimit, RateLimits};

/// The edge's settings (from Spin variables, Worker vars, or the host's
/// config).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// This POP's name, reported in `x-edge-pop`.
    pub pop: String,
    pub latitude: f64,
    pub longitude: f64,
    /// The HMAC key edge calls are signed with.
    pub edge_key: Vec<u8>,
    /// The routing API, e.g. `http://127.0.0.1:7000`.
    pub routing_url: String,
    /// A stored routing table older than this is fetched again (a POP
    /// with a long-poll watcher keeps it current well before).
    pub table_max_age_ms: u64,
    pub rate_limits: RateLimits,
}

/// `table_max_age_ms` when a platform does not set it (every platform's
/// default, edge-host's config included).
pub const DEFAULT_TABLE_MAX_AGE_MS: u64 = 1_000;

/// A required edge setting that is not set (named as in
/// [`EdgeConfig::SETTINGS`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} setting is not set")]
pub struct MissingSetting(pub &'static str);

impl EdgeConfig {
    /// The settings every platform gives the edge, by name: Spin variables
    /// and the local host's variables use these names, the Worker the same
    /// in upper case.
    pub const SETTINGS: [&'static str; 13] = [
        "pop",
        "latitude",
        "longitude",
        "edge_key",
        "routing_url",
        "table_max_age_ms",
        "rate_per_s",
        "rate_burst",
        "write_rate_per_s",
        "write_rate_burst",
        "session_rate_per_s",
        "session_rate_burst",
        "address_rate_factor",
    ];

    /// Reads the settings through `lookup`, the one parser all platforms
    /// share (the local host's fast path relies on reading exactly what
    /// its component reads). An empty value counts as unset; an unset or
    /// unparsable number takes its default; an unset `pop` is
    /// `default_pop`. `edge_key` and `routing_url` are required.
    pub fn from_lookup(
        default_pop: &str,
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<Self, MissingSetting> {
        let mut text = |name: &str| lookup(name).filter(|v| !v.is_empty());
        fn number<T: std::str::FromStr>(value: Option<String>, default: T) -> T {
            value.and_then(|v| v.trim().parse().ok()).unwrap_or(default)
        }
        let pop = text("pop").unwrap_or_else(|| default_pop.to_owned());
        let latitude = number(text("latitude"), 0.0);
        let longitude = number(text("longitude"), 0.0);
        let edge_key = text("edge_key")
            .ok_or(MissingSetting("edge_key"))?
            .into_bytes();
        let routing_url = text("routing_url").ok_or(MissingSetting("routing_url"))?;
        let table_max_age_ms = number(text("table_max_age_ms"), DEFAULT_TABLE_MAX_AGE_MS);
        let defaults = RateLimits::default();
        let mut limit = |per_s: &str, burst: &str, default: RateLimit| RateLimit {
            per_s: number(text(per_s), default.per_s),
            burst: number(text(burst), default.burst),
        };
        let read = limit("rate_per_s", "rate_burst", defaults.read);
        let write = limit("write_rate_per_s", "write_rate_burst", defaults.write);
        let session = limit("session_rate_per_s", "session_rate_burst", defaults.session);
        let address_factor = number(text("address_rate_factor"), defaults.address_factor);
        Ok(EdgeConfig {
            pop,
            latitude,
            longitude,
            edge_key,
            routing_url,
            table_max_age_ms,
            rate_limits: RateLimits {
                read,
                write,
                session,
                address_factor,
            },
        })
    }
}
