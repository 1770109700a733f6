//! Rate limiting of what costs the origin: a token bucket per class of
//! request and per subject (the shopper's session when the request
//! carries one, else the client address), stored as text in the edge's
//! key-value store (`<tokens>:<updated_ms>`). Fresh cache hits, static
//! assets and the edge's health cost the origin nothing and are never
//! limited: many shoppers behind one address (an office, a carrier's NAT)
//! browse freely. A session's requests also count against its address's
//! bucket, at `address_factor` times the class limit, so forged session
//! claims (the edge cannot check their signature) cannot multiply the
//! origin load without bound.
//!
//! Read-modify-write without a lock, so concurrent requests of one subject
//! may each spend the same token: the limit is approximate upward, never
//! refuses more than it should.

/// The limit: `burst` requests at once, refilled at `per_s` per second.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    pub per_s: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_s: 50.0,
            burst: 100.0,
        }
    }
}

/// What a request costs the origin, and so which limit it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A read the edge cannot answer from its cache (a miss, a private
    /// read).
    Read,
    /// A write (cart change, checkout).
    Write,
    /// A new session.
    Session,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Session => "session",
        }
    }
}

/// The limit of each class, and how much more an address may do than one
/// session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub read: RateLimit,
    pub write: RateLimit,
    pub session: RateLimit,
    /// An address's bucket holds this many times a session's.
    pub address_factor: f64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            read: RateLimit::default(),
            write: RateLimit {
                per_s: 10.0,
                burst: 20.0,
            },
            session: RateLimit {
                per_s: 10.0,
                burst: 100.0,
            },
            address_factor: 20.0,
        }
    }
}

impl RateLimits {
    pub fn of(&self, class: Class) -> RateLimit {
        match class {
            Class::Read => self.read,
            Class::Write => self.write,
            Class::Session => self.session,
        }
    }
}

/// One subject's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub updated_ms: u64,
}

impl Bucket {
    pub fn full(limit: &RateLimit, now_ms: u64) -> Self {
        Bucket {
            tokens: limit.burst,
            updated_ms: now_ms,
        }
    }

    pub fn decode(text: &str) -> Option<Bucket> {
        let (tokens, updated) = text.split_once(':')?;
        let tokens: f64 = tokens.parse().ok()?;
        tokens.is_finite().then_some(())?;
        Some(Bucket {
            tokens,
            updated_ms: updated.parse().ok()?,
        })
    }

    pub fn encode(&self) -> String {
        format!("{:.3}:{}", self.tokens, self.updated_ms)
    }

    /// Spends one token if there is one; else the seconds until there is
    /// (the `Retry-After` value, at least 1).
    pub fn take(&mut self, limit: &RateLimit, now_ms: u64) -> Result<(), u64> {
        let elapsed_s = now_ms.saturating_sub(self.updated_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed_s * limit.per_s).min(limit.burst);
        self.updated_ms = now_ms.max(self.updated_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if limit.per_s <= 0.0 {
            Err(60)
        } else {
            Err((((1.0 - self.tokens) / limit.per_s).ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limit = RateLimit {
            per_s: 2.0,
            burst: 3.0,
        };
        let mut b = Bucket::full(&limit, 0);
        for _ in 0..3 {
            assert_eq!(b.take(&limit, 0), Ok(()));
        }
        assert_eq!(b.take(&limit, 0), Err(1));
        assert_eq!(b.take(&limit, 499), Err(1));
        assert_eq!(b.take(&limit, 500), Ok(()));
        let round = Bucket::decode(&b.encode()).unwrap();
        assert!((round.tokens - b.tokens).abs() < 0.01);
        assert_eq!(Bucket::decode("NaN:1"), None);
        assert_eq!(Bucket::decode("garbage"), None);
    }
}
