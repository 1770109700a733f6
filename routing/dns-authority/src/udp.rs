//! The UDP side of the server: threads that each receive a query, answer
//! it and send the answer, in that order, before they read the next.
//!
//! hickory-server's own UDP loop spawns a task per query and hands each
//! answer back to the socket's task through a channel: several task switches
//! and an unbounded set of tasks per query, which under load showed as
//! latency (p99 of milliseconds at a third of the throughput). Our answers
//! never wait on anything (they are computed from the routing table in
//! memory), so each is produced inline on a thread blocked in `recvfrom`,
//! the way Knot's and NSD's UDP workers run: the kernel wakes one thread per
//! datagram, nothing is queued in user space (a thread holds at most the
//! query it is answering; the rest wait in the kernel's receive buffer), and
//! the tokio runtime's scheduling does not add to the latency. The request
//! handling itself is hickory-server's ([`Request`], [`RequestHandler`]);
//! only the socket loop is ours. TCP stays on hickory-server's listener.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::ProtoError;
use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tokio::runtime::Handle;
use tracing::{debug, warn};

use crate::Authority;

/// Largest query we read; anything longer is cut here and so fails to parse
/// (a query is a header, one question and an OPT record: well under this).
const MAX_QUERY: usize = 4096;

/// Without EDNS a UDP answer may be at most this long (RFC 1035 4.2.1).
const CLASSIC_UDP_PAYLOAD: u16 = 512;

/// How often an idle worker looks whether it should stop, and so the longest
/// shutdown waits for it.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Longest a worker waits for room in the socket's send buffer before it
/// drops the answer (the client retries, as for any lost datagram).
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Makes a socket bound for tokio into one the blocking workers can share.
pub(crate) fn for_workers(socket: tokio::net::UdpSocket) -> io::Result<Arc<UdpSocket>> {
    let socket = socket.into_std()?;
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(STOP_POLL))?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    Ok(Arc::new(socket))
}

/// Serves queries arriving on `socket` until `stop` is set (then `None`) or
/// the socket fails (then why). Blocks: run it on a thread of its own.
/// Several workers may serve one socket.
pub(crate) fn serve_udp(
    socket: &Arc<UdpSocket>,
    authority: &Authority,
    stop: &AtomicBool,
    runtime: &Handle,
) -> Option<NetError> {
    let mut buf = vec![0u8; MAX_QUERY];
    while !stop.load(Ordering::Relaxed) {
        let (len, src) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(error) if unrecoverable(&error) => return Some(error.into()),
            Err(error) => {
                // A timeout (look at `stop` again), or e.g. an ICMP port
                // unreachable for an earlier answer.
                if !matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    debug!(%error, "UDP receive failed");
                }
                continue;
            }
        };
        if !respondable(src) {
            continue;
        }
        let responder = UdpResponder {
            socket: Arc::clone(socket),
            dst: src,
        };
        // The answer is computed and sent without waiting on anything, so
        // this completes on its first poll; should a handler ever wait, the
        // runtime drives it to the end.
        let mut answering = pin!(answer(authority, buf[..len].to_vec(), src, responder));
        if answering
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            runtime.block_on(answering);
        }
    }
    None
}

/// Parses one query and has `authority` answer it through `responder`.
async fn answer(authority: &Authority, raw: Vec<u8>, src: SocketAddr, mut responder: UdpResponder) {
    let header = {
        let mut decoder = BinDecoder::new(&raw);
        match Header::read(&mut decoder) {
            Ok(header) => header,
            // Shorter than a header: not a DNS message, nothing to answer.
            Err(_) => return,
        }
    };
    if header.metadata.message_type == MessageType::Response {
        // Never answer answers: that is how reflection loops start.
        return;
    }
    match Request::from_bytes(raw, src, Protocol::Udp) {
        Ok(request) => {
            authority
                .handle_request::<_, TokioTime>(&request, responder)
                .await;
        }
        Err(error) => {
            debug!(%error, %src, "malformed query");
            // The question could not be read, so the answer repeats none.
            let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
                return;
            };
            let response = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            if let Err(error) = responder.send_response(response).await {
                warn!(%error, %src, "failed to send FORMERR");
            }
        }
    }
}

/// Whether an answer to `src` could reach anyone (hickory-server's rule:
/// not port 0, not an unspecified or broadcast address).
fn respondable(src: SocketAddr) -> bool {
    if src.port() == 0 {
        return false;
    }
    match src {
        SocketAddr::V4(v4) => !(v4.ip().is_unspecified() || v4.ip().is_broadcast()),
        SocketAddr::V6(v6) => !v6.ip().is_unspecified(),
    }
}

fn unrecoverable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotConnected | io::ErrorKind::ConnectionAborted
    )
}

/// Sends one answer on the socket the query came in on.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (info, bytes) = encode(response)?;
        self.socket.send_to(&bytes, self.dst)?;
        Ok(info)
    }
}

/// Encodes `response` for UDP: at most the payload size the client's EDNS
/// offers (512 bytes without EDNS); what does not fit is left out and the
/// answer marked truncated, so the client retries over TCP.
fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> Result<(ResponseInfo, Vec<u8>), ProtoError> {
    let max = response
        .edns()
        .map_or(CLASSIC_UDP_PAYLOAD, |edns| edns.max_payload())
        .max(CLASSIC_UDP_PAYLOAD);
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(max);
    let id = response.metadata().id;
    let error = match response.destructive_emit(&mut encoder) {
        Ok(info) => return Ok((info, bytes)),
        Err(error) => error,
    };
    // Answer SERVFAIL rather than nothing, so the client does not wait out
    // its timeout (hickory-server does the same).
    warn!(%error, "could not encode a DNS answer");
    bytes.clear();
    let mut encoder = BinEncoder::new(&mut bytes);
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    header.emit(&mut encoder)?;
    Ok((ResponseInfo::from(header), bytes))
}
