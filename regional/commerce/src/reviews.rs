//! Product reviews: written where their author lives, shown everywhere.
//!
//! A review is written in its author's shard (one per shopper per product:
//! a second write edits the first) and acknowledged there, without waiting
//! on any other region. The same transaction queues the review's new state
//! on the `reviews` outbox topic. The outbox consumer of that shard applies
//! it to the reviews projection in the catalog shard: the review under its
//! product, its place in each listing order, and the product's summary
//! (count, rating total, histogram) changed by atomic adds, never recounted
//! on read. Each application appends one catalog change-feed event per
//! product with the rows it changed and the summary they left, so every
//! region's replica copies the projection in feed order and every edge
//! purges the product's `reviews:<sku>` answers, as it does for a catalog
//! change.
//!
//! The outbox is at least once, so the consumer is idempotent: a review's
//! state carries a revision (bumped by every edit and moderation in the
//! author's shard) and the projection applies only a newer one; a helpful
//! vote is counted once per (review, voter), remembered in the catalog
//! shard beside the projection. A vote that arrives before its review (the
//! two come from different shards' queues) waits there and is counted when
//! the review arrives. [`Commerce::audit_reviews`] recounts a product from
//! its visible reviews: what the summary must equal.

use std::collections::BTreeMap;

use db::{RangeOption, Transaction};
use serde::{Deserialize, Serialize};
use topology::ShardedId;

use crate::catalog::{validate_sku, validate_text};
use crate::error::{CommerceError, Result, invalid};
use crate::feed::{Change, State, append_event};
use crate::outbox::Topic;
use crate::{Commerce, counter, decode, get_json, keys, set_json, set_versionstamped_json};

/// Longest title, in characters.
pub const MAX_TITLE_LEN: usize = 120;
/// Longest text, in characters.
pub const MAX_BODY_LEN: usize = 4_000;
/// Longest display name, in characters.
pub const MAX_NAME_LEN: usize = 40;
/// Reviews one page holds at most.
pub const MAX_PAGE: usize = 50;
/// Reviews one page holds when the caller does not say.
pub const DEFAULT_PAGE: usize = 10;
/// Operation ids a review remembers (repeats of recent writes).
pub const MAX_RECENT_OPS: usize = 8;
/// Reviews one feed event carries at most (a larger application is split
/// into several events of the same product).
pub const MAX_EVENT_REVIEWS: usize = 16;
/// What a language tag may be: a 2–3 letter language, optionally a region
/// (`en`, `en-GB`, `pt-BR`, `es-419`).
pub const LANG_PATTERN: &str = "^[a-z]{2,3}(-([A-Z]{2}|[0-9]{3}))?$";
/// A title: text (no control characters but newline and tab) with at
/// least one character that is not a space.
pub const TITLE_PATTERN: &str = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*[^\\x00-\\x20\\x7F-\\x9F][^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$";
/// A display name: one line with at least one character that is not a
/// space.
pub const NAME_PATTERN: &str =
    "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\x00-\\x20\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$";
/// The display name of a review whose author gave none.
pub const ANONYMOUS: &str = "A shopper";

/// What a shopper writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// 1 to 5 stars.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    #[schema(schema_with = title_schema)]
    pub title: String,
    #[schema(schema_with = body_schema)]
    pub body: String,
    /// The language the review is written in (BCP 47: `en`, `en-GB`).
    #[schema(schema_with = lang_schema)]
    pub lang: String,
    /// The name shown with the review (absent: "A shopper").
    #[serde(default)]
    #[schema(schema_with = name_schema)]
    pub name: Option<String>,
}

fn title_schema() -> utoipa::openapi::Schema {
    crate::openapi::string(TITLE_PATTERN, 1, MAX_TITLE_LEN)
        .build()
        .into()
}

fn lang_schema() -> utoipa::openapi::Schema {
    crate::openapi::string(LANG_PATTERN, 2, 7).build().into()
}

fn body_schema() -> utoipa::openapi::Schema {
    crate::openapi::text(0, MAX_BODY_LEN).build().into()
}

fn name_schema() -> utoipa::openapi::Schema {
    crate::openapi::nullable(
        crate::openapi::string(NAME_PATTERN, 1, MAX_NAME_LEN),
        utoipa::openapi::Type::String,
    )
}

/// Whether `text` has a character that is not a space, tab or newline
/// (what the patterns' middle class asks).
fn not_blank(text: &str) -> bool {
    text.chars().any(|c| c > ' ')
}

