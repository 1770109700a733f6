//! The local edge host: runs the very component file Spin would run
//! (`edge_spin.wasm`, spin-sdk 5.2, WASI 0.2) on wasmtime, one instance per
//! request from a pre-instantiated component and the pooling allocator. It
//! provides the component's imports: WASI 0.2 and `wasi:http` from
//! wasmtime-wasi(-http), and Spin's key-value store and variables from host
//! bindings generated (`bindgen!`) from the WIT pinned in `wit/`.
//!
//! One process runs several POPs, each with its own listen address, its
//! own key-value store (its cache) and its own variables. Each POP also
//! runs two watchers on the same edge-core code, natively: a long poll of
//! the routing table and a long poll of the regions' purge feed, both
//! writing into the POP's store, so a failover or a catalog change reaches
//! the POP within milliseconds.

pub mod config;
mod native;
mod outgoing;
mod spin_imports;
mod watchers;
pub mod wrangler;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;
use edge_core::Edge;
use edge_core::http::MAX_REQUEST_BODY_BYTES;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::sync::watch;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use config::{HostConfig, PopConfig};

/// wasmtime 48 has its own error type; at this crate's boundary it becomes
/// an `anyhow::Error` with its full chain in the message.
fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}

/// One POP's key-value store, bounded. Cache entries and rate-limit
/// buckets and the edge's state (routing table, purge cursor, tag
/// generations) are kept apart, each up to `max_entries`, so that evicting
/// a cache entry costs O(1) and state never crowds the cache out. When
/// full, an arbitrary cache entry goes; on the state side only a tag
/// generation, never the table or the cursor: which key is which, and
/// which may go, is edge-core's one definition (`edge_core::edge::kv`).
#[derive(Debug)]
pub struct KvStore {
    maps: Mutex<KvMaps>,
    max_entries: usize,
}

#[derive(Debug, Default)]
struct KvMaps {
    cache: HashMap<String, Vec<u8>>,
    state: HashMap<String, Vec<u8>>,
}

fn is_cache_key(key: &str) -> bool {
    use edge_core::edge::kv::{Class, class};
    matches!(class(key), Class::Cache | Class::Bucket)
}

