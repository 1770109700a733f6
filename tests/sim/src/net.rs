//! HTTP over turmoil's simulated TCP: a listener axum serves on, and a
//! client call with a bound on everything (time, body).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// A turmoil listener as axum's [`axum::serve::Listener`].
pub struct Listener(pub turmoil::net::TcpListener);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Listener")
            .field(&self.0.local_addr().ok())
            .finish()
    }
}

/// The peer of a connection a [`Listener`] accepted (axum's `ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Listener {
    pub async fn bind(port: u16) -> std::io::Result<Listener> {
        Ok(Listener(
            turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?,
        ))
    }
}

impl axum::serve::Listener for Listener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => return (stream, addr),
                // A failed accept (the peer gone): wait a tick, take the next.
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The largest answer body a simulated client reads.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// How a call failed, as a client can tell: before anything was sent, or
/// after (the request may have been applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No connection: nothing was sent.
    NotSent,
    /// Sent, and no whole answer came back in time.
    Lost,
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A response read whole, its body bounded: any failure while reading it
/// leaves the request's outcome unknown.
async fn answer(response: hyper::Response<hyper::body::Incoming>) -> Result<Answer, CallError> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| CallError::Lost)?
        .to_bytes()
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// One request on a connection of its own to `host:port` (turmoil's names),
/// within `timeout` overall.
pub async fn call(
    host: &str,
    port: u16,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, CallError> {
    let connect = tokio::time::timeout(timeout, turmoil::net::TcpStream::connect((host, port)));
    let stream = match connect.await {
        Ok(Ok(stream)) => stream,
        _ => return Err(CallError::NotSent),
    };
    let exchange = async move {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| CallError::NotSent)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", format!("{host}:{port}"));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| CallError::NotSent)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| CallError::Lost)?;
        answer(response).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(CallError::Lost))
}

/// A keep-alive pool of HTTP/1 connections over the simulated network, as
/// edge-host's outgoing client keeps (hyper-util's pool, the same bounds):
/// a request may go out on a connection opened before a fault began, so
/// a partition can swallow an answer after the request was applied.
#[derive(Clone)]
pub struct Pool {
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

/// edge-host's bounds on its outgoing calls.
const POOL_MAX_IDLE_PER_HOST: usize = 64;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Pool {
    fn default() -> Self {
        Pool {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(Connector),
        }
    }
}

impl Pool {
    /// One request to `url` (`http://host:port/…`), its answer's first
    /// byte within `timeout` and its body bounded.
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let mut request = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| CallError::NotSent)?;
        let response = match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            // No connection could be made: nothing was sent.
            Ok(Err(e)) if e.is_connect() => return Err(CallError::NotSent),
            Ok(Err(_)) | Err(_) => return Err(CallError::Lost),
        };
        tokio::time::timeout(timeout, answer(response))
            .await
            .unwrap_or(Err(CallError::Lost))
    }
}

/// Opens pool connections over turmoil's TCP.
#[derive(Debug, Clone, Copy)]
pub struct Connector;

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = Io;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, std::io::Result<Io>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other("no host"))?
                .to_owned();
            let port = uri.port_u16().unwrap_or(80);
            let connect = turmoil::net::TcpStream::connect((host.as_str(), port));
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(stream) => Ok(Io(TokioIo::new(stream?))),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )),
            }
        })
    }
}

/// A pool connection: turmoil's stream as hyper's I/O.
#[derive(Debug)]
pub struct Io(TokioIo<turmoil::net::TcpStream>);

impl hyper_util::client::legacy::connect::Connection for Io {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

impl hyper::rt::Read for Io {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
