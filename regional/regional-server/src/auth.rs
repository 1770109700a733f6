//! Who may call what.
//!
//! - Edges sign every call with HMAC-SHA256 over method, path and query,
//!   timestamp, nonce and body digest, with a shared secret
//!   ([`topology::signing`]); the server refuses a signature that is
//!   missing, wrong, outside the replay window, or already seen.
//! - Shoppers carry a session token the API issued (`POST /v1/sessions`):
//!   the shopper id and an expiry, signed with the session key. A session
//!   reads and changes only its own carts and orders.
//! - Admin endpoints take the admin token as a bearer token.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use topology::ShardedId;

use crate::problem::ApiError;

type HmacSha256 = Hmac<Sha256>;

pub use topology::signing::{
    NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign as sign_edge_request,
};

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// Checks edge signatures and remembers the ones seen inside the window.
#[derive(Debug)]
pub struct EdgeVerifier {
    /// Accepted keys, primary first (two during a rotation).
    keys: Vec<Vec<u8>>,
    window_s: u64,
    seen: Mutex<Seen>,
    max_seen: usize,
}

/// Signatures (raw 32-byte MACs) of state-changing requests seen inside
/// the window, oldest first.
#[derive(Debug, Default)]
struct Seen {
    set: HashMap<[u8; 32], u64>,
    order: VecDeque<(u64, [u8; 32])>,
}

impl EdgeVerifier {
    /// A verifier accepting a signature under any of `keys`.
    pub fn new(keys: Vec<Vec<u8>>, window_s: u64, max_seen: usize) -> Self {
        EdgeVerifier {
            keys,
            window_s,
            seen: Mutex::new(Seen::default()),
            max_seen: max_seen.max(1),
        }
    }

    /// Verifies one request's signature at `now_s`.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now_s: u64,
    ) -> Result<(), ApiError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(signature), Some(timestamp), Some(nonce)) = (
            header(SIGNATURE_HEADER),
            header(TIMESTAMP_HEADER),
            header(NONCE_HEADER),
        ) else {
            return Err(ApiError::unauthorized(
                "signature-missing",
                format!(
                    "edge calls must carry {SIGNATURE_HEADER}, {TIMESTAMP_HEADER} and {NONCE_HEADER}"
                ),
            ));
        };
        if !topology::signing::nonce_is_valid(nonce) {
            return Err(ApiError::unauthorized(
                "signature-invalid",
                "nonce must be 16 to 64 of A-Z a-z 0-9 - _",
            ));
        }
        let timestamp_s: u64 = timestamp.parse().map_err(|_| {
            ApiError::unauthorized("signature-invalid", "timestamp is not unix seconds")
        })?;
        if timestamp_s.abs_diff(now_s) > self.window_s {
            return Err(ApiError::unauthorized(
                "signature-expired",
                format!(
                    "timestamp is more than {} s from the server's clock",
                    self.window_s
                ),
            ));
        }
        let Some(given_bytes) = topology::signing::parse_signature(signature) else {
            return Err(ApiError::unauthorized(
                "signature-invalid",
                "signature is not v1=<64 hex digits>",
            ));
        };
        // Constant-time comparison, under each accepted key.
        if !self.keys.iter().any(|key| {
            topology::signing::verify(
                key,
                method,
                path_and_query,
                timestamp_s,
                nonce,
                body,
                &given_bytes,
            )
        }) {
            return Err(ApiError::unauthorized(
                "signature-invalid",
                "signature does not match the request",
            ));
        }
        // Only a request that changes something is worth replaying: a
        // replayed read returns what its eavesdropper already saw. Reads are
        // bounded by the timestamp window alone, which keeps the replay
        // cache proportional to the write rate.
        if matches!(method, "GET" | "HEAD") {
            return Ok(());
        }
        self.remember(given_bytes, timestamp_s, now_s)
    }

    /// Refuses a signature already seen inside the window (a replay).
    fn remember(&self, signature: [u8; 32], timestamp_s: u64, now_s: u64) -> Result<(), ApiError> {
        let mut seen = self.seen.lock();
        // An entry is kept while its timestamp could still pass the window
        // check: until `max(timestamp, arrival) + window`.
        while let Some((ts, _)) = seen.order.front() {
            if ts.saturating_add(self.window_s) >= now_s {
                break;
            }
            if let Some((_, old)) = seen.order.pop_front() {
                seen.set.remove(&old);
            }
        }
        if seen.set.contains_key(&signature) {
            return Err(ApiError::unauthorized(
                "signature-replayed",
                "this signed request was already received",
            ));
        }
        if seen.set.len() >= self.max_seen {
            // Forgetting a live signature would let it be replayed: refuse
            // instead, until the window moves on.
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "replay-cache-full",
                "Service unavailable",
                "too many signed requests inside the replay window; retry shortly",
            ));
        }
        seen.set.insert(signature, timestamp_s);
        seen.order.push_back((timestamp_s.max(now_s), signature));
        Ok(())
    }
}

