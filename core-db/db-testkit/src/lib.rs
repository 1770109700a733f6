//! The one conformance battery every storage engine runs, the way
//! hickory-dns runs one battery over every zone store: each case states a
//! property of FoundationDB's transaction model and checks it through the
//! public `db` API only, so an engine passes exactly when code written
//! against `db` behaves the same on it as on FoundationDB.
//!
//! An engine's integration tests call [`battery!`] with an async function
//! that returns a fresh [`Fixture`] (or `None` to skip, e.g. when no
//! FoundationDB cluster is configured).

pub mod cases;

use std::any::Any;

use db::{Database, Subspace};

/// One case of the battery run over a fixture (see [`battery!`]'s
/// `runner:` form).
pub type Case = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// A database and the subspace a case may use; everything outside it is
/// off limits (a real FoundationDB cluster may hold other data).
pub struct Fixture {
    pub db: Database,
    pub space: Subspace,
    /// Keeps whatever backs the database (a temporary directory) alive.
    _guard: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("db", &self.db)
            .field("space", &self.space)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    pub fn new(db: Database, space: Subspace, guard: Box<dyn Any + Send + Sync>) -> Self {
        Fixture {
            db,
            space,
            _guard: guard,
        }
    }

    /// A key in the case's subspace.
    pub fn key<T: db::keys::tuple::TuplePack>(&self, t: &T) -> Vec<u8> {
        self.space.pack(t)
    }

    /// Clears the case's subspace.
    pub async fn cleanup(&self) {
        let space = self.space.clone();
        let cleared = self
            .db
            .run(|tx, _| {
                let space = space.clone();
                async move { tx.clear_subspace(&space) }
            })
            .await;
        if let Err(e) = cleared {
            eprintln!("battery cleanup failed: {e}");
        }
    }
}

/// Every case of the battery, by name: `battery!(fixture)` makes each a
/// tokio test over `fixture()`'s database; `battery!(runner: run)` makes
/// each a plain test that calls `run(name, case)`, for an engine whose
/// database only works inside a world the runner builds (the simulator's
/// storage hosts run inside a turmoil simulation): the runner makes the
/// [`Fixture`] there and awaits `case(fixture)`.
#[macro_export]
macro_rules! battery {
    (runner: $runner:path) => {
        $crate::battery!(@each [@run $runner]);
    };
    ($fixture:path) => {
        $crate::battery!(@each [@cases $fixture]);
    };
    (@each [$($how:tt)*]) => {
        $crate::battery!($($how)*;
            lost_update_is_refused,
            concurrent_read_modify_write_loses_nothing,
            write_skew_is_refused,
            phantom_insert_is_refused,
            insert_outside_read_range_does_not_conflict,
            read_your_writes,
            range_read_your_writes,
            snapshot_read_adds_no_conflict,
            explicit_conflict_ranges,
            atomic_add_under_concurrency,
            atomic_ops_follow_foundationdb,
            versionstamps_order_commits,
            versionstamped_value_matches_commit,
            watch_fires_on_change_not_on_unrelated_key,
            watch_in_writing_transaction,
            key_size_limit,
            system_keyspace_is_refused,
            value_size_limit,
            transaction_size_limit,
            invalid_ranges_are_refused,
            retry_bound_gives_a_clear_error,
            timeout_gives_a_clear_error,
            maybe_committed_is_reported_to_the_retry,
            user_errors_are_not_retried,
            range_reads_limit_reverse_and_stream,
            clear_range_and_tuple_order
        );
    };
    (@run $runner:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $runner(stringify!($case), |fixture: $crate::Fixture| -> $crate::Case {
                    ::std::boxed::Box::pin(async move {
                        $crate::cases::$case(&fixture).await;
                        fixture.cleanup().await;
                    })
                });
            }
        )*
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $fixture().await else {
                    eprintln!("skipped: {} (no backend configured)", stringify!($case));
                    return;
                };
                $crate::cases::$case(&fixture).await;
                fixture.cleanup().await;
            }
        )*
    };
}