impl ReviewInput {
    pub fn validate(&self) -> Result<()> {
        if !(1..=5).contains(&self.rating) {
            return Err(invalid("rating", "must be 1 to 5"));
        }
        validate_title(&self.title)?;
        validate_text("body", &self.body, 0, MAX_BODY_LEN)?;
        validate_lang(&self.lang)?;
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        Ok(())
    }
}

/// What [`TITLE_PATTERN`] states (with the length bound).
pub fn validate_title(title: &str) -> Result<()> {
    validate_text("title", title, 1, MAX_TITLE_LEN)?;
    if !not_blank(title) {
        return Err(invalid("title", "must not be blank"));
    }
    Ok(())
}

/// What [`NAME_PATTERN`] states (with the length bound).
pub fn validate_name(name: &str) -> Result<()> {
    validate_text("name", name, 1, MAX_NAME_LEN)?;
    if name.contains(['\n', '\t']) || !not_blank(name) {
        return Err(invalid("name", "must be one line, not blank"));
    }
    Ok(())
}

/// What [`LANG_PATTERN`] states.
pub fn validate_lang(lang: &str) -> Result<()> {
    let (language, region) = match lang.split_once('-') {
        Some((l, r)) => (l, Some(r)),
        None => (lang, None),
    };
    let language_ok =
        (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = match region {
        None => true,
        Some(r) => {
            (r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
                || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
        }
    };
    if language_ok && region_ok {
        Ok(())
    } else {
        Err(invalid(
            "lang",
            "must be a language tag such as en, en-GB or es-419",
        ))
    }
}

/// A review as its author's shard keeps it: the record of truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthoredReview {
    pub id: String,
    pub sku: String,
    pub author: String,
    pub name: String,
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    pub title: String,
    pub body: String,
    pub lang: String,
    /// The author has a confirmed order with this SKU.
    pub verified: bool,
    /// Hidden by a moderator: in no listing and no summary.
    pub hidden: bool,
    /// Bumped by every edit and moderation: the projection applies only a
    /// newer revision.
    pub revision: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// The last writes' operation ids with the revision each produced: a
    /// write repeated with the same id is not applied twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(ignore)]
    pub recent_ops: Vec<(String, u64)>,
}

/// A review as the projection keeps it (and every replica copies it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Review {
    pub id: String,
    pub sku: String,
    /// The author's id: only to refuse a vote on one's own review; never
    /// shown.
    pub author: String,
    pub name: String,
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    pub title: String,
    pub body: String,
    pub lang: String,
    pub verified: bool,
    pub hidden: bool,
    pub revision: u64,
    /// Helpful votes counted.
    pub helpful: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Review {
    fn visible(&self) -> bool {
        !self.hidden
    }

    /// Its keys in each listing order.
    fn order_keys(&self) -> [Vec<u8>; 4] {
        let newest = u64::MAX - self.created_ms;
        let rating = u64::from(self.rating);
        [
            ReviewSort::Newest.key(&self.sku, 0, newest, &self.id),
            ReviewSort::Helpful.key(&self.sku, u64::MAX - self.helpful, newest, &self.id),
            ReviewSort::RatingHigh.key(&self.sku, 5 - rating.min(5), newest, &self.id),
            ReviewSort::RatingLow.key(&self.sku, rating, newest, &self.id),
        ]
    }
}

/// A review as shoppers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewView {
    pub id: String,
    pub sku: String,
    pub name: String,
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    pub title: String,
    pub body: String,
    pub lang: String,
    pub verified: bool,
    pub helpful: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Edited after it was first written.
    pub edited: bool,
}

impl From<&Review> for ReviewView {
    fn from(r: &Review) -> Self {
        ReviewView {
            id: r.id.clone(),
            sku: r.sku.clone(),
            name: r.name.clone(),
            rating: r.rating,
            title: r.title.clone(),
            body: r.body.clone(),
            lang: r.lang.clone(),
            verified: r.verified,
            helpful: r.helpful,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            edited: r.updated_ms > r.created_ms,
        }
    }
}

/// A product's review counters, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewCounts {
    /// Visible reviews.
    pub count: u64,
    /// Their ratings added up.
    pub total: u64,
    /// Visible reviews with 1, 2, 3, 4 and 5 stars.
    #[schema(min_items = 5, max_items = 5)]
    pub histogram: [u64; 5],
}

