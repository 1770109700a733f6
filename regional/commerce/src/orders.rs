//! Orders: created by checkout in the buyer's shard, read one at a time or
//! listed per shopper, newest first, with a cursor.

use db::RangeOption;
use serde::{Deserialize, Serialize};
use topology::ShardedId;

use crate::cart::check_owner;
use crate::catalog::Money;
use crate::error::{CommerceError, Result, invalid};
use crate::{Commerce, decode, get_json, keys};

pub const MAX_PAGE: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLine {
    pub sku: String,
    pub title: String,
    pub qty: i64,
    pub unit_price: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// The checkout saga is running (or waiting on an unknown payment).
    Pending,
    Confirmed,
    /// The saga was compensated: no stock held, no money taken.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub id: String,
    pub owner: String,
    pub cart_id: String,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub status: OrderStatus,
    /// Why a failed order failed.
    #[serde(default)]
    pub failure: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next: Option<String>,
}

impl Commerce {
    /// `owner`'s order `id`.
    pub async fn order(&self, owner: &ShardedId, id: &ShardedId) -> Result<Order> {
        let key = id.to_string();
        let order = self
            .owned_db(id)?
            .run(|tx, _| {
                let key = key.clone();
                async move { get_json::<Order>(&tx, &keys::order(&key), "order").await }
            })
            .await?
            .ok_or_else(|| CommerceError::NotFound {
                what: "order",
                id: key,
            })?;
        check_owner(owner, &order.owner, "order")?;
        Ok(order)
    }

    /// `owner`'s orders, newest first, older than `before` (an order id).
    pub async fn list_orders(
        &self,
        owner: &ShardedId,
        before: Option<&ShardedId>,
        limit: usize,
    ) -> Result<OrderPage> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(invalid("limit", format!("must be 1..={MAX_PAGE}")));
        }
        if let Some(before) = before
            && before.shard() != owner.shard()
        {
            // Not one of this shopper's orders (theirs live in their shard).
            return Err(CommerceError::NotFound {
                what: "order",
                id: before.to_string(),
            });
        }
        let owner_text = owner.to_string();
        let space = keys::orders_by_owner(&owner_text);
        let (begin, mut end) = space.range();
        if let Some(before) = before {
            end = space.pack(&(before.to_string(),));
        }
        let (space, begin, end) = (&space, &begin, &end);
        let db = self.owned_db(owner)?;
        let (ids, more) = db
            .run(|tx, _| async move {
                let chunk = tx
                    .get_range(
                        &RangeOption::new(begin.clone(), end.clone())
                            .limit(limit)
                            .reverse(true),
                        true,
                    )
                    .await?;
                let ids = chunk
                    .kvs
                    .iter()
                    .map(|kv| {
                        space
                            .unpack::<(String,)>(&kv.key)
                            .map(|(id,)| id)
                            .map_err(|_| invalid("order index key", "does not decode"))
                    })
                    .collect::<Result<Vec<String>>>()?;
                Ok::<_, CommerceError>((ids, chunk.more))
            })
            .await?;
        let ids = &ids;
        let orders = db
            .run(|tx, _| async move {
                let mut orders = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(bytes) = tx.get_snapshot(&keys::order(id)).await? {
                        orders.push(decode::<Order>(&bytes, "order")?);
                    }
                }
                Ok::<_, CommerceError>(orders)
            })
            .await?;
        let next = if more {
            orders.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }
}
