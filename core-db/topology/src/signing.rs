//! How an edge signs its calls to a regional service, defined once for both
//! sides (edge-core signs, the regional service verifies):
//!
//! ```text
//! x-meridian-timestamp: <unix seconds>
//! x-meridian-nonce:     <16 to 64 of A-Z a-z 0-9 - _, fresh per request>
//! x-meridian-signature: v1=<hex HMAC-SHA256(key, canonical request)>
//!
//! canonical request = METHOD \n path?query \n timestamp \n nonce \n hex(SHA-256(body))
//! ```

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const SIGNATURE_HEADER: &str = "x-meridian-signature";
pub const TIMESTAMP_HEADER: &str = "x-meridian-timestamp";
/// A random value per request, so two identical requests in one second
/// have different signatures and a replayed one is recognised.
pub const NONCE_HEADER: &str = "x-meridian-nonce";
/// Accepted nonce lengths, in bytes.
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=64;

type HmacSha256 = Hmac<Sha256>;

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

/// Whether `nonce` has the accepted length and alphabet.
pub fn nonce_is_valid(nonce: &str) -> bool {
    NONCE_LEN.contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The string that is signed.
pub fn canonical_request(
    method: &str,
    path_and_query: &str,
    timestamp_s: u64,
    nonce: &str,
    body: &[u8],
) -> String {
    format!(
        "{method}\n{path_and_query}\n{timestamp_s}\n{nonce}\n{}",
        hex(&Sha256::digest(body))
    )
}

/// The `x-meridian-signature` value: `v1=<hex hmac>`.
pub fn sign(
    key: &[u8],
    method: &str,
    path_and_query: &str,
    timestamp_s: u64,
    nonce: &str,
    body: &[u8],
) -> String {
    let mut m = mac(key);
    m.update(canonical_request(method, path_and_query, timestamp_s, nonce, body).as_bytes());
    format!("v1={}", hex(&m.finalize().into_bytes()))
}

/// The raw 32-byte MAC in an `x-meridian-signature` value (`v1=<64 hex
/// digits>`), the inverse of [`sign`]'s encoding; `None` for anything else.
pub fn parse_signature(value: &str) -> Option<[u8; 32]> {
    let digits = value.strip_prefix("v1=").filter(|d| d.len() == 64)?;
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Checks a raw 32-byte MAC against the request, in constant time.
pub fn verify(
    key: &[u8],
    method: &str,
    path_and_query: &str,
    timestamp_s: u64,
    nonce: &str,
    body: &[u8],
    given: &[u8],
) -> bool {
    let mut m = mac(key);
    m.update(canonical_request(method, path_and_query, timestamp_s, nonce, body).as_bytes());
    m.verify_slice(given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_encoding_round_trips() {
        let sig = sign(b"k", "GET", "/v1/purge", 1, "nonce-0123456789ab", b"");
        let raw = parse_signature(&sig).expect("parses");
        assert!(verify(
            b"k",
            "GET",
            "/v1/purge",
            1,
            "nonce-0123456789ab",
            b"",
            &raw
        ));
        assert_eq!(parse_signature("v2=00"), None);
        assert_eq!(parse_signature(&sig.replace("v1=", "v0=")), None);
        assert_eq!(
            parse_signature(&format!("{}g", &sig[..sig.len() - 1])),
            None
        );
    }

    #[test]
    fn sign_and_verify_agree_and_cover_every_part() {
        let key = b"k";
        let sig = sign(
            key,
            "POST",
            "/v1/carts?x=1",
            100,
            "nonce-0123456789ab",
            b"{}",
        );
        let raw: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&sig[3 + i..5 + i], 16).unwrap())
            .collect();
        assert!(verify(
            key,
            "POST",
            "/v1/carts?x=1",
            100,
            "nonce-0123456789ab",
            b"{}",
            &raw
        ));
        assert!(!verify(
            key,
            "PUT",
            "/v1/carts?x=1",
            100,
            "nonce-0123456789ab",
            b"{}",
            &raw
        ));
        assert!(!verify(
            key,
            "POST",
            "/v1/carts?x=2",
            100,
            "nonce-0123456789ab",
            b"{}",
            &raw
        ));
        assert!(!verify(
            key,
            "POST",
            "/v1/carts?x=1",
            101,
            "nonce-0123456789ab",
            b"{}",
            &raw
        ));
        assert!(!verify(
            key,
            "POST",
            "/v1/carts?x=1",
            100,
            "nonce-0123456789ac",
            b"{}",
            &raw
        ));
        assert!(!verify(
            key,
            "POST",
            "/v1/carts?x=1",
            100,
            "nonce-0123456789ab",
            b"[]",
            &raw
        ));
        assert!(!verify(
            b"other",
            "POST",
            "/v1/carts?x=1",
            100,
            "nonce-0123456789ab",
            b"{}",
            &raw
        ));
    }

    #[test]
    fn nonces() {
        assert!(nonce_is_valid("abcdefghijklmnop"));
        assert!(!nonce_is_valid("short"));
        assert!(!nonce_is_valid("abcdefghijklmnop!"));
        assert!(!nonce_is_valid(&"a".repeat(65)));
    }
}
