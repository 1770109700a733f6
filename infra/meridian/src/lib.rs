//! The operator's CLI as a library: configuration loading, the edge
//! component's build, the platform, shared by the `meridian` binary and its
//! tests. Storage is opened by
//! [`regional_server::storage::open`], the same code the regional service
//! runs.

pub mod build;
pub mod config;
pub mod drill;
pub mod platform;
pub mod status;

pub use regional_server::storage::open as open_storage;
