//! A test-owned front for a region: every request passes through to the
//! region and every write is recorded, so a test can say which regions a
//! write reached and how often. It can be made to die on writes (take the
//! request and drop the connection unanswered, as a region that crashes
//! mid-request does: the edge cannot know whether it was applied) or be
//! killed outright (its listener and connections closed, so connecting is
//! refused).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

struct State {
    upstream: SocketAddr,
    client: reqwest::Client,
    dying: AtomicBool,
    writes: Mutex<Vec<String>>,
    /// Writes that have arrived (ever), for waiting on.
    arrived: tokio::sync::watch::Sender<usize>,
    /// While true, writes wait here before going on.
    holding: tokio::sync::watch::Sender<bool>,
    /// Paths of the reads that have arrived (the routing layer's probes
    /// aside), for waiting on.
    reads: tokio::sync::watch::Sender<Vec<String>>,
    /// Reads of paths starting with this wait here before going on.
    holding_reads: tokio::sync::watch::Sender<Option<String>>,
}

pub struct Front {
    pub addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Front {
    /// A front on 127.0.0.1:0 for the region at `upstream`.
    pub async fn start(upstream: SocketAddr) -> Front {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind front");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            upstream,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            dying: AtomicBool::new(false),
            writes: Mutex::new(Vec::new()),
            arrived: tokio::sync::watch::Sender::new(0),
            holding: tokio::sync::watch::Sender::new(false),
            reads: tokio::sync::watch::Sender::new(Vec::new()),
            holding_reads: tokio::sync::watch::Sender::new(None),
        });
        let shared = state.clone();
        // Connections live in this task's JoinSet: aborting the task drops
        // the listener and every connection with it.
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { pass(&state, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Front {
            addr,
            state,
            server,
        }
    }

    /// From now on every write is taken and its connection dropped
    /// unanswered; reads (the routing layer's probes among them) pass.
    pub fn die_on_writes(&self) {
        self.state.dying.store(true, Ordering::SeqCst);
    }

    /// Closes the listener and every connection; returns once connecting
    /// is refused (and fails the test if it never is).
    pub async fn kill(&self) {
        self.server.abort();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the front at {} still accepts connections", self.addr);
    }

    /// From now on writes wait at the front (the region looks slow) until
    /// [`Front::release`].
    pub fn hold_writes(&self) {
        self.state.holding.send_replace(true);
    }

    pub fn release(&self) {
        self.state.holding.send_replace(false);
    }

    /// From now on reads of paths starting with `prefix` wait at the front
    /// until [`Front::release_reads`]; returns how many had arrived so far.
    pub fn hold_reads(&self, prefix: &str) -> usize {
        self.state
            .holding_reads
            .send_replace(Some(prefix.to_owned()));
        self.reads_to(prefix)
    }

    pub fn release_reads(&self) {
        self.state.holding_reads.send_replace(None);
    }

    /// Every read that has arrived (path and query), oldest first.
    pub fn reads(&self) -> Vec<String> {
        self.state.reads.borrow().clone()
    }

    fn reads_to(&self, prefix: &str) -> usize {
        self.state
            .reads
            .borrow()
            .iter()
            .filter(|p| p.starts_with(prefix))
            .count()
    }

    /// Waits until `n` reads of paths starting with `prefix` have arrived.
    pub async fn reads_arrived(&self, prefix: &str, n: usize) {
        let _ = self
            .state
            .reads
            .subscribe()
            .wait_for(|paths| paths.iter().filter(|p| p.starts_with(prefix)).count() >= n)
            .await;
    }

    /// Waits until `n` writes in all have arrived.
    pub async fn writes_arrived(&self, n: usize) {
        let _ = self.state.arrived.subscribe().wait_for(|a| *a >= n).await;
    }

    /// The writes that reached this front, as `METHOD /path`.
    pub fn writes(&self) -> Vec<String> {
        self.state.writes.lock().clone()
    }
}

async fn pass(
    state: &State,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    if parts.method.is_safe() && parts.uri.path() != "/readyz" {
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        state.reads.send_modify(|r| r.push(path.clone()));
        let _ = state
            .holding_reads
            .subscribe()
            .wait_for(|held| !held.as_deref().is_some_and(|p| path.starts_with(p)))
            .await;
    }
    if !parts.method.is_safe() {
        state
            .writes
            .lock()
            .push(format!("{} {}", parts.method, parts.uri.path()));
        state.arrived.send_modify(|a| *a += 1);
        if state.dying.load(Ordering::SeqCst) {
            // hyper closes the connection without an answer.
            return Err(std::io::Error::other("the region died mid-request"));
        }
        let _ = state.holding.subscribe().wait_for(|h| !*h).await;
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = state
        .client
        .request(
            parts.method.clone(),
            format!("http://{}{path}", state.upstream),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "connection" | "content-length") {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.map_err(std::io::Error::other)?;
    let mut out = hyper::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            out = out.header(name, value);
        }
    }
    let bytes = response.bytes().await.map_err(std::io::Error::other)?;
    out.body(Full::new(bytes)).map_err(std::io::Error::other)
}
