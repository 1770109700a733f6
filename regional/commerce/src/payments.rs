//! Payments: a gateway client behind a trait, and a simulated gateway with
//! configurable latency, decline rate and timeout rate.
//!
//! Every gateway call carries an idempotency key, as real gateways take one:
//! a call repeated with the same key returns the first call's result and
//! never charges again. That is what makes a timed-out call (outcome
//! unknown) safe to retry.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Why a gateway call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("payment declined: {reason}")]
    Declined { reason: String },
    /// No answer in time: the call may or may not have taken effect.
    #[error("payment gateway timed out; outcome unknown")]
    Timeout,
    #[error("payment gateway refused the call: {reason}")]
    Rejected { reason: String },
}

/// An authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub idempotency_key: String,
    pub amount_minor: i64,
    pub currency: String,
    /// Our reference (the order id), for the gateway's records.
    pub reference: String,
}

/// A payment gateway.
#[async_trait]
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    /// Holds the amount on the buyer's instrument; returns the
    /// authorization id.
    async fn authorize(&self, request: &AuthorizeRequest) -> Result<String, GatewayError>;
    /// Charges an authorization.
    async fn capture(&self, authorization: &str, idempotency_key: &str)
    -> Result<(), GatewayError>;
    /// Cancels an authorization that was not captured.
    async fn void(&self, authorization: &str, idempotency_key: &str) -> Result<(), GatewayError>;
}

/// The simulated gateway's behaviour, from the `[payments]` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedGatewayConfig {
    /// Added to every call.
    pub latency_ms: u64,
    /// Share of authorizations declined, 0.0 to 1.0.
    pub decline_rate: f64,
    /// Share of calls that take effect but whose answer is lost, 0.0 to 1.0.
    pub timeout_rate: f64,
    /// Seed of the random decisions (printed at start, to replay a run).
    pub seed: u64,
    /// Idempotency keys remembered at most (oldest forgotten first).
    pub max_keys: usize,
}

impl Default for SimulatedGatewayConfig {
    fn default() -> Self {
        SimulatedGatewayConfig {
            latency_ms: 0,
            decline_rate: 0.0,
            timeout_rate: 0.0,
            seed: 1,
            max_keys: 1_000_000,
        }
    }
}

impl SimulatedGatewayConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("decline_rate", self.decline_rate),
            ("timeout_rate", self.timeout_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("payments.{name} must be between 0 and 1"));
            }
        }
        if self.latency_ms > 60_000 {
            return Err("payments.latency_ms must be at most 60000".into());
        }
        if self.max_keys == 0 {
            return Err("payments.max_keys must be at least 1".into());
        }
        Ok(())
    }
}

/// What the simulated gateway did, for tests and drills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GatewayStats {
    /// Authorizations that took effect (distinct idempotency keys).
    pub authorizations: u64,
    pub declines: u64,
    pub captures: u64,
    pub voids: u64,
    /// Calls answered with a timeout.
    pub timeouts: u64,
    /// Calls answered from an earlier call with the same key.
    pub replays: u64,
}

#[derive(Debug, Clone)]
enum Outcome {
    Authorized(String),
    Declined(String),
    Done,
    Refused(&'static str),
}

#[derive(Debug)]
struct State {
    rng: StdRng,
    outcomes: HashMap<String, Outcome>,
    order: VecDeque<String>,
    /// Authorization id → captured / voided.
    authorizations: HashMap<String, AuthState>,
    stats: GatewayStats,
    /// Test hook: the next n calls time out (after taking effect).
    forced_timeouts: u32,
    next_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthState {
    Open,
    Captured,
    Voided,
}

/// A gateway simulated in memory.
#[derive(Debug)]
pub struct SimulatedGateway {
    config: SimulatedGatewayConfig,
    state: Mutex<State>,
    /// Test hook: while true, calls wait before taking effect.
    paused: tokio::sync::watch::Sender<bool>,
    /// Calls that have arrived while paused (ever).
    held: tokio::sync::watch::Sender<u64>,
}

impl SimulatedGateway {
    pub fn new(config: SimulatedGatewayConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        SimulatedGateway {
            config,
            state: Mutex::new(State {
                rng,
                outcomes: HashMap::new(),
                order: VecDeque::new(),
                authorizations: HashMap::new(),
                stats: GatewayStats::default(),
                forced_timeouts: 0,
                next_id: 1,
            }),
            paused: tokio::sync::watch::Sender::new(false),
            held: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Test hook: calls from now on wait, before taking effect, until
    /// [`SimulatedGateway::resume`].
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Waits until `n` calls in all have arrived while paused.
    pub async fn held_calls(&self, n: u64) {
        let _ = self.held.subscribe().wait_for(|held| *held >= n).await;
    }

    pub fn stats(&self) -> GatewayStats {
        self.state.lock().stats
    }

    /// The next `n` calls take effect, then answer with a timeout.
    pub fn force_timeouts(&self, n: u32) {
        self.state.lock().forced_timeouts = n;
    }

    /// Authorizations captured, by the reference they were made for.
    pub fn captured_count(&self) -> usize {
        self.state
            .lock()
            .authorizations
            .values()
            .filter(|s| **s == AuthState::Captured)
            .count()
    }

    async fn delay(&self) {
        let mut paused = self.paused.subscribe();
        if *paused.borrow_and_update() {
            self.held.send_modify(|held| *held += 1);
            let _ = paused.wait_for(|p| !*p).await;
        }
        if self.config.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.latency_ms)).await;
        }
    }