impl KvStore {
    pub fn new(max_entries: usize) -> Self {
        KvStore {
            maps: Mutex::new(KvMaps::default()),
            max_entries: max_entries.max(16),
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let maps = self.maps.lock();
        let map = if is_cache_key(key) {
            &maps.cache
        } else {
            &maps.state
        };
        map.get(key).cloned()
    }

    pub fn set(&self, key: &str, value: &[u8]) {
        let mut maps = self.maps.lock();
        let cache = is_cache_key(key);
        let map = if cache {
            &mut maps.cache
        } else {
            &mut maps.state
        };
        if let Some(slot) = map.get_mut(key) {
            slot.clear();
            slot.extend_from_slice(value);
            return;
        }
        if map.len() >= self.max_entries {
            let victim = if cache {
                map.keys().next().cloned()
            } else {
                map.keys()
                    .find(|k| edge_core::edge::kv::class(k) == edge_core::edge::kv::Class::Tag)
                    .cloned()
            };
            if let Some(victim) = victim {
                map.remove(&victim);
            }
        }
        map.insert(key.to_owned(), value.to_vec());
    }

    pub fn delete(&self, key: &str) {
        let mut maps = self.maps.lock();
        maps.cache.remove(key);
        maps.state.remove(key);
    }

    pub fn contains(&self, key: &str) -> bool {
        let maps = self.maps.lock();
        maps.cache.contains_key(key) || maps.state.contains_key(key)
    }

    pub fn keys(&self) -> Vec<String> {
        let maps = self.maps.lock();
        maps.cache
            .keys()
            .chain(maps.state.keys())
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        let maps = self.maps.lock();
        maps.cache.len() + maps.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod kv_tests {
    use super::KvStore;

    #[test]
    fn the_store_stays_bounded_and_keeps_the_edge_state() {
        use edge_core::edge::kv;
        let store = KvStore::new(16);
        store.set(kv::TABLE, b"table");
        store.set(kv::PURGE_CURSOR, b"cursor");
        for i in 0..100 {
            store.set(&kv::cache(&format!("c1:/v1/products/{i}")), b"entry");
            store.set(&kv::tag(&format!("product:{i}")), b"7");
        }
        assert_eq!(store.len(), 32);
        assert_eq!(store.get(kv::TABLE).as_deref(), Some(&b"table"[..]));
        assert_eq!(store.get(kv::PURGE_CURSOR).as_deref(), Some(&b"cursor"[..]));
        // The newest writes are in.
        let newest = kv::cache("c1:/v1/products/99");
        assert!(store.contains(&newest));
        assert!(store.contains(&kv::tag("product:99")));
        store.set(&newest, b"new");
        assert_eq!(store.get(&newest).as_deref(), Some(&b"new"[..]));
        assert_eq!(store.len(), 32);
    }
}

/// What one POP's requests share.
#[derive(Debug)]
pub struct PopState {
    pub name: String,
    pub kv: KvStore,
    /// The Spin variables the component reads.
    pub variables: HashMap<String, String>,
    /// Whether fresh cache hits are answered in front of the component.
    pub fast_path: AtomicBool,
    /// Requests answered that way.
    pub fast_hits: AtomicU64,
    /// Accepts that failed (and were retried).
    pub accept_errors: AtomicU64,
    /// Round trips to origins by authority (`host:port`), paid before each
    /// call to that origin (the latency model; a drill's latency fault).
    pub origin_delays: parking_lot::RwLock<std::collections::BTreeMap<String, std::time::Duration>>,
    /// Origins this POP cannot reach (a partition): calls to them are
    /// refused at once, before anything is sent.
    pub origin_cut: parking_lot::RwLock<std::collections::BTreeSet<String>>,
}

impl PopState {
    /// The round trip to the origin at `authority` (zero when unknown).
    pub fn origin_delay(&self, authority: &str) -> std::time::Duration {
        self.origin_delays
            .read()
            .get(authority)
            .copied()
            .unwrap_or_default()
    }

    /// Cuts this POP off from the origin at `authority` (`true`) or
    /// restores it.
    pub fn set_origin_cut(&self, authority: &str, cut: bool) {
        let mut set = self.origin_cut.write();
        if cut {
            set.insert(authority.to_owned());
        } else {
            set.remove(authority);
        }
    }

    /// Whether calls to the origin at `authority` are refused.
    pub fn origin_is_cut(&self, authority: &str) -> bool {
        self.origin_cut.read().contains(authority)
    }

    /// Calls to the origin at `authority` wait `delay` first (at most the
    /// latency model's longest round trip).
    pub fn set_origin_delay(&self, authority: &str, delay: std::time::Duration) {
        self.origin_delays
            .write()
            .insert(authority.to_owned(), delay.min(topology::latency::MAX_RTT));
    }
}

/// Per-request store data.
pub(crate) struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pop: Arc<PopState>,
    hooks: outgoing::PooledHooks,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            // Outgoing requests go out for real, over the host's pool.
            hooks: &mut self.hooks,
        }
    }
}

/// Bytes of each linear memory reset in place between instances when the
/// kernel can say which pages an instance wrote (`PAGEMAP_SCAN`, Linux
/// 6.7+): only those are copied back from the image or zeroed, so a slot's
/// stack, data and heap stay mapped and the next instance takes no page
/// faults (a copy-on-write fault on a data page also flushes the TLB of
/// every core running the process). The Rust guest's stack ends at 1 MiB
/// and its data and heap lie above it, so 2 MiB covers what a catalog
/// request touches (pages written above it are decommitted as before); at
/// most `max_instances` times this stays resident.
const KEEP_RESIDENT_SCANNED: usize = 2 << 20;
/// Without `PAGEMAP_SCAN` the kept bytes are reset with one memset whether
/// written or not, so only the lowest 64 KiB are kept.
const KEEP_RESIDENT_MEMSET: usize = 64 << 10;
/// Memories and tables reserved per component instance (the Spin
/// component has one memory and a few tables; wasi adapters add some).
const SLOTS_PER_INSTANCE: u32 = 4;
/// Slots decommitted together.
const DECOMMIT_BATCH: usize = 32;

