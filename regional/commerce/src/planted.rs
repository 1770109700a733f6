//! Known bugs the deterministic simulator must find (issue 19's proof that
//! it can fail), planted one at a time by `tests/sim`'s planted-bug test.
//! The switches exist only with the `planted-bugs` feature, which only
//! `tests/sim` enables; every one is off until a test turns it on.

/// A bug that can be planted in the commerce domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// A cart change forgets the operation ids it applied: a write
    /// repeated with its key (a commit whose outcome was unknown, an
    /// edge's or a shopper's resend) is applied again.
    SkipCartIdempotency,
    /// A compensation gives a reservation's units back twice.
    DoubleReleaseOnCompensation,
}

#[cfg(feature = "planted-bugs")]
mod switch {
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::Bug;

    static PLANTED: AtomicU8 = AtomicU8::new(0);

    fn code(bug: Bug) -> u8 {
        match bug {
            Bug::SkipCartIdempotency => 1,
            Bug::DoubleReleaseOnCompensation => 2,
        }
    }

    /// Plants `bug` (or none) for the whole process.
    pub fn plant(bug: Option<Bug>) {
        PLANTED.store(bug.map_or(0, code), Ordering::SeqCst);
    }

    pub(crate) fn planted(bug: Bug) -> bool {
        PLANTED.load(Ordering::SeqCst) == code(bug)
    }
}

#[cfg(feature = "planted-bugs")]
pub use switch::plant;
#[cfg(feature = "planted-bugs")]
pub(crate) use switch::planted;

/// Without the feature no bug can be planted.
#[cfg(not(feature = "planted-bugs"))]
pub(crate) fn planted(_bug: Bug) -> bool {
    false
}
