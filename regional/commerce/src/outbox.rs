//! The transactional outbox for work that must not block the shopper: a
//! message is written to a topic's queue (keyed by commit versionstamp) in
//! the same transaction as the change that causes it; bounded workers take
//! a batch, hand each message to the topic's consumer, then delete the
//! batch. A crash between the two redelivers the batch (at-least-once), so
//! every consumer is idempotent: it records the message id with its effect,
//! in one transaction, and skips ids it has seen.
//!
//! Catalog changes (search indexing, edge purges) use the same pattern in
//! log form: the catalog change feed ([`crate::feed`]), which every region
//! and edge tails with its own cursor.

use std::collections::BTreeMap;

use db::{RangeOption, Transaction};
use serde::{Deserialize, Serialize};
use topology::ShardId;

use crate::error::{CommerceError, Result, invalid};
use crate::reviews::ReviewMessage;
use crate::{Commerce, decode, get_json, keys, set_json, set_versionstamped_json};

/// Review messages one projection transaction applies at most.
pub const MAX_REVIEW_BATCH: usize = 64;

/// The queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Order confirmations and failures for the shopper.
    Notifications,
    /// Business counters.
    Analytics,
    /// Reviews and helpful votes, for the projection every region reads
    /// ([`crate::reviews`]).
    Reviews,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Notifications, Topic::Analytics, Topic::Reviews];
    /// The topics a shard's serving region delivers. [`Topic::Reviews`] is
    /// delivered by the region serving the catalog shard, from every
    /// shard: its consumer writes there, so each batch costs that region
    /// one round trip to the author's shard, not one per read of the
    /// projection.
    pub const PER_SHARD: [Topic; 2] = [Topic::Notifications, Topic::Analytics];

    pub fn name(self) -> &'static str {
        match self {
            Topic::Notifications => "notifications",
            Topic::Analytics => "analytics",
            Topic::Reviews => "reviews",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    OrderConfirmed,
    OrderFailed,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    /// Unique per effect: consumers skip ids they have seen.
    pub id: String,
    pub kind: MessageKind,
    pub order_id: String,
    pub owner: String,
    pub amount_minor: i64,
    pub currency: String,
    pub at_ms: u64,
}

/// A notification as the notifications consumer records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    pub message_id: String,
    pub kind: MessageKind,
    pub owner: String,
    pub at_ms: u64,
}

/// Queues `message` on `topic` in the caller's transaction. `n` tells apart
/// several messages of one transaction.
pub(crate) fn enqueue(tx: &Transaction, topic: Topic, n: u16, message: &Message) -> Result<()> {
    set_versionstamped_json(tx, &keys::outbox_entry(topic.name(), n), message)
}

fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::OrderConfirmed => "order_confirmed",
        MessageKind::OrderFailed => "order_failed",
    }
}

impl Commerce {
    /// One worker pass over `topic` in `shard`: at most one batch. Returns
    /// the messages delivered.
    pub async fn drain_outbox(&self, shard: &ShardId, topic: Topic) -> Result<usize> {
        let db = self.shards().get(shard)?;
        let batch = match topic {
            // Each is applied in one projection transaction: kept well
            // inside a transaction's size bound.
            Topic::Reviews => self.settings().batch.min(MAX_REVIEW_BATCH),
            _ => self.settings().batch,
        };
        let space = keys::outbox(topic.name());
        let space = &space;
        let chunk = db
            .run(|tx, _| async move {
                Ok::<_, CommerceError>(
                    tx.get_range(&RangeOption::subspace(space).limit(batch), true)
                        .await?,
                )
            })
            .await?;
        if chunk.kvs.is_empty() {
            return Ok(0);
        }
        // Order messages go to their consumer one by one; the reviews
        // projection takes the whole batch in one transaction.
        let (mut orders, mut reviews) = (Vec::new(), Vec::new());
        for kv in &chunk.kvs {
            let decoded = match topic {
                Topic::Reviews => {
                    decode::<ReviewMessage>(&kv.value, "review message").map(|m| reviews.push(m))
                }
                _ => decode::<Message>(&kv.value, "outbox message").map(|m| orders.push(m)),
            };
            match decoded {
                Ok(()) => {}
                // Never expected; parked aside so it cannot block the
                // queue, and kept for an operator.
                Err(e) => {
                    tracing::error!(topic = topic.name(), error = %e, "undecodable outbox message moved to the dead-letter space");
                    let dead = keys::outbox_dead(topic.name(), &kv.key);
                    let value = &kv.value;
                    db.run(|tx, _| {
                        let dead = dead.clone();
                        async move {
                            tx.set(&dead, value)?;
                            Ok::<_, CommerceError>(())
                        }
                    })
                    .await?;
                }
            }
        }
        for message in &orders {
            self.consume(shard, topic, message).await?;
        }
        if !reviews.is_empty() {
            self.project_reviews(&reviews).await?;
        }
        self.faults().check_outbox()?;
        // Delivered: delete exactly the entries read (newer ones stay).
        let entries = &chunk.kvs;
        db.run(|tx, _| async move {
            for kv in entries {
                tx.clear(&kv.key)?;
            }
            Ok::<_, CommerceError>(())
        })
        .await?;
        Ok(chunk.kvs.len())
    }

