//! The edge as a Cloudflare Worker (workers-rs): a thin adapter that gives
//! edge-core the colo's Cache API (the POP's cache), Worker vars and
//! secrets (settings) and `fetch` (to the regions and the routing API).
//!
//! Vars (see `wrangler.toml`): `POP`, `LATITUDE`, `LONGITUDE` (unset in
//! the global staging and production Workers: each request's colo and
//! coordinates from `request.cf` stand in),
//! `ROUTING_URL`, `TABLE_MAX_AGE_MS`, the rate limits (`RATE_PER_S`,
//! `RATE_BURST`, `WRITE_RATE_*`, `SESSION_RATE_*`, `ADDRESS_RATE_FACTOR`),
//! `SYNC_STALE_MS`; the secret `EDGE_KEY`.
//!
//! A Worker has no background tasks, so it keeps its routing table and
//! purge state current from the requests it serves: each isolate keeps one
//! long poll of the purge feed and of the routing API running (in
//! `waitUntil`, after the response) while it has traffic, and the first
//! request after a quiet spell longer than `SYNC_STALE_MS` applies pending
//! purges before it answers.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use edge_core::http::{MAX_REQUEST_BODY_BYTES, Request as EdgeRequest, Response as EdgeResponse};
use edge_core::origin::Failure;
use edge_core::{Edge, EdgeConfig, Handled, Host, Outbound};
use worker::js_sys;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{
    AbortController, Cache, Context, Date, Delay, Env, Fetch, Headers, Method, Request,
    RequestInit, Response, event,
};

/// Longest wait for an origin: a long poll (30 s at most) and some slack.
const CALL_TIMEOUT: Duration = Duration::from_secs(35);
/// How long one background long poll waits for news.
const LONG_POLL_MS: u64 = 20_000;
/// Entries in the Cache API live this long at most; edge-core decides
/// freshness itself, and an evicted key only costs a miss (an evicted tag
/// generation reads as 0, which no stored entry matches after a purge).
const STORE_MAX_AGE_S: u32 = 86_400;
/// The key under which the time of the last completed purge sync is kept.
const LAST_SYNC_KEY: &str = "ws1";

thread_local! {
    /// Whether this isolate has a long poll running.
    static POLLING: Cell<bool> = const { Cell::new(false) };
}

struct WorkerHost {
    cache: Cache,
}

