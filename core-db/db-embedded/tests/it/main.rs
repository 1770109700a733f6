//! The embedded engine's integration tests: the shared conformance battery
//! on disk and in memory (the simulator's store), then what only an
//! embedded store must prove (durability across kill -9 and across a crash
//! of the memory store's host, group commit, reopen, one store per shard).

mod durability;
mod engine;
mod link;
mod memory;
mod regressions;

use std::sync::Arc;

use db::{Database, Subspace};
use db_embedded::{EmbeddedDatabase, EmbeddedOptions};
use db_testkit::Fixture;

/// A fresh store in a temporary directory.
pub(crate) fn open_temp(
    options: EmbeddedOptions,
) -> (Arc<EmbeddedDatabase>, Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Arc::new(EmbeddedDatabase::open(dir.path(), options).expect("open store"));
    let db = Database::new(engine.clone());
    (engine, db, dir)
}

async fn fixture() -> Option<Fixture> {
    let (_, db, dir) = open_temp(EmbeddedOptions::default());
    Some(Fixture::new(
        db,
        Subspace::from_bytes(b"t".to_vec()),
        Box::new(dir),
    ))
}

mod battery {
    db_testkit::battery!(super::fixture);
}

async fn memory_fixture() -> Option<Fixture> {
    let engine = EmbeddedDatabase::open_memory(EmbeddedOptions::default());
    Some(Fixture::new(
        Database::new(Arc::new(engine)),
        Subspace::from_bytes(b"t".to_vec()),
        Box::new(()),
    ))
}

mod memory_battery {
    db_testkit::battery!(super::memory_fixture);
}
