//! The edge benchmark's `wasmtime serve` references, one component:
//!
//! - by default every request gets `200 hello` with a fixed body (the
//!   per-request-instance reference, "hello world");
//! - with `ORIGIN` (a base URL such as `http://127.0.0.1:8080`) and
//!   `EDGE_KEY` in its environment (`wasmtime serve --env`), it is a
//!   minimal signing proxy: each request's path and query are fetched from
//!   the origin with the edge's HMAC signature, and the origin's status and
//!   body returned. That is the work an edge-host cache miss does towards the
//!   region, without the cache, routing or anything else, so the two can be
//!   compared on equal origin work.

use std::io::{Read, Write as _};

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Hello;

const BODY: &[u8] = b"hello from a WASI HTTP component\n";

/// Largest origin body the proxy passes on.
const MAX_BODY: usize = 1 << 20;

impl Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let env = wasip2::cli::environment::get_environment();
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let (status, content_type, body) = match (var("ORIGIN"), var("EDGE_KEY")) {
            (Some(origin), Some(key)) => {
                let path = request.path_with_query().unwrap_or_else(|| "/".into());
                proxy(&origin, &key, &path).unwrap_or_else(|e| (502, "text/plain", e.into_bytes()))
            }
            _ => (200, "text/plain", BODY.to_vec()),
        };
        respond(out, status, content_type, &body);
    }
}

fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::new();
    // A header that cannot be set is only a missing header.
    let _ = headers.set("content-type", &[content_type.as_bytes().to_vec()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        // The stream takes at most 4096 bytes per write: `write_all` loops.
        let _ = stream.write_all(body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

/// GETs `origin` + `path` signed with `key`: (status, content type, body).
fn proxy(origin: &str, key: &str, path: &str) -> Result<(u16, &'static str, Vec<u8>), String> {
    let (scheme, authority) = match origin.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest.trim_end_matches('/')),
        Some(("https", rest)) => (Scheme::Https, rest.trim_end_matches('/')),
        _ => return Err(format!("ORIGIN must be an http(s) URL: {origin}")),
    };
    let now_s = wasip2::clocks::wall_clock::now().seconds;
    let nonce = format!(
        "{:016x}{:016x}",
        wasip2::random::random::get_random_u64(),
        wasip2::random::random::get_random_u64()
    );
    let signature = topology::signing::sign(key.as_bytes(), "GET", path, now_s, &nonce, b"");
    let headers = Fields::new();
    for (name, value) in [
        (topology::signing::TIMESTAMP_HEADER, now_s.to_string()),
        (topology::signing::NONCE_HEADER, nonce),
        (topology::signing::SIGNATURE_HEADER, signature),
    ] {
        headers
            .set(name, &[value.into_bytes()])
            .map_err(|e| format!("header {name}: {e:?}"))?;
    }
    let request = OutgoingRequest::new(headers);
    let set = request.set_method(&Method::Get).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !set {
        return Err(format!("bad origin request {origin}{path}"));
    }
    let outgoing = request.body().map_err(|()| "request body".to_string())?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(format!("origin: {e:?}")),
        _ => return Err("origin response not ready".into()),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| "origin body".to_string())?;
    let mut body = Vec::new();
    {
        let mut stream = incoming.stream().map_err(|()| "origin body".to_string())?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match Read::read(&mut stream, &mut chunk) {
                Ok(0) => break,
                Ok(n) if body.len() + n <= MAX_BODY => body.extend_from_slice(&chunk[..n]),
                Ok(_) => return Err("origin body too large".into()),
                Err(e) => return Err(format!("origin body: {e}")),
            }
        }
    }
    Ok((status, "application/json", body))
}

wasip2::http::proxy::export!(Hello);
