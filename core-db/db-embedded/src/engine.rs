//! The embedded engine: opening a store, the state transactions and the
//! committer share, and the `RawDatabase` implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use db::backend::{RawDatabase, RawTransaction};
use db::{Database, Error, RetryPolicy};
use fjall::KeyspaceCreateOptions;
use parking_lot::Mutex;
use tokio::sync::{Semaphore, mpsc};

use crate::committer::{self, CommitRequest};
use crate::conflicts::History;
use crate::store::{CrashReport, Store};
use crate::tx::EmbeddedTx;
use crate::watches::Registry;

/// Key in the `meta` keyspace holding the last committed version.
pub(crate) const VERSION_KEY: &[u8] = b"commit_version";

/// When an embedded commit counts as done (the `[storage]` config's
/// `durability`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The commit is on disk (fdatasync) before it is acknowledged.
    #[default]
    Sync,
    /// The commit is in the OS page cache: survives kill -9, not power loss.
    /// After a power loss the last commits may be gone, and with them the
    /// commit versions they used: versionstamps handed out for them will be
    /// handed out again.
    Buffer,
}

/// Tunables of one embedded store. Every field is a bound.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// When a commit is acknowledged.
    pub durability: Durability,
    /// How long a transaction may read before it is too old, and how long
    /// the committer remembers write ranges (FoundationDB: 5 s).
    pub mvcc_window: Duration,
    /// Write ranges remembered at most, whatever the window says.
    pub max_history_ranges: usize,
    /// Commits waiting for the committer at most; more wait to enqueue.
    pub commit_queue: usize,
    /// Bytes (keys, values and conflict ranges) of the commits waiting for
    /// or in the committer at most; more wait to enqueue. A transaction
    /// larger than this waits until it is alone, so it still commits.
    pub commit_queue_bytes: usize,
    /// Transactions committed together at most (one fsync per group).
    pub max_group: usize,
    /// Outstanding watches at most (FoundationDB: 10,000).
    pub max_watches: usize,
    /// fjall block cache, bytes.
    pub cache_bytes: u64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            durability: Durability::Sync,
            mvcc_window: Duration::from_secs(5),
            max_history_ranges: 1_000_000,
            commit_queue: 4096,
            commit_queue_bytes: 256 * 1024 * 1024,
            max_group: 1024,
            max_watches: 10_000,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the engine failed at while opening.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening the store at {path}")]
    Store {
        path: PathBuf,
        #[source]
        source: fjall::Error,
    },
    #[error("the store at {path} holds a malformed commit version")]
    CorruptVersion { path: PathBuf },
    #[error("starting the committer thread")]
    Thread(#[source] std::io::Error),
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        Error::Engine {
            source: Box::new(e),
            code: None,
            retryable: false,
            maybe_committed: false,
        }
    }
}

pub(crate) fn engine_error(e: fjall::Error, maybe_committed: bool) -> Error {
    Error::Engine {
        source: Box::new(e),
        code: None,
        retryable: false,
        maybe_committed,
    }
}

/// State shared by the database handle, its transactions and the committer.
pub(crate) struct Shared {
    pub(crate) store: Store,
    /// The last published commit version. Stored after the group is
    /// visible, so a read version taken before a snapshot never claims more
    /// than the snapshot holds.
    pub(crate) version: AtomicU64,
    pub(crate) watches: Mutex<Registry>,
    pub(crate) options: EmbeddedOptions,
    pub(crate) groups_committed: AtomicU64,
    pub(crate) transactions_committed: AtomicU64,
    /// [`EmbeddedOptions::commit_queue_bytes`] as permits, one per byte.
    pub(crate) commit_bytes: Arc<Semaphore>,
}

/// The committer's state when it runs in the committing task.
#[derive(Debug)]
pub(crate) struct Inline {
    pub(crate) history: History,
    pub(crate) version: u64,
}

/// How transactions reach the committer.
#[derive(Debug, Clone)]
pub(crate) enum Committer {
    /// The committer thread's queue.
    Thread(mpsc::Sender<CommitRequest>),
    /// The memory store's committer, run in the committing task: no thread,
    /// so the simulator's one thread decides every interleaving.
    Inline(Arc<Mutex<Inline>>),
}

/// The commit queue's byte budget as semaphore permits: at least 1, at most
/// what one acquisition can ask for.
pub(crate) fn commit_budget(options: &EmbeddedOptions) -> usize {
    options
        .commit_queue_bytes
        .clamp(1, u32::MAX as usize)
        .min(Semaphore::MAX_PERMITS)
}

/// Counters of what the committer has done since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedStats {
    /// Groups written, each one batch and (with `Durability::Sync`) one fsync.
    pub groups_committed: u64,
    /// Writing transactions committed.
    pub transactions_committed: u64,
}

