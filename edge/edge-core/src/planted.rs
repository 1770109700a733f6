//! A known bug the deterministic simulator must find (issue 19's proof
//! that it can fail), planted by `tests/sim`'s planted-bug test: the edge
//! resends a write whose outcome is unknown as a new write, under a key of
//! its own, so the region cannot tell it is a repeat. The switch exists
//! only with the `planted-bugs` feature, which only `tests/sim` enables.

#[cfg(feature = "planted-bugs")]
mod switch {
    use std::sync::atomic::{AtomicBool, Ordering};

    static RESEND_AS_NEW: AtomicBool = AtomicBool::new(false);

    /// Plants the bug (or removes it) for the whole process.
    pub fn plant(on: bool) {
        RESEND_AS_NEW.store(on, Ordering::SeqCst);
    }

    pub(crate) fn resend_as_new() -> bool {
        RESEND_AS_NEW.load(Ordering::SeqCst)
    }
}

#[cfg(feature = "planted-bugs")]
pub use switch::plant;
#[cfg(feature = "planted-bugs")]
pub(crate) use switch::resend_as_new;

/// Without the feature the bug cannot be planted.
#[cfg(not(feature = "planted-bugs"))]
pub(crate) fn resend_as_new() -> bool {
    false
}
