//! Each shard's storage as a simulated host of its own, as a FoundationDB
//! cluster is: the memory engine (`db-embedded`'s deterministic store)
//! served over turmoil's TCP, and [`RemoteDatabase`], a `db` engine whose
//! transactions run there. A partition between a region and a storage host
//! cuts that region off from the shard exactly as a real network would: a
//! read fails, a commit whose answer is lost is `CommitUnknownResult`.
//!
//! The protocol is FoundationDB's client model, one connection per
//! transaction: connecting takes the read version; writes are buffered by
//! the client and sent ahead of the next read or the commit on the same
//! ordered stream (the server applies them in order, so reads see the
//! transaction's own writes); a read or the commit waits for its answer;
//! after the commit the connection carries the watches' firings.
//!
//! Frames are a 4-byte big-endian length and a body: one tag byte, then
//! length-prefixed byte strings and fixed-width integers.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use db::backend::{
    CommitInfo, ConflictKind, KeyValue, RangeChunk, RangeRequest, RawDatabase, RawTransaction,
    WatchFuture,
};
use db::{Error, MutationType, Result};
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// The port every storage host serves on.
pub const PORT: u16 = 4500;
/// The largest frame either side accepts (a transaction is at most 10 MB).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Connections (open transactions) one storage host holds at once.
const MAX_CONNECTIONS: usize = 1024;
/// A read or commit not answered within this is lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Watches one transaction may register.
const MAX_WATCHES: usize = 64;

// Tags, client to server.
const SET: u8 = 1;
const CLEAR: u8 = 2;
const CLEAR_RANGE: u8 = 3;
const ATOMIC: u8 = 4;
const SET_VS_KEY: u8 = 5;
const SET_VS_VALUE: u8 = 6;
const CONFLICT: u8 = 7;
const WATCH: u8 = 8;
const GET: u8 = 16;
const RANGE: u8 = 17;
const COMMIT: u8 = 18;
// Tags, server to client.
const VALUE: u8 = 32;
const CHUNK: u8 = 33;
const COMMITTED: u8 = 34;
const FAILED: u8 = 35;
const WATCH_FIRED: u8 = 36;

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.put_slice(b);
}

fn frame(body: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_u32(0);
    body(&mut out);
    let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// A decoding cursor over one frame's body; every read is bounded.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        (self.0.remaining() >= 1).then(|| self.0.get_u8())
    }
    fn u32(&mut self) -> Option<u32> {
        (self.0.remaining() >= 4).then(|| self.0.get_u32())
    }
    fn u64(&mut self) -> Option<u64> {
        (self.0.remaining() >= 8).then(|| self.0.get_u64())
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        if self.0.remaining() < len {
            return None;
        }
        let out = self.0[..len].to_vec();
        self.0.advance(len);
        Some(out)
    }
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

const MUTATIONS: [MutationType; 10] = [
    MutationType::Add,
    MutationType::BitAnd,
    MutationType::BitOr,
    MutationType::BitXor,
    MutationType::Max,
    MutationType::Min,
    MutationType::ByteMax,
    MutationType::ByteMin,
    MutationType::AppendIfFits,
    MutationType::CompareAndClear,
];

fn mutation_code(op: MutationType) -> u8 {
    MUTATIONS
        .iter()
        .position(|m| *m == op)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

/// An error as it crosses the wire: the classes the retry loop acts on.
fn put_error(out: &mut BytesMut, e: &Error) {
    let (code, arg) = match e {
        Error::NotCommitted => (1, 0),
        Error::TransactionTooOld { window_ms } => (2, *window_ms),
        Error::CommitUnknownResult => (3, 0),
        Error::TooManyWatches { limit } => (4, *limit as u64),
        Error::WatchCancelled { .. } => (5, 0),
        Error::Closed => (6, 0),
        _ => (7, 0),
    };
    out.put_u8(code);
    out.put_u64(arg);
}

fn get_error(r: &mut Reader<'_>) -> Error {
    let (Some(code), Some(arg)) = (r.u8(), r.u64()) else {
        return protocol_error();
    };
    match code {
        1 => Error::NotCommitted,
        2 => Error::TransactionTooOld { window_ms: arg },
        3 => Error::CommitUnknownResult,
        4 => Error::TooManyWatches {
            limit: usize::try_from(arg).unwrap_or(usize::MAX),
        },
        5 => Error::WatchCancelled {
            reason: "the storage host dropped the watch",
        },
        6 => Error::Closed,
        _ => Error::Engine {
            source: "the storage host failed the operation".into(),
            code: None,
            retryable: false,
            maybe_committed: false,
        },
    }
}

fn protocol_error() -> Error {
    Error::Engine {
        source: "malformed storage frame".into(),
        code: None,
        retryable: false,
        maybe_committed: false,
    }
}

// ---------------------------------------------------------------- server

/// Serves `db` on [`PORT`] until the host is crashed: the software of one
/// storage host. `db` lives outside the host, so what it made durable
/// survives a crash (the simulator calls `crash()` on it, which loses the
/// rest and fails every transaction begun before).
pub async fn serve(db: Arc<db_embedded::EmbeddedDatabase>) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Over the bound: the connection is closed at once, and the client
        // sees its read or commit fail before anything was applied.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let db = db.clone();
        tokio::spawn(async move {
            let _ = connection(db, stream).await;
            drop(permit);
        });
    }
}