impl ReviewCounts {
    fn add(&mut self, review: &Review, sign: i64) {
        let apply = |v: &mut u64, by: u64| {
            *v = if sign > 0 {
                v.saturating_add(by)
            } else {
                v.saturating_sub(by)
            }
        };
        apply(&mut self.count, 1);
        apply(&mut self.total, u64::from(review.rating));
        if let Some(slot) = self
            .histogram
            .get_mut(usize::from(review.rating).wrapping_sub(1))
        {
            apply(slot, 1);
        }
    }
}

/// A product's reviews summed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewSummary {
    pub sku: String,
    pub count: u64,
    /// The mean rating, to two decimals (absent when there are none).
    pub average: Option<f64>,
    /// Visible reviews with 1, 2, 3, 4 and 5 stars.
    #[schema(min_items = 5, max_items = 5)]
    pub histogram: [u64; 5],
}

impl ReviewSummary {
    fn of(sku: &str, counts: &ReviewCounts) -> Self {
        let average = (counts.count > 0)
            .then(|| (counts.total as f64 / counts.count as f64 * 100.0).round() / 100.0);
        ReviewSummary {
            sku: sku.to_owned(),
            count: counts.count,
            average,
            histogram: counts.histogram,
        }
    }
}

/// What a reviews change left in the projection: the reviews it changed
/// (their new state) and the product's counts after it. What a replica
/// applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewsState {
    pub sku: String,
    #[schema(max_items = 16)]
    pub reviews: Vec<Review>,
    pub counts: ReviewCounts,
}

/// A page of a product's reviews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewPage {
    pub reviews: Vec<ReviewView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// The orders a product's reviews are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewSort {
    /// Newest first.
    #[default]
    Newest,
    /// Most helpful votes first (then newest).
    Helpful,
    /// Most stars first (then newest).
    RatingHigh,
    /// Fewest stars first (then newest).
    RatingLow,
}

impl ReviewSort {
    fn name(self) -> &'static str {
        match self {
            ReviewSort::Newest => "newest",
            ReviewSort::Helpful => "helpful",
            ReviewSort::RatingHigh => "rating_high",
            ReviewSort::RatingLow => "rating_low",
        }
    }

    fn key(self, sku: &str, a: u64, b: u64, id: &str) -> Vec<u8> {
        keys::review_order(sku, self.name()).pack(&(a, b, id))
    }
}

/// What the `reviews` outbox topic carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReviewMessage {
    /// A review's new state.
    Review { review: Review },
    /// A shopper found a review helpful.
    Vote { review_id: String, voter: String },
}

/// How a write went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub review: AuthoredReview,
    /// A new review (not an edit, nor a repeat of the write that made it).
    pub created: bool,
}

/// A product's counts recounted from its visible reviews, beside the
/// stored ones, and the reviews whose helpful count is not the number of
/// votes counted for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewAudit {
    pub stored: ReviewCounts,
    pub recounted: ReviewCounts,
    pub reviews: usize,
    pub helpful_mismatches: Vec<String>,
}

impl ReviewAudit {
    pub fn holds(&self) -> bool {
        self.stored == self.recounted && self.helpful_mismatches.is_empty()
    }
}

fn projected(review: &AuthoredReview, helpful: u64) -> Review {
    Review {
        id: review.id.clone(),
        sku: review.sku.clone(),
        author: review.author.clone(),
        name: review.name.clone(),
        rating: review.rating,
        title: review.title.clone(),
        body: review.body.clone(),
        lang: review.lang.clone(),
        verified: review.verified,
        hidden: review.hidden,
        revision: review.revision,
        helpful,
        created_ms: review.created_ms,
        updated_ms: review.updated_ms,
    }
}

const COUNT_FIELDS: [&str; 7] = ["count", "total", "1", "2", "3", "4", "5"];

async fn read_counts(tx: &Transaction, sku: &str) -> Result<ReviewCounts> {
    let space = keys::review_counts(sku);
    let kvs = tx
        .get_range(&RangeOption::subspace(&space).limit(16), false)
        .await?
        .kvs;
    let mut counts = ReviewCounts::default();
    for kv in &kvs {
        let (field,): (String,) = space
            .unpack(&kv.key)
            .map_err(|_| invalid("review counter key", "does not decode"))?;
        let value = u64::try_from(counter(Some(&kv.value))).unwrap_or(0);
        match field.as_str() {
            "count" => counts.count = value,
            "total" => counts.total = value,
            digit => {
                if let Some(slot) = digit
                    .parse::<usize>()
                    .ok()
                    .and_then(|d| counts.histogram.get_mut(d.wrapping_sub(1)))
                {
                    *slot = value;
                }
            }
        }
    }
    Ok(counts)
}

