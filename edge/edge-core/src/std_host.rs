//! The clock and nonce of [`crate::Host`] for hosts whose std sits on an
//! OS (native, WASI): the Spin component and edge-host's native side. Not
//! built for wasm32-unknown-unknown (the Worker), where `SystemTime::now`
//! panics and `RandomState` is not seeded at random.

use std::hash::{BuildHasher, Hasher};

/// Milliseconds since the Unix epoch (0 before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// 128 random bits as hex, from the OS random source std seeds its hash
/// maps with.
pub fn nonce() -> String {
    let mut out = String::with_capacity(32);
    for salt in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(salt);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonces_are_128_bit_hex_and_differ() {
        let (a, b) = (super::nonce(), super::nonce());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(super::now_ms() > 1_600_000_000_000);
    }
}
