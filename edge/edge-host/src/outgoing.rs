//! Outgoing HTTP for the component (`wasi:http/outgoing-handler`): plain
//! HTTP goes through one keep-alive connection pool per host process, so a
//! cache miss does not pay a TCP connect (and the region an accept) per
//! request; HTTPS takes wasmtime-wasi-http's default path (rustls).

use std::future::Future;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Idle connections kept per origin.
const MAX_IDLE_PER_HOST: usize = 64;
/// An idle pooled connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout when the component sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First-byte timeout when the component sets none (a long poll waits 30 s).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(35);

/// The host's outgoing-request hooks (cheap to clone: the pool is shared).
#[derive(Clone)]
pub(crate) struct PooledHooks {
    client: Client<HttpConnector, WasiBody>,
    /// The POP whose instance sends (its round trips to origins).
    pop: Option<std::sync::Arc<crate::PopState>>,
}

impl std::fmt::Debug for PooledHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledHooks").finish_non_exhaustive()
    }
}

impl PooledHooks {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector);
        PooledHooks { client, pop: None }
    }

    /// The same pool, sending for `pop`.
    pub(crate) fn for_pop(&self, pop: std::sync::Arc<crate::PopState>) -> Self {
        PooledHooks {
            client: self.client.clone(),
            pop: Some(pop),
        }
    }
}

type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for PooledHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Io,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Io), Error>> + Send> {
        drop(fut);
        let client = self.client.clone();
        let (delay, cut) = match (&self.pop, request.uri().authority()) {
            (Some(pop), Some(authority)) => (
                pop.origin_delay(authority.as_str()),
                pop.origin_is_cut(authority.as_str()),
            ),
            _ => (Duration::ZERO, false),
        };
        Box::new(async move {
            // Cut off (a partition): refused before anything is sent.
            if cut {
                return Err(Error::ConnectionRefused);
            }
            // The modelled round trip to this origin.
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, options).await?;
                return Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Io));
            }
            let first_byte = options
                .and_then(|o| o.first_byte_timeout)
                .unwrap_or(FIRST_BYTE_TIMEOUT);
            let response = match tokio::time::timeout(first_byte, client.request(request)).await {
                Err(_) => return Err(Error::ConnectionReadTimeout),
                // Not sent: the edge may try the next region.
                Ok(Err(e)) if e.is_connect() => return Err(Error::ConnectionRefused),
                // Sent, maybe applied.
                Ok(Err(_)) => return Err(Error::ConnectionTerminated),
                Ok(Ok(response)) => response,
            };
            // Origin bodies are bounded: past the bound the component reads
            // an error (the answer is lost, as far as the edge can tell).
            let limit = edge_core::http::MAX_ORIGIN_BODY_BYTES;
            let response = response.map(|body| {
                http_body_util::Limited::new(body, limit)
                    .map_err(move |e| match e.downcast::<hyper::Error>() {
                        Ok(e) => Error::Hyper(*e),
                        Err(_) => Error::HttpResponseBodySize(Some(limit as u64)),
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(async { Ok(()) }) as Io))
        })
    }
}
