//! Carts, stored in the shard of their owner. Every write is a
//! read-modify-write of the cart record inside one serializable
//! transaction, so concurrent writes to one cart conflict and retry rather
//! than overwrite each other: no update is ever lost. Each write bumps the
//! cart's version, which the edge hands back to the shopper as the
//! consistency token. Abandoned carts expire through a bounded sweep.

use db::RangeOption;
use serde::{Deserialize, Serialize};
use topology::{ShardId, ShardedId};

use crate::catalog::validate_sku;
use crate::error::{CommerceError, Result, invalid};
use crate::{Commerce, get_json, keys, set_json};

/// Lines one cart holds at most.
pub const MAX_LINES: usize = 100;
/// Units of one SKU one cart holds at most.
pub const MAX_LINE_QTY: i64 = 99;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CartLine {
    pub sku: String,
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cart {
    pub id: String,
    pub owner: String,
    pub lines: Vec<CartLine>,
    /// Bumped by every write.
    pub version: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub expires_ms: u64,
    /// The order checking this cart out, while its saga runs: a second
    /// checkout of the cart (another idempotency key) is refused meanwhile.
    #[serde(default)]
    pub checkout_order: Option<String>,
    /// The last writes' operation ids (the request's `Idempotency-Key`, or
    /// a random id) with the version each produced, newest last, at most
    /// [`MAX_RECENT_OPS`]: a write repeated with the same id (an edge
    /// retrying it on another region after a timeout, or a commit whose
    /// outcome was unknown) is not applied twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(ignore)]
    pub recent_ops: Vec<(String, u64)>,
    /// The idempotency key of the request that created the cart: a repeat
    /// of that request returns this cart instead of making another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub created_by: Option<String>,
}

/// Operation ids a cart remembers.
pub const MAX_RECENT_OPS: usize = 32;
/// Longest operation id, in bytes (the contract's idempotency key bound).
pub const MAX_OP_ID_LEN: usize = regional_api::idempotency::MAX_KEY_LEN;

/// Checks a write's idempotency key, if it has one.
fn check_op_id(op_id: Option<&str>) -> Result<()> {
    op_id.map_or(Ok(()), crate::checkout::validate_idempotency_key)
}

/// A change to a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartChange {
    /// Adds `qty` units (1..=99) of `sku`.
    Add {
        sku: String,
        qty: i64,
    },
    /// Sets the units of `sku` (0 removes the line).
    Set {
        sku: String,
        qty: i64,
    },
    Remove {
        sku: String,
    },
}

impl CartChange {
    fn sku(&self) -> &str {
        match self {
            CartChange::Add { sku, .. }
            | CartChange::Set { sku, .. }
            | CartChange::Remove { sku } => sku,
        }
    }

    fn validate(&self) -> Result<()> {
        validate_sku(self.sku())?;
        match self {
            CartChange::Add { qty, .. } if !(1..=MAX_LINE_QTY).contains(qty) => {
                Err(invalid("qty", format!("must be 1..={MAX_LINE_QTY}")))
            }
            CartChange::Set { qty, .. } if !(0..=MAX_LINE_QTY).contains(qty) => {
                Err(invalid("qty", format!("must be 0..={MAX_LINE_QTY}")))
            }
            _ => Ok(()),
        }
    }