/// How often the engine's epoch advances: the unit of a guest's budget.
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The compiled component, ready to instantiate.
pub struct EdgeHost {
    engine: Engine,
    pre: ProxyPre<RequestState>,
    /// The outgoing connection pool every instance sends through.
    hooks: outgoing::PooledHooks,
    /// One permit per pooled instance slot: a request that finds none is
    /// answered 503 at once rather than failing to instantiate.
    instances: Arc<tokio::sync::Semaphore>,
    /// Epoch ticks of wasm execution one instance may use.
    budget_ticks: u64,
    /// Stops the epoch ticker thread.
    ticking: Arc<AtomicBool>,
}

impl Drop for EdgeHost {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for EdgeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeHost")
    }
}

impl EdgeHost {
    /// Compiles `component` and links its imports. `max_instances` bounds
    /// concurrent requests' instances (the pooling allocator's slots);
    /// `guest_cpu_ms` bounds the wasm execution of each.
    pub fn load(component: &Path, max_instances: u32, guest_cpu_ms: u64) -> anyhow::Result<Self> {
        let scanned = PoolingAllocationConfig::is_pagemap_scan_available();
        let keep_resident = if scanned {
            KEEP_RESIDENT_SCANNED
        } else {
            KEEP_RESIDENT_MEMSET
        };
        let mut pool = PoolingAllocationConfig::default();
        // An instance of the component holds several core instances,
        // memories and tables: the component-instance count is the bound,
        // the rest is sized so that it never binds first.
        pool.total_component_instances(max_instances)
            .total_memories(max_instances.saturating_mul(SLOTS_PER_INSTANCE))
            .total_tables(max_instances.saturating_mul(SLOTS_PER_INSTANCE))
            .max_memory_size(64 << 20)
            // Reset what an instance wrote in place rather than with
            // madvise (no page faults on the next instance), and decommit
            // the rest in batches (fewer TLB shootdowns across cores).
            .linear_memory_keep_resident(keep_resident)
            .table_keep_resident(64 << 10)
            .decommit_batch_size(DECOMMIT_BATCH)
            .pagemap_scan(if scanned {
                wasmtime::Enabled::Yes
            } else {
                wasmtime::Enabled::No
            });
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            // A guest that loops is stopped (see `handle`).
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // `MERIDIAN_PERFMAP=1` writes /tmp/perf-<pid>.map, so `perf report`
        // names the component's functions.
        if std::env::var_os("MERIDIAN_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(wt)?;
        let component = Component::from_file(&engine, component)
            .map_err(wt)
            .with_context(|| format!("compiling {}", component.display()))?;
        let mut linker: Linker<RequestState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wt)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wt)?;
        spin_imports::add_to_linker(&mut linker).map_err(wt)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component).map_err(wt)?).map_err(wt)?;
        let ticking = Arc::new(AtomicBool::new(true));
        {
            // The epoch clock: a tick every EPOCH_TICK while the host lives.
            let (engine, ticking) = (engine.clone(), ticking.clone());
            std::thread::Builder::new()
                .name("edge-epoch".into())
                .spawn(move || {
                    while ticking.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("starting the epoch thread")?;
        }
        Ok(EdgeHost {
            engine,
            pre,
            hooks: outgoing::PooledHooks::new(),
            instances: Arc::new(tokio::sync::Semaphore::new(max_instances as usize)),
            budget_ticks: (guest_cpu_ms / EPOCH_TICK.as_millis() as u64).max(1),
            ticking,
        })
    }

    /// Runs one request in a fresh instance.
    async fn handle(
        &self,
        pop: Arc<PopState>,
        native: &Edge<native::NativeHost>,
        peer: SocketAddr,
        mut req: hyper::Request<hyper::body::Incoming>,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
        // What Spin tells a component about its client; never what the
        // client claims.
        req.headers_mut().remove("spin-client-addr");
        if let Ok(value) = hyper::header::HeaderValue::from_str(&peer.to_string()) {
            req.headers_mut().insert("spin-client-addr", value);
        }
        // Request bodies are bounded: a declared length over the bound is
        // refused here, an undeclared one is cut off at it.
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_REQUEST_BODY_BYTES) {
            return Ok(problem_response(edge_core::http::Response::problem(
                413,
                "body-too-large",
                "Request body too large",
                &format!("request bodies are limited to {MAX_REQUEST_BODY_BYTES} bytes"),
            )));
        }
        if pop.fast_path.load(Ordering::Relaxed)
            && let Some(response) = fast_hit(native, &req).await
        {
            pop.fast_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(response);
        }
        let req = req.map(|body| {
            use http_body_util::BodyExt;
            http_body_util::Limited::new(body, MAX_REQUEST_BODY_BYTES).map_err(|e| {
                match e.downcast::<hyper::Error>() {
                    Ok(e) => wasmtime_wasi_http::Error::Hyper(*e),
                    Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(
                        MAX_REQUEST_BODY_BYTES as u64,
                    )),
                }
            })
        });
        let Ok(permit) = self.instances.clone().try_acquire_owned() else {
            // Every instance slot is busy: nothing was done; come back.
            let mut busy = problem_response(edge_core::http::Response::problem(
                503,
                regional_api::problem::kinds::UNAVAILABLE,
                "Edge busy",
                "every instance of this edge is busy; nothing was applied; retry",
            ));
            busy.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
            return Ok(busy);
        };
        let unsafe_method = !req.method().is_safe();
        let mut store = Store::new(
            &self.engine,
            RequestState {
                wasi: WasiCtx::builder().inherit_stderr().build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                hooks: self.hooks.for_pop(pop.clone()),
                pop,
            },
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(wt)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(wt)?;
        // The guest's budget counts the ticks during which it was running
        // wasm (the callback runs only then; waiting on I/O passes none):
        // it yields to the runtime at every tick and is stopped past the
        // budget.
        store.set_epoch_deadline(1);
        let budget = self.budget_ticks;
        let mut used = 0u64;
        store.epoch_deadline_callback(move |_| {
            used += 1;
            Ok(if used > budget {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });
        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            // The slot is held until the instance is gone.
            let _permit = permit;
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, out)
                .await
        });
        let failure = match rx.await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(code)) => anyhow::anyhow!("the component answered with an error: {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => anyhow::anyhow!("the component never set a response"),
                Ok(Err(e)) => wt(e).context("the component failed before responding"),
                Err(e) => anyhow::Error::from(e).context("the component's task failed"),
            },
        };
        tracing::warn!(error = %format!("{failure:#}"), "edge request failed");
        // A write the component may have forwarded before it failed (or
        // ran out of budget) may have been applied: say so.
        Ok(if unsafe_method {
            problem_response(edge_core::http::Response::problem(
                504,
                regional_api::problem::kinds::MAYBE_APPLIED,
                "Outcome unknown",
                "the edge failed while handling this request; it may have been applied; \
                 retry with the same Idempotency-Key",
            ))
        } else {
            problem(502, "the edge component failed")
        })
    }
}