/// Adds `review`'s share to (or, `sign` < 0, takes it from) its product's
/// counters with atomic adds.
fn add_counts(tx: &Transaction, review: &Review, sign: i64) -> Result<()> {
    tx.add_i64(&keys::review_count(&review.sku, "count"), sign)?;
    tx.add_i64(
        &keys::review_count(&review.sku, "total"),
        sign * i64::from(review.rating),
    )?;
    tx.add_i64(
        &keys::review_count(&review.sku, &review.rating.to_string()),
        sign,
    )?;
    Ok(())
}

/// Sets a product's counters to `counts` (a replica copying the
/// projection's).
fn set_counts(tx: &Transaction, sku: &str, counts: &ReviewCounts) -> Result<()> {
    let values = [
        counts.count,
        counts.total,
        counts.histogram[0],
        counts.histogram[1],
        counts.histogram[2],
        counts.histogram[3],
        counts.histogram[4],
    ];
    for (field, value) in COUNT_FIELDS.iter().zip(values) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        tx.set(&keys::review_count(sku, field), &value.to_le_bytes())?;
    }
    Ok(())
}

/// Replaces `old` (if any) by `new` in the rows and listing orders (not
/// the counters).
fn write_row(tx: &Transaction, old: Option<&Review>, new: &Review) -> Result<()> {
    if let Some(old) = old.filter(|o| o.visible()) {
        for key in old.order_keys() {
            tx.clear(&key)?;
        }
    }
    set_json(tx, &keys::review(&new.sku, &new.id), new)?;
    tx.set(&keys::review_sku(&new.id), new.sku.as_bytes())?;
    if new.visible() {
        for key in new.order_keys() {
            tx.set(&key, b"")?;
        }
    }
    Ok(())
}

/// A replica applies a reviews change: the rows as the change left them,
/// and the counts.
pub(crate) async fn write_reviews_state(tx: &Transaction, state: &ReviewsState) -> Result<()> {
    for review in &state.reviews {
        let old = get_json::<Review>(tx, &keys::review(&review.sku, &review.id), "review").await?;
        write_row(tx, old.as_ref(), review)?;
    }
    set_counts(tx, &state.sku, &state.counts)
}

/// The catalog version a database's copy of the catalog is at.
async fn version_in(tx: &Transaction) -> Result<u64> {
    let v = crate::get_counter(tx, &keys::catalog_version(), false).await?;
    Ok(u64::try_from(v).unwrap_or(0))
}

fn parse_review_id(id: &str) -> Result<ShardedId> {
    if id.len() > 64 {
        return Err(invalid("review id", "too long"));
    }
    id.parse()
        .map_err(|_| invalid("review id", "must be a review id such as eu.<ulid>"))
}

