//! Recommendations: the sales they are computed from, and the sets the
//! regions serve.
//!
//! **Sales.** Every confirmed order appends its lines to the buyer's
//! shard's sales log (`sales` keys, in commit order: versionstamped), in
//! the transaction that confirms it; the demo's order history is written
//! there too. The batch job (the `recommend` crate, on DataFusion) exports
//! the log to Parquet, whole or from where its last export stopped (commit
//! order, so a line committed later is never behind that cursor, whatever
//! its time says).
//!
//! **Sets.** The job writes what it computed into the catalog shard as a
//! new version (per product "bought together", per region and category
//! "popular now"), page by page under keys of that version that no reader
//! looks at yet, then publishes it in one transaction that moves the
//! `current` pointer: readers switch to the whole new set at once, never
//! to half of it. Older versions are cleared afterwards.

use db::RangeOption;
use serde::{Deserialize, Serialize};
use topology::ShardId;

use crate::catalog::validate_sku;
use crate::error::{CommerceError, Result, invalid};
use crate::{Commerce, decode, get_json, set_json};

/// Recommendations one product or one (region, category) keeps at most.
pub const MAX_ITEMS: usize = 20;
/// Records one write of a set carries at most.
pub const MAX_WRITE_PAGE: usize = 500;
/// Sales lines one read returns at most.
pub const MAX_SALES_PAGE: usize = 5_000;
/// The category key of "popular in every category".
pub const ALL_CATEGORIES: &str = "*";

fn space() -> db::Subspace {
    db::Subspace::from("rec")
}
fn sales_space() -> db::Subspace {
    db::Subspace::from("sales")
}
fn current_key() -> Vec<u8> {
    space().pack(&("cur",))
}
fn info_key(version: u64) -> Vec<u8> {
    space().pack(&("info", version))
}
fn together_key(version: u64, sku: &str) -> Vec<u8> {
    space().pack(&("bt", version, sku))
}
fn popular_key(version: u64, region: &str, category: &str) -> Vec<u8> {
    space().pack(&("pop", version, region, category))
}
fn version_space(kind: &str, version: u64) -> db::Subspace {
    space().subspace(&(kind, version))
}

/// One line of a confirmed order, as the sales log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleLine {
    pub order_id: String,
    pub at_ms: u64,
    pub sku: String,
    pub qty: i64,
}

/// A sales line read back, with the shard it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub shard: ShardId,
    pub line: SaleLine,
}

/// A page of a shard's sales log.
#[derive(Debug, Clone)]
pub struct SalesPage {
    pub sales: Vec<SaleLine>,
    /// The key after the last line read: where the next page (or the
    /// next export) starts (`None`: the page is empty).
    pub after: Option<Vec<u8>>,
    /// More lines follow in the log now.
    pub more: bool,
}

/// A recommended product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommended {
    pub sku: String,
    /// How strongly (a lift or a recency-weighted count; only the order
    /// means something).
    pub score: f64,
}

/// What a published set is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SetInfo {
    pub version: u64,
    /// When the job that computed it finished.
    pub computed_ms: u64,
    /// The newest sale it saw.
    pub sales_through_ms: u64,
    /// Order lines it read.
    pub lines: u64,
    /// Where it ran: `embedded` or a Ballista scheduler's address.
    pub engine: String,
}

/// The recommendations of one product, or the popular products of one
/// region and category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendations {
    /// The set they come from (absent: none was published yet).
    pub set: Option<SetInfo>,
    pub items: Vec<Recommended>,
}

/// Appends a confirmed order's line to the sales log (in the caller's
/// transaction, in the buyer's shard); `n` tells apart the lines of one
/// transaction.
pub(crate) fn record_sale(tx: &db::Transaction, n: usize, line: &SaleLine) -> Result<()> {
    let n =
        u16::try_from(n).map_err(|_| invalid("sales lines", "at most 65536 per transaction"))?;
    let key =
        sales_space().pack_with_versionstamp(&(db::keys::tuple::Versionstamp::incomplete(n),));
    crate::set_versionstamped_json(tx, &key, line)
}

impl Commerce {
    /// Appends historic order lines to `shard`'s sales log (the demo
    /// history), in one transaction.
    pub async fn record_sales(&self, shard: &ShardId, lines: &[SaleLine]) -> Result<()> {
        if lines.len() > MAX_WRITE_PAGE {
            return Err(CommerceError::LimitExceeded {
                what: "sales lines in one write",
                limit: MAX_WRITE_PAGE as u64,
            });
        }
        for line in lines {
            validate_sku(&line.sku)?;
        }
        self.shards()
            .get(shard)?
            .run(|tx, _| async move {
                for (i, line) in lines.iter().enumerate() {
                    record_sale(&tx, i, line)?;
                }
                Ok::<_, CommerceError>(())
            })
            .await
    }