    /// The idempotent consumers of order messages.
    async fn consume(&self, shard: &ShardId, topic: Topic, message: &Message) -> Result<()> {
        let db = self.shards().get(shard)?;
        match topic {
            Topic::Notifications => {
                // A real deployment hands this to a mail/SMS service keyed
                // by the message id; here the record is the delivery.
                let key = keys::notification(&message.order_id, kind_name(message.kind));
                let record = Notification {
                    message_id: message.id.clone(),
                    kind: message.kind,
                    owner: message.owner.clone(),
                    at_ms: message.at_ms,
                };
                let (key, record) = (&key, &record);
                db.run(|tx, _| async move {
                    if tx.get(key).await?.is_none() {
                        set_json(&tx, key, record)?;
                    }
                    Ok::<_, CommerceError>(())
                })
                .await
            }
            Topic::Reviews => Ok(()),
            Topic::Analytics => {
                let gc_due_ms = self
                    .now_ms()
                    .saturating_add(self.settings().retention_s.saturating_mul(1000));
                db.run(|tx, _| async move {
                    let seen = keys::analytics_seen(&message.id);
                    if tx.get(&seen).await?.is_some() {
                        return Ok(());
                    }
                    tx.set(&seen, b"")?;
                    tx.set(&keys::analytics_seen_gc(gc_due_ms, &message.id), b"")?;
                    let name = kind_name(message.kind);
                    tx.add_i64(&keys::analytics_counter(name), 1)?;
                    if message.kind == MessageKind::OrderConfirmed {
                        let revenue = format!("revenue_minor_{}", message.currency);
                        tx.add_i64(&keys::analytics_counter(&revenue), message.amount_minor)?;
                    }
                    Ok::<_, CommerceError>(())
                })
                .await
            }
        }
    }

    /// Deletes the seen-event records of `shard` whose retention passed
    /// (their redelivery window is long over): at most one batch.
    pub async fn collect_seen_events(&self, shard: &ShardId) -> Result<usize> {
        let now_ms = self.now_ms();
        let batch = self.settings().batch;
        let space = keys::analytics_seen_gcs();
        let space = &space;
        self.shards()
            .get(shard)?
            .run(|tx, _| async move {
                let due = crate::take_due(&tx, space, now_ms, batch).await?;
                for (_, id) in &due {
                    tx.clear(&keys::analytics_seen(id))?;
                }
                Ok::<_, CommerceError>(due.len())
            })
            .await
    }

    /// Messages waiting on `topic` in `shard` (at most `limit` counted).
    pub async fn outbox_backlog(
        &self,
        shard: &ShardId,
        topic: Topic,
        limit: usize,
    ) -> Result<usize> {
        let space = keys::outbox(topic.name());
        let space = &space;
        self.shards()
            .get(shard)?
            .run(|tx, _| async move {
                Ok::<_, CommerceError>(
                    tx.get_range(&RangeOption::subspace(space).limit(limit), true)
                        .await?
                        .kvs
                        .len(),
                )
            })
            .await
    }

    /// The analytics counters of `shard`, by name.
    pub async fn analytics(&self, shard: &ShardId) -> Result<BTreeMap<String, i64>> {
        let space = keys::analytics_counters();
        let space = &space;
        let kvs = self
            .shards()
            .get(shard)?
            .run(|tx, _| async move {
                Ok::<_, CommerceError>(
                    tx.get_range_all(RangeOption::subspace(space).limit(1_000), true)
                        .await?,
                )
            })
            .await?;
        kvs.iter()
            .map(|kv| {
                let (name,): (String,) = space
                    .unpack(&kv.key)
                    .map_err(|_| invalid("analytics key", "does not decode"))?;
                Ok((name, crate::counter(Some(&kv.value))))
            })
            .collect()
    }

    /// The notification recorded for `order_id` of `kind`, if any.
    pub async fn notification(
        &self,
        shard: &ShardId,
        order_id: &str,
        kind: MessageKind,
    ) -> Result<Option<Notification>> {
        if order_id.len() > 128 {
            return Err(invalid("order", "id too long"));
        }
        let key = keys::notification(order_id, kind_name(kind));
        let key = &key;
        self.shards()
            .get(shard)?
            .run(|tx, _| async move { get_json::<Notification>(&tx, key, "notification").await })
            .await
    }
}
