//! db-fdb's integration tests: the shared conformance battery against a real
//! FoundationDB cluster (run only when `FDB_CLUSTER_FILE` names one; every
//! case is skipped otherwise), and what needs no cluster: the error mapping
//! and the shard map's configuration checks. Every test needs libfdb_c to
//! link.

mod errors;
mod shards;

use std::sync::OnceLock;

use db::{Database, RetryPolicy, Subspace};
use db_fdb::FdbDatabase;
use db_testkit::Fixture;

/// Every case's data lives under this prefix, in a subspace of its own.
const TEST_PREFIX: &[u8] = b"meridian-test/";

/// The cluster in `FDB_CLUSTER_FILE`, opened once for the whole binary: the
/// client network is process-wide anyway, and FoundationDB recommends one
/// database handle per cluster per process.
fn cluster() -> Option<&'static Database> {
    static CLUSTER: OnceLock<Option<Database>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let cluster_file = std::env::var_os("FDB_CLUSTER_FILE")?;
            let db = FdbDatabase::open_database(&cluster_file, RetryPolicy::default())
                .unwrap_or_else(|e| panic!("opening the cluster in {cluster_file:?}: {e:?}"));
            Some(db)
        })
        .as_ref()
}

/// A fresh subspace per case (a ULID: unique, and sorted by creation time
/// so leftovers of a crashed run are easy to find), so cases never touch
/// each other's data or anything else in the cluster. The battery clears it
/// after the case.
async fn fixture() -> Option<Fixture> {
    let db = cluster()?.clone();
    let space = Subspace::from_bytes(TEST_PREFIX).subspace(&ulid::Ulid::new().to_string());
    // Nothing to keep alive: the network and the database handle live for
    // the whole process.
    Some(Fixture::new(db, space, Box::new(())))
}

mod battery {
    db_testkit::battery!(super::fixture);
}
