//! The smallest useful `wasi:http/incoming-handler` component: every
//! request gets `200 hello` with a fixed body. `wasmtime serve` runs it in
//! the edge benchmark as the per-request-instance reference.

use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

const BODY: &[u8] = b"hello from a WASI HTTP component\n";

impl Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::new();
        // A header that cannot be set is only a missing header.
        let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else {
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(mut stream) = body.write() {
            let _ = stream.write_all(BODY);
            let _ = stream.flush();
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Hello);