fn problem(status: u16, detail: &str) -> hyper::Response<HyperOutgoingBody> {
    problem_response(edge_core::http::Response::problem(
        status,
        "edge-host",
        "Edge error",
        detail,
    ))
}

fn problem_response(problem: edge_core::http::Response) -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let status = problem.status;
    let body = problem.body;
    let body = http_body_util::Full::new(bytes::Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The request as the component sees it (spin-sdk's conversion, see
/// edge-spin's `to_edge`), without its body: only GET and HEAD qualify.
fn edge_request<B>(req: &hyper::Request<B>) -> Option<edge_core::http::Request> {
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return None;
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(n, v)| {
            Some((
                n.as_str().to_ascii_lowercase(),
                std::str::from_utf8(v.as_bytes()).ok()?.to_owned(),
            ))
        })
        .collect();
    let client = edge_core::http::client_ip(&headers);
    Some(edge_core::http::Request {
        method: req.method().as_str().to_ascii_uppercase(),
        path: req.uri().path().to_owned(),
        query: req
            .uri()
            .query()
            .filter(|q| !q.is_empty())
            .map(str::to_owned),
        headers,
        body: Vec::new(),
        client,
    })
}

/// A fresh cache hit answered by edge-core natively, over the POP's store:
/// the response the component would give (edge-core's `fresh_hit`).
async fn fast_hit<B>(
    native: &Edge<native::NativeHost>,
    req: &hyper::Request<B>,
) -> Option<hyper::Response<HyperOutgoingBody>> {
    use http_body_util::BodyExt;
    let response = native.fresh_hit(&edge_request(req)?).await?;
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    let body = http_body_util::Full::new(bytes::Bytes::from(response.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder.body(body).ok()
}

/// What bounds one POP's connections.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    max_connections: usize,
    header_read_timeout: std::time::Duration,
}

/// After a failed accept (out of file descriptors, say) the POP waits this
/// long before accepting again, instead of ending.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Serves one POP on `listener` until `shutdown` turns true: at most
/// `max_connections` at once (the rest wait in the kernel's backlog), each
/// closed when its client is slower than `header_read_timeout` to send a
/// request's headers; an accept that fails is logged and retried.
async fn serve_pop(
    host: Arc<EdgeHost>,
    pop: Arc<PopState>,
    native: Arc<Edge<native::NativeHost>>,
    listener: tokio::net::TcpListener,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.context("connection permits")?,
            _ = shutdown.changed() => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(pop = %pop.name, error = %e, "accept failed; retrying");
                    pop.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let (host, pop, native) = (host.clone(), pop.clone(), native.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let (host, pop, native) = (host.clone(), pop.clone(), native.clone());
                async move {
                    match host.handle(pop, &native, peer, req).await {
                        Ok(response) => Ok::<_, std::convert::Infallible>(response),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "edge request failed");
                            Ok(problem(502, "the edge component failed"))
                        }
                    }
                }
            });
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A running set of POPs.
#[derive(Debug)]
pub struct Running {
    pub pops: Vec<(Arc<PopState>, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }

    /// Waits until a POP's server fails (or all stop).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        while let Some(result) = self.tasks.join_next().await {
            result.context("POP task")??;
        }
        Ok(())
    }
}

/// Starts every POP of `config` (binding `listen`, or an ephemeral port of
/// its address when `ephemeral`), with its watchers.
pub async fn start(config: &HostConfig, ephemeral: bool) -> anyhow::Result<Running> {
    let host = Arc::new(EdgeHost::load(
        &config.component,
        config.max_instances,
        config.guest_cpu_ms,
    )?);
    let limits = ConnectionLimits {
        max_connections: config.max_connections_per_pop,
        header_read_timeout: std::time::Duration::from_millis(config.header_read_timeout_ms),
    };
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut pops = Vec::new();
    for pop in &config.pops {
        let state = Arc::new(PopState {
            name: pop.name.clone(),
            kv: KvStore::new(config.max_kv_entries),
            variables: config.variables_for(pop),
            fast_path: AtomicBool::new(config.fast_path),
            fast_hits: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            origin_delays: Default::default(),
            origin_cut: Default::default(),
        });
        for (authority, ms) in &pop.origin_rtt_ms {
            state.set_origin_delay(
                authority,
                std::time::Duration::from_secs_f64(
                    ms.clamp(0.0, topology::latency::MAX_RTT_MS) / 1_000.0,
                ),
            );
        }
        let native = Arc::new(Edge::new(
            native::NativeHost {
                pop: state.clone(),
                client: reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .context("an HTTP client for the watchers")?,
            },
            config.edge_config(pop)?,
        ));
        // Ephemeral: the configured address on a port the kernel picks,
        // so each POP keeps its own loopback address.
        let addr = if ephemeral {
            SocketAddr::new(pop.listen.ip(), 0)
        } else {
            pop.listen
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} for POP {}", pop.name))?;
        let local = listener.local_addr()?;
        tasks.spawn(serve_pop(
            host.clone(),
            state.clone(),
            native.clone(),
            listener,
            limits,
            stop.clone(),
        ));
        watchers::spawn(&mut tasks, native, stop.clone());
        pops.push((state, local));
    }
    Ok(Running {
        pops,
        shutdown,
        tasks,
    })
}
