//! Meridian's authoritative DNS server for the platform's zone
//! (`shop.example.`), on hickory-server.
//!
//! Shoppers resolve `api.<zone>` and get the nearest region that serves;
//! `<region>.api.<zone>` and `<shard>.shard.<zone>` name one region and a
//! shard's active region. Every answer is computed from the routing table's
//! current value (a [`tokio::sync::watch`] channel fed by the routing layer's
//! health checker), so a failover shows in DNS as soon as it is in the table;
//! short TTLs bound how long resolvers keep the old answer.
//!
//! - [`config`]: `dns.toml` ([`DnsConfig`]).
//! - [`location`]: client address → location ([`LocationTable`]).
//! - [`geoip`]: the same from MaxMind DB files ([`GeoIp`]), reloaded when
//!   they change.
//! - [`authority`]: the request handler ([`Authority`]).
//! - [`serve`]: runs it on UDP sockets (our own loop, `udp.rs`: blocking
//!   worker threads that answer each query inline) and a TCP listener
//!   (hickory-server's) until shutdown;
//!   [`bind_udp`] binds several UDP sockets to one port (SO_REUSEPORT) so
//!   the kernel spreads queries over them and UDP uses more than one core.

pub mod authority;
pub mod config;
pub mod geoip;
pub mod location;
mod udp;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::NetError;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

pub use authority::Authority;
pub use config::{
    ConfigError, DnsConfig, GeoIpConfig, GeoPoint, LocationConfig, NameServerConfig, SoaConfig,
    TtlConfig,
};
pub use geoip::{GeoHit, GeoIp};
pub use location::{Located, LocationTable};

/// A TCP connection that sends no complete query for this long is closed, so
/// idle or slow clients cannot hold connections open.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection before its handler waits.
const TCP_RESPONSE_BUFFER: usize = 32;
/// How long shutdown waits for in-flight work before giving up.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`serve`] stopped other than by its shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket task ended on its own (e.g. the UDP socket failed).
    #[error("DNS server stopped unexpectedly")]
    Stopped(#[source] NetError),
    /// A socket task ended without an error before shutdown was asked for.
    #[error("DNS server's sockets closed before shutdown")]
    Closed,
    /// Shutdown did not finish within [`SHUTDOWN_TIMEOUT`].
    #[error("DNS server did not shut down within {timeout:?}")]
    ShutdownTimedOut {
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// A socket task failed while shutting down.
    #[error("DNS server failed while shutting down")]
    Shutdown(#[source] NetError),
}

/// One per core, at most 8: the UDP sockets to bind per port (see
/// [`bind_udp`]) and the worker threads [`serve_sockets`] gives each.
pub fn udp_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

/// Most UDP sockets [`bind_udp`] binds to one port.
pub const MAX_UDP_SOCKETS: usize = 64;

/// Binds `count` UDP sockets (at least one, at most [`MAX_UDP_SOCKETS`]) to
/// `addr` with SO_REUSEPORT, so the kernel spreads clients over them and
/// they do not contend for one socket's queue. With port 0 the first socket
/// picks the port and the others join it.
pub fn bind_udp(addr: std::net::SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut sockets = Vec::new();
    let mut addr = addr;
    for _ in 0..count.clamp(1, MAX_UDP_SOCKETS) {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Serves `authority` on `udp` and `tcp` (bound by the caller, usually to the
/// same port) until `shutdown` completes, then stops accepting and returns.
pub async fn serve(
    authority: Authority,
    udp: UdpSocket,
    tcp: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_sockets(authority, vec![udp], tcp, shutdown).await
}

/// [`serve`] on several UDP sockets (e.g. from [`bind_udp`]).
pub async fn serve_sockets(
    authority: Authority,
    udp: Vec<UdpSocket>,
    tcp: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let authority = Arc::new(authority);
    let stop = Arc::new(AtomicBool::new(false));
    // However this future ends, dropped included, the workers stop: a
    // runtime waits for its blocking threads when it shuts down.
    let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
    let runtime = tokio::runtime::Handle::current();
    let mut udp_workers = JoinSet::new();
    for socket in udp {
        let socket = udp::for_workers(socket).map_err(|e| ServeError::Stopped(e.into()))?;
        // The kernel picks a socket by hashing the client's address and
        // port, so a few busy clients can all land on one socket: with a
        // worker per core on every socket, any socket can use every core.
        for _ in 0..udp_parallelism() {
            let (socket, authority, stop, runtime) = (
                Arc::clone(&socket),
                Arc::clone(&authority),
                Arc::clone(&stop),
                runtime.clone(),
            );
            udp_workers
                .spawn_blocking(move || udp::serve_udp(&socket, &authority, &stop, &runtime));
        }
    }
    let mut server = Server::new(ArcHandler(authority));
    server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    tokio::select! {
        () = shutdown => {}
        // Only ends if a worker or the TCP listener has: that is a failure,
        // since nothing asked them to stop.
        Some(done) = udp_workers.join_next() => {
            return Err(match done {
                Ok(Some(error)) => ServeError::Stopped(error),
                Ok(None) => ServeError::Closed,
                Err(panic) => ServeError::Stopped(NetError::from(panic.to_string())),
            });
        }
        done = server.block_until_done() => {
            return Err(done.err().map_or(ServeError::Closed, ServeError::Stopped));
        }
    }
    // Each UDP worker finishes the query it is answering and sees the flag
    // within `udp::STOP_POLL`.
    stop.store(true, Ordering::Relaxed);
    let stopping = async {
        while let Some(done) = udp_workers.join_next().await {
            match done {
                Ok(None) => {}
                Ok(Some(error)) => return Err(ServeError::Shutdown(error)),
                Err(panic) => {
                    return Err(ServeError::Shutdown(NetError::from(panic.to_string())));
                }
            }
        }
        server
            .shutdown_gracefully()
            .await
            .map_err(ServeError::Shutdown)
    };
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, stopping).await {
        Ok(result) => result,
        Err(_) => Err(ServeError::ShutdownTimedOut {
            timeout: SHUTDOWN_TIMEOUT,
        }),
    }
}

/// Sets the UDP workers' stop flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Lets hickory-server's TCP listener share the UDP workers' [`Authority`].
struct ArcHandler(Arc<Authority>);

#[async_trait::async_trait]
impl RequestHandler for ArcHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.0
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}