/// A page cursor: the listing key after which the next page starts, as
/// hex of its tuple `(a, b, id)`. Any even run of hex digits is a
/// position in the listing (a cursor no page gave starts wherever it
/// falls), so the cursor stays opaque.
pub(crate) fn encode_after(space: &db::Subspace, key: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(space.bytes())?;
    Some(rest.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn decode_after(space: &db::Subspace, text: &str) -> Result<Vec<u8>> {
    let bad = || invalid("after", "is not a cursor this listing gave");
    if text.len() > 256 || !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    let mut key = space.bytes().to_vec();
    for i in (0..text.len()).step_by(2) {
        key.push(u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?);
    }
    Ok(key)
}

impl Commerce {
    /// Writes `author`'s review of `sku` (a second write edits the first),
    /// in the author's shard, and queues it for every region. `op_id` (the
    /// request's `Idempotency-Key`) makes a repeat of the same write return
    /// the review as that write left it.
    pub async fn put_review(
        &self,
        author: &ShardedId,
        sku: &str,
        input: &ReviewInput,
        op_id: Option<&str>,
    ) -> Result<Written> {
        validate_sku(sku)?;
        input.validate()?;
        if let Some(op) = op_id {
            crate::checkout::validate_idempotency_key(op)?;
        }
        // Only products that exist are reviewed (a product this region's
        // replica lacks is looked up in the catalog shard).
        self.product(sku).await?;
        let db = self.owned_db(author)?;
        let now_ms = self.now_ms();
        let new_id = self.new_id(author.shard()).to_string();
        let author_text = author.to_string();
        let name = input
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or(ANONYMOUS)
            .to_owned();
        let (author_text, new_id, name) = (&author_text, &new_id, &name);
        db.run(|tx, _| async move {
            let by_key = keys::review_by_author(author_text, sku);
            let verified = tx.get(&keys::purchased(author_text, sku)).await?.is_some();
            let existing = match tx.get(&by_key).await? {
                Some(id) => {
                    let id = String::from_utf8_lossy(&id).into_owned();
                    get_json::<AuthoredReview>(&tx, &keys::authored_review(&id), "review").await?
                }
                None => None,
            };
            let (mut review, created) = match existing {
                Some(review) => {
                    if let Some(op) = op_id
                        && review.recent_ops.iter().any(|(o, _)| o == op)
                    {
                        return Ok(Written {
                            review,
                            created: false,
                        });
                    }
                    let unchanged = review.rating == input.rating
                        && review.title == input.title
                        && review.body == input.body
                        && review.lang == input.lang
                        && &review.name == name
                        && review.verified == verified;
                    if unchanged {
                        return Ok(Written {
                            review,
                            created: false,
                        });
                    }
                    (review, false)
                }
                None => (
                    AuthoredReview {
                        id: new_id.clone(),
                        sku: sku.to_owned(),
                        author: author_text.clone(),
                        name: String::new(),
                        rating: 0,
                        title: String::new(),
                        body: String::new(),
                        lang: String::new(),
                        verified,
                        hidden: false,
                        revision: 0,
                        created_ms: now_ms,
                        updated_ms: now_ms,
                        recent_ops: Vec::new(),
                    },
                    true,
                ),
            };
            review.name = name.clone();
            review.rating = input.rating;
            review.title = input.title.clone();
            review.body = input.body.clone();
            review.lang = input.lang.clone();
            review.verified = verified;
            review.revision += 1;
            review.updated_ms = now_ms.max(review.created_ms);
            if let Some(op) = op_id {
                review.recent_ops.push((op.to_owned(), review.revision));
                let excess = review.recent_ops.len().saturating_sub(MAX_RECENT_OPS);
                review.recent_ops.drain(..excess);
            }
            set_json(&tx, &keys::authored_review(&review.id), &review)?;
            tx.set(&by_key, review.id.as_bytes())?;
            queue(&tx, &review)?;
            Ok::<_, CommerceError>(Written { review, created })
        })
        .await
    }

    /// `author`'s review of `sku`, as their shard holds it.
    pub async fn my_review(&self, author: &ShardedId, sku: &str) -> Result<AuthoredReview> {
        validate_sku(sku)?;
        let db = self.owned_db(author)?;
        let author_text = author.to_string();
        let author_text = &author_text;
        let found = db
            .run(|tx, _| async move {
                let Some(id) = tx.get(&keys::review_by_author(author_text, sku)).await? else {
                    return Ok::<_, CommerceError>(None);
                };
                let id = String::from_utf8_lossy(&id).into_owned();
                get_json::<AuthoredReview>(&tx, &keys::authored_review(&id), "review").await
            })
            .await?;
        found.ok_or_else(|| CommerceError::NotFound {
            what: "review",
            id: format!("of {sku} by this shopper"),
        })
    }

    /// `voter` found review `review_id` helpful: counted once per shopper,
    /// written in the voter's shard (a repeat changes nothing). A shopper
    /// cannot vote for their own review.
    pub async fn vote_helpful(&self, voter: &ShardedId, review_id: &str) -> Result<()> {
        parse_review_id(review_id)?;
        let review = self.projected_review(review_id).await?;
        let voter_text = voter.to_string();
        if review.author == voter_text {
            return Err(CommerceError::OwnReview);
        }
        let db = self.owned_db(voter)?;
        let voter_text = &voter_text;
        db.run(|tx, _| async move {
            let key = keys::review_vote(review_id, voter_text);
            if tx.get(&key).await?.is_some() {
                return Ok(());
            }
            tx.set(&key, b"")?;
            enqueue(
                &tx,
                &ReviewMessage::Vote {
                    review_id: review_id.to_owned(),
                    voter: voter_text.clone(),
                },
            )?;
            Ok::<_, CommerceError>(())
        })
        .await
    }

    /// A visible review as this region shows it (else as the catalog
    /// shard does: it may not have reached this region yet).
    async fn projected_review(&self, review_id: &str) -> Result<Review> {
        let mut dbs = vec![self.catalog_read_db()?];
        if self.reads_replica() {
            dbs.push(self.catalog_db()?);
        }
        for db in dbs {
            let found = db
                .run(|tx, _| async move {
                    let Some(sku) = tx.get(&keys::review_sku(review_id)).await? else {
                        return Ok::<_, CommerceError>(None);
                    };
                    let sku = String::from_utf8_lossy(&sku).into_owned();
                    get_json::<Review>(&tx, &keys::review(&sku, review_id), "review").await
                })
                .await?;
            if let Some(review) = found.filter(Review::visible) {
                return Ok(review);
            }
        }
        Err(CommerceError::NotFound {
            what: "review",
            id: review_id.to_owned(),
        })
    }

    /// A moderator hides (or restores) a review, in its author's shard:
    /// a hidden review leaves every listing and summary. Returns it.
    pub async fn moderate_review(&self, review_id: &str, hidden: bool) -> Result<AuthoredReview> {
        let id = parse_review_id(review_id)?;
        let db = self.shards().for_id(&id)?;
        let now_ms = self.now_ms();
        let found = db
            .run(|tx, _| async move {
                let key = keys::authored_review(review_id);
                let Some(mut review) = get_json::<AuthoredReview>(&tx, &key, "review").await?
                else {
                    return Ok::<_, CommerceError>(None);
                };
                if review.hidden != hidden {
                    review.hidden = hidden;
                    review.revision += 1;
                    review.updated_ms = review.updated_ms.max(now_ms);
                    set_json(&tx, &key, &review)?;
                    queue(&tx, &review)?;
                }
                Ok(Some(review))
            })
            .await?;
        found.ok_or_else(|| CommerceError::NotFound {
            what: "review",
            id: review_id.to_owned(),
        })
    }

    /// Applies a batch of `reviews` messages to the projection in the
    /// catalog shard, in one transaction, idempotently; appends one feed
    /// event per product changed (several when it changed many reviews).
    pub(crate) async fn project_reviews(&self, messages: &[ReviewMessage]) -> Result<()> {
        let now_ms = self.now_ms();
        self.catalog_db()?
            .run(|tx, _| async move {
                // Per product: the counts before, the reviews changed.
                let mut touched: BTreeMap<String, (ReviewCounts, BTreeMap<String, Review>)> =
                    BTreeMap::new();
                for message in messages {
                    let change = match message {
                        ReviewMessage::Review { review } => apply_review(&tx, review).await?,
                        ReviewMessage::Vote { review_id, voter } => {
                            apply_vote(&tx, review_id, voter).await?
                        }
                    };
                    let Some((old, new)) = change else { continue };
                    if !touched.contains_key(&new.sku) {
                        let counts = read_counts(&tx, &new.sku).await?;
                        touched.insert(new.sku.clone(), (counts, BTreeMap::new()));
                    }
                    let Some((counts, rows)) = touched.get_mut(&new.sku) else {
                        continue;
                    };
                    if let Some(old) = old.as_ref().filter(|o| o.visible()) {
                        counts.add(old, -1);
                        add_counts(&tx, old, -1)?;
                    }
                    if new.visible() {
                        counts.add(&new, 1);
                        add_counts(&tx, &new, 1)?;
                    }
                    rows.insert(new.id.clone(), new);
                }
                if touched.is_empty() {
                    return Ok(());
                }
                let version = crate::catalog::bump_version(&tx).await?;
                let mut n: u16 = 0;
                for (sku, (counts, rows)) in touched {
                    let rows: Vec<Review> = rows.into_values().collect();
                    for chunk in rows.chunks(MAX_EVENT_REVIEWS) {
                        let state = State::Reviews(ReviewsState {
                            sku: sku.clone(),
                            reviews: chunk.to_vec(),
                            counts,
                        });
                        append_event(
                            &tx,
                            n,
                            version,
                            now_ms,
                            Change::ReviewsChanged { sku: sku.clone() },
                            vec![regional_api::purge::reviews_tag(&sku)],
                            &state,
                        )?;
                        n = n.saturating_add(1);
                    }
                }
                Ok::<_, CommerceError>(())
            })
            .await
    }

    /// The database to read reviews from for a caller that has seen
    /// catalog version `min_version`: this region's copy when it is that
    /// recent, else the catalog shard.
    async fn reviews_db(&self, min_version: u64) -> Result<&db::Database> {
        let local = self.catalog_read_db()?;
        if min_version == 0 || !self.reads_replica() {
            return Ok(local);
        }
        let at = local
            .run(|tx, _| async move { version_in(&tx).await })
            .await?;
        if at >= min_version {
            Ok(local)
        } else {
            self.catalog_db()
        }
    }

    /// A page of `sku`'s visible reviews in `sort` order, after the cursor
    /// a previous page gave.
    pub async fn reviews(
        &self,
        sku: &str,
        sort: ReviewSort,
        limit: usize,
        after: Option<&str>,
        min_version: u64,
    ) -> Result<ReviewPage> {
        validate_sku(sku)?;
        if limit == 0 || limit > MAX_PAGE {
            return Err(invalid("limit", format!("must be 1..={MAX_PAGE}")));
        }
        let space = keys::review_order(sku, sort.name());
        let begin = match after {
            Some(text) if !text.is_empty() => db::keys::key_after(&decode_after(&space, text)?),
            _ => space.range().0,
        };
        let end = space.range().1;
        if begin >= end {
            return Ok(ReviewPage {
                reviews: Vec::new(),
                next: None,
            });
        }
        let db = self.reviews_db(min_version).await?;
        let (space, begin, end) = (&space, &begin, &end);
        db.run(|tx, _| async move {
            let range = RangeOption::new(begin.clone(), end.clone()).limit(limit + 1);
            let chunk = tx.get_range(&range, true).await?;
            let mut ids = Vec::with_capacity(limit);
            for kv in chunk.kvs.iter().take(limit) {
                let (_, _, id): (u64, u64, String) = space
                    .unpack(&kv.key)
                    .map_err(|_| invalid("review order key", "does not decode"))?;
                ids.push((kv.key.clone(), id));
            }
            let rows = futures::future::try_join_all(ids.iter().map(|(_, id)| {
                let key = keys::review(sku, id);
                let tx = tx.clone();
                async move { tx.get(&key).await }
            }))
            .await?;
            let mut reviews = Vec::with_capacity(rows.len());
            for row in rows.into_iter().flatten() {
                reviews.push(ReviewView::from(&decode::<Review>(&row, "review")?));
            }
            let next = if chunk.kvs.len() > limit {
                ids.last().and_then(|(key, _)| encode_after(space, key))
            } else {
                None
            };
            Ok::<_, CommerceError>(ReviewPage { reviews, next })
        })
        .await
    }

    /// `sku`'s review summary, as its counters hold it.
    pub async fn review_summary(&self, sku: &str, min_version: u64) -> Result<ReviewSummary> {
        validate_sku(sku)?;
        let db = self.reviews_db(min_version).await?;
        let counts = db
            .run(|tx, _| async move { read_counts(&tx, sku).await })
            .await?;
        Ok(ReviewSummary::of(sku, &counts))
    }

    /// Recounts `sku`'s summary from its visible reviews in the catalog
    /// shard (and each review's helpful count from the votes counted),
    /// beside what the counters hold: they must be equal.
    pub async fn audit_reviews(&self, sku: &str) -> Result<ReviewAudit> {
        self.audit_reviews_in(self.catalog_db()?, sku, true).await
    }

    /// The same audit of this region's copy of the projection (votes are
    /// not copied, so only the counts are checked).
    pub async fn audit_local_reviews(&self, sku: &str) -> Result<ReviewAudit> {
        self.audit_reviews_in(self.catalog_read_db()?, sku, false)
            .await
    }

    async fn audit_reviews_in(
        &self,
        db: &db::Database,
        sku: &str,
        votes: bool,
    ) -> Result<ReviewAudit> {
        validate_sku(sku)?;
        let space = keys::reviews_of(sku);
        let (begin, end) = space.range();
        let mut from = begin;
        let mut recounted = ReviewCounts::default();
        let mut reviews = 0;
        let mut helpful_mismatches = Vec::new();
        loop {
            let (start, end_ref) = (&from, &end);
            let chunk = db
                .run(|tx, _| async move {
                    let range = RangeOption::new(start.clone(), end_ref.clone()).limit(500);
                    Ok::<_, CommerceError>(tx.get_range(&range, true).await?)
                })
                .await?;
            for kv in &chunk.kvs {
                let review: Review = decode(&kv.value, "review")?;
                reviews += 1;
                if review.visible() {
                    recounted.add(&review, 1);
                }
                if votes {
                    let id = &review.id;
                    let counted = db
                        .run(|tx, _| async move {
                            let range = RangeOption::subspace(&keys::counted_votes(id));
                            Ok::<_, CommerceError>(tx.get_range_all(range, true).await?.len())
                        })
                        .await?;
                    if counted as u64 != review.helpful {
                        helpful_mismatches.push(review.id.clone());
                    }
                }
            }
            match chunk.kvs.last() {
                Some(last) if chunk.more => from = db::keys::key_after(&last.key),
                _ => break,
            }
        }
        let stored = db
            .run(|tx, _| async move { read_counts(&tx, sku).await })
            .await?;
        Ok(ReviewAudit {
            stored,
            recounted,
            reviews,
            helpful_mismatches,
        })
    }
}

/// Queues a review's new state for the projection.
fn queue(tx: &Transaction, review: &AuthoredReview) -> Result<()> {
    enqueue(
        tx,
        &ReviewMessage::Review {
            review: projected(review, 0),
        },
    )
}

fn enqueue(tx: &Transaction, message: &ReviewMessage) -> Result<()> {
    set_versionstamped_json(tx, &keys::outbox_entry(Topic::Reviews.name(), 0), message)
}

/// Applies one review state; gives the row before and after when it
/// changed the projection.
async fn apply_review(
    tx: &Transaction,
    review: &Review,
) -> Result<Option<(Option<Review>, Review)>> {
    let key = keys::review(&review.sku, &review.id);
    let old = get_json::<Review>(tx, &key, "review").await?;
    if old.as_ref().is_some_and(|o| o.revision >= review.revision) {
        return Ok(None);
    }
    let mut new = review.clone();
    new.helpful = match &old {
        Some(old) => old.helpful,
        None => {
            // Votes counted before the review arrived.
            let early = keys::early_votes(&review.id);
            let n = crate::get_counter(tx, &early, false).await?;
            tx.clear(&early)?;
            u64::try_from(n).unwrap_or(0)
        }
    };
    write_row(tx, old.as_ref(), &new)?;
    Ok(Some((old, new)))
}

/// Counts one vote once; gives the review before and after when it is in
/// the projection already.
async fn apply_vote(
    tx: &Transaction,
    review_id: &str,
    voter: &str,
) -> Result<Option<(Option<Review>, Review)>> {
    let marker = keys::counted_vote(review_id, voter);
    if tx.get(&marker).await?.is_some() {
        return Ok(None);
    }
    tx.set(&marker, b"")?;
    let Some(sku) = tx.get(&keys::review_sku(review_id)).await? else {
        tx.add_i64(&keys::early_votes(review_id), 1)?;
        return Ok(None);
    };
    let sku = String::from_utf8_lossy(&sku).into_owned();
    let Some(old) = get_json::<Review>(tx, &keys::review(&sku, review_id), "review").await? else {
        tx.add_i64(&keys::early_votes(review_id), 1)?;
        return Ok(None);
    };
    let mut new = old.clone();
    new.helpful += 1;
    write_row(tx, Some(&old), &new)?;
    Ok(Some((Some(old), new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        for ok in ["en", "en-GB", "pt-BR", "es-419", "haw"] {
            assert!(validate_lang(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "e", "EN", "en-gb", "en-GBR", "english", "en-", "en_GB", "es-41",
        ] {
            assert!(validate_lang(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_no_page_gave() {
        let space = keys::review_order("MUG-1", "newest");
        let key = space.pack(&(0u64, 7u64, "eu.01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        let text = encode_after(&space, &key).unwrap();
        assert_eq!(decode_after(&space, &text).unwrap(), key);
        for bad in ["zz", "0", "0g", &"ab".repeat(200)] {
            assert!(decode_after(&space, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_summary_averages_to_two_decimals() {
        let counts = ReviewCounts {
            count: 3,
            total: 13,
            histogram: [0, 0, 0, 2, 1],
        };
        assert_eq!(ReviewSummary::of("A", &counts).average, Some(4.33));
        assert_eq!(
            ReviewSummary::of("A", &ReviewCounts::default()).average,
            None
        );
    }
}
