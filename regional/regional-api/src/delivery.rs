//! What an answer (or its absence) says about whether a request was
//! applied. The region picks its statuses by this rule and the edge reads
//! them by it: "maybe applied" is a state of its own, never folded into
//! "failed".

/// Whether a request reached its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The origin answered; the answer says what happened.
    Answered,
    /// Certainly not applied: the connection was refused before anything
    /// was sent, the region is not ready or shedding load (503), or it does
    /// not serve the data (421). Any request may go to another region.
    NotApplied,
    /// Perhaps applied: the answer was lost, or the region could not learn
    /// its own outcome in time (504). Only a request that is safe to repeat
    /// (a read, or a write with an idempotency key) may be sent again.
    MaybeApplied,
}

/// What a region's status says.
pub fn of_status(status: u16) -> Delivery {
    match status {
        503 | 421 => Delivery::NotApplied,
        504 => Delivery::MaybeApplied,
        _ => Delivery::Answered,
    }
}

/// Status a region gives a request whose outcome it does not know.
pub const MAYBE_APPLIED_STATUS: u16 = 504;
/// Status a region gives a request it certainly did not apply.
pub const NOT_APPLIED_STATUS: u16 = 503;

/// Whether a request that ended as `delivery` may be sent to another
/// region. A read always may; a write when it certainly was not applied,
/// or when its idempotency key makes a repeat harmless.
pub fn may_resend(delivery: Delivery, safe_to_repeat: bool) -> bool {
    match delivery {
        Delivery::Answered => false,
        Delivery::NotApplied => true,
        Delivery::MaybeApplied => safe_to_repeat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(of_status(MAYBE_APPLIED_STATUS), Delivery::MaybeApplied);
        assert_eq!(of_status(NOT_APPLIED_STATUS), Delivery::NotApplied);
        assert_eq!(of_status(421), Delivery::NotApplied);
        assert_eq!(of_status(200), Delivery::Answered);
        assert_eq!(of_status(409), Delivery::Answered);
        assert!(!may_resend(Delivery::MaybeApplied, false));
        assert!(may_resend(Delivery::MaybeApplied, true));
        assert!(may_resend(Delivery::NotApplied, false));
        assert!(!may_resend(Delivery::Answered, true));
    }
}