    /// One page of `shard`'s sales log, in commit order, from `from` (a
    /// previous page's `after`; `None`: the start).
    pub async fn sales_page(
        &self,
        shard: &ShardId,
        from: Option<&[u8]>,
        limit: usize,
    ) -> Result<SalesPage> {
        let limit = limit.clamp(1, MAX_SALES_PAGE);
        let (start, end) = sales_space().range();
        let begin = match from {
            // Only a key inside the log is a place in it.
            Some(key) if key >= start.as_slice() && key <= end.as_slice() => key.to_vec(),
            Some(_) => return Err(invalid("from", "is not a place in the sales log")),
            None => start,
        };
        let (begin, end) = (&begin, &end);
        self.shards()
            .get(shard)?
            .run(|tx, _| async move {
                let range = RangeOption::new(begin.clone(), end.clone()).limit(limit);
                let chunk = tx.get_range(&range, true).await?;
                let sales = chunk
                    .kvs
                    .iter()
                    .map(|kv| decode(&kv.value, "sales line"))
                    .collect::<Result<Vec<SaleLine>>>()?;
                let after = chunk.kvs.last().map(|last| db::keys::key_after(&last.key));
                Ok::<_, CommerceError>(SalesPage {
                    sales,
                    after,
                    more: chunk.more,
                })
            })
            .await
    }

    /// The version a new set should take (one past the newest published).
    pub async fn next_recommendation_version(&self) -> Result<u64> {
        self.catalog_db()?
            .run(|tx, _| async move { next_version(&tx).await })
            .await
    }

    /// Starts a new set: its version, with whatever a job that died while
    /// writing that version left under it cleared (in one transaction).
    pub async fn begin_recommendations(&self) -> Result<u64> {
        self.catalog_db()?
            .run(|tx, _| async move {
                let version = next_version(&tx).await?;
                clear_version(&tx, version)?;
                Ok::<_, CommerceError>(version)
            })
            .await
    }

    /// Writes one page of a set not yet published: per product, its
    /// "bought together" list.
    pub async fn write_bought_together(
        &self,
        version: u64,
        page: &[(String, Vec<Recommended>)],
    ) -> Result<()> {
        check_page(page.len(), page.iter().map(|(_, items)| items.len()))?;
        for (sku, _) in page {
            validate_sku(sku)?;
        }
        self.write_unpublished(
            version,
            page.iter()
                .map(|(sku, items)| (together_key(version, sku), items)),
        )
        .await
    }

    /// Writes one page of a set not yet published: per (region, category)
    /// (or [`ALL_CATEGORIES`]), its popular products.
    pub async fn write_popular(
        &self,
        version: u64,
        page: &[((String, String), Vec<Recommended>)],
    ) -> Result<()> {
        check_page(page.len(), page.iter().map(|(_, items)| items.len()))?;
        for ((region, category), _) in page {
            if region.len() > 64 || category.len() > 64 {
                return Err(invalid(
                    "popular key",
                    "region and category are at most 64 bytes",
                ));
            }
        }
        self.write_unpublished(
            version,
            page.iter()
                .map(|((region, category), items)| (popular_key(version, region, category), items)),
        )
        .await
    }

    async fn write_unpublished<'a>(
        &self,
        version: u64,
        records: impl Iterator<Item = (Vec<u8>, &'a Vec<Recommended>)>,
    ) -> Result<()> {
        let records: Vec<(Vec<u8>, &Vec<Recommended>)> = records.collect();
        let records = &records;
        self.catalog_db()?
            .run(|tx, _| async move {
                // Never into a published set: readers see a set whole.
                if current_version(&tx).await?.is_some_and(|c| c >= version) {
                    return Err(invalid("version", "is published already"));
                }
                for (key, items) in records {
                    set_json(&tx, key, items)?;
                }
                Ok::<_, CommerceError>(())
            })
            .await
    }

    /// Publishes set `info.version` (every page written): one transaction
    /// moves the pointer readers follow. A set older than the current one
    /// is refused.
    pub async fn publish_recommendations(&self, info: &SetInfo) -> Result<()> {
        self.catalog_db()?
            .run(|tx, _| async move {
                if current_version(&tx)
                    .await?
                    .is_some_and(|c| c >= info.version)
                {
                    return Err(invalid("version", "a newer set is published already"));
                }
                set_json(&tx, &info_key(info.version), info)?;
                tx.set(&current_key(), &info.version.to_le_bytes())?;
                Ok::<_, CommerceError>(())
            })
            .await
    }

