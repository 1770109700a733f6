//! [`ShardedId`]: an id that names its own shard, `<shard>.<ulid>`
//! (e.g. `eu.01ARZ3NDEKTSV4RRFFQ69G5FAV`), so an edge can route a write
//! without a lookup.
//!
//! Only the canonical text form is accepted (lowercase shard, uppercase
//! Crockford base32 ulid), so every id has exactly one spelling: ids end up
//! in URLs, cache keys and logs, where two spellings of one id would be two
//! different things. Making new ulids is the caller's job; this module only
//! joins, prints and parses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::names::{NameError, ShardId};

/// An id carrying the shard that owns it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShardedId {
    shard: ShardId,
    ulid: Ulid,
}

impl ShardedId {
    /// Longest text [`FromStr`] will look at, in bytes. The longest valid id
    /// is 35 bytes (8-byte shard, `.`, 26-byte ulid); the bound is checked
    /// before anything else so hostile input costs nothing.
    pub const MAX_TEXT_LEN: usize = 64;

    /// The accepted text as an anchored regular expression: a
    /// [`ShardId`](crate::ShardId), `.`, and a canonical ulid (26 uppercase
    /// Crockford base32 characters, the first at most `7`). A test holds it
    /// equal to [`FromStr`].
    pub const PATTERN: &'static str = "^[a-z][a-z0-9]{0,7}\\.[0-7][0-9A-HJKMNP-TV-Z]{25}$";

    /// Joins a shard and a ulid.
    pub fn new(shard: ShardId, ulid: Ulid) -> Self {
        Self { shard, ulid }
    }

    /// Builds the ulid from a millisecond unix timestamp and random bits
    /// (only the low 48 and 80 bits are kept, as in [`Ulid::from_parts`]).
    pub fn from_parts(shard: ShardId, timestamp_ms: u64, random: u128) -> Self {
        Self::new(shard, Ulid::from_parts(timestamp_ms, random))
    }

    /// The shard that owns this id.
    pub fn shard(&self) -> &ShardId {
        &self.shard
    }

    /// The id within its shard.
    pub fn ulid(&self) -> Ulid {
        self.ulid
    }
}

impl fmt::Display for ShardedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.shard, self.ulid)
    }
}

/// `ulid::DecodeError` implements `std::error::Error` only with the `ulid`
/// crate's `std` feature, which this crate leaves off: it pulls in
/// `getrandom`, which does not build for `wasm32-unknown-unknown`. This
/// wrapper makes it usable as a `#[source]` while keeping the original value
/// (not a string) for callers that want to match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{0}")]
pub struct UlidDecodeError(pub ulid::DecodeError);

/// Why a string is not a [`ShardedId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The input is the empty string.
    #[error("id is empty")]
    Empty,
    /// The input is longer than [`ShardedId::MAX_TEXT_LEN`]; its text is left
    /// out because it is unbounded and untrusted.
    #[error("id is {len_bytes} bytes long; at most {max} are allowed", max = ShardedId::MAX_TEXT_LEN)]
    TooLong {
        /// Length of the rejected input.
        len_bytes: usize,
    },
    /// No `.` between shard and ulid.
    #[error("id {id:?} has no '.' between shard and ulid")]
    MissingSeparator {
        /// The rejected input.
        id: String,
    },
    /// More than one `.`.
    #[error("id {id:?} has more than one '.'")]
    ExtraSeparator {
        /// The rejected input.
        id: String,
    },
    /// The part before the `.` is not a valid [`ShardId`].
    #[error("id has a bad shard part {shard:?}")]
    BadShard {
        /// The text before the `.`.
        shard: String,
        /// Which rule it broke.
        #[source]
        source: NameError,
    },
    /// The part after the `.` is not Crockford base32 of the right length.
    #[error("id has a bad ulid part {ulid:?}")]
    BadUlid {
        /// The text after the `.`.
        ulid: String,
        /// The ulid crate's decode error.
        #[source]
        source: UlidDecodeError,
    },
    /// The part after the `.` decodes, but is not the one canonical spelling
    /// (it has lowercase letters, or its first character is above `7` and
    /// would overflow 128 bits).
    #[error(
        "id has a non-canonical ulid part {ulid:?}: expected 26 uppercase Crockford base32 characters, the first at most '7'"
    )]
    NonCanonicalUlid {
        /// The text after the `.`.
        ulid: String,
    },
}

impl FromStr for ShardedId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() > Self::MAX_TEXT_LEN {
            return Err(IdError::TooLong { len_bytes: s.len() });
        }
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let Some((shard_text, ulid_text)) = s.split_once('.') else {
            return Err(IdError::MissingSeparator { id: s.to_owned() });
        };
        // Checked before the parts so "eu.a.b" gets the clear message rather
        // than a base32 complaint about "a.b".
        if ulid_text.contains('.') {
            return Err(IdError::ExtraSeparator { id: s.to_owned() });
        }
        let shard = shard_text
            .parse::<ShardId>()
            .map_err(|source| IdError::BadShard {
                shard: shard_text.to_owned(),
                source,
            })?;
        let ulid = Ulid::from_string(ulid_text).map_err(|source| IdError::BadUlid {
            ulid: ulid_text.to_owned(),
            source: UlidDecodeError(source),
        })?;
        // The decoder accepts lowercase and silently drops bits that overflow
        // 128; re-encoding and comparing rejects both without a second
        // alphabet table.
        let mut canonical = [0u8; ulid::ULID_LEN];
        if ulid.array_to_str(&mut canonical).as_bytes() != ulid_text.as_bytes() {
            return Err(IdError::NonCanonicalUlid {
                ulid: ulid_text.to_owned(),
            });
        }
        Ok(Self { shard, ulid })
    }
}

impl TryFrom<String> for ShardedId {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<ShardedId> for String {
    fn from(id: ShardedId) -> String {
        id.to_string()
    }
}
