//! Validated names: [`RegionId`] (`us-east`) and [`ShardId`] (`eu`).
//!
//! Both are plain strings on the wire and in the topology file; the rules are
//! checked on every way in (`FromStr`, `TryFrom<String>`, serde), so a value
//! of either type is always well formed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which kind of name failed validation, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A [`RegionId`].
    Region,
    /// A [`ShardId`].
    Shard,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Region => "region",
            NameKind::Shard => "shard",
        })
    }
}

/// Why a region or shard name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("{kind} name is empty")]
    Empty {
        /// Which kind of name.
        kind: NameKind,
    },
    /// The name is longer than the kind allows. The text itself is left out:
    /// it may be arbitrarily long untrusted input.
    #[error("{kind} name is {len_bytes} bytes long; at most {max_bytes} are allowed")]
    TooLong {
        /// Which kind of name.
        kind: NameKind,
        /// Length of the rejected input.
        len_bytes: usize,
        /// The limit for this kind.
        max_bytes: usize,
    },
    /// The first character is not a lowercase ascii letter.
    #[error("{kind} name {name:?} must start with a lowercase ascii letter")]
    BadStart {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
    },
    /// A character outside the kind's alphabet.
    #[error("{kind} name {name:?} has {ch:?} at byte {index}; allowed are {allowed}")]
    BadChar {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// The first offending character.
        ch: char,
        /// Its byte offset in `name`.
        index: usize,
        /// Human-readable description of the alphabet.
        allowed: &'static str,
    },
}

/// The rules for one kind of name.
struct Rules {
    kind: NameKind,
    /// The same rules as a regular expression (JSON Schema / ECMA-262
    /// and Rust `regex` alike), for API documents.
    pattern: &'static str,
    max_bytes: usize,
    allow_hyphen: bool,
    allowed: &'static str,
}

impl Rules {
    fn check(&self, name: &str) -> Result<(), NameError> {
        let kind = self.kind;
        // Length first, so nothing below ever looks at (or copies) an
        // unbounded input.
        if name.len() > self.max_bytes {
            return Err(NameError::TooLong {
                kind,
                len_bytes: name.len(),
                max_bytes: self.max_bytes,
            });
        }
        let mut chars = name.char_indices();
        match chars.next() {
            None => return Err(NameError::Empty { kind }),
            Some((_, c)) if c.is_ascii_lowercase() => {}
            Some(_) => {
                return Err(NameError::BadStart {
                    kind,
                    name: name.to_owned(),
                });
            }
        }
        for (index, ch) in chars {
            let ok =
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || (self.allow_hyphen && ch == '-');
            if !ok {
                return Err(NameError::BadChar {
                    kind,
                    name: name.to_owned(),
                    ch,
                    index,
                    allowed: self.allowed,
                });
            }
        }
        Ok(())
    }
}

macro_rules! validated_name {
    ($(#[$meta:meta])* $name:ident, $rules:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            const RULES: Rules = $rules;
            /// Longest accepted name, in bytes (all accepted names are ascii).
            pub const MAX_LEN: usize = Self::RULES.max_bytes;
            /// The accepted names as an anchored regular expression (what
            /// an OpenAPI document states); a test holds it equal to
            /// [`FromStr`].
            pub const PATTERN: &'static str = Self::RULES.pattern;

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::RULES.check(s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;

            fn try_from(s: String) -> Result<Self, NameError> {
                // Reuses the caller's allocation, which serde hands us.
                Self::RULES.check(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_name!(
    /// A region's name, e.g. `us-east`: 1 to 32 lowercase ascii letters,
    /// digits and `-`, starting with a letter.
    RegionId,
    Rules {
        kind: NameKind::Region,
        pattern: "^[a-z][a-z0-9-]{0,31}$",
        max_bytes: 32,
        allow_hyphen: true,
        allowed: "lowercase ascii letters, digits and '-'",
    }
);

validated_name!(
    /// A shard's id, e.g. `eu`: 1 to 8 lowercase ascii letters and digits,
    /// starting with a letter. Never contains `.`, because a
    /// [`ShardedId`](crate::ShardedId) puts its shard before the first `.`.
    ShardId,
    Rules {
        kind: NameKind::Shard,
        pattern: "^[a-z][a-z0-9]{0,7}$",
        max_bytes: 8,
        allow_hyphen: false,
        allowed: "lowercase ascii letters and digits",
    }
);
