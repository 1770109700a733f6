//! The FoundationDB client network: one per process, booted on first use and
//! stopped by an exit hook.
//!
//! A process-wide singleton rather than a guard the caller keeps, because
//! libfdb_c selects its API version and runs its network at most once per
//! process: a stopped network can never be started again. A guard that
//! stopped the network when dropped would make every later open in the
//! process fail (each case of the conformance battery opens its own database;
//! [`open_shard_map`](crate::open_shard_map) takes no network argument).
//!
//! The C API requires `fdb_stop_network` to be called, and `fdb_run_network`
//! to have returned, before the process exits; a static is never dropped, so
//! the first boot registers an `atexit` hook that stops the network and joins
//! its thread. Exit handlers run in reverse order of registration, and the
//! hook is registered after libfdb_c (and any client library it loads while
//! setting up the network) registered its static destructors, so the network
//! is stopped before they run. A process that aborts needs no stop.
//!
//! Nothing else in the process may boot FoundationDB (`foundationdb::boot`
//! or `FdbApiBuilder`): the binding panics on a second boot.

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use foundationdb::FdbError;
use foundationdb::api::{FdbApiBuilder, NetworkRunner, NetworkStop};
use parking_lot::Mutex;

/// Why the network could not be booted. Cloneable because a failed boot is
/// final (the API version may already be selected) and every later caller
/// gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetworkError {
    /// libfdb_c does not support the API version the binding was built for
    /// (FoundationDB `api_version_not_supported`, 2203, when the installed
    /// client is older than 7.3).
    #[error("selecting FoundationDB API version {version}")]
    ApiVersion {
        version: i32,
        #[source]
        source: FdbError,
    },
    #[error("setting up the FoundationDB client network")]
    Setup(#[source] FdbError),
    #[error("spawning the FoundationDB network thread")]
    Thread(#[source] Arc<std::io::Error>),
    #[error("registering the exit hook that stops the FoundationDB network")]
    ExitHook,
    /// The exit hook already stopped the network: the process is exiting.
    #[error("the FoundationDB network has stopped")]
    Stopped,
}

/// The running network: how to stop it, and its thread.
struct Running {
    stop: NetworkStop,
    thread: JoinHandle<Result<(), FdbError>>,
}

/// The process's FoundationDB client network (see the module docs for why
/// it is a singleton). Get it with [`FdbNetwork::get`]; databases do so
/// themselves when opened.
pub struct FdbNetwork {
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for FdbNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdbNetwork")
            .field("running", &self.is_running())
            .finish()
    }
}

static NETWORK: OnceLock<Result<FdbNetwork, NetworkError>> = OnceLock::new();

impl FdbNetwork {
    /// The process's network, booted on the first call (which blocks until
    /// the network thread runs). Every later call returns the same network,
    /// or the same boot error.
    pub fn get() -> Result<&'static FdbNetwork, NetworkError> {
        let network = NETWORK
            .get_or_init(FdbNetwork::boot)
            .as_ref()
            .map_err(Clone::clone)?;
        if !network.is_running() {
            return Err(NetworkError::Stopped);
        }
        Ok(network)
    }

    /// Whether the network runs (false once the exit hook stopped it).
    pub fn is_running(&self) -> bool {
        self.running.lock().is_some()
    }

    fn boot() -> Result<FdbNetwork, NetworkError> {
        let api = FdbApiBuilder::default();
        let version = api.runtime_version();
        // `build` panics if called twice in a process; `NETWORK`'s
        // `OnceLock` makes this the only call.
        let builder = api
            .build()
            .map_err(|source| NetworkError::ApiVersion { version, source })?;
        let (runner, started) = builder.build().map_err(NetworkError::Setup)?;
        let thread = std::thread::Builder::new()
            .name("fdb-network".to_owned())
            .spawn(move || run_network(runner))
            .map_err(|e| NetworkError::Thread(Arc::new(e)))?;
        let stop = started.wait();
        let network = FdbNetwork {
            running: Mutex::new(Some(Running { stop, thread })),
        };

        if !register_exit_hook() {
            // Without the hook nothing would stop the network before exit:
            // stop it now and report the network as unavailable.
            network.stop();
            return Err(NetworkError::ExitHook);
        }
        Ok(network)
    }

    /// Stops the network and joins its thread. Idempotent.
    fn stop(&self) {
        let Some(Running { stop, thread }) = self.running.lock().take() else {
            return;
        };
        if let Err(error) = stop.stop() {
            // The network thread would keep running while libfdb_c's static
            // destructors run: undefined behaviour. The binding's own guard
            // aborts here too.
            tracing::error!(%error, "failed to stop the FoundationDB network; aborting");
            std::process::abort();
        }
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the FoundationDB network thread failed"),
            Err(_) => tracing::error!("the FoundationDB network thread panicked"),
        }
    }
}

/// Runs the network event loop on the current thread until it is stopped.
#[expect(
    unsafe_code,
    reason = "fdb_run_network requires fdb_stop_network before exit: \
              the atexit hook guarantees it"
)]
fn run_network(runner: NetworkRunner) -> Result<(), FdbError> {
    // SAFETY: `FdbNetwork::boot` registers `stop_at_exit`, which stops this
    // network and joins this thread before a normal process exit (or stops
    // it at once if the hook cannot be registered).
    unsafe { runner.run() }
}

/// Registers `stop_at_exit` with the C runtime; false if it refused.
#[expect(unsafe_code, reason = "calling the C runtime's atexit")]
fn register_exit_hook() -> bool {
    // SAFETY: `stop_at_exit` has the signature atexit expects, is a plain
    // function that lives for the whole program, and never unwinds.
    unsafe { libc::atexit(stop_at_exit) == 0 }
}

/// Runs at process exit, before libfdb_c's static destructors.
extern "C" fn stop_at_exit() {
    if let Some(Ok(network)) = NETWORK.get() {
        network.stop();
    }
}
