//! Meridian's shard-carrying ids and topology, parsed here and nowhere else.
//!
//! Edge code, the regional services and routing all need to read an id such
//! as `eu.01ARZ3NDEKTSV4RRFFQ69G5FAV` and to know which regions serve shard
//! `eu`. Keeping both parsers in one small crate means they cannot drift
//! apart. The crate does no I/O and has no async runtime, so it builds for
//! wasm32 (`wasm32-unknown-unknown` and `wasm32-wasip2`): callers read files
//! themselves and hand over the text.
//!
//! - [`RegionId`], [`ShardId`]: validated names.
//! - [`ShardedId`]: an id that carries its shard, `<shard>.<ulid>`.
//! - [`Topology`]: regions and shards (home plus ordered standbys), read
//!   from TOML with [`Topology::from_toml_str`] and validated as a whole.
//! - [`routing`]: the routing table's wire shape (regions' health, each
//!   shard's active region), served by the routing layer.

mod id;
pub mod latency;
mod names;
pub mod routing;
pub mod signing;
mod topology;

pub use id::{IdError, ShardedId, UlidDecodeError};
pub use names::{NameError, NameKind, RegionId, ShardId};
pub use topology::{Region, Shard, Topology, TopologyError};
/// Re-exported so callers build [`ShardedId`]s from the same `Ulid` type.
pub use ulid::{self, Ulid};

/// The topology shipped for local runs (`infra/local/topology.toml`),
/// embedded so tests and binaries get the default without touching the
/// file system.
pub const LOCAL_TOPOLOGY: &str = include_str!("../../../infra/local/topology.toml");