    /// Clears every set but the current one (a bounded number of range
    /// clears). Returns the versions cleared.
    pub async fn clear_old_recommendations(&self) -> Result<Vec<u64>> {
        self.catalog_db()?
            .run(|tx, _| async move {
                let Some(current) = current_version(&tx).await? else {
                    return Ok::<_, CommerceError>(Vec::new());
                };
                let infos = tx
                    .get_range(
                        &RangeOption::subspace(&space().subspace(&("info",))).limit(64),
                        true,
                    )
                    .await?;
                let mut cleared = Vec::new();
                for kv in &infos.kvs {
                    let info: SetInfo = decode(&kv.value, "recommendation set")?;
                    if info.version != current {
                        clear_version(&tx, info.version)?;
                        cleared.push(info.version);
                    }
                }
                // Pages of a set never published (a job that died) are
                // cleared by the next `begin_recommendations`, which takes
                // the same version.
                Ok(cleared)
            })
            .await
    }

    /// What the current set recommends with `sku` (at most `limit`).
    pub async fn bought_together(&self, sku: &str, limit: usize) -> Result<Recommendations> {
        validate_sku(sku)?;
        self.read_current(limit, |version| together_key(version, sku))
            .await
    }

    /// The current set's popular products in `region` (and `category`, or
    /// every category), at most `limit`.
    pub async fn popular(
        &self,
        region: &str,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Recommendations> {
        if region.len() > 64 {
            return Err(invalid("region", "at most 64 bytes"));
        }
        if let Some(category) = category {
            crate::catalog::validate_slug(category)?;
        }
        let category = category.unwrap_or(ALL_CATEGORIES);
        self.read_current(limit, |version| popular_key(version, region, category))
            .await
    }

    async fn read_current(
        &self,
        limit: usize,
        key: impl Fn(u64) -> Vec<u8>,
    ) -> Result<Recommendations> {
        if limit == 0 || limit > MAX_ITEMS {
            return Err(invalid("limit", format!("must be 1..={MAX_ITEMS}")));
        }
        let key = &key;
        self.catalog_db()?
            .run(|tx, _| async move {
                let Some(version) = current_version(&tx).await? else {
                    return Ok::<_, CommerceError>(Recommendations {
                        set: None,
                        items: Vec::new(),
                    });
                };
                let (info_at, items_at) = (info_key(version), key(version));
                let (info, items) = futures::try_join!(
                    get_json::<SetInfo>(&tx, &info_at, "recommendation set"),
                    get_json::<Vec<Recommended>>(&tx, &items_at, "recommendations"),
                )?;
                let mut items = items.unwrap_or_default();
                items.truncate(limit);
                Ok(Recommendations { set: info, items })
            })
            .await
    }
}

/// One past the newest set published (a published set's info is kept
/// until a newer one is published, so the newest info is the current set).
async fn next_version(tx: &db::Transaction) -> Result<u64> {
    let range = RangeOption::subspace(&space().subspace(&("info",)))
        .limit(1)
        .reverse(true);
    let newest = tx.get_range(&range, true).await?;
    let from_info = match newest.kvs.first() {
        Some(kv) => decode::<SetInfo>(&kv.value, "recommendation set")?.version,
        None => 0,
    };
    let current = current_version(tx).await?.unwrap_or(0);
    Ok(from_info.max(current) + 1)
}

async fn current_version(tx: &db::Transaction) -> Result<Option<u64>> {
    Ok(tx
        .get(&current_key())
        .await?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes))
}

fn clear_version(tx: &db::Transaction, version: u64) -> Result<()> {
    for kind in ["bt", "pop"] {
        let (begin, end) = version_space(kind, version).range();
        tx.clear_range(&begin, &end)?;
    }
    tx.clear(&info_key(version))?;
    Ok(())
}

fn check_page(records: usize, items: impl Iterator<Item = usize>) -> Result<()> {
    if records > MAX_WRITE_PAGE {
        return Err(CommerceError::LimitExceeded {
            what: "records in one write of a set",
            limit: MAX_WRITE_PAGE as u64,
        });
    }
    for n in items {
        if n > MAX_ITEMS {
            return Err(CommerceError::LimitExceeded {
                what: "recommendations of one key",
                limit: MAX_ITEMS as u64,
            });
        }
    }
    Ok(())
}