    /// Runs `effect` once per idempotency key; decides whether the answer is
    /// lost. Replays return the remembered outcome.
    fn call(
        &self,
        key: &str,
        effect: impl FnOnce(&mut State) -> Outcome,
    ) -> Result<Outcome, GatewayError> {
        let mut state = self.state.lock();
        let outcome = if let Some(outcome) = state.outcomes.get(key) {
            let outcome = outcome.clone();
            state.stats.replays += 1;
            outcome
        } else {
            let outcome = effect(&mut state);
            if state.order.len() >= self.config.max_keys
                && let Some(old) = state.order.pop_front()
            {
                state.outcomes.remove(&old);
            }
            state.order.push_back(key.to_owned());
            state.outcomes.insert(key.to_owned(), outcome.clone());
            outcome
        };
        let timeout = if state.forced_timeouts > 0 {
            state.forced_timeouts -= 1;
            true
        } else {
            let roll: f64 = state.rng.random();
            roll < self.config.timeout_rate
        };
        if timeout {
            state.stats.timeouts += 1;
            return Err(GatewayError::Timeout);
        }
        Ok(outcome)
    }
}

fn check_key(key: &str) -> Result<(), GatewayError> {
    if key.is_empty() || key.len() > 255 {
        return Err(GatewayError::Rejected {
            reason: "idempotency key must be 1 to 255 bytes".into(),
        });
    }
    Ok(())
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    async fn authorize(&self, request: &AuthorizeRequest) -> Result<String, GatewayError> {
        check_key(&request.idempotency_key)?;
        if request.amount_minor <= 0 {
            return Err(GatewayError::Rejected {
                reason: "amount must be positive".into(),
            });
        }
        self.delay().await;
        let decline_rate = self.config.decline_rate;
        let outcome = self.call(&request.idempotency_key, |state| {
            let roll: f64 = state.rng.random();
            if roll < decline_rate {
                state.stats.declines += 1;
                Outcome::Declined("card declined (simulated)".into())
            } else {
                let id = format!("auth_{:016x}", state.next_id);
                state.next_id += 1;
                state.authorizations.insert(id.clone(), AuthState::Open);
                state.stats.authorizations += 1;
                Outcome::Authorized(id)
            }
        })?;
        match outcome {
            Outcome::Authorized(id) => Ok(id),
            Outcome::Declined(reason) => Err(GatewayError::Declined { reason }),
            Outcome::Done | Outcome::Refused(_) => Err(GatewayError::Rejected {
                reason: "idempotency key was used for another kind of call".into(),
            }),
        }
    }

    async fn capture(
        &self,
        authorization: &str,
        idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        check_key(idempotency_key)?;
        self.delay().await;
        let outcome = self.call(idempotency_key, |state| {
            match state.authorizations.get(authorization).copied() {
                Some(AuthState::Open) => {
                    state
                        .authorizations
                        .insert(authorization.to_owned(), AuthState::Captured);
                    state.stats.captures += 1;
                    Outcome::Done
                }
                Some(AuthState::Captured) => Outcome::Done,
                Some(AuthState::Voided) | None => {
                    Outcome::Refused("authorization is voided or unknown")
                }
            }
        })?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Refused(reason) => Err(GatewayError::Rejected {
                reason: reason.into(),
            }),
            Outcome::Authorized(_) | Outcome::Declined(_) => Err(GatewayError::Rejected {
                reason: "idempotency key was used for another kind of call".into(),
            }),
        }
    }

    async fn void(&self, authorization: &str, idempotency_key: &str) -> Result<(), GatewayError> {
        check_key(idempotency_key)?;
        self.delay().await;
        let outcome = self.call(idempotency_key, |state| {
            match state.authorizations.get(authorization).copied() {
                Some(AuthState::Open) => {
                    state
                        .authorizations
                        .insert(authorization.to_owned(), AuthState::Voided);
                    state.stats.voids += 1;
                    Outcome::Done
                }
                Some(AuthState::Voided) => Outcome::Done,
                Some(AuthState::Captured) | None => {
                    Outcome::Refused("authorization is captured or unknown")
                }
            }
        })?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Refused(reason) => Err(GatewayError::Rejected {
                reason: reason.into(),
            }),
            Outcome::Authorized(_) | Outcome::Declined(_) => Err(GatewayError::Rejected {
                reason: "idempotency key was used for another kind of call".into(),
            }),
        }
    }
}
