//! Meridian's global routing layer: probes every region's `/readyz` with
//! hysteresis ([`health`], [`checker`]), keeps the region table and each
//! shard's active region ([`table`]), and serves it ([`api`]), with the
//! failure drills SREs run ([`drills`]); [`client`]
//! waits on it by its long poll. The `routing`
//! binary runs these with the DNS authority (`dns-authority`).

pub mod api;
pub mod checker;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod drills;
pub mod health;
pub mod metrics;
pub mod server;
pub mod table;