/// A session's claims: the contract's one definition (the edge reads them
/// too, to route).
pub use regional_api::session::Claims;

/// Issues and checks session tokens: `<base64url claims>.<base64url hmac>`.
#[derive(Debug)]
pub struct Sessions {
    /// Accepted keys; the first issues.
    keys: Vec<Vec<u8>>,
    ttl_ms: u64,
}

impl Sessions {
    /// Issues with `keys[0]`, accepts a token signed with any of `keys`.
    pub fn new(keys: Vec<Vec<u8>>, ttl_ms: u64) -> Self {
        Sessions { keys, ttl_ms }
    }

    pub fn issue(&self, shopper: ShardedId, now_ms: u64) -> (String, Claims) {
        let claims = Claims {
            sub: shopper,
            exp_ms: now_ms.saturating_add(self.ttl_ms),
        };
        let payload = claims.encode_payload();
        let mut m = mac(self.keys.first().map(Vec::as_slice).unwrap_or_default());
        m.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        (format!("{payload}.{sig}"), claims)
    }

    /// The shopper of a `Bearer` session token.
    pub fn verify(&self, headers: &HeaderMap, now_ms: u64) -> Result<ShardedId, ApiError> {
        let Some(token) = bearer(headers) else {
            return Err(ApiError::unauthorized(
                "session-missing",
                "send the session token as `Authorization: Bearer <token>`",
            ));
        };
        let bad =
            || ApiError::unauthorized("session-invalid", "session token is malformed or forged");
        let (payload, sig) = regional_api::session::split(token).ok_or_else(bad)?;
        let signed_by = |key: &Vec<u8>| {
            let mut m = mac(key);
            m.update(payload.as_bytes());
            m.verify_slice(&sig).is_ok()
        };
        if !self.keys.iter().any(signed_by) {
            return Err(bad());
        }
        let claims = regional_api::session::decode_payload(payload).ok_or_else(bad)?;
        if claims.exp_ms <= now_ms {
            return Err(ApiError::unauthorized(
                "session-expired",
                "session expired; start a new one",
            ));
        }
        Ok(claims.sub)
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Checks the admin bearer token in constant time against each accepted
/// token (two during a rotation; admin is off when there is none).
pub fn check_admin(headers: &HeaderMap, accepted: &[Arc<str>]) -> Result<(), ApiError> {
    if accepted.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin-disabled",
            "Forbidden",
            "no admin token is configured",
        ));
    };
    let given = bearer(headers).unwrap_or_default();
    // Compare HMACs of both under a fixed key: equal-length, constant-time.
    let digest = |t: &str| {
        let mut m = mac(b"meridian-admin-compare");
        m.update(t.as_bytes());
        m.finalize().into_bytes()
    };
    let given_digest = digest(given);
    let ok = accepted.iter().fold(false, |any, expected| {
        let equal = given_digest
            .iter()
            .zip(digest(expected).iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        any | equal
    });
    if ok && !given.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "admin-token",
            "admin endpoints need the admin bearer token",
        ))
    }
}
