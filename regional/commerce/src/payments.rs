//! Payments: a gateway client behind a trait, and a simulated gateway with
//! configurable latency, decline rate and timeout rate.
//!
//! Every gateway call carries an idempotency key, as real gateways take one:
//! a call repeated with the same key returns the first call's result and
//! never charges again. That is what makes a timed-out call (outcome
//! unknown) safe to retry.

use std::sync::Arc;
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
    /// How long the provider remembers an idempotency key (Stripe: 24 h).
    pub key_ttl_s: u64,
    /// Where the simulated provider keeps its books: an embedded store of
    /// its own, apart from the platform's shards (relative to the config
    /// file). By default `payments` beside the shards' directories.
    pub store: Option<std::path::PathBuf>,
}

impl Default for SimulatedGatewayConfig {
    fn default() -> Self {
        SimulatedGatewayConfig {
            latency_ms: 0,
            decline_rate: 0.0,
            timeout_rate: 0.0,
            seed: 1,
            key_ttl_s: 24 * 3600,
            store: None,
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
        if !(60..=30 * 24 * 3600).contains(&self.key_ttl_s) {
            return Err("payments.key_ttl_s must be 60 s to 30 days".into());
        }
        Ok(())
    }
}

/// What the simulated gateway did in this process, for tests and drills
/// (the durable record of every charge is [`SimulatedGateway::ledger`]).
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

/// The provider's books, read from its durable store: what a drill checks
/// against the platform's confirmed orders (charges == confirmed orders).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ledger {
    /// Every authorization the provider holds (one per order it took
    /// effect for), with its state.
    pub authorizations: Vec<LedgerEntry>,
}

impl Ledger {
    /// Authorizations captured (charged), by reference (order id).
    pub fn captured(&self) -> impl Iterator<Item = &LedgerEntry> {
        self.authorizations
            .iter()
            .filter(|a| a.state == AuthState::Captured)
    }
}

/// One authorization in the provider's books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub authorization: String,
    /// Our reference (the order id).
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
    pub state: AuthState,
    pub created_ms: u64,
}

/// What became of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthState {
    Open,
    Captured,
    Voided,
}

/// The remembered outcome of a call, by its idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Outcome {
    Authorized(String),
    Declined(String),
    Done,
    Refused(String),
}

/// A stored outcome, with when its key may be forgotten.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredOutcome {
    outcome: Outcome,
    expires_ms: u64,
}

/// Which call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Authorize,
    Capture,
    Void,
}

/// What decides a call before it runs (chosen outside the transaction,
/// which may run more than once).
#[derive(Debug, Clone, Copy)]
struct Draw {
    decline: bool,
    now_ms: u64,
}

/// The provider's keys, in its own store.
mod keys {
    use db::Subspace;

    fn space() -> Subspace {
        Subspace::from("pay")
    }
    pub(super) fn outcome(key: &str) -> Vec<u8> {
        space().pack(&("key", key))
    }
    pub(super) fn outcome_expiry(expires_ms: u64, key: &str) -> Vec<u8> {
        space().pack(&("exp", expires_ms, key))
    }
    pub(super) fn outcome_expiries() -> Subspace {
        space().subspace(&("exp",))
    }
    pub(super) fn authorization(id: &str) -> Vec<u8> {
        space().pack(&("auth", id))
    }
    pub(super) fn authorizations() -> Subspace {
        space().subspace(&("auth",))
    }
}

/// Why the provider's own store failed a call: to the caller that is an
/// answer lost (the call may have taken effect), as a provider's 5xx is.
fn store_failure(e: impl std::fmt::Display) -> GatewayError {
    tracing::warn!(error = %e, "simulated gateway: its store failed a call");
    GatewayError::Timeout
}

#[derive(Debug)]
struct Dice {
    rng: StdRng,
    /// Test hook: the next n calls time out (after taking effect).
    forced_timeouts: u32,
    /// Test hook: the next n captures are refused (without effect).
    refused_captures: u32,
    forced_declines: u32,
}

/// A payment provider simulated over a durable store of its own, which
/// outlives the platform (a crash of the platform forgets none of its
/// idempotency keys or authorizations, as a real provider's would not).
/// Share one per platform: every region calls the same provider.
#[derive(Debug)]
pub struct SimulatedGateway {
    config: SimulatedGatewayConfig,
    db: db::Database,
    /// The provider's own clock (when its idempotency keys expire).
    clock: Arc<dyn crate::Clock>,
    dice: Mutex<Dice>,
    stats: Mutex<GatewayStats>,
    calls: std::sync::atomic::AtomicU64,
    /// Test hook: while true, calls wait before taking effect.
    paused: tokio::sync::watch::Sender<bool>,
    /// Calls that have arrived while paused (ever).
    held: tokio::sync::watch::Sender<u64>,
}

