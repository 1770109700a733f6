//! Forwarding to the regions: signed, to the shard's region or the
//! nearest, resent to the next one only by the contract's rule.

use super::*;
use regional_api::headers::{FAILOVER, REGION};

impl<H: Host> Edge<H> {
    /// Sends `req` to the region(s) for `target`, signed; fails over once,
    /// by the contract's rule: a call that certainly was not applied may go
    /// to the next region, one that may have been applied only when
    /// repeating it is harmless (`repeat` is `None` for reads).
    pub(super) async fn forward(
        &self,
        req: &Request,
        target: &Target,
        repeat: Option<Repeat>,
    ) -> Response {
        let Some(table) = self.table().await else {
            return Response::problem(
                503,
                "no-routing-table",
                "Service unavailable",
                "the edge has no routing table yet",
            );
        };
        let shard = match target {
            Target::Shard(shard) => Some(shard.clone()),
            Target::SessionShard => session_shard(req),
            Target::Nearest => None,
        };
        let urls = match &shard {
            Some(shard) => origin::for_shard(&table, shard),
            // Any region, or no session (the region answers 401 whichever
            // it is).
            None => origin::nearest(&table, self.config.latitude, self.config.longitude),
        };
        let safe_to_repeat = repeat.is_none_or(|r| r.safe(req.header(IDEMPOTENCY_KEY).is_some()));
        let mut outcome = Err(Failure::NotSent);
        for (i, base) in urls.iter().enumerate() {
            if i > 0 && !origin::may_resend(origin::delivery(&outcome), safe_to_repeat) {
                break;
            }
            if i > 0
                && crate::planted::resend_as_new()
                && origin::delivery(&outcome) == Delivery::MaybeApplied
            {
                // The planted bug: the repeat goes out as a new write.
                let mut fresh = req.clone();
                fresh.headers.retain(|(n, _)| n != IDEMPOTENCY_KEY);
                fresh.headers.push((
                    IDEMPOTENCY_KEY.into(),
                    regional_api::idempotency::edge_key(&self.host.nonce()),
                ));
                outcome = self.host.fetch(self.signed(&fresh, base)).await;
                if origin::delivery(&outcome) == Delivery::Answered {
                    break;
                }
                continue;
            }
            outcome = self.host.fetch(self.signed(req, base)).await;
            if origin::delivery(&outcome) == Delivery::Answered {
                break;
            }
        }
        match outcome {
            Ok(mut response) => {
                // Served by a standby: say whose shard it is, so the page
                // can tell the shopper their region is failing over.
                if let Some(route) = shard.as_ref().and_then(|s| table.shard(s))
                    && response
                        .header(REGION)
                        .is_some_and(|r| r != route.home.as_str())
                {
                    response.set_header(FAILOVER, route.home.to_string());
                }
                response
            }
            Err(_) if urls.is_empty() => Response::problem(
                503,
                "no-region",
                "Service unavailable",
                "no region serves this data right now",
            ),
            Err(Failure::NotSent) => Response::problem(
                503,
                regional_api::problem::kinds::UNAVAILABLE,
                "Service unavailable",
                "no region could be reached; nothing was applied",
            ),
            Err(Failure::Lost) if repeat.is_some() => Response::problem(
                504,
                regional_api::problem::kinds::MAYBE_APPLIED,
                "Outcome unknown",
                "the region's answer was lost: the request may have been applied; \
                 retry with the same Idempotency-Key",
            ),
            Err(Failure::Lost) => Response::problem(
                504,
                "origin-timeout",
                "Gateway timeout",
                "the region did not answer in time",
            ),
        }
    }

    pub(super) fn signed(&self, req: &Request, base: &str) -> Outbound {
        let path = req.path_and_query();
        let now_s = self.host.now_ms() / 1000;
        let nonce = self.host.nonce();
        let signature = topology::signing::sign(
            &self.config.edge_key,
            &req.method,
            &path,
            now_s,
            &nonce,
            &req.body,
        );
        let mut headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(n, _)| FORWARDED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
            .cloned()
            .collect();
        headers.push((
            topology::signing::TIMESTAMP_HEADER.into(),
            now_s.to_string(),
        ));
        headers.push((topology::signing::NONCE_HEADER.into(), nonce));
        headers.push((topology::signing::SIGNATURE_HEADER.into(), signature));
        Outbound {
            method: req.method.clone(),
            url: format!("{}{path}", base.trim_end_matches('/')),
            headers,
            body: req.body.clone(),
        }
    }
}

/// Request headers passed on to the origin (others stay at the edge).
const FORWARDED_HEADERS: &[&str] = &[
    regional_api::headers::MIN_VERSION,
    "authorization",
    "content-type",
    "accept",
    IDEMPOTENCY_KEY,
    "if-match",
];

pub(super) fn read_target(route: &Route) -> Target {
    match route {
        Route::CartRead { cart } => Target::Shard(cart.shard().clone()),
        _ => Target::Nearest,
    }
}
