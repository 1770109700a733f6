//! The conformance battery every engine runs (db-testkit), over the
//! simulator's own engine: [`sim::storage::RemoteDatabase`] talking to a
//! storage host (the memory engine served over turmoil's TCP) from another
//! host. The regions of every simulated run keep their data through it, so
//! what the simulator concludes holds for FoundationDB's transaction model
//! only as far as this engine keeps it.

use std::sync::Arc;
use std::time::Duration;

use db::Subspace;
use db_embedded::{EmbeddedDatabase, EmbeddedOptions};
use db_testkit::{Case, Fixture};
use sim::storage::{self, RemoteDatabase};

/// Runs one case in a simulation of its own: a storage host, and a client
/// host whose database is a `RemoteDatabase` on it.
fn run(name: &str, case: impl FnOnce(Fixture) -> Case + 'static) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(1)
        .simulation_duration(Duration::from_secs(600))
        .tick_duration(Duration::from_millis(1))
        .build();
    let store = Arc::new(EmbeddedDatabase::open_memory(EmbeddedOptions::default()));
    sim.host("store", move || storage::serve(store.clone()));
    sim.client("case", async move {
        let db = RemoteDatabase::database("store", db::RetryPolicy::default(), 1);
        case(Fixture::new(
            db,
            Subspace::from_bytes(b"t".to_vec()),
            Box::new(()),
        ))
        .await;
        Ok(())
    });
    if let Err(e) = sim.run() {
        panic!("{name}: the simulation failed: {e}");
    }
}

db_testkit::battery!(runner: run);