/// The Cache API is keyed by URL: each edge-core key becomes one.
fn store_url(key: &str) -> String {
    let mut url = String::from("https://edge-store.meridian.internal/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// A UUID from the runtime's CSPRNG (`crypto.randomUUID()`).
fn random_uuid() -> Option<String> {
    let global = js_sys::global();
    let crypto = js_sys::Reflect::get(&global, &JsValue::from_str("crypto")).ok()?;
    let f = js_sys::Reflect::get(&crypto, &JsValue::from_str("randomUUID"))
        .ok()?
        .dyn_into::<js_sys::Function>()
        .ok()?;
    f.call0(&crypto).ok()?.as_string()
}

fn method_of(name: &str) -> Method {
    Method::from(name.to_owned())
}

fn headers_of(pairs: &[(String, String)]) -> Headers {
    let headers = Headers::new();
    for (name, value) in pairs {
        // A header the runtime refuses (forbidden name or bad value) is
        // dropped rather than failing the request.
        let _ = headers.append(name, value);
    }
    headers
}

fn pairs_of(headers: &Headers) -> Vec<(String, String)> {
    headers
        .entries()
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .collect()
}

impl Host for WorkerHost {
    fn now_ms(&self) -> u64 {
        Date::now().as_millis()
    }

    fn nonce(&self) -> String {
        random_uuid().unwrap_or_else(|| {
            // Never expected in workerd; still a valid, unlikely-to-repeat
            // nonce.
            format!(
                "{:016x}{:016x}",
                Date::now().as_millis(),
                (js_sys::Math::random() * 1e16) as u64
            )
        })
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut response = self.cache.get(store_url(key), false).await.ok()??;
        response.bytes().await.ok()
    }

    async fn set(&self, key: &str, value: &[u8]) {
        let headers = Headers::new();
        let _ = headers.set("cache-control", &format!("max-age={STORE_MAX_AGE_S}"));
        let _ = headers.set("content-type", "application/octet-stream");
        let response = Response::builder()
            .with_headers(headers)
            .fixed(value.to_vec());
        // A cache write that fails only costs a later miss.
        let _ = self.cache.put(store_url(key), response).await;
    }

    async fn fetch(&self, request: Outbound) -> Result<EdgeResponse, Failure> {
        let mut init = RequestInit::new();
        init.with_method(method_of(&request.method))
            .with_headers(headers_of(&request.headers));
        if !request.body.is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(&request.body[..]).into()));
        }
        // Building the request failed: nothing left the Worker.
        let outgoing = Request::new_with_init(&request.url, &init).map_err(|_| Failure::NotSent)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(outgoing);
        let sent = std::pin::pin!(fetch.send_with_signal(&signal));
        let timer = std::pin::pin!(Delay::from(CALL_TIMEOUT));
        let mut response = match futures::future::select(sent, timer).await {
            futures::future::Either::Left((Ok(response), _)) => response,
            // fetch rejects a refused connection and a lost answer alike
            // (a TypeError whose words are the runtime's): either may have
            // been applied, so only a write that is safe to repeat is sent
            // elsewhere.
            futures::future::Either::Left((Err(_), _)) => return Err(Failure::Lost),
            futures::future::Either::Right(((), _)) => {
                controller.abort();
                return Err(Failure::Lost);
            }
        };
        let status = response.status_code();
        let headers = pairs_of(response.headers());
        // Origin bodies are bounded (declared or read): a longer one counts
        // as a lost answer.
        let limit = edge_core::http::MAX_ORIGIN_BODY_BYTES;
        let declared = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(Failure::Lost);
        }
        let body = response.bytes().await.map_err(|_| Failure::Lost)?;
        if body.len() > limit {
            return Err(Failure::Lost);
        }
        Ok(EdgeResponse {
            status,
            headers,
            body,
        })
    }
}

/// The settings: the `EDGE_KEY` secret and the other settings as vars,
/// named as edge-core names them but in upper case.
/// Where Cloudflare ran this request: `request.cf`'s colo (an airport
/// code) and the client's latitude and longitude, each when present.
/// Read field by field: workers-rs's accessors unwrap.
#[derive(Debug, Default)]
struct Place {
    colo: Option<String>,
    latitude: Option<String>,
    longitude: Option<String>,
}

fn place_of(req: &Request) -> Place {
    let Ok(cf) = js_sys::Reflect::get(req.inner(), &JsValue::from_str("cf")) else {
        return Place::default();
    };
    if !cf.is_object() {
        return Place::default();
    }
    let text = |key: &str| {
        js_sys::Reflect::get(&cf, &JsValue::from_str(key))
            .ok()
            .and_then(|v| v.as_string())
    };
    Place {
        colo: text("colo"),
        latitude: text("latitude"),
        longitude: text("longitude"),
    }
}

/// The settings from vars and the secret. One global Worker (wrangler.toml's
/// staging and production) sets no `POP`, `LATITUDE` or `LONGITUDE`: each
/// request then takes its colo as the POP's name and the client's
/// coordinates as the point the nearest region is chosen from.
fn config(env: &Env, place: &Place) -> Result<EdgeConfig, String> {
    EdgeConfig::from_lookup("worker", |name| {
        let upper = name.to_ascii_uppercase();
        if name == "edge_key" {
            return env.secret(&upper).ok().map(|v| v.to_string());
        }
        let var = env.var(&upper).ok().map(|v| v.to_string());
        var.or_else(|| match name {
            "pop" => place.colo.clone(),
            "latitude" => place.latitude.clone(),
            "longitude" => place.longitude.clone(),
            _ => None,
        })
    })
    .map_err(|missing| {
        let kind = if missing.0 == "edge_key" {
            "secret"
        } else {
            "var"
        };
        format!("the {} {kind} is not set", missing.0.to_ascii_uppercase())
    })
}