/// Keys one sweep forgets at most.
const SWEEP_BATCH: usize = 64;
/// A sweep runs once per this many calls.
const SWEEP_EVERY: u64 = 64;

impl SimulatedGateway {
    /// The provider over its store `db` (not a shard of the platform's).
    pub fn new(config: SimulatedGatewayConfig, db: db::Database) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        SimulatedGateway {
            config,
            db,
            clock: Arc::new(crate::SystemClock),
            dice: Mutex::new(Dice {
                rng,
                forced_timeouts: 0,
                refused_captures: 0,
                forced_declines: 0,
            }),
            stats: Mutex::new(GatewayStats::default()),
            calls: std::sync::atomic::AtomicU64::new(0),
            paused: tokio::sync::watch::Sender::new(false),
            held: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The provider on `clock` instead of the system's (a simulator's).
    pub fn with_clock(mut self, clock: Arc<dyn crate::Clock>) -> Self {
        self.clock = clock;
        self
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
        *self.stats.lock()
    }

    /// The next `n` calls take effect, then answer with a timeout.
    pub fn force_timeouts(&self, n: u32) {
        self.dice.lock().forced_timeouts = n;
    }

    /// The next `n` captures are refused, without effect.
    pub fn refuse_captures(&self, n: u32) {
        self.dice.lock().refused_captures = n;
    }

    /// The next `n` authorizations are declined (a card the bank refuses).
    pub fn decline_authorizations(&self, n: u32) {
        self.dice.lock().forced_declines = n;
    }

    /// Every authorization in the provider's books (at most `limit`).
    pub async fn ledger(&self, limit: usize) -> Result<Ledger, db::Error> {
        let space = keys::authorizations();
        let space = &space;
        let kvs = self
            .db
            .run(|tx, _| async move {
                tx.get_range_all(db::RangeOption::subspace(space).limit(limit), true)
                    .await
            })
            .await?;
        Ok(Ledger {
            authorizations: kvs
                .iter()
                .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
                .collect(),
        })
    }

    /// Authorizations captured so far (from the books).
    pub async fn captured_count(&self) -> usize {
        self.ledger(usize::MAX)
            .await
            .map_or(0, |l| l.captured().count())
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

    /// Runs `effect` once per idempotency key, in one transaction of the
    /// provider's store with the key's record; replays return the stored
    /// outcome. Then decides whether the answer is lost.
    async fn call<F, Fut>(&self, kind: Call, key: &str, effect: F) -> Result<Outcome, GatewayError>
    where
        F: Fn(db::Transaction, Draw) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, db::Error>>,
    {
        let decline_rate = match kind {
            Call::Authorize => self.config.decline_rate,
            Call::Capture | Call::Void => 0.0,
        };
        let draw = {
            let mut dice = self.dice.lock();
            let roll: f64 = dice.rng.random();
            let forced = kind == Call::Authorize && dice.forced_declines > 0;
            if forced {
                dice.forced_declines -= 1;
            }
            Draw {
                decline: forced || roll < decline_rate,
                now_ms: self.clock.now_ms(),
            }
        };
        let ttl_ms = self.config.key_ttl_s.saturating_mul(1000);
        let effect = &effect;
        let (outcome, replayed) = self
            .db
            .run(|tx, _| async move {
                let record = keys::outcome(key);
                if let Some(bytes) = tx.get(&record).await?
                    && let Ok(stored) = serde_json::from_slice::<StoredOutcome>(&bytes)
                {
                    return Ok((stored.outcome, true));
                }
                let outcome = effect(tx.clone(), draw).await?;
                let expires_ms = draw.now_ms.saturating_add(ttl_ms);
                let stored = StoredOutcome {
                    outcome: outcome.clone(),
                    expires_ms,
                };
                tx.set(&record, &serde_json::to_vec(&stored).unwrap_or_default())?;
                tx.set(&keys::outcome_expiry(expires_ms, key), b"")?;
                Ok::<_, db::Error>((outcome, false))
            })
            .await
            .map_err(store_failure)?;
        {
            let mut stats = self.stats.lock();
            if replayed {
                stats.replays += 1;
            } else {
                match (&outcome, kind) {
                    (Outcome::Authorized(_), _) => stats.authorizations += 1,
                    (Outcome::Declined(_), _) => stats.declines += 1,
                    (Outcome::Done, Call::Capture) => stats.captures += 1,
                    (Outcome::Done, Call::Void) => stats.voids += 1,
                    _ => {}
                }
            }
        }
        if self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            // Forgetting old keys is the provider's business; a failure
            // only delays it.
            let _ = self.sweep(draw.now_ms).await;
        }
        let timeout = {
            let mut dice = self.dice.lock();
            if dice.forced_timeouts > 0 {
                dice.forced_timeouts -= 1;
                true
            } else {
                let roll: f64 = dice.rng.random();
                roll < self.config.timeout_rate
            }
        };
        if timeout {
            self.stats.lock().timeouts += 1;
            return Err(GatewayError::Timeout);
        }
        Ok(outcome)
    }

