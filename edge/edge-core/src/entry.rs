//! A cached response as stored in the edge's key-value store, and its
//! freshness.

use crate::policy::CachePolicy;

/// Largest body stored, in bytes; larger responses pass uncached.
pub const MAX_BODY_BYTES: usize = 512 * 1024;
const MAGIC: &[u8; 4] = b"MRE2";

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The logical cache key (its slot in the store may be shared).
    pub key: String,
    pub status: u16,
    pub content_type: String,
    pub etag: String,
    pub stored_ms: u64,
    pub policy: CachePolicy,
    /// Each purge tag and its generation when the entry was stored: a
    /// later generation (a purge) invalidates the entry.
    pub tags: Vec<(String, u64)>,
    /// The cart's version, for a cart.
    pub cart_version: Option<u64>,
    /// The region that answered the fill (its `x-meridian-region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// How an entry may be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Serve it and revalidate in the background.
    StaleWhileRevalidate,
    /// Serve it only if the origin fails.
    StaleIfError,
    Expired,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("cache entry is malformed")]
    Malformed,
}

impl Entry {
    /// Age in whole seconds.
    pub fn age_s(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_ms) / 1000
    }

    pub fn freshness(&self, now_ms: u64) -> Freshness {
        let age_ms = now_ms.saturating_sub(self.stored_ms);
        let ttl_ms = u64::from(self.policy.ttl_s) * 1000;
        let swr_ms = ttl_ms + u64::from(self.policy.swr_s) * 1000;
        let sie_ms = ttl_ms + u64::from(self.policy.sie_s) * 1000;
        if age_ms < ttl_ms {
            Freshness::Fresh
        } else if age_ms < swr_ms {
            Freshness::StaleWhileRevalidate
        } else if age_ms < sie_ms {
            Freshness::StaleIfError
        } else {
            Freshness::Expired
        }
    }

    /// `MRE1`, header length (u32 LE), JSON header, body.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(8 + header.len() + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(
            &u32::try_from(header.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(EntryError::Malformed);
        }
        let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let header = bytes.get(8..8 + len).ok_or(EntryError::Malformed)?;
        let mut entry: Entry = serde_json::from_slice(header).map_err(|_| EntryError::Malformed)?;
        entry.body = bytes[8 + len..].to_vec();
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            key: "c1:/v1/products/A-1".into(),
            status: 200,
            content_type: "application/json".into(),
            etag: "W/\"1\"".into(),
            stored_ms: 1_000,
            policy: CachePolicy {
                ttl_s: 10,
                swr_s: 5,
                sie_s: 60,
                shared: true,
            },
            tags: vec![("product:A".into(), 3)],
            cart_version: None,
            region: Some("eu-west".into()),
            body: b"{\"a\":1}".to_vec(),
        }
    }

    #[test]
    fn round_trip_and_garbage() {
        let e = entry();
        assert_eq!(Entry::decode(&e.encode()), Ok(e));
        assert_eq!(Entry::decode(b"nope"), Err(EntryError::Malformed));
        assert_eq!(
            Entry::decode(b"MRE1\xff\xff\xff\xffx"),
            Err(EntryError::Malformed)
        );
    }

    #[test]
    fn freshness_windows() {
        let e = entry();
        assert_eq!(e.freshness(1_000), Freshness::Fresh);
        assert_eq!(e.freshness(10_999), Freshness::Fresh);
        assert_eq!(e.freshness(11_000), Freshness::StaleWhileRevalidate);
        assert_eq!(e.freshness(16_000), Freshness::StaleIfError);
        assert_eq!(e.freshness(71_000), Freshness::Expired);
    }
}
