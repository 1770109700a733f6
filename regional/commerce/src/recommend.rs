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
fn run_key() -> Vec<u8> {
    space().pack(&("run",))
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaleLine {
    pub order_id: String,
    pub at_ms: u64,
    pub sku: String,
    pub qty: i64,
}

/// A page of a shard's sales log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SalesPage {
    pub sales: Vec<SaleLine>,
    /// Where the next page (or the next export) starts: an opaque cursor
    /// (absent: the page is empty).
    pub after: Option<String>,
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

/// The job writing a set now: one at a time, under a lease, whichever
/// region or machine it runs from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunningJob {
    /// The job's own id (a ULID it takes when it starts).
    pub job: String,
    /// The set it is writing.
    pub version: u64,
    /// When its lease ends: another job may then start over (the pages
    /// this one wrote are cleared).
    pub until_ms: u64,
}

/// Where recommendations stand: what readers get and what is being
/// written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendationStatus {
    /// The shard the sets are kept in: jobs write through the region
    /// serving it.
    #[schema(value_type = String)]
    pub catalog_shard: ShardId,
    /// The published set (absent: none yet).
    pub current: Option<SetInfo>,
    /// The job writing a set now, if its lease runs.
    pub running: Option<RunningJob>,
}

/// A product's SKU and category: what the export labels sales with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductCategory {
    pub sku: String,
    pub category: String,
}

/// `POST /v1/admin/recommendations/sets`: a job starts a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginSet {
    /// The job's id (1 to 64 letters, digits, `-` or `_`).
    #[schema(schema_with = job_schema)]
    pub job: String,
    /// How long the job holds the lease on writing sets (at most an hour).
    #[schema(schema_with = lease_schema)]
    pub lease_ms: u64,
}

/// The set a job was given to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SetBegun {
    pub version: u64,
}

/// One product's "bought together" list in a set being written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TogetherRecord {
    #[schema(schema_with = crate::openapi::sku)]
    pub sku: String,
    #[schema(max_items = 20)]
    pub items: Vec<Recommended>,
}

/// One region's and category's popular products in a set being written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PopularRecord {
    #[schema(max_length = 64)]
    pub region: String,
    /// A category's slug, or `*` for every category.
    #[schema(max_length = 64)]
    pub category: String,
    #[schema(max_items = 20)]
    pub items: Vec<Recommended>,
}

/// A page of a set being written: "bought together" records, "popular"
/// records, or both (at most [`MAX_WRITE_PAGE`] records in all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPage {
    /// The job holding the set's lease.
    #[schema(schema_with = job_schema)]
    pub job: String,
    #[serde(default)]
    #[schema(max_items = 500)]
    pub together: Vec<TogetherRecord>,
    #[serde(default)]
    #[schema(max_items = 500)]
    pub popular: Vec<PopularRecord>,
}

/// `POST /v1/admin/recommendations/sets/{version}/publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSet {
    #[schema(schema_with = job_schema)]
    pub job: String,
    /// The newest sale the job saw.
    pub sales_through_ms: u64,
    /// Order lines it read.
    pub lines: u64,
    /// Where it ran.
    #[schema(max_length = 200)]
    pub engine: String,
}

/// A set published: what readers get now, and the older sets cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Published {
    pub set: SetInfo,
    pub cleared: Vec<u64>,
}

/// Most leases a job may ask for (an hour).
pub const MAX_LEASE_MS: u64 = 3_600_000;
/// What a job id is (held equal to [`validate_job`] by the pattern tests).
pub const JOB_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// Longest job id.
pub const MAX_JOB_LEN: usize = 64;

fn job_schema() -> utoipa::openapi::schema::Schema {
    crate::openapi::string(JOB_PATTERN, 1, MAX_JOB_LEN)
        .build()
        .into()
}

