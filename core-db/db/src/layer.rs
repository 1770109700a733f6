//! A layer in front of any engine's [`RawDatabase`]: every operation goes
//! through to the engine, and the layer acts on the two that reach the
//! cluster, each read and the commit (told whether the transaction wrote).
//! Injected faults ([`crate::fault`]) and network links ([`crate::link`])
//! are layers; neither names an engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::atomic::MutationType;
use crate::backend::{
    CommitInfo, ConflictKind, RangeChunk, RangeRequest, RawDatabase, RawTransaction,
    SharedRawDatabase, WatchFuture,
};
use crate::error::Result;

/// What a layer does where a transaction reaches the cluster.
pub(crate) trait Layer: Send + Sync + std::fmt::Debug + 'static {
    /// Before each read (`get`, each `get_range` chunk): an error stops it.
    fn before_read(&self) -> BoxFuture<'_, Result<()>>;
    /// The commit; `wrote` says whether the transaction wrote anything,
    /// `read` whether it read anything first, and `inner` is the engine's
    /// transaction to commit (or not).
    fn commit<'a>(
        &'a self,
        wrote: bool,
        read: bool,
        inner: &'a dyn RawTransaction,
    ) -> BoxFuture<'a, Result<CommitInfo>>;
    /// After a watch fired at the cluster, before the watcher learns of it
    /// (a notification crossing a link); an error is the watch's.
    fn watch_fired(&self) -> BoxFuture<'_, Result<()>> {
        async { Ok(()) }.boxed()
    }
}

/// `raw` behind `layer`.
pub(crate) fn wrap<L: Layer>(layer: Arc<L>, raw: SharedRawDatabase) -> SharedRawDatabase {
    Arc::new(Layered { inner: raw, layer })
}

#[derive(Debug)]
struct Layered<L> {
    inner: SharedRawDatabase,
    layer: Arc<L>,
}

impl<L: Layer> RawDatabase for Layered<L> {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    fn begin(&self) -> Result<Box<dyn RawTransaction>> {
        Ok(Box::new(LayeredTransaction {
            inner: self.inner.begin()?,
            layer: self.layer.clone(),
            writes: AtomicBool::new(false),
            reads: AtomicBool::new(false),
        }))
    }
}

struct LayeredTransaction<L> {
    inner: Box<dyn RawTransaction>,
    layer: Arc<L>,
    writes: AtomicBool,
    reads: AtomicBool,
}

impl<L> LayeredTransaction<L> {
    fn wrote(&self) {
        self.writes.store(true, Ordering::Relaxed);
    }
    fn read(&self) {
        self.reads.store(true, Ordering::Relaxed);
    }
}

impl<L: Layer> RawTransaction for LayeredTransaction<L> {
    fn get<'a>(&'a self, key: &'a [u8], snapshot: bool) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        async move {
            self.read();
            self.layer.before_read().await?;
            self.inner.get(key, snapshot).await
        }
        .boxed()
    }
    fn get_range<'a>(&'a self, request: &'a RangeRequest) -> BoxFuture<'a, Result<RangeChunk>> {
        async move {
            self.read();
            self.layer.before_read().await?;
            self.inner.get_range(request).await
        }
        .boxed()
    }
    fn set(&self, key: &[u8], value: &[u8]) {
        self.wrote();
        self.inner.set(key, value);
    }
    fn clear(&self, key: &[u8]) {
        self.wrote();
        self.inner.clear(key);
    }
    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.wrote();
        self.inner.clear_range(begin, end);
    }
    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        self.wrote();
        self.inner.atomic_op(key, param, op);
    }
    fn set_versionstamped_key(&self, key: &[u8], value: &[u8]) {
        self.wrote();
        self.inner.set_versionstamped_key(key, value);
    }
    fn set_versionstamped_value(&self, key: &[u8], value: &[u8]) {
        self.wrote();
        self.inner.set_versionstamped_value(key, value);
    }
    fn add_conflict_range(&self, begin: &[u8], end: &[u8], kind: ConflictKind) {
        self.inner.add_conflict_range(begin, end, kind);
    }
    fn watch(&self, key: &[u8]) -> Result<WatchFuture> {
        let fired = self.inner.watch(key)?;
        let layer = self.layer.clone();
        Ok(async move {
            fired.await?;
            layer.watch_fired().await
        }
        .boxed())
    }
    fn commit(&self) -> BoxFuture<'_, Result<CommitInfo>> {
        self.layer.commit(
            self.writes.load(Ordering::Relaxed),
            self.reads.load(Ordering::Relaxed),
            self.inner.as_ref(),
        )
    }
}