impl Shared {
    fn new(store: Store, version: u64, options: &EmbeddedOptions) -> Self {
        Shared {
            store,
            version: AtomicU64::new(version),
            watches: Mutex::new(Registry::new(options.max_watches)),
            options: options.clone(),
            groups_committed: AtomicU64::new(0),
            transactions_committed: AtomicU64::new(0),
            commit_bytes: Arc::new(Semaphore::new(commit_budget(options))),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("version", &self.version)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// An open embedded store.
#[derive(Debug)]
pub struct EmbeddedDatabase {
    shared: Arc<Shared>,
    commits: Committer,
    committer: Mutex<Option<JoinHandle<()>>>,
}

impl EmbeddedDatabase {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let store_err = |source| OpenError::Store {
            path: path.clone(),
            source,
        };
        let store = fjall::Database::builder(&path)
            .cache_size(options.cache_bytes)
            .open()
            .map_err(store_err)?;
        let data = store
            .keyspace("data", KeyspaceCreateOptions::default)
            .map_err(store_err)?;
        let meta = store
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(store_err)?;
        let version = match meta.get(VERSION_KEY).map_err(store_err)? {
            None => 0,
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| OpenError::CorruptVersion { path: path.clone() })?,
            ),
        };
        let shared = Arc::new(Shared::new(
            Store::Disk {
                db: store,
                data,
                meta,
            },
            version,
            &options,
        ));
        let (commits, queue) = mpsc::channel(options.commit_queue.max(1));
        let committer =
            committer::spawn(shared.clone(), queue, version).map_err(OpenError::Thread)?;
        Ok(EmbeddedDatabase {
            shared,
            commits: Committer::Thread(commits),
            committer: Mutex::new(Some(committer)),
        })
    }

    /// A store in memory, for the deterministic simulator: the same
    /// transaction model as on disk, with no thread and no disk, so a
    /// single-threaded runtime decides every interleaving and the MVCC
    /// window runs on tokio's clock (the simulator's). Each commit is
    /// applied in the committing task, alone in its group. With
    /// [`Durability::Buffer`], commits are durable only once
    /// [`EmbeddedDatabase::sync`] ran, and [`EmbeddedDatabase::crash`]
    /// loses the rest.
    pub fn open_memory(options: EmbeddedOptions) -> Self {
        let inline = Inline {
            history: History::new(0, options.mvcc_window, options.max_history_ranges),
            version: 0,
        };
        let shared = Arc::new(Shared::new(Store::Memory(Arc::default()), 0, &options));
        EmbeddedDatabase {
            shared,
            commits: Committer::Inline(Arc::new(Mutex::new(inline))),
            committer: Mutex::new(None),
        }
    }

    /// A memory store (see [`EmbeddedDatabase::open_memory`]) as a
    /// [`Database`] with `retry`.
    pub fn open_memory_database(options: EmbeddedOptions, retry: RetryPolicy) -> Database {
        Database::new(Arc::new(Self::open_memory(options))).with_retry_policy(retry)
    }

    /// Makes every commit of a memory store durable, as the page cache's
    /// write-back does. Does nothing on disk (fjall writes back by itself).
    pub fn sync(&self) {
        if let Store::Memory(memory) = &self.shared.store {
            memory.sync();
        }
    }

    /// A crash of a memory store's host: every commit that was not durable
    /// is lost (with [`Durability::Sync`], none), every transaction begun
    /// before fails as too old (retryable, certainly not committed), and
    /// watches on keys whose value went back fire. The handle stays usable,
    /// as a FoundationDB client's does across a cluster's recovery. `None`
    /// on a disk store, whose crash is a killed process.
    pub fn crash(&self) -> Option<CrashReport> {
        let Store::Memory(memory) = &self.shared.store else {
            return None;
        };
        // Under the committer's lock: no commit is half applied.
        let _committer = match &self.commits {
            Committer::Inline(inline) => Some(inline.lock()),
            Committer::Thread(_) => None,
        };
        let (report, changed) = memory.crash();
        let mut registry = self.shared.watches.lock();
        for (key, value) in &changed {
            if registry.watches(key) {
                registry.changed(key, value.as_deref());
            }
        }
        Some(report)
    }

    /// Opens the store in `path` as a [`Database`] with `retry`.
    pub fn open_database(
        path: impl AsRef<Path>,
        options: EmbeddedOptions,
        retry: RetryPolicy,
    ) -> Result<Database, OpenError> {
        let engine = Self::open(path, options)?;
        Ok(Database::new(Arc::new(engine)).with_retry_policy(retry))
    }

    /// The last committed version.
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> EmbeddedStats {
        EmbeddedStats {
            groups_committed: self.shared.groups_committed.load(Ordering::Relaxed),
            transactions_committed: self.shared.transactions_committed.load(Ordering::Relaxed),
        }
    }
}

impl RawDatabase for EmbeddedDatabase {
    fn engine(&self) -> &'static str {
        "embedded"
    }

    fn begin(&self) -> Result<Box<dyn RawTransaction>, Error> {
        Ok(Box::new(EmbeddedTx::begin(
            self.shared.clone(),
            self.commits.clone(),
        )))
    }
}

impl Drop for EmbeddedDatabase {
    fn drop(&mut self) {
        let Committer::Thread(commits) = &self.commits else {
            self.shared.watches.lock().close();
            return;
        };
        // Open transactions hold clones of the sender, so ask the committer
        // to stop: it finishes what was queued before the request and
        // answers `Closed` to what comes after. Bounded: the committer
        // drains a full queue in milliseconds.
        let mut request = CommitRequest::Shutdown;
        for _ in 0..10_000 {
            match commits.try_send(request) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => break,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    request = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        if let Some(handle) = self.committer.lock().take() {
            // Bounded: if the shutdown request could not be queued (a full
            // queue nobody drains), do not hang the dropping thread: the
            // committer exits once the last sender is gone.
            for _ in 0..10_000 {
                if handle.is_finished() {
                    let _ = handle.join();
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.shared.watches.lock().close();
    }
}
