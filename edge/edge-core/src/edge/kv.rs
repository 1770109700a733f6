//! The edge's key-value store, as every platform keeps it: one
//! definition of its keys, of which may be evicted, and of its bound.
//!
//! Cache entries, rate-limit buckets and tag generations live in a fixed
//! number of slots each (a stable hash of their logical key), so the store
//! holds at most [`kv::MAX_KEYS`] keys however many distinct URLs and
//! clients arrive (a Spin key-value store never evicts). A slot shared by
//! two logical keys is safe: an entry records its full key and a lookup
//! of another key misses; a shared bucket limits both clients together; a
//! shared tag generation only purges more than needed.
/// The stored routing table.
pub const TABLE: &str = "rt1";
/// The purge feed cursor.
pub const PURGE_CURSOR: &str = "pc1";
/// When a refresh of the stale routing table last started (its lease).
pub const TABLE_REFRESH: &str = "rr1";
/// Slots for cache entries, rate-limit buckets and tag generations.
pub const CACHE_SLOTS: u64 = 65_536;
pub const BUCKET_SLOTS: u64 = 16_384;
pub const TAG_SLOTS: u64 = 65_536;
/// Keys the edge ever writes, at most.
pub const MAX_KEYS: u64 = CACHE_SLOTS + BUCKET_SLOTS + TAG_SLOTS + 3;

/// What a key holds, and whether a store may drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A cached response: may be dropped (a later miss).
    Cache,
    /// A rate-limit bucket: may be dropped (the client starts afresh).
    Bucket,
    /// A tag's purge generation: may be dropped (it then reads as 0,
    /// which no entry stored after a purge carries: misses, not stale
    /// hits).
    Tag,
    /// The routing table, its refresh lease or the purge cursor: must be
    /// kept.
    Pinned,
}

impl Class {
    pub fn evictable(self) -> bool {
        self != Class::Pinned
    }
}

/// The class of a key the edge wrote.
pub fn class(key: &str) -> Class {
    if key.starts_with("c1:") {
        Class::Cache
    } else if key.starts_with("r1:") {
        Class::Bucket
    } else if key.starts_with("t1:") {
        Class::Tag
    } else {
        Class::Pinned
    }
}

/// FNV-1a: stable across processes and platforms (unlike std's
/// randomly seeded hasher), so every instance of a POP finds the slot.
fn slot(text: &str, slots: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % slots
}

/// The slot a cached response for the logical cache key lives in.
pub fn cache(key: &str) -> String {
    format!("c1:{:x}", slot(key, CACHE_SLOTS))
}
/// A tag's purge generation.
pub fn tag(tag: &str) -> String {
    format!("t1:{:x}", slot(tag, TAG_SLOTS))
}
/// A client's rate-limit bucket.
pub fn bucket(client: &str) -> String {
    format!("r1:{:x}", slot(client, BUCKET_SLOTS))
}
