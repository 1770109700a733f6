//! A network link in front of a database: every round trip a transaction
//! makes to the cluster pays the link's round-trip time, as a region's calls
//! to a FoundationDB cluster in another region do. Like [`crate::fault`], it
//! wraps any engine's [`RawDatabase`] and names no engine.
//!
//! What pays one round trip: each read (`get`, each `get_range` chunk) and
//! a commit that writes. Buffered writes, conflict ranges and a read-only
//! commit (nothing to send) pay nothing. A real client also pays one for its
//! read version; the model folds that into the first read's, and a
//! transaction that writes without reading pays it at its commit. A commit's
//! round trip is two crossings, as on a real network: the request reaches
//! the cluster after half the round trip, commits there (visible to every
//! reader at once, a watcher by the cluster included), and the answer
//! comes back after the other half. A link cut while the answer is on its
//! way makes the commit [`Error::CommitUnknownResult`]: it happened, and
//! the caller cannot know.
//!
//! The link's state can change while it is in use: a drill slows it
//! ([`Link::set_rtt`]), cuts it ([`Link::set_partitioned`]: every round
//! trip fails at once, nothing sent) or browns it out
//! ([`Link::set_brownout`]: that share of round trips fails the same way).
//! A failed round trip is [`Error::Unreachable`], never "maybe applied":
//! the call was not sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::backend::{CommitInfo, RawTransaction, SharedRawDatabase};
use crate::error::{Error, Result};

/// Largest round-trip time a link takes (a bound on what a config or a
/// drill can make a call wait): the latency model's.
pub const MAX_RTT: Duration = topology::latency::MAX_RTT;

/// One link's round-trip time, shared by every database wrapped with it.
#[derive(Debug, Default)]
pub struct Link {
    rtt_us: AtomicU64,
    partitioned: AtomicBool,
    /// Share of round trips that fail, in millionths.
    brownout_ppm: AtomicU64,
    /// State of the brownout's choice (xorshift), so a seed repeats it.
    choice: AtomicU64,
    /// Round trips paid so far.
    trips: AtomicU64,
    /// Round trips that failed (partition or brownout).
    failed: AtomicU64,
}

impl Link {
    pub fn new(rtt: Duration) -> Arc<Link> {
        let link = Arc::new(Link::default());
        link.set_rtt(rtt);
        link.choice.store(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst);
        link
    }

    /// Cuts the link (every round trip fails at once) or restores it.
    pub fn set_partitioned(&self, partitioned: bool) {
        self.partitioned.store(partitioned, Ordering::SeqCst);
    }

    pub fn partitioned(&self) -> bool {
        self.partitioned.load(Ordering::SeqCst)
    }

    /// From now on `share` (0 to 1) of round trips fail; `seed` fixes
    /// which.
    pub fn set_brownout(&self, share: f64, seed: u64) {
        let ppm = if share.is_finite() {
            (share.clamp(0.0, 1.0) * 1e6).round() as u64
        } else {
            0
        };
        self.choice.store(seed | 1, Ordering::SeqCst);
        self.brownout_ppm.store(ppm, Ordering::SeqCst);
    }

    /// Round trips that failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// The round-trip time from now on (at most [`MAX_RTT`]).
    pub fn set_rtt(&self, rtt: Duration) {
        let us = u64::try_from(rtt.min(MAX_RTT).as_micros()).unwrap_or(u64::MAX);
        self.rtt_us.store(us, Ordering::SeqCst);
    }

    pub fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_us.load(Ordering::SeqCst))
    }

    /// Round trips paid through this link so far.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::SeqCst)
    }

    pub fn wrap(self: &Arc<Self>, raw: SharedRawDatabase) -> SharedRawDatabase {
        crate::layer::wrap(self.clone(), raw)
    }

    /// One round trip: refused at once when cut or browned out (nothing
    /// sent), else paid in time.
    async fn round_trip(&self) -> Result<()> {
        self.send().await?;
        self.reply().await
    }

    /// A message's way out (half the round trip): refused at once when cut
    /// or browned out, nothing sent. With [`Link::reply`], what a call
    /// between two places (e.g. one region's service calling another's)
    /// pays on this link.
    pub async fn send(&self) -> Result<()> {
        self.trips.fetch_add(1, Ordering::SeqCst);
        if self.partitioned() {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Unreachable {
                reason: "the link to the cluster is cut",
            });
        }
        let ppm = self.brownout_ppm.load(Ordering::SeqCst);
        if ppm > 0 && self.next_choice() % 1_000_000 < ppm {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Unreachable {
                reason: "a call to the cluster was lost (brownout)",
            });
        }
        let half = self.rtt() / 2;
        if !half.is_zero() {
            tokio::time::sleep(half).await;
        }
        Ok(())
    }

    /// An answer on its way back (half the round trip): lost when the link
    /// is cut by the time it would arrive.
    pub async fn reply(&self) -> Result<()> {
        let half = self.rtt() / 2;
        if !half.is_zero() {
            tokio::time::sleep(half).await;
        }
        if self.partitioned() {
            return Err(Error::Unreachable {
                reason: "the link was cut while the answer was on its way",
            });
        }
        Ok(())
    }

    /// A notification from the cluster (a watch that fired): one way, half
    /// the round trip; it cannot arrive over a cut link.
    async fn one_way(&self) -> Result<()> {
        if self.partitioned() {
            return Err(Error::Unreachable {
                reason: "the link to the cluster is cut",
            });
        }
        let half = self.rtt() / 2;
        if !half.is_zero() {
            tokio::time::sleep(half).await;
        }
        Ok(())
    }

    fn next_choice(&self) -> u64 {
        let mut previous = self.choice.load(Ordering::SeqCst);
        loop {
            let mut x = previous;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match self
                .choice
                .compare_exchange(previous, x, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return x,
                Err(now) => previous = now,
            }
        }
    }
}

impl crate::layer::Layer for Link {
    fn before_read(&self) -> BoxFuture<'_, Result<()>> {
        self.round_trip().boxed()
    }

    /// A watch's notification crosses back: half a round trip.
    fn watch_fired(&self) -> BoxFuture<'_, Result<()>> {
        self.one_way().boxed()
    }

    /// A commit that writes crosses to the cluster (refused at once when
    /// the link is cut: not sent), commits there, and its answer crosses
    /// back; an answer lost on a link cut meanwhile leaves the commit
    /// unknown to the caller. A transaction that read nothing first pays a
    /// round trip for its read version. A read-only commit sends nothing.
    fn commit<'a>(
        &'a self,
        wrote: bool,
        read: bool,
        inner: &'a dyn RawTransaction,
    ) -> BoxFuture<'a, Result<CommitInfo>> {
        async move {
            if !wrote {
                return inner.commit().await;
            }
            if !read {
                // Nothing read yet, so no read version either: the commit
                // fetches one first (FoundationDB does, for a blind write).
                self.round_trip().await?;
            }
            self.send().await?;
            let info = inner.commit().await?;
            self.reply().await.map_err(|_| Error::CommitUnknownResult)?;
            Ok(info)
        }
        .boxed()
    }
}