    /// Forgets idempotency keys past their TTL (at most one batch), as a
    /// provider does (Stripe keeps keys 24 hours): the store stays bounded.
    pub async fn sweep(&self, now_ms: u64) -> Result<usize, db::Error> {
        let space = keys::outcome_expiries();
        let space = &space;
        self.db
            .run(|tx, _| async move {
                let (begin, _) = space.range();
                let end = space.pack(&(now_ms,));
                let due = tx
                    .get_range(&db::RangeOption::new(begin, end).limit(SWEEP_BATCH), false)
                    .await?;
                for kv in &due.kvs {
                    tx.clear(&kv.key)?;
                    if let Ok((_, key)) = space.unpack::<(u64, String)>(&kv.key) {
                        tx.clear(&keys::outcome(&key))?;
                    }
                }
                Ok(due.kvs.len())
            })
            .await
    }
}

async fn load_authorization(
    tx: &db::Transaction,
    id: &str,
) -> Result<Option<LedgerEntry>, db::Error> {
    Ok(tx
        .get(&keys::authorization(id))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

fn store_authorization(tx: &db::Transaction, entry: &LedgerEntry) -> Result<(), db::Error> {
    tx.set(
        &keys::authorization(&entry.authorization),
        &serde_json::to_vec(entry).unwrap_or_default(),
    )
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
        // Chosen once, outside the transaction (which may run again).
        // From the provider's seeded dice, so a seed replays its ids too.
        let id = {
            let draw: u128 = self.dice.lock().rng.random();
            format!("auth_{}", ulid::Ulid::from_parts(self.clock.now_ms(), draw))
        };
        let outcome = self
            .call(Call::Authorize, &request.idempotency_key, |tx, draw| {
                let id = id.clone();
                async move {
                    if draw.decline {
                        return Ok(Outcome::Declined("card declined (simulated)".into()));
                    }
                    store_authorization(
                        &tx,
                        &LedgerEntry {
                            authorization: id.clone(),
                            reference: request.reference.clone(),
                            amount_minor: request.amount_minor,
                            currency: request.currency.clone(),
                            state: AuthState::Open,
                            created_ms: draw.now_ms,
                        },
                    )?;
                    Ok(Outcome::Authorized(id))
                }
            })
            .await?;
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
        {
            let mut dice = self.dice.lock();
            if dice.refused_captures > 0 {
                dice.refused_captures -= 1;
                return Err(GatewayError::Rejected {
                    reason: "capture refused (simulated)".into(),
                });
            }
        }
        let outcome = self
            .call(Call::Capture, idempotency_key, |tx, _| async move {
                match load_authorization(&tx, authorization).await? {
                    Some(mut entry) if entry.state == AuthState::Open => {
                        entry.state = AuthState::Captured;
                        store_authorization(&tx, &entry)?;
                        Ok(Outcome::Done)
                    }
                    Some(entry) if entry.state == AuthState::Captured => Ok(Outcome::Done),
                    _ => Ok(Outcome::Refused(
                        "authorization is voided or unknown".into(),
                    )),
                }
            })
            .await?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Refused(reason) => Err(GatewayError::Rejected { reason }),
            Outcome::Authorized(_) | Outcome::Declined(_) => Err(GatewayError::Rejected {
                reason: "idempotency key was used for another kind of call".into(),
            }),
        }
    }

    async fn void(&self, authorization: &str, idempotency_key: &str) -> Result<(), GatewayError> {
        check_key(idempotency_key)?;
        self.delay().await;
        let outcome = self
            .call(Call::Void, idempotency_key, |tx, _| async move {
                match load_authorization(&tx, authorization).await? {
                    Some(mut entry) if entry.state == AuthState::Open => {
                        entry.state = AuthState::Voided;
                        store_authorization(&tx, &entry)?;
                        Ok(Outcome::Done)
                    }
                    Some(entry) if entry.state == AuthState::Voided => Ok(Outcome::Done),
                    _ => Ok(Outcome::Refused(
                        "authorization is captured or unknown".into(),
                    )),
                }
            })
            .await?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Refused(reason) => Err(GatewayError::Rejected { reason }),
            Outcome::Authorized(_) | Outcome::Declined(_) => Err(GatewayError::Rejected {
                reason: "idempotency key was used for another kind of call".into(),
            }),
        }
    }
}
