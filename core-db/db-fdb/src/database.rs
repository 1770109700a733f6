//! Opening a FoundationDB cluster from its cluster file, and the
//! `RawDatabase` implementation that starts transactions on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use db::backend::{RawDatabase, RawTransaction};
use db::{Database, Error, RetryPolicy};
use foundationdb::FdbError;

use crate::error::map_fdb_error;
use crate::network::{FdbNetwork, NetworkError};
use crate::tx::FdbTx;

/// Why a cluster could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("starting the FoundationDB client network")]
    Network(#[from] NetworkError),
    /// libfdb_c takes the path as a C string: it must be UTF-8 without NUL.
    #[error("cluster file path {path:?} is not UTF-8 or contains a NUL byte")]
    ClusterFilePath { path: PathBuf },
    #[error("opening the FoundationDB cluster described by {path:?}")]
    Create {
        path: PathBuf,
        #[source]
        source: FdbError,
    },
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        let code = match &e {
            OpenError::Create { source, .. } => Some(source.code()),
            OpenError::Network(NetworkError::ApiVersion { source, .. })
            | OpenError::Network(NetworkError::Setup(source)) => Some(source.code()),
            _ => None,
        };
        // Opening is not part of a transaction: nothing to retry or commit.
        Error::Engine {
            source: Box::new(e),
            code,
            retryable: false,
            maybe_committed: false,
        }
    }
}

/// One FoundationDB cluster, opened from its cluster file.
pub struct FdbDatabase {
    /// Shared with every transaction, which must not outlive the handle it
    /// was created from.
    db: Arc<foundationdb::Database>,
    cluster_file: PathBuf,
}

impl std::fmt::Debug for FdbDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdbDatabase")
            .field("cluster_file", &self.cluster_file)
            .finish_non_exhaustive()
    }
}

impl FdbDatabase {
    /// Opens the cluster `cluster_file` describes, booting the process's
    /// [`FdbNetwork`] if this is the first open. Connecting is lazy: an
    /// unreachable cluster shows up as errors (or waits) in transactions.
    pub fn open(cluster_file: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = cluster_file.as_ref();
        let c_path = path.to_str().filter(|p| !p.contains('\0')).ok_or_else(|| {
            OpenError::ClusterFilePath {
                path: path.to_path_buf(),
            }
        })?;
        FdbNetwork::get()?;
        let db = foundationdb::Database::new(Some(c_path)).map_err(|source| OpenError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FdbDatabase {
            db: Arc::new(db),
            cluster_file: path.to_path_buf(),
        })
    }

    /// Opens the cluster as a [`Database`] with `retry`.
    pub fn open_database(
        cluster_file: impl AsRef<Path>,
        retry: RetryPolicy,
    ) -> Result<Database, OpenError> {
        let engine = Self::open(cluster_file)?;
        Ok(Database::new(Arc::new(engine)).with_retry_policy(retry))
    }

    /// The cluster file this database was opened from.
    pub fn cluster_file(&self) -> &Path {
        &self.cluster_file
    }
}

impl RawDatabase for FdbDatabase {
    fn engine(&self) -> &'static str {
        "foundationdb"
    }

    fn begin(&self) -> Result<Box<dyn RawTransaction>, Error> {
        let tx = self.db.create_trx().map_err(map_fdb_error)?;
        Ok(Box::new(FdbTx::new(tx, self.db.clone())))
    }
}
