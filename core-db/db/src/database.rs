//! The database handle and its retry loop, shared by every engine so that
//! retry, back-off, timeout and maybe-committed handling behave the same on
//! FoundationDB and on the embedded engine.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{CommitInfo, SharedRawDatabase};
use crate::error::{Error, Result, TxnError};
use crate::transaction::Transaction;

/// How `Database::run` retries. Every field is a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts after the first one before giving up with
    /// `Error::RetryLimitReached`.
    pub max_retries: u32,
    /// Wall time for all attempts together before `Error::TimedOut`.
    pub timeout_ms: u64,
    /// First back-off; doubles per retry up to `max_backoff_ms`, with jitter.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 100,
            timeout_ms: 10_000,
            initial_backoff_ms: 1,
            max_backoff_ms: 100,
        }
    }
}

/// Whether an earlier attempt of this transaction may have committed (its
/// commit returned a maybe-committed error and the loop retried): a closure
/// that is not idempotent must check before writing again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeCommitted(pub bool);

/// A database: one engine's handle plus the retry policy.
#[derive(Debug, Clone)]
pub struct Database {
    raw: SharedRawDatabase,
    policy: RetryPolicy,
    jitter: Arc<Jitter>,
}

/// Where the retry loop's back-off jitter comes from: a splitmix64 sequence,
/// seeded from the process's random state in production, or from a seed the
/// deterministic simulator gives ([`Database::with_jitter_seed`]), so that
/// one seed replays the same back-offs.
#[derive(Debug)]
struct Jitter(AtomicU64);

impl Jitter {
    fn random() -> Jitter {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6a09_e667_f3bc_c908);
        Jitter(AtomicU64::new(h.finish()))
    }

    /// The next value of the sequence.
    fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Database {
    pub fn new(raw: SharedRawDatabase) -> Self {
        Database {
            raw,
            policy: RetryPolicy::default(),
            jitter: Arc::new(Jitter::random()),
        }
    }

    /// This database with its back-off jitter drawn from `seed` (the
    /// deterministic simulator); shared by every clone made after.
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter = Arc::new(Jitter(AtomicU64::new(seed)));
        self
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    /// This database with `faults` in front of its commits (tests and
    /// drills); the original handle is unaffected.
    pub fn with_faults(&self, faults: &std::sync::Arc<crate::fault::Faults>) -> Database {
        Database {
            raw: faults.wrap(self.raw.clone()),
            policy: self.policy,
            jitter: self.jitter.clone(),
        }
    }

    /// This database behind a network `link`: each read and each writing
    /// commit pays its round-trip time (the latency model, drills); the
    /// original handle is unaffected.
    pub fn over_link(&self, link: &std::sync::Arc<crate::link::Link>) -> Database {
        Database {
            raw: link.wrap(self.raw.clone()),
            policy: self.policy,
            jitter: self.jitter.clone(),
        }
    }

    /// "embedded" or "foundationdb".
    pub fn engine(&self) -> &'static str {
        self.raw.engine()
    }

    /// A transaction to drive by hand (no retries): prefer [`Database::run`].
    pub fn create_transaction(&self) -> Result<Transaction> {
        Ok(Transaction::new(self.raw.begin()?))
    }

    /// Runs `f` in a transaction and commits it, retrying on retryable
    /// errors (conflicts, too-old read versions, unknown commit results)
    /// with exponential back-off, within the policy's retry and time bounds.
    ///
    /// `f` may run several times: it must not have effects outside the
    /// transaction, and must be idempotent when told `MaybeCommitted(true)`.
    pub async fn run<T, E, F, Fut>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(Transaction, MaybeCommitted) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: TxnError,
    {
        self.run_with_info(f).await.map(|(value, _)| value)
    }

    /// [`Database::run`], also giving the commit's version and versionstamp.
    pub async fn run_with_info<T, E, F, Fut>(&self, mut f: F) -> Result<(T, CommitInfo), E>
    where
        F: FnMut(Transaction, MaybeCommitted) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: TxnError,
    {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.policy.timeout_ms);
        let mut maybe_committed = false;
        let mut backoff_ms = self.policy.initial_backoff_ms.max(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let tx = self.create_transaction()?;
            // Phase 1: the caller's closure. A timeout here means nothing
            // was committed.
            let attempt_future = f(tx.clone(), MaybeCommitted(maybe_committed));
            let err: E = match tokio::time::timeout_at(deadline, attempt_future).await {
                Err(_) => return Err(timed_out(started, maybe_committed).into()),
                Ok(Ok(value)) => {
                    // Phase 2: commit. A timeout here may leave the commit
                    // applied.
                    match tokio::time::timeout_at(deadline, tx.commit()).await {
                        Err(_) => return Err(timed_out(started, true).into()),
                        Ok(Ok(info)) => return Ok((value, info)),
                        Ok(Err(e)) => E::from(e),
                    }
                }
                Ok(Err(e)) => e,
            };
            let retry = err
                .as_db_error()
                .map(|e| (e.is_retryable(), e.is_maybe_committed()));
            let Some((true, this_maybe_committed)) = retry else {
                // An earlier attempt may have committed: a storage error
                // that ends the retries now must not read as "not
                // applied" (e.g. the link cut after an answer was lost).
                if maybe_committed && retry.is_some_and(|(_, maybe)| !maybe) {
                    return Err(gave_up(err, attempt, maybe_committed));
                }
                return Err(err);
            };
            maybe_committed |= this_maybe_committed;
            if attempt > self.policy.max_retries {
                return Err(gave_up(err, attempt, maybe_committed));
            }
            let wake = Instant::now() + jitter(backoff_ms, self.jitter.next());
            if wake >= deadline {
                return Err(timed_out(started, maybe_committed).into());
            }
            tokio::time::sleep_until(wake).await;
            backoff_ms = (backoff_ms * 2).min(self.policy.max_backoff_ms.max(1));
        }
    }
}

/// `err` (a storage error) wrapped as the run giving up after `attempts`.
fn gave_up<E: TxnError>(err: E, attempts: u32, maybe_committed: bool) -> E {
    match err.into_db_error() {
        Ok(last) => Error::RetryLimitReached {
            attempts,
            maybe_committed,
            last: Box::new(last),
        }
        .into(),
        Err(err) => err,
    }
}

fn timed_out(started: Instant, maybe_committed: bool) -> Error {
    Error::TimedOut {
        elapsed: started.elapsed(),
        maybe_committed,
    }
}

/// A back-off in `[ceiling/2, ceiling]`, spread so that transactions that
/// conflicted together do not retry together.
fn jitter(ceiling_ms: u64, draw: u64) -> Duration {
    let ceiling_us = ceiling_ms.saturating_mul(1000);
    let half = ceiling_us / 2;
    Duration::from_micros(half + draw % (ceiling_us - half + 1))
}