async fn to_edge(mut req: Request) -> Result<EdgeRequest, EdgeResponse> {
    let url = req
        .url()
        .map_err(|_| EdgeResponse::problem(400, "bad-request", "Bad request", "unreadable URL"))?;
    let too_large = || {
        EdgeResponse::problem(
            413,
            "body-too-large",
            "Request body too large",
            &format!("request bodies are limited to {MAX_REQUEST_BODY_BYTES} bytes"),
        )
    };
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY_BYTES) {
        return Err(too_large());
    }
    let body = match req.method() {
        Method::Get | Method::Head => Vec::new(),
        _ => req.bytes().await.map_err(|_| {
            EdgeResponse::problem(400, "bad-request", "Bad request", "unreadable body")
        })?,
    };
    if body.len() > MAX_REQUEST_BODY_BYTES {
        return Err(too_large());
    }
    Ok(EdgeRequest {
        method: req.method().as_ref().to_owned(),
        path: url.path().to_owned(),
        query: url.query().map(str::to_owned),
        headers: pairs_of(req.headers()),
        body,
        // Cloudflare (and `wrangler dev`) set this; a client cannot.
        client: req
            .headers()
            .get("cf-connecting-ip")
            .ok()
            .flatten()
            .unwrap_or_default(),
    })
}

fn to_worker(response: EdgeResponse) -> worker::Result<Response> {
    let builder = Response::builder()
        .with_status(response.status)
        .with_headers(headers_of(&response.headers));
    Ok(if response.body.is_empty() {
        builder.empty()
    } else {
        builder.fixed(response.body)
    })
}

async fn last_sync_ms(edge: &Edge<WorkerHost>) -> u64 {
    edge.host
        .get(LAST_SYNC_KEY)
        .await
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn mark_synced(edge: &Edge<WorkerHost>) {
    let now = edge.host.now_ms().to_string();
    edge.host.set(LAST_SYNC_KEY, now.as_bytes()).await;
}

/// Keeps this POP's purge state and routing table current: applies
/// pending purges first when nobody has synced for `stale_ms`, and starts
/// this isolate's long poll when it has none running.
async fn keep_current(edge: &Rc<Edge<WorkerHost>>, ctx: &Context, stale_ms: u64) {
    if POLLING.with(Cell::get) {
        return;
    }
    if edge.host.now_ms().saturating_sub(last_sync_ms(edge).await) > stale_ms
        && edge.sync_purge(0).await.is_some()
    {
        mark_synced(edge).await;
    }
    POLLING.with(|p| p.set(true));
    let edge = Rc::clone(edge);
    ctx.wait_until(async move {
        let (purged, _) = futures::future::join(
            edge.sync_purge(LONG_POLL_MS),
            edge.watch_table(LONG_POLL_MS),
        )
        .await;
        if purged.is_some() {
            mark_synced(&edge).await;
        }
        POLLING.with(|p| p.set(false));
    });
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let config = match config(&env, &place_of(&req)) {
        Ok(config) => config,
        Err(detail) => {
            return to_worker(EdgeResponse::problem(
                500,
                "edge-misconfigured",
                "Edge misconfigured",
                &detail,
            ));
        }
    };
    let stale_ms = env
        .var("SYNC_STALE_MS")
        .ok()
        .and_then(|v| v.to_string().trim().parse().ok())
        .unwrap_or(2_000);
    let edge = Rc::new(Edge::new(
        WorkerHost {
            cache: Cache::open("meridian-edge".into()).await,
        },
        config,
    ));
    let req = match to_edge(req).await {
        Ok(req) => req,
        Err(problem) => return to_worker(problem),
    };
    keep_current(&edge, &ctx, stale_ms).await;
    let Handled { response, deferred } = edge.handle(req).await;
    // Deferred work (a stale-while-revalidate refresh) runs after the
    // response, as the platform intends.
    if !deferred.is_empty() {
        let edge = Rc::clone(&edge);
        ctx.wait_until(async move {
            for deferred in deferred {
                edge.run_deferred(deferred).await;
            }
        });
    }
    to_worker(response)
}
