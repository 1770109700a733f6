//! Key layout: FoundationDB's tuple encoding and subspaces (from the
//! `foundationdb-tuple` crate, which needs no FoundationDB library), so every
//! engine lays data out byte for byte the same, plus the key arithmetic range
//! reads need.

pub use foundationdb_tuple as tuple;
pub use foundationdb_tuple::{Subspace, Versionstamp};

/// The first key after `key` in byte order: `key` followed by a zero byte.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The first key that does not start with `prefix` (FoundationDB's
/// `strinc`): strip trailing `0xff` bytes, then increment the last byte.
/// `None` when the prefix is empty or all `0xff`: no such key exists.
pub fn strinc(prefix: &[u8]) -> Option<Vec<u8>> {
    let keep = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut end = prefix[..=keep].to_vec();
    end[keep] += 1;
    Some(end)
}

/// The `[begin, end)` range of every key that starts with `prefix`.
/// An empty or all-`0xff` prefix covers up to the end of the user keyspace.
pub fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let end = strinc(prefix).unwrap_or_else(|| vec![0xff]);
    (prefix.to_vec(), end)
}

/// The 10-byte commit versionstamp FoundationDB writes into versionstamped
/// keys and values: an 8-byte big-endian commit version then a 2-byte
/// big-endian order within the commit batch. Byte order = commit order.
pub fn versionstamp_bytes(commit_version: u64, batch_order: u16) -> [u8; 10] {
    let mut out = [0u8; 10];
    out[..8].copy_from_slice(&commit_version.to_be_bytes());
    out[8..].copy_from_slice(&batch_order.to_be_bytes());
    out
}
