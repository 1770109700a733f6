//! Meridian's deterministic simulation (issue 19): the routing layer, three
//! regions, their storage hosts and two edge POPs as simulated hosts on
//! turmoil, shoppers as clients, all on one thread under one seed. See
//! `world` for the run, `faults` for what a seed injects, `storage` for
//! the storage hosts, `isolated` for why each run has a process of its
//! own.

pub mod faults;
pub mod hosts;
pub mod isolated;
pub mod net;
pub mod shopper;
pub mod storage;
pub mod world;

pub use world::{Options, Outcome, run};

/// The command that replays `seed` exactly.
pub fn replay_command(seed: u64) -> String {
    format!("cargo xtask sim --seed {seed}")
}
