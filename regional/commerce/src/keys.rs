//! Where every record lives: one tuple-encoded subspace per kind of record,
//! identical on both engines. Values are JSON (records) or little-endian
//! i64 (counters changed with atomic adds).

use db::Subspace;
use db::keys::tuple::Versionstamp;

fn space(name: &str) -> Subspace {
    Subspace::from(name)
}

// Catalog (in the catalog shard).
pub(crate) fn product(sku: &str) -> Vec<u8> {
    space("cat").pack(&("p", sku))
}
pub(crate) fn products() -> Subspace {
    space("cat").subspace(&("p",))
}
pub(crate) fn category(slug: &str) -> Vec<u8> {
    space("cat").pack(&("c", slug))
}
pub(crate) fn categories() -> Subspace {
    space("cat").subspace(&("c",))
}
/// Products of one category: `(category, sku) → ()`.
pub(crate) fn category_member(slug: &str, sku: &str) -> Vec<u8> {
    space("cat").pack(&("m", slug, sku))
}
pub(crate) fn category_members(slug: &str) -> Subspace {
    space("cat").subspace(&("m", slug))
}
/// The catalog version: bumped by every catalog change.
pub(crate) fn catalog_version() -> Vec<u8> {
    space("cat").pack(&("v",))
}
/// The change feed, ordered by commit versionstamp.
pub(crate) fn feed() -> Subspace {
    space("cat").subspace(&("f",))
}
pub(crate) fn feed_entry(n: u16) -> Vec<u8> {
    feed().pack_with_versionstamp(&(Versionstamp::incomplete(n),))
}
/// The key of the feed event at `stamp` (a catalog event keeps its key
/// in every replica).
pub(crate) fn feed_at(stamp: [u8; 12]) -> Vec<u8> {
    feed().pack(&(Versionstamp::from(stamp),))
}
/// What each change left behind (its record's new state), under the
/// change's versionstamp: what a replica applies.
pub(crate) fn feed_states() -> Subspace {
    space("cat").subspace(&("fs",))
}
pub(crate) fn feed_state_entry(n: u16) -> Vec<u8> {
    feed_states().pack_with_versionstamp(&(Versionstamp::incomplete(n),))
}
pub(crate) fn feed_state_at(stamp: [u8; 12]) -> Vec<u8> {
    feed_states().pack(&(Versionstamp::from(stamp),))
}
/// Bumped (atomic add) by every feed append: what long polls watch.
pub(crate) fn feed_head() -> Vec<u8> {
    space("cat").pack(&("h",))
}
/// The cursor of the newest event trimmed from the feed (events up to it
/// are gone; a consumer behind it resets).
pub(crate) fn feed_trimmed() -> Vec<u8> {
    space("cat").pack(&("tc",))
}
/// How many events the trimmer removed (in the catalog shard only).
pub(crate) fn feed_trimmed_count() -> Vec<u8> {
    space("cat").pack(&("tn",))
}

/// A bulk import's status and cursor (in the catalog shard).
pub(crate) fn import(id: &str) -> Vec<u8> {
    space("cat").pack(&("i", id))
}
/// The lines of a bulk import whose stock a warehouse has taken in:
/// `(first line) → end line` (little-endian i64), one per chunk.
pub(crate) fn import_ranges(id: &str) -> Subspace {
    space("inv").subspace(&("import", id))
}

// A region's replica of the catalog (in the region's own shard): the same
// keys as the catalog, plus where it stands.
/// The cursor of the newest catalog event a replica holds; absent until
/// its first full copy is done.
pub(crate) fn replica_position() -> Vec<u8> {
    space("cat").pack(&("rc",))
}

// Inventory (in the warehouse's shard).
pub(crate) fn stock_slot(sku: &str, slot: u32) -> Vec<u8> {
    space("inv").pack(&("s", sku, slot))
}
pub(crate) fn stock_slots(sku: &str) -> Subspace {
    space("inv").subspace(&("s", sku))
}
pub(crate) fn received(sku: &str) -> Vec<u8> {
    space("inv").pack(&("recv", sku))
}
pub(crate) fn reserved(sku: &str) -> Vec<u8> {
    space("inv").pack(&("resv", sku))
}
pub(crate) fn sold(sku: &str) -> Vec<u8> {
    space("inv").pack(&("sold", sku))
}
pub(crate) fn inventory_log(sku: &str) -> Subspace {
    space("inv").subspace(&("log", sku))
}
/// `n` tells apart several entries written by one transaction.
pub(crate) fn inventory_log_entry(sku: &str, n: u16) -> Vec<u8> {
    inventory_log(sku).pack_with_versionstamp(&(Versionstamp::incomplete(n),))
}
pub(crate) fn reservation(id: &str) -> Vec<u8> {
    space("inv").pack(&("r", id))
}
pub(crate) fn reservation_expiry(expires_ms: u64, id: &str) -> Vec<u8> {
    space("inv").pack(&("exp", expires_ms, id))
}
pub(crate) fn reservation_expiries() -> Subspace {
    space("inv").subspace(&("exp",))
}