    fn apply(&self, cart: &mut Cart) -> Result<()> {
        let position = cart.lines.iter().position(|l| l.sku == self.sku());
        match (self, position) {
            (CartChange::Add { qty, .. }, Some(i)) => {
                let total = cart.lines[i].qty + qty;
                if total > MAX_LINE_QTY {
                    return Err(CommerceError::LimitExceeded {
                        what: "units of one sku in a cart",
                        limit: MAX_LINE_QTY as u64,
                    });
                }
                cart.lines[i].qty = total;
            }
            (CartChange::Add { sku, qty } | CartChange::Set { sku, qty }, None) => {
                if *qty == 0 {
                    return Ok(());
                }
                if cart.lines.len() >= MAX_LINES {
                    return Err(CommerceError::LimitExceeded {
                        what: "lines in a cart",
                        limit: MAX_LINES as u64,
                    });
                }
                cart.lines.push(CartLine {
                    sku: sku.clone(),
                    qty: *qty,
                });
            }
            (CartChange::Set { qty: 0, .. } | CartChange::Remove { .. }, Some(i)) => {
                cart.lines.remove(i);
            }
            (CartChange::Set { qty, .. }, Some(i)) => cart.lines[i].qty = *qty,
            (CartChange::Remove { sku }, None) => {
                return Err(CommerceError::NotFound {
                    what: "cart line",
                    id: sku.clone(),
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn check_owner(owner: &ShardedId, record_owner: &str, what: &'static str) -> Result<()> {
    if record_owner == owner.to_string() {
        Ok(())
    } else {
        Err(CommerceError::Forbidden { what })
    }
}

impl Commerce {
    /// A new empty cart for `owner`, in the owner's shard. With `op_id`
    /// (the request's `Idempotency-Key`), a repeat of the request returns
    /// the cart the first one made (as it is now) instead of another: an
    /// edge that lost the answer may send it again, to any region.
    pub async fn create_cart(&self, owner: &ShardedId, op_id: Option<&str>) -> Result<Cart> {
        check_op_id(op_id)?;
        let id = self.new_id(owner.shard());
        let now_ms = self.now_ms();
        let cart = Cart {
            id: id.to_string(),
            owner: owner.to_string(),
            lines: Vec::new(),
            version: 1,
            created_ms: now_ms,
            updated_ms: now_ms,
            expires_ms: now_ms.saturating_add(self.settings().cart_ttl_s.saturating_mul(1000)),
            checkout_order: None,
            recent_ops: Vec::new(),
            created_by: op_id.map(str::to_owned),
        };
        let db = self.owned_db(&id)?;
        let record = &cart;
        let by_key = op_id.map(|op| keys::cart_created_by(&record.owner, op));
        let by_key = &by_key;
        db.run(|tx, _| async move {
            if let Some(by_key) = by_key
                && let Some(existing) = tx.get(by_key).await?
            {
                let existing = String::from_utf8_lossy(&existing).into_owned();
                return match get_json::<Cart>(&tx, &keys::cart(&existing), "cart").await? {
                    Some(cart) if cart.expires_ms > now_ms => Ok(cart),
                    _ => Err(CommerceError::NotFound {
                        what: "cart",
                        id: existing,
                    }),
                };
            }
            set_json(&tx, &keys::cart(&record.id), record)?;
            tx.set(&keys::cart_expiry(record.expires_ms, &record.id), b"")?;
            if let Some(by_key) = by_key {
                tx.set(by_key, record.id.as_bytes())?;
            }
            Ok::<_, CommerceError>(record.clone())
        })
        .await
    }

    /// Every live cart of `owner` (an audit: scans the owner's shard, at
    /// most `limit` carts of all owners).
    pub async fn carts_of(&self, owner: &ShardedId, limit: usize) -> Result<Vec<Cart>> {
        let owner_text = owner.to_string();
        let owner_text = &owner_text;
        let space = keys::carts();
        let space = &space;
        self.shards()
            .get(owner.shard())?
            .run(|tx, _| async move {
                let range = RangeOption::subspace(space).limit(limit);
                let mut out = Vec::new();
                for kv in tx.get_range(&range, true).await?.kvs {
                    let cart: Cart = serde_json::from_slice(&kv.value)
                        .map_err(|_| invalid("cart record", "does not decode"))?;
                    if &cart.owner == owner_text {
                        out.push(cart);
                    }
                }
                Ok::<_, CommerceError>(out)
            })
            .await
    }

    /// `owner`'s cart `id`.
    pub async fn cart(&self, owner: &ShardedId, id: &ShardedId) -> Result<Cart> {
        let now_ms = self.now_ms();
        let key = id.to_string();
        let cart = self
            .owned_db(id)?
            .run(|tx, _| {
                let key = key.clone();
                async move { get_json::<Cart>(&tx, &keys::cart(&key), "cart").await }
            })
            .await?;
        match cart {
            Some(cart) if cart.expires_ms > now_ms => {
                check_owner(owner, &cart.owner, "cart")?;
                Ok(cart)
            }
            _ => Err(CommerceError::NotFound {
                what: "cart",
                id: key,
            }),
        }
    }

    /// Applies `change` to `owner`'s cart `id`; returns the new cart.
    /// `op_id` (the request's `Idempotency-Key`) makes a repeat of the same
    /// write return the cart without applying it again.
    pub async fn change_cart(
        &self,
        owner: &ShardedId,
        id: &ShardedId,
        change: &CartChange,
        op_id: Option<&str>,
    ) -> Result<Cart> {
        change.validate()?;
        check_op_id(op_id)?;
        if !matches!(change, CartChange::Remove { .. }) {
            // Only SKUs of the catalog go in a cart (read through the cache).
            self.product(change.sku()).await?;
        }
        let now_ms = self.now_ms();
        let ttl_ms = self.settings().cart_ttl_s.saturating_mul(1000);
        let key = id.to_string();
        let key = &key;
        let op = match op_id {
            Some(op) => format!("k:{op}"),
            None => format!("r:{:016x}{:016x}", self.random_u64(), self.random_u64()),
        };
        let op = &op;
        self.owned_db(id)?
            .run(|tx, _| async move {
                let Some(mut cart) = get_json::<Cart>(&tx, &keys::cart(key), "cart").await? else {
                    return Err(CommerceError::NotFound {
                        what: "cart",
                        id: key.clone(),
                    });
                };
                if cart.expires_ms <= now_ms {
                    return Err(CommerceError::NotFound {
                        what: "cart",
                        id: key.clone(),
                    });
                }
                check_owner(owner, &cart.owner, "cart")?;
                if cart.recent_ops.iter().any(|(o, _)| o == op)
                    && !crate::planted::planted(crate::planted::Bug::SkipCartIdempotency)
                {
                    // This very write was applied already.
                    return Ok(cart);
                }
                change.apply(&mut cart)?;
                tx.clear(&keys::cart_expiry(cart.expires_ms, key))?;
                cart.version += 1;
                cart.recent_ops.push((op.clone(), cart.version));
                if cart.recent_ops.len() > MAX_RECENT_OPS {
                    cart.recent_ops.remove(0);
                }
                cart.updated_ms = now_ms;
                cart.expires_ms = now_ms.saturating_add(ttl_ms);
                tx.set(&keys::cart_expiry(cart.expires_ms, key), b"")?;
                set_json(&tx, &keys::cart(key), &cart)?;
                Ok(cart)
            })
            .await
    }

    /// Deletes carts of `shard` whose TTL passed: at most one batch per call.
    pub async fn sweep_expired_carts(&self, shard: &ShardId) -> Result<usize> {
        let now_ms = self.now_ms();
        let batch = self.settings().batch;
        let space = keys::cart_expiries();
        let space = &space;
        self.shards()
            .get(shard)?
            .run(|tx, _| async move {
                let mut deleted = 0;
                for (expires_ms, id) in crate::take_due(&tx, space, now_ms, batch).await? {
                    // The index entry is rewritten by every cart write, so a
                    // due entry means the cart itself is due; check anyway.
                    if let Some(cart) = get_json::<Cart>(&tx, &keys::cart(&id), "cart").await?
                        && cart.expires_ms == expires_ms
                    {
                        tx.clear(&keys::cart(&id))?;
                        if let Some(op) = &cart.created_by {
                            tx.clear(&keys::cart_created_by(&cart.owner, op))?;
                        }
                        deleted += 1;
                    }
                }
                Ok::<_, CommerceError>(deleted)
            })
            .await
    }

    /// Ends a cart's checkout (in the caller's transaction): on success
    /// the ordered units leave the cart (lines added meanwhile stay); either
    /// way the cart can be checked out again.
    pub(crate) async fn finish_cart_checkout(
        tx: &db::Transaction,
        order: &crate::orders::Order,
        confirmed: bool,
        now_ms: u64,
    ) -> Result<()> {
        let Some(mut cart) = get_json::<Cart>(tx, &keys::cart(&order.cart_id), "cart").await?
        else {
            return Ok(());
        };
        if confirmed {
            for line in &order.lines {
                if let Some(i) = cart.lines.iter().position(|l| l.sku == line.sku) {
                    cart.lines[i].qty -= line.qty;
                    if cart.lines[i].qty <= 0 {
                        cart.lines.remove(i);
                    }
                }
            }
        }
        if cart.checkout_order.as_deref() == Some(order.id.as_str()) {
            cart.checkout_order = None;
        }
        cart.version += 1;
        cart.updated_ms = now_ms;
        set_json(tx, &keys::cart(&order.cart_id), &cart)?;
        Ok(())
    }
}