fn lease_schema() -> utoipa::openapi::schema::Schema {
    crate::openapi::count(1, MAX_LEASE_MS).build().into()
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

    /// One page of `shard`'s sales log, in commit order, from `after` (a
    /// previous page's `after`; `None`: the start).
    pub async fn sales_page(
        &self,
        shard: &ShardId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SalesPage> {
        let limit = limit.clamp(1, MAX_SALES_PAGE);
        let space = sales_space();
        let (start, end) = space.range();
        let begin = match after {
            Some(text) => crate::reviews::decode_after(&space, text)?,
            None => start,
        };
        if begin >= end {
            return Ok(SalesPage {
                sales: Vec::new(),
                after: None,
                more: false,
            });
        }
        let (begin, end, space) = (&begin, &end, &space);
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
                let after = chunk.kvs.last().and_then(|last| {
                    crate::reviews::encode_after(space, &db::keys::key_after(&last.key))
                });
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

    /// Starts a new set for `job`, which holds the lease on writing it for
    /// `lease_ms`: its version, with
    /// whatever a job that died while writing that version left under it
    /// cleared (in one transaction). Refused while another job's lease
    /// runs; the same job beginning again (a retried call) gets its set
    /// back, cleared.
    pub async fn begin_recommendations(&self, job: &str, lease_ms: u64) -> Result<u64> {
        validate_job(job)?;
        if lease_ms == 0 || lease_ms > MAX_LEASE_MS {
            return Err(invalid("lease_ms", format!("must be 1..={MAX_LEASE_MS}")));
        }
        let now = self.now_ms();
        self.catalog_owned_db()?
            .run(|tx, _| async move {
                if let Some(running) = running_job(&tx).await?
                    && running.job != job
                    && running.until_ms > now
                {
                    return Err(CommerceError::JobRunning {
                        job: running.job,
                        version: running.version,
                        until_ms: running.until_ms,
                    });
                }
                let version = next_version(&tx).await?;
                clear_version(&tx, version)?;
                let running = RunningJob {
                    job: job.to_owned(),
                    version,
                    until_ms: now.saturating_add(lease_ms),
                };
                set_json(&tx, &run_key(), &running)?;
                Ok::<_, CommerceError>(version)
            })
            .await
    }

    /// Where recommendations stand.
    pub async fn recommendation_status(&self) -> Result<RecommendationStatus> {
        let now = self.now_ms();
        let catalog_shard = self.inner.catalog_shard.clone();
        self.catalog_db()?
            .run(|tx, _| {
                let catalog_shard = catalog_shard.clone();
                async move {
                    let current = match current_version(&tx).await? {
                        Some(v) => {
                            get_json::<SetInfo>(&tx, &info_key(v), "recommendation set").await?
                        }
                        None => None,
                    };
                    let running = running_job(&tx).await?.filter(|r| r.until_ms > now);
                    Ok::<_, CommerceError>(RecommendationStatus {
                        catalog_shard,
                        current,
                        running,
                    })
                }
            })
            .await
    }

    /// One page of the catalog's SKUs with their categories, in SKU order
    /// from after `after` (a previous page's last SKU).
    pub async fn product_categories(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProductCategory>> {
        let limit = limit.clamp(1, db::MAX_RANGE_BATCH);
        if let Some(sku) = after {
            validate_sku(sku)?;
        }
        let (start, end) = crate::keys::products().range();
        let begin = match after {
            Some(sku) => db::keys::key_after(&crate::keys::product(sku)),
            None => start,
        };
        let (begin, end) = (&begin, &end);
        self.catalog_read_db()?
            .run(|tx, _| async move {
                let chunk = tx
                    .get_range(
                        &RangeOption::new(begin.clone(), end.clone()).limit(limit),
                        true,
                    )
                    .await?;
                chunk
                    .kvs
                    .iter()
                    .map(|kv| {
                        let p: crate::catalog::Product = decode(&kv.value, "product")?;
                        Ok(ProductCategory {
                            sku: p.sku,
                            category: p.category,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await
    }

    /// Writes one page of set `version`, not yet published, for `job`
    /// (which holds its lease), in one transaction.
    pub async fn write_set_page(&self, version: u64, page: &SetPage) -> Result<()> {
        check_page(
            page.together.len() + page.popular.len(),
            page.together
                .iter()
                .map(|r| r.items.len())
                .chain(page.popular.iter().map(|r| r.items.len())),
        )?;
        for record in &page.together {
            validate_sku(&record.sku)?;
        }
        for record in &page.popular {
            if record.region.chars().count() > 64 || record.category.chars().count() > 64 {
                return Err(invalid(
                    "popular key",
                    "region and category are at most 64 bytes",
                ));
            }
        }
        let together = page
            .together
            .iter()
            .map(|r| (together_key(version, &r.sku), &r.items));
        let popular = page
            .popular
            .iter()
            .map(|r| (popular_key(version, &r.region, &r.category), &r.items));
        self.write_unpublished(&page.job, version, together.chain(popular))
            .await
    }

    async fn write_unpublished<'a>(
        &self,
        job: &str,
        version: u64,
        records: impl Iterator<Item = (Vec<u8>, &'a Vec<Recommended>)>,
    ) -> Result<()> {
        let records: Vec<(Vec<u8>, &Vec<Recommended>)> = records.collect();
        let records = &records;
        self.catalog_owned_db()?
            .run(|tx, _| async move {
                // Never into a published set: readers see a set whole.
                if current_version(&tx).await?.is_some_and(|c| c >= version) {
                    return Err(CommerceError::SetNotWritable {
                        version,
                        reason: "it or a newer set is published already",
                    });
                }
                // Only the job holding the set's lease writes it.
                lease_holds(&tx, job, version).await?;
                for (key, items) in records {
                    set_json(&tx, key, items)?;
                }
                Ok::<_, CommerceError>(())
            })
            .await
    }

    /// Publishes set `version` (every page written) for `job`, which
    /// holds its lease: one transaction moves the pointer readers follow
    /// and ends the lease; then the older sets are cleared. A set older
    /// than the current one is refused.
    pub async fn publish_recommendations(
        &self,
        version: u64,
        publish: &PublishSet,
    ) -> Result<Published> {
        let info = SetInfo {
            version,
            computed_ms: self.now_ms(),
            sales_through_ms: publish.sales_through_ms,
            lines: publish.lines,
            engine: publish.engine.chars().take(200).collect(),
        };
        let (info, job) = (&info, publish.job.as_str());
        self.catalog_owned_db()?
            .run(|tx, _| async move {
                if current_version(&tx)
                    .await?
                    .is_some_and(|c| c >= info.version)
                {
                    return Err(CommerceError::SetNotWritable {
                        version: info.version,
                        reason: "it or a newer set is published already",
                    });
                }
                lease_holds(&tx, job, info.version).await?;
                tx.clear(&run_key())?;
                set_json(&tx, &info_key(info.version), info)?;
                tx.set(&current_key(), &info.version.to_le_bytes())?;
                Ok::<_, CommerceError>(())
            })
            .await?;
        let cleared = self.clear_old_recommendations().await?;
        Ok(Published {
            set: info.clone(),
            cleared,
        })
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

async fn running_job(tx: &db::Transaction) -> Result<Option<RunningJob>> {
    get_json::<RunningJob>(tx, &run_key(), "recommendation job").await
}

/// `job` is writing set `version` (its lease may have run out: it still
/// writes until another job begins, which takes the lease over).
async fn lease_holds(tx: &db::Transaction, job: &str, version: u64) -> Result<()> {
    match running_job(tx).await? {
        Some(running) if running.version == version && running.job == job => Ok(()),
        _ => Err(CommerceError::SetNotWritable {
            version,
            reason: "this job is not writing it (begin a set first; another job may have taken over)",
        }),
    }
}

/// A job id: 1 to 64 letters, digits, `-` or `_`.
pub fn validate_job(job: &str) -> Result<()> {
    if job.is_empty()
        || job.len() > MAX_JOB_LEN
        || !job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid("job", "1 to 64 letters, digits, '-' or '_'"));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    fn json<T: PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).expect("a schema")
    }

    /// The documented bounds of a set's page are the ones enforced.
    #[test]
    fn the_pages_schema_states_the_limits() {
        let page = json::<SetPage>();
        for list in ["together", "popular"] {
            assert_eq!(
                page["properties"][list]["maxItems"], MAX_WRITE_PAGE as u64,
                "{page}"
            );
        }
        for record in [json::<TogetherRecord>(), json::<PopularRecord>()] {
            assert_eq!(
                record["properties"]["items"]["maxItems"], MAX_ITEMS as u64,
                "{record}"
            );
        }
        let begin = json::<BeginSet>();
        assert_eq!(
            begin["properties"]["lease_ms"]["maximum"],
            MAX_LEASE_MS as f64
        );
        assert_eq!(begin["properties"]["job"]["pattern"], JOB_PATTERN);
        assert!(validate_job(&"j".repeat(MAX_JOB_LEN)).is_ok());
        assert!(validate_job(&"j".repeat(MAX_JOB_LEN + 1)).is_err());
    }
}
