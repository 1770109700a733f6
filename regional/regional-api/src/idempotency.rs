//! `Idempotency-Key`: what a key may be. The region deduplicates writes by
//! it; the edge resends a write whose outcome it does not know only when it
//! carries one.

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 128;
/// What [`validate`] accepts, as an anchored regular expression (for API
/// documents; a test holds the two equal).
pub const KEY_PATTERN: &str = "^[\\x21-\\x7E]{1,128}$";

/// Why a key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidKey;

impl std::fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "must be 1 to {MAX_KEY_LEN} visible ASCII characters")
    }
}

impl std::error::Error for InvalidKey {}

/// Checks a key: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
pub fn validate(key: &str) -> Result<(), InvalidKey> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        Err(InvalidKey)
    } else {
        Ok(())
    }
}

/// The key an edge gives a write the shopper sent without one, from a
/// random nonce (16 to 64 characters, so it is always valid).
pub fn edge_key(nonce: &str) -> String {
    format!("edge-{nonce}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate("k-1").is_ok());
        assert!(validate("").is_err());
        assert!(validate("has space").is_err());
        assert!(validate(&"x".repeat(MAX_KEY_LEN)).is_ok());
        assert!(validate(&"x".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(validate(&edge_key(&"n".repeat(64))).is_ok());
    }
}