// Carts, orders, payments, sagas (in the shopper's shard).
pub(crate) fn cart(id: &str) -> Vec<u8> {
    space("cart").pack(&("c", id))
}
pub(crate) fn carts() -> Subspace {
    space("cart").subspace(&("c",))
}
/// The cart an owner's create request with this idempotency key made.
pub(crate) fn cart_created_by(owner: &str, key: &str) -> Vec<u8> {
    space("cart").pack(&("by-key", owner, key))
}
pub(crate) fn cart_expiry(expires_ms: u64, id: &str) -> Vec<u8> {
    space("cart").pack(&("exp", expires_ms, id))
}
pub(crate) fn cart_expiries() -> Subspace {
    space("cart").subspace(&("exp",))
}
pub(crate) fn order(id: &str) -> Vec<u8> {
    space("ord").pack(&("o", id))
}
pub(crate) fn order_by_owner(owner: &str, order_id: &str) -> Vec<u8> {
    space("ord").pack(&("by", owner, order_id))
}
pub(crate) fn orders_by_owner(owner: &str) -> Subspace {
    space("ord").subspace(&("by", owner))
}
pub(crate) fn idempotency(owner: &str, key: &str) -> Vec<u8> {
    space("idem").pack(&(owner, key))
}
pub(crate) fn saga(order_id: &str) -> Vec<u8> {
    space("saga").pack(&("s", order_id))
}
/// Sagas not yet completed or compensated: what recovery scans.
pub(crate) fn saga_open(order_id: &str) -> Vec<u8> {
    space("saga").pack(&("open", order_id))
}
pub(crate) fn sagas_open() -> Subspace {
    space("saga").subspace(&("open",))
}
pub(crate) fn payment(order_id: &str) -> Vec<u8> {
    space("pay").pack(&(order_id,))
}

// Outbox queues and what their consumers keep.
pub(crate) fn outbox(topic: &str) -> Subspace {
    space("outbox").subspace(&(topic,))
}
/// `n` tells apart several entries written by one transaction.
pub(crate) fn outbox_entry(topic: &str, n: u16) -> Vec<u8> {
    outbox(topic).pack_with_versionstamp(&(Versionstamp::incomplete(n),))
}
/// Where an undecodable outbox entry is kept (by its original key).
pub(crate) fn outbox_dead(topic: &str, original_key: &[u8]) -> Vec<u8> {
    space("outbox-dead").pack(&(topic, original_key))
}
pub(crate) fn notification(order_id: &str, kind: &str) -> Vec<u8> {
    space("notif").pack(&(order_id, kind))
}
pub(crate) fn analytics_counter(name: &str) -> Vec<u8> {
    space("stats").pack(&("n", name))
}
pub(crate) fn analytics_counters() -> Subspace {
    space("stats").subspace(&("n",))
}
pub(crate) fn analytics_seen(event_id: &str) -> Vec<u8> {
    space("stats").pack(&("seen", event_id))
}
/// When a seen analytics event's record may go (its redelivery window is
/// long past).
pub(crate) fn analytics_seen_gc(due_ms: u64, event_id: &str) -> Vec<u8> {
    space("stats").pack(&("seen-gc", due_ms, event_id))
}
pub(crate) fn analytics_seen_gcs() -> Subspace {
    space("stats").subspace(&("seen-gc",))
}
/// When a finished (released or committed) reservation's record may go.
pub(crate) fn reservation_gc(due_ms: u64, id: &str) -> Vec<u8> {
    space("inv").pack(&("gc", due_ms, id))
}
pub(crate) fn reservation_gcs() -> Subspace {
    space("inv").subspace(&("gc",))
}

// Reviews as their authors' shards keep them (the records of truth).
/// A review by its id.
pub(crate) fn authored_review(id: &str) -> Vec<u8> {
    space("rva").pack(&("r", id))
}
/// The review an author wrote of a product: `(author, sku) → id` (one
/// review per shopper per product).
pub(crate) fn review_by_author(author: &str, sku: &str) -> Vec<u8> {
    space("rva").pack(&("by", author, sku))
}
/// A shopper's helpful vote on a review (in the voter's shard).
pub(crate) fn review_vote(review_id: &str, voter: &str) -> Vec<u8> {
    space("rva").pack(&("v", review_id, voter))
}
/// A shopper bought a SKU in a confirmed order (in the buyer's shard):
/// what makes their review a verified purchase.
pub(crate) fn purchased(owner: &str, sku: &str) -> Vec<u8> {
    space("rva").pack(&("bought", owner, sku))
}

// The reviews every region shows: a projection written in the catalog
// shard by the outbox consumer and copied into every replica with the
// catalog's feed.
pub(crate) fn reviews() -> Subspace {
    space("rv")
}
/// A product's review: `(sku, id) → Review`.
pub(crate) fn review(sku: &str, id: &str) -> Vec<u8> {
    space("rv").pack(&("r", sku, id))
}
pub(crate) fn reviews_of(sku: &str) -> Subspace {
    space("rv").subspace(&("r", sku))
}
/// Which product a review is of: `id → sku`.
pub(crate) fn review_sku(id: &str) -> Vec<u8> {
    space("rv").pack(&("i", id))
}
/// One of a product's review orders: keys `(a, b, id) → ()` under it.
pub(crate) fn review_order(sku: &str, order: &str) -> Subspace {
    space("rv").subspace(&("x", sku, order))
}
/// One counter of a product's review summary.
pub(crate) fn review_count(sku: &str, field: &str) -> Vec<u8> {
    space("rv").pack(&("s", sku, field))
}
pub(crate) fn review_counts(sku: &str) -> Subspace {
    space("rv").subspace(&("s", sku))
}

// What only the projection's writer keeps (in the catalog shard, not
// copied into replicas).
/// A vote the projection counted: `(review, voter) → ()`.
pub(crate) fn counted_vote(review_id: &str, voter: &str) -> Vec<u8> {
    space("rvm").pack(&("v", review_id, voter))
}
pub(crate) fn counted_votes(review_id: &str) -> Subspace {
    space("rvm").subspace(&("v", review_id))
}
/// Votes that reached the projection before their review did.
pub(crate) fn early_votes(review_id: &str) -> Vec<u8> {
    space("rvm").pack(&("early", review_id))
}