/// One transaction's connection.
async fn connection(
    db: Arc<db_embedded::EmbeddedDatabase>,
    stream: turmoil::net::TcpStream,
) -> std::io::Result<()> {
    let (mut rx, mut tx_half) = stream.into_split();
    let tx = match db.begin() {
        Ok(tx) => tx,
        Err(_) => return Ok(()),
    };
    let mut watches: Vec<WatchFuture> = Vec::new();
    loop {
        let body = read_frame(&mut rx).await?;
        let mut r = Reader(&body);
        let Some(tag) = r.u8() else {
            return Ok(());
        };
        let answer = match tag {
            SET | SET_VS_KEY | SET_VS_VALUE | ATOMIC | CLEAR | CLEAR_RANGE | CONFLICT => {
                let (Some(a), Some(b)) = (r.bytes(), r.bytes()) else {
                    return Ok(());
                };
                match tag {
                    SET => tx.set(&a, &b),
                    SET_VS_KEY => tx.set_versionstamped_key(&a, &b),
                    SET_VS_VALUE => tx.set_versionstamped_value(&a, &b),
                    CLEAR => tx.clear(&a),
                    CLEAR_RANGE => tx.clear_range(&a, &b),
                    ATOMIC => {
                        let Some(op) = r.u8().and_then(|c| MUTATIONS.get(c as usize)) else {
                            return Ok(());
                        };
                        tx.atomic_op(&a, &b, *op);
                    }
                    _ => {
                        let kind = if r.u8() == Some(1) {
                            ConflictKind::Write
                        } else {
                            ConflictKind::Read
                        };
                        tx.add_conflict_range(&a, &b, kind);
                    }
                }
                continue;
            }
            WATCH => {
                let Some(key) = r.bytes() else {
                    return Ok(());
                };
                // A refused watch is reported when the commit answers.
                let refused = |e: Error| futures::future::ready(Err(e)).boxed();
                match tx.watch(&key) {
                    Ok(w) if watches.len() < MAX_WATCHES => watches.push(w),
                    Ok(_) => watches.push(refused(Error::TooManyWatches { limit: MAX_WATCHES })),
                    Err(e) => watches.push(refused(e)),
                }
                continue;
            }
            GET => {
                let (Some(key), Some(snapshot)) = (r.bytes(), r.u8()) else {
                    return Ok(());
                };
                match tx.get(&key, snapshot == 1).await {
                    Ok(value) => frame(|o| {
                        o.put_u8(VALUE);
                        o.put_u8(u8::from(value.is_some()));
                        put_bytes(o, value.as_deref().unwrap_or_default());
                    }),
                    Err(e) => frame(|o| {
                        o.put_u8(FAILED);
                        put_error(o, &e);
                    }),
                }
            }
            RANGE => {
                let (Some(begin), Some(end), Some(limit), Some(flags)) =
                    (r.bytes(), r.bytes(), r.u32(), r.u8())
                else {
                    return Ok(());
                };
                let request = RangeRequest {
                    begin,
                    end,
                    limit: (limit as usize).max(1),
                    reverse: flags & 1 == 1,
                    snapshot: flags & 2 == 2,
                };
                match tx.get_range(&request).await {
                    Ok(chunk) => frame(|o| {
                        o.put_u8(CHUNK);
                        o.put_u8(u8::from(chunk.more));
                        o.put_u32(u32::try_from(chunk.kvs.len()).unwrap_or(u32::MAX));
                        for kv in &chunk.kvs {
                            put_bytes(o, &kv.key);
                            put_bytes(o, &kv.value);
                        }
                    }),
                    Err(e) => frame(|o| {
                        o.put_u8(FAILED);
                        put_error(o, &e);
                    }),
                }
            }
            COMMIT => {
                let answer = match tx.commit().await {
                    Ok(info) => frame(|o| {
                        o.put_u8(COMMITTED);
                        o.put_u64(info.version.map_or(u64::MAX, |v| v));
                        o.put_slice(&info.versionstamp.unwrap_or([0xff; 10]));
                        o.put_u8(u8::from(info.versionstamp.is_some()));
                    }),
                    Err(e) => frame(|o| {
                        o.put_u8(FAILED);
                        put_error(o, &e);
                    }),
                };
                tx_half.write_all(&answer).await?;
                // The watches now run; each firing (or failure) is sent
                // as it happens, until all have or the client hangs up.
                let mut pending: futures::stream::FuturesUnordered<_> = watches
                    .drain(..)
                    .enumerate()
                    .map(|(i, w)| w.map(move |r| (i, r)))
                    .collect();
                use futures::StreamExt;
                while !pending.is_empty() {
                    tokio::select! {
                        biased;
                        Some((i, result)) = pending.next() => {
                            let note = frame(|o| {
                                o.put_u8(WATCH_FIRED);
                                o.put_u32(u32::try_from(i).unwrap_or(u32::MAX));
                                match &result {
                                    Ok(()) => o.put_u8(0),
                                    Err(e) => { o.put_u8(1); put_error(o, e); }
                                }
                            });
                            tx_half.write_all(&note).await?;
                        }
                        // The client hung up (its watches dropped).
                        _ = rx.read_u8() => return Ok(()),
                    }
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        tx_half.write_all(&answer).await?;
    }
}

// ---------------------------------------------------------------- client

/// A `db` engine whose transactions run on the storage host `host` (a
/// turmoil name), reached from whichever simulated host runs the
/// transaction.
#[derive(Debug, Clone)]
pub struct RemoteDatabase {
    host: Arc<str>,
}

impl RemoteDatabase {
    pub fn new(host: &str) -> RemoteDatabase {
        RemoteDatabase { host: host.into() }
    }

    /// As a [`db::Database`] with `retry`, its back-off jitter from `seed`.
    pub fn database(host: &str, retry: db::RetryPolicy, seed: u64) -> db::Database {
        db::Database::new(Arc::new(RemoteDatabase::new(host)))
            .with_retry_policy(retry)
            .with_jitter_seed(seed)
    }
}

impl RawDatabase for RemoteDatabase {
    fn engine(&self) -> &'static str {
        "simulated-remote"
    }

    /// Starts connecting at once, as db-fdb requests its read version at
    /// `begin`: the storage host takes the read version when it accepts,
    /// so a transaction's read conflict ranges cover what committed after
    /// it began, even before its first read (the battery's
    /// `explicit_conflict_ranges`).
    fn begin(&self) -> Result<Box<dyn RawTransaction>> {
        let conn = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Conn::Connecting(runtime.spawn(open(self.host.clone()))),
            Err(_) => Conn::Idle,
        };
        Ok(Box::new(RemoteTransaction {
            host: self.host.clone(),
            pending: Mutex::new(BytesMut::new()),
            conn: tokio::sync::Mutex::new(conn),
            watches: Mutex::new(Vec::new()),
        }))
    }
}

/// A connection to the storage host `host`, within the call bound.
async fn open(host: Arc<str>) -> Option<turmoil::net::TcpStream> {
    let connect = turmoil::net::TcpStream::connect((host.as_ref(), PORT));
    tokio::time::timeout(CALL_TIMEOUT, connect).await.ok()?.ok()
}

enum Conn {
    /// Not connected yet (outside a runtime): nothing sent.
    Idle,
    /// Connecting since `begin`.
    Connecting(tokio::task::JoinHandle<Option<turmoil::net::TcpStream>>),
    Open(turmoil::net::TcpStream),
    /// Broken or finished.
    Done,
}

struct RemoteTransaction {
    host: Arc<str>,
    /// Encoded write frames not sent yet.
    pending: Mutex<BytesMut>,
    conn: tokio::sync::Mutex<Conn>,
    /// Where each registered watch's firing goes, in registration order.
    watches: Mutex<Vec<oneshot::Sender<Result<()>>>>,
}

fn unreachable(reason: &'static str) -> Error {
    Error::Unreachable { reason }
}

impl RemoteTransaction {
    fn queue(&self, build: impl FnOnce(&mut BytesMut)) {
        let f = frame(build);
        self.pending.lock().extend_from_slice(&f);
    }

    /// Opens the transaction's connection if it has none yet (taking its
    /// read version at the storage host).
    async fn connect(&self, conn: &mut Conn) -> Result<()> {
        let opened = match std::mem::replace(conn, Conn::Done) {
            Conn::Idle => open(self.host.clone()).await,
            Conn::Connecting(connecting) => connecting.await.ok().flatten(),
            other => {
                *conn = other;
                return Ok(());
            }
        };
        match opened {
            Some(stream) => {
                *conn = Conn::Open(stream);
                Ok(())
            }
            None => {
                self.cancel_watches();
                Err(unreachable(
                    "the storage host did not accept the connection",
                ))
            }
        }
    }

    /// The transaction is over without a commit: its watches are
    /// cancelled (a failed transaction's watch never fires Ok).
    fn cancel_watches(&self) {
        self.watches.lock().clear();
    }

    /// Sends the pending writes and `request`, and reads one answer. Any
    /// failure breaks the transaction: nothing it wrote was committed.
    async fn call(&self, request: BytesMut) -> Result<Vec<u8>> {
        let mut conn = self.conn.lock().await;
        self.connect(&mut conn).await?;
        let Conn::Open(stream) = &mut *conn else {
            return Err(unreachable(
                "the transaction's connection to its storage host broke",
            ));
        };
        let mut out = std::mem::take(&mut *self.pending.lock());
        out.extend_from_slice(&request);
        let exchange = async {
            stream.write_all(&out).await?;
            read_frame(stream).await
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(body)) => Ok(body),
            _ => {
                *conn = Conn::Done;
                self.cancel_watches();
                Err(unreachable("the storage host did not answer"))
            }
        }
    }
}

