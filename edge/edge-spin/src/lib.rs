//! The edge as a Spin HTTP component: a thin adapter that gives edge-core
//! Spin's key-value store (the POP's cache), Spin variables (settings) and
//! outbound HTTP (to the regions and the routing API).
//!
//! Variables: `pop`, `latitude`, `longitude`, `routing_url`, `edge_key`,
//! `table_max_age_ms` and the rate limits (`rate_per_s`, `rate_burst`,
//! `write_rate_*`, `session_rate_*`, `address_rate_factor`; see `spin.toml`).

#![expect(
    unsafe_code,
    reason = "spin-sdk's #[http_component] generates the component's export glue, which is unsafe"
)]

use edge_core::http::{Request as EdgeRequest, Response as EdgeResponse};
use edge_core::origin::Failure;
use edge_core::{Edge, EdgeConfig, Host, Outbound};
use futures::StreamExt;
use spin_sdk::http::{
    ErrorCode, Fields, IncomingRequest, IncomingResponse, Method, OutgoingResponse, Request,
    ResponseOutparam, SendError,
};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

struct SpinHost {
    store: Store,
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(other) => other.to_ascii_uppercase(),
    }
}

fn method_of(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}

impl Host for SpinHost {
    fn now_ms(&self) -> u64 {
        edge_core::std_host::now_ms()
    }

    fn nonce(&self) -> String {
        edge_core::std_host::nonce()
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.store.get(key).ok().flatten()
    }

    async fn set(&self, key: &str, value: &[u8]) {
        // A cache write that fails only costs a later miss.
        let _ = self.store.set(key, value);
    }

    async fn fetch(&self, request: Outbound) -> Result<EdgeResponse, Failure> {
        let mut builder = Request::builder();
        builder.method(method_of(&request.method)).uri(request.url);
        for (name, value) in request.headers {
            builder.header(name, value);
        }
        let outgoing = builder.body(request.body).build();
        match spin_sdk::http::send::<_, IncomingResponse>(outgoing).await {
            Ok(response) => {
                let status = response.status();
                let headers = response
                    .headers()
                    .entries()
                    .into_iter()
                    .filter_map(|(n, v)| Some((n.to_ascii_lowercase(), String::from_utf8(v).ok()?)))
                    .collect();
                // Bounded: a longer body is cut off and counts as lost.
                let limit = edge_core::http::MAX_ORIGIN_BODY_BYTES;
                let body = read_bounded(Box::pin(response.take_body_stream()), limit)
                    .await
                    .ok_or(Failure::Lost)?;
                Ok(EdgeResponse {
                    status,
                    headers,
                    body,
                })
            }
            Err(SendError::Http(code)) => Err(classify(&code)),
            // Converting or streaming failed: part of the request may have
            // gone out, so it may have been applied.
            Err(_) => Err(Failure::Lost),
        }
    }
}

/// Whether a failed call can have reached the region, from WASI's typed
/// error code (never from a message's words).
fn classify(code: &ErrorCode) -> Failure {
    match code {
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout
        | ErrorCode::HttpRequestDenied => Failure::NotSent,
        // Anything after the connection was made may have been applied.
        _ => Failure::Lost,
    }
}

/// The settings from Spin variables (empty counts as unset).
fn config() -> anyhow::Result<EdgeConfig> {
    EdgeConfig::from_lookup("spin", |name| spin_sdk::variables::get(name).ok())
        .map_err(|missing| anyhow::anyhow!("the {} variable is not set", missing.0))
}

/// Reads a body stream up to `limit` bytes; `None` past it or on error.
async fn read_bounded(
    mut stream: impl futures::Stream<Item = Result<Vec<u8>, impl Sized>> + Unpin,
    limit: usize,
) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if body.len() + chunk.len() > limit {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// The request as edge-core sees it, its body read up to the edge's bound:
/// `Err` with the 413 to answer when it is longer (declared or read).
async fn to_edge(req: IncomingRequest) -> Result<EdgeRequest, EdgeResponse> {
    let too_large = || {
        EdgeResponse::problem(
            413,
            "body-too-large",
            "Request body too large",
            &format!(
                "request bodies are limited to {} bytes",
                edge_core::http::MAX_REQUEST_BODY_BYTES
            ),
        )
    };
    let headers: Vec<(String, String)> = req
        .headers()
        .entries()
        .into_iter()
        .filter_map(|(n, v)| Some((n.to_ascii_lowercase(), String::from_utf8(v).ok()?)))
        .collect();
    let declared = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > edge_core::http::MAX_REQUEST_BODY_BYTES) {
        return Err(too_large());
    }
    let method = method_name(&req.method());
    let path_with_query = req.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = match path_with_query.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (path_with_query, None),
    };
    let client = edge_core::http::client_ip(&headers);
    let body = read_bounded(
        Box::pin(req.into_body_stream()),
        edge_core::http::MAX_REQUEST_BODY_BYTES,
    )
    .await
    .ok_or_else(too_large)?;
    Ok(EdgeRequest {
        method,
        path,
        query: query.filter(|q| !q.is_empty()),
        headers,
        body,
        client,
    })
}

/// Sends `response` through the outparam: headers at once, then the body,
/// which is finished, so the client has its whole answer before any work
/// the edge deferred runs.
async fn respond(out: ResponseOutparam, response: EdgeResponse) {
    use futures::SinkExt;
    let headers: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(response.status);
    let mut body = outgoing.take_body();
    out.set(outgoing);
    let _ = body.send(response.body).await;
    let _ = body.close().await;
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let (store, config) = match (Store::open_default(), config()) {
        (Ok(store), Ok(config)) => (store, config),
        (store, config) => {
            let detail = match (store.err(), config.err()) {
                (Some(e), _) => format!("the key-value store did not open: {e}"),
                (_, Some(e)) => e.to_string(),
                _ => "misconfigured".into(),
            };
            respond(
                out,
                EdgeResponse::problem(500, "edge-misconfigured", "Edge misconfigured", &detail),
            )
            .await;
            return;
        }
    };
    let edge = Edge::new(SpinHost { store }, config);
    let handled = match to_edge(req).await {
        Ok(req) => edge.handle(req).await,
        Err(refused) => refused.into(),
    };
    // The shopper's answer leaves first (a stale entry served at once);
    // deferred work (the stale-while-revalidate refresh) runs after it.
    respond(out, handled.response).await;
    for deferred in handled.deferred {
        edge.run_deferred(deferred).await;
    }
}
