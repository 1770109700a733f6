//! The `topology` crate's one integration-test binary (one per crate keeps
//! link time down): ids, the topology file, and property tests.

mod ids;
mod props;
mod routing;
mod topology;