impl Drop for RemoteTransaction {
    fn drop(&mut self) {
        // A transaction dropped while still connecting connects no more.
        if let Conn::Connecting(connecting) = self.conn.get_mut() {
            connecting.abort();
        }
    }
}

impl RawTransaction for RemoteTransaction {
    fn get<'a>(&'a self, key: &'a [u8], snapshot: bool) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        async move {
            let body = self
                .call(frame(|o| {
                    o.put_u8(GET);
                    put_bytes(o, key);
                    o.put_u8(u8::from(snapshot));
                }))
                .await?;
            let mut r = Reader(&body);
            match r.u8() {
                Some(VALUE) => {
                    let present = r.u8().ok_or_else(protocol_error)?;
                    let value = r.bytes().ok_or_else(protocol_error)?;
                    Ok((present == 1).then_some(value))
                }
                Some(FAILED) => Err(get_error(&mut r)),
                _ => Err(protocol_error()),
            }
        }
        .boxed()
    }

    fn get_range<'a>(&'a self, request: &'a RangeRequest) -> BoxFuture<'a, Result<RangeChunk>> {
        async move {
            let body = self
                .call(frame(|o| {
                    o.put_u8(RANGE);
                    put_bytes(o, &request.begin);
                    put_bytes(o, &request.end);
                    o.put_u32(u32::try_from(request.limit).unwrap_or(u32::MAX));
                    o.put_u8(u8::from(request.reverse) | (u8::from(request.snapshot) << 1));
                }))
                .await?;
            let mut r = Reader(&body);
            match r.u8() {
                Some(CHUNK) => {
                    let more = r.u8().ok_or_else(protocol_error)? == 1;
                    let n = r.u32().ok_or_else(protocol_error)? as usize;
                    let mut kvs = Vec::with_capacity(n.min(request.limit));
                    for _ in 0..n {
                        let key = r.bytes().ok_or_else(protocol_error)?;
                        let value = r.bytes().ok_or_else(protocol_error)?;
                        kvs.push(KeyValue { key, value });
                    }
                    Ok(RangeChunk { kvs, more })
                }
                Some(FAILED) => Err(get_error(&mut r)),
                _ => Err(protocol_error()),
            }
        }
        .boxed()
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.queue(|o| {
            o.put_u8(SET);
            put_bytes(o, key);
            put_bytes(o, value);
        });
    }

    fn clear(&self, key: &[u8]) {
        self.queue(|o| {
            o.put_u8(CLEAR);
            put_bytes(o, key);
            put_bytes(o, &[]);
        });
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.queue(|o| {
            o.put_u8(CLEAR_RANGE);
            put_bytes(o, begin);
            put_bytes(o, end);
        });
    }

    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        self.queue(|o| {
            o.put_u8(ATOMIC);
            put_bytes(o, key);
            put_bytes(o, param);
            o.put_u8(mutation_code(op));
        });
    }

    fn set_versionstamped_key(&self, key: &[u8], value: &[u8]) {
        self.queue(|o| {
            o.put_u8(SET_VS_KEY);
            put_bytes(o, key);
            put_bytes(o, value);
        });
    }

    fn set_versionstamped_value(&self, key: &[u8], value: &[u8]) {
        self.queue(|o| {
            o.put_u8(SET_VS_VALUE);
            put_bytes(o, key);
            put_bytes(o, value);
        });
    }

    fn add_conflict_range(&self, begin: &[u8], end: &[u8], kind: ConflictKind) {
        self.queue(|o| {
            o.put_u8(CONFLICT);
            put_bytes(o, begin);
            put_bytes(o, end);
            o.put_u8(u8::from(kind == ConflictKind::Write));
        });
    }

    fn watch(&self, key: &[u8]) -> Result<WatchFuture> {
        let mut watches = self.watches.lock();
        if watches.len() >= MAX_WATCHES {
            return Err(Error::TooManyWatches { limit: MAX_WATCHES });
        }
        let (fire, fired) = oneshot::channel();
        watches.push(fire);
        drop(watches);
        self.queue(|o| {
            o.put_u8(WATCH);
            put_bytes(o, key);
        });
        Ok(async move {
            fired.await.unwrap_or(Err(Error::WatchCancelled {
                reason: "the transaction's connection to its storage host closed",
            }))
        }
        .boxed())
    }

    fn commit(&self) -> BoxFuture<'_, Result<CommitInfo>> {
        async move {
            let mut conn = self.conn.lock().await;
            // Taken now: whatever ends the commit short of success drops
            // them, which cancels each watch.
            let watches = std::mem::take(&mut *self.watches.lock());
            let nothing_sent =
                matches!(*conn, Conn::Idle | Conn::Connecting(_)) && self.pending.lock().is_empty();
            if nothing_sent {
                // Nothing read, written or watched: read-only.
                if let Conn::Connecting(connecting) = std::mem::replace(&mut *conn, Conn::Done) {
                    connecting.abort();
                }
                return Ok(CommitInfo::default());
            }
            self.connect(&mut conn).await?;
            let Conn::Open(mut stream) = std::mem::replace(&mut *conn, Conn::Done) else {
                return Err(unreachable(
                    "the transaction's connection to its storage host broke",
                ));
            };
            drop(conn);
            let mut out = std::mem::take(&mut *self.pending.lock());
            out.extend_from_slice(&frame(|o| o.put_u8(COMMIT)));
            // From the first byte of the commit on, a failure leaves the
            // outcome unknown.
            let exchange = async {
                stream.write_all(&out).await?;
                read_frame(&mut stream).await
            };
            let body = match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
                Ok(Ok(body)) => body,
                _ => return Err(Error::CommitUnknownResult),
            };
            let mut r = Reader(&body);
            let info = match r.u8() {
                Some(COMMITTED) => {
                    let version = r.u64().ok_or_else(protocol_error)?;
                    let mut stamp = [0u8; 10];
                    for b in &mut stamp {
                        *b = r.u8().ok_or_else(protocol_error)?;
                    }
                    let has_stamp = r.u8().ok_or_else(protocol_error)? == 1;
                    CommitInfo {
                        version: (version != u64::MAX).then_some(version),
                        versionstamp: has_stamp.then_some(stamp),
                    }
                }
                Some(FAILED) => return Err(get_error(&mut r)),
                _ => return Err(Error::CommitUnknownResult),
            };
            if !watches.is_empty() {
                tokio::spawn(follow_watches(stream, watches));
            }
            Ok(info)
        }
        .boxed()
    }
}

/// After a commit: reads the watches' firings off the connection until all
/// have fired, or every waiter is gone, or the connection breaks (each
/// waiter left then sees its watch cancelled).
async fn follow_watches(
    mut stream: turmoil::net::TcpStream,
    mut watches: Vec<oneshot::Sender<Result<()>>>,
) {
    let mut open = watches.len();
    while open > 0 {
        let all_gone = futures::future::join_all(watches.iter_mut().map(|w| w.closed()));
        let body = tokio::select! {
            biased;
            body = read_frame(&mut stream) => body,
            _ = all_gone => return,
        };
        let Ok(body) = body else { return };
        let mut r = Reader(&body);
        if r.u8() != Some(WATCH_FIRED) {
            return;
        }
        let Some(i) = r.u32().map(|i| i as usize) else {
            return;
        };
        let result = match r.u8() {
            Some(0) => Ok(()),
            _ => Err(get_error(&mut r)),
        };
        if let Some(w) = watches.get_mut(i) {
            let (done, _) = oneshot::channel();
            let w = std::mem::replace(w, done);
            if !w.is_closed() {
                let _ = w.send(result);
            }
            open -= 1;
        }
    }
}
