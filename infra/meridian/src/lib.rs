//! The operator's CLI as a library: configuration loading, the edge
//! component's build, the platform, the command line itself (`cli`), shared by the `meridian` binary,
//! its tests and the end-to-end tests. Storage is opened by
//! [`regional_server::storage::open`], the same code the regional service
//! runs.

pub mod build;
pub mod cli;
pub mod config;
pub mod control;
pub mod drill;
pub mod platform;
pub mod recommend;
pub mod status;

pub use regional_server::storage::open as open_storage;

/// A unit enum's name as it is serialized (`region-outage`,
/// `add_to_cart`): how reports and the routing API name it.
pub fn wire_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
