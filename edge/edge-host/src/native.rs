//! edge-core's `Host` in the host process itself, over the same POP store
//! the component uses: for the watchers' long polls and for answering
//! fresh cache hits in front of the component.

use std::sync::Arc;
use std::time::Duration;

use edge_core::http::Response;
use edge_core::origin::Failure;
use edge_core::{Host, Outbound};

use crate::PopState;

/// An HTTP call gives up after this long (a long poll waits 30 s at most).
const CALL_TIMEOUT: Duration = Duration::from_secs(35);

/// edge-core's host, natively: the POP's store, the system clock, reqwest.
pub(crate) struct NativeHost {
    pub(crate) pop: Arc<PopState>,
    pub(crate) client: reqwest::Client,
}

impl Host for NativeHost {
    fn now_ms(&self) -> u64 {
        edge_core::std_host::now_ms()
    }

    fn nonce(&self) -> String {
        edge_core::std_host::nonce()
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.pop.kv.get(key)
    }

    async fn set(&self, key: &str, value: &[u8]) {
        self.pop.kv.set(key, value);
    }

    async fn fetch(&self, request: Outbound) -> Result<Response, Failure> {
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| Failure::NotSent)?;
        // The modelled round trip to this origin.
        if let Ok(url) = reqwest::Url::parse(&request.url)
            && let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default())
        {
            let authority = format!("{host}:{port}");
            // Cut off (a partition): refused before anything is sent.
            if self.pop.origin_is_cut(&authority) {
                return Err(Failure::NotSent);
            }
            let delay = self.pop.origin_delay(&authority);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        let mut builder = self
            .client
            .request(method, &request.url)
            .timeout(CALL_TIMEOUT);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = builder.body(request.body).send().await.map_err(|e| {
            // reqwest's typed classification: a connect error happened
            // before any byte of the request was written.
            if e.is_connect() {
                Failure::NotSent
            } else {
                Failure::Lost
            }
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        // Bounded: a longer body is cut off and the call counts as lost.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| Failure::Lost)? {
            if body.len() + chunk.len() > edge_core::http::MAX_ORIGIN_BODY_BYTES {
                return Err(Failure::Lost);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}
