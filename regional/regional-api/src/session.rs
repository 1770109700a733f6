//! The shopper session token: `<base64url(claims JSON)>.<base64url(HMAC)>`.
//! The region issues and verifies it (it alone holds the session key); the
//! edge reads its claims unverified, only to route the request to the
//! shopper's shard. Both read the claims with this module.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use topology::ShardedId;

/// Longest token either side accepts, in bytes.
pub const MAX_TOKEN_LEN: usize = 512;

/// A session's claims.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The shopper id (its shard is where the shopper's data lives).
    pub sub: ShardedId,
    pub exp_ms: u64,
}

impl Claims {
    /// The token's first part: what the region signs.
    pub fn encode_payload(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A token split into its payload (as sent) and its signature bytes;
/// `None` when it is too long or not two base64url parts.
pub fn split(token: &str) -> Option<(&str, Vec<u8>)> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (payload, signature) = token.split_once('.')?;
    Some((payload, URL_SAFE_NO_PAD.decode(signature).ok()?))
}

/// The claims of a token's payload, unverified.
pub fn decode_payload(payload: &str) -> Option<Claims> {
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The claims of a whole token, unverified (the edge's routing hint).
pub fn unverified_claims(token: &str) -> Option<Claims> {
    decode_payload(split(token)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_and_bounds_hold() {
        let claims = Claims {
            sub: "eu.01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap(),
            exp_ms: 7,
        };
        let token = format!("{}.c2ln", claims.encode_payload());
        assert_eq!(unverified_claims(&token), Some(claims));
        assert_eq!(unverified_claims("garbage"), None);
        let long = format!("{}.{}", "a".repeat(MAX_TOKEN_LEN), "c2ln");
        assert_eq!(split(&long), None);
    }
}
