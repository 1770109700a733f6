//! FoundationDB's size limits, enforced identically on every engine by the
//! [`Transaction`](crate::Transaction) wrapper before an operation reaches
//! the engine.

use crate::error::{Error, Result};

/// Largest key, in bytes (FoundationDB: 10,000).
pub const KEY_SIZE_LIMIT: usize = 10_000;
/// Largest value, in bytes (FoundationDB: 100,000).
pub const VALUE_SIZE_LIMIT: usize = 100_000;
/// Largest transaction (mutations plus conflict ranges), in bytes
/// (FoundationDB: 10,000,000).
pub const TRANSACTION_SIZE_LIMIT: usize = 10_000_000;

/// The first key of the system keyspace; application keys sort before it.
pub const SYSTEM_KEYSPACE: &[u8] = b"\xff";

/// An application key: within the size limit and before the system
/// keyspace (FoundationDB refuses both, so both engines do).
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    check_key_size(key)?;
    if key >= SYSTEM_KEYSPACE {
        return Err(Error::KeyOutsideLegalRange { len: key.len() });
    }
    Ok(())
}

/// An exclusive range end: may be the system keyspace's first key itself.
pub(crate) fn check_range_end(end: &[u8]) -> Result<()> {
    check_key_size(end)?;
    if end > SYSTEM_KEYSPACE {
        return Err(Error::KeyOutsideLegalRange { len: end.len() });
    }
    Ok(())
}

fn check_key_size(key: &[u8]) -> Result<()> {
    if key.len() > KEY_SIZE_LIMIT {
        return Err(Error::KeyTooLarge {
            size: key.len(),
            limit: KEY_SIZE_LIMIT,
        });
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > VALUE_SIZE_LIMIT {
        return Err(Error::ValueTooLarge {
            size: value.len(),
            limit: VALUE_SIZE_LIMIT,
        });
    }
    Ok(())
}
