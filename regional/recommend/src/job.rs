//! The batch job, written once against DataFusion's SQL: the same plan
//! runs in this process or on a Ballista cluster, whichever
//! `SessionContext` it is given. The SQL keeps to what PostgreSQL reads
//! too (`DOUBLE PRECISION`, standard window functions), so the benchmark
//! runs the very same text there as its reference.
//!
//! - **Bought together**: for each product, the products found in the
//!   same orders, scored by cosine similarity (orders with both over the
//!   square root of the product of each one's orders), which does not
//!   favour best-sellers the way a raw co-occurrence count does; pairs
//!   seen in fewer than `min_support` orders are dropped as noise.
//! - **Popular now**: per region and category (and per region over every
//!   category), units sold weighted by recency, halving every
//!   `half_life_days`.

use std::collections::BTreeMap;

use anyhow::Context;
use commerce::recommend::{ALL_CATEGORIES, MAX_ITEMS, Recommended};
use datafusion::arrow::array::{Array, Float64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

/// What the job computes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobOptions {
    /// Only sales before this time (the quality test holds the rest out).
    pub until_ms: u64,
    /// Pairs seen in fewer orders are dropped.
    pub min_support: u64,
    /// Popularity halves every this many days.
    pub half_life_days: f64,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            until_ms: i64::MAX as u64,
            min_support: 2,
            half_life_days: 7.0,
        }
    }
}

/// What the job computed.
#[derive(Debug, Clone, Default)]
pub struct Computed {
    /// Order lines the job read (before `until_ms`).
    pub lines: u64,
    /// The newest of them.
    pub newest_ms: u64,
    pub bought_together: BTreeMap<String, Vec<Recommended>>,
    /// Keyed by (region, category or [`ALL_CATEGORIES`]).
    pub popular: BTreeMap<(String, String), Vec<Recommended>>,
}

/// "Bought together": `sku, other, score`, at most [`MAX_ITEMS`] per
/// `sku`, best first.
pub fn together_sql(o: &JobOptions) -> String {
    format!(
        "WITH lines AS (
           SELECT DISTINCT order_id, sku FROM sales WHERE at_ms < {until}
         ),
         item AS (SELECT sku, COUNT(*) AS c FROM lines GROUP BY sku),
         pairs AS (
           SELECT a.sku AS sku, b.sku AS other, COUNT(*) AS together
           FROM lines a JOIN lines b ON a.order_id = b.order_id AND a.sku <> b.sku
           GROUP BY a.sku, b.sku
           HAVING COUNT(*) >= {support}
         ),
         scored AS (
           SELECT p.sku, p.other,
                  CAST(p.together AS DOUBLE PRECISION)
                    / sqrt(CAST(ia.c AS DOUBLE PRECISION) * CAST(ib.c AS DOUBLE PRECISION)) AS score
           FROM pairs p
           JOIN item ia ON ia.sku = p.sku
           JOIN item ib ON ib.sku = p.other
         ),
         ranked AS (
           SELECT sku, other, score,
                  ROW_NUMBER() OVER (PARTITION BY sku ORDER BY score DESC, other) AS r
           FROM scored
         )
         SELECT sku, other, score FROM ranked WHERE r <= {max} ORDER BY sku, r",
        until = o.until_ms.min(i64::MAX as u64),
        support = o.min_support.max(1),
        max = MAX_ITEMS,
    )
}

/// "Popular now": `region, category, sku, score`, at most [`MAX_ITEMS`]
/// per region and category, best first.
pub fn popular_sql(o: &JobOptions) -> String {
    let tau_ms = o.half_life_days.max(0.01) * 24.0 * 3600.0 * 1000.0 / std::f64::consts::LN_2;
    format!(
        "WITH kept AS (SELECT * FROM sales WHERE at_ms < {until}),
         newest AS (SELECT MAX(at_ms) AS t FROM kept),
         weighted AS (
           SELECT k.region, k.category, k.sku,
                  SUM(CAST(k.qty AS DOUBLE PRECISION)
                      * exp((CAST(k.at_ms AS DOUBLE PRECISION) - CAST(n.t AS DOUBLE PRECISION)) / {tau_ms:.1})) AS score
           FROM kept k CROSS JOIN newest n
           GROUP BY k.region, k.category, k.sku
         ),
         every AS (
           SELECT region, '{all}' AS category, sku, SUM(score) AS score
           FROM weighted GROUP BY region, sku
         ),
         both_kinds AS (SELECT * FROM weighted UNION ALL SELECT * FROM every),
         ranked AS (
           SELECT region, category, sku, score,
                  ROW_NUMBER() OVER (PARTITION BY region, category ORDER BY score DESC, sku) AS r
           FROM both_kinds
         )
         SELECT region, category, sku, score FROM ranked WHERE r <= {max}
         ORDER BY region, category, r",
        until = o.until_ms.min(i64::MAX as u64),
        all = ALL_CATEGORIES,
        max = MAX_ITEMS,
    )
}

fn strings(batch: &RecordBatch, i: usize) -> anyhow::Result<Vec<String>> {
    let column = cast(batch.column(i), &DataType::Utf8)?;
    let array = column
        .as_any()
        .downcast_ref::<StringArray>()
        .context("a text column")?;
    Ok((0..array.len())
        .map(|r| array.value(r).to_owned())
        .collect())
}

fn floats(batch: &RecordBatch, i: usize) -> anyhow::Result<Vec<f64>> {
    let column = cast(batch.column(i), &DataType::Float64)?;
    let array = column
        .as_any()
        .downcast_ref::<Float64Array>()
        .context("a number column")?;
    Ok((0..array.len()).map(|r| array.value(r)).collect())
}

/// Registers the exported Parquet files of `dir` as `sales` in `ctx` and
/// runs both computations there.
pub async fn run(
    ctx: &SessionContext,
    dir: &str,
    options: &JobOptions,
) -> anyhow::Result<Computed> {
    ctx.register_parquet("sales", dir, ParquetReadOptions::default())
        .await
        .context("registering the exported sales")?;
    let mut computed = Computed::default();
    let until = options.until_ms.min(i64::MAX as u64);
    let totals = ctx
        .sql(&format!(
            "SELECT CAST(COUNT(*) AS DOUBLE PRECISION), CAST(COALESCE(MAX(at_ms), 0) AS DOUBLE PRECISION) FROM sales WHERE at_ms < {until}"
        ))
        .await?
        .collect()
        .await?;
    if let Some(batch) = totals.first().filter(|b| b.num_rows() > 0) {
        computed.lines = floats(batch, 0)?[0] as u64;
        computed.newest_ms = floats(batch, 1)?[0] as u64;
    }
    let together = ctx.sql(&together_sql(options)).await?.collect().await?;
    for batch in &together {
        let (skus, others, scores) = (strings(batch, 0)?, strings(batch, 1)?, floats(batch, 2)?);
        for ((sku, other), score) in skus.into_iter().zip(others).zip(scores) {
            computed
                .bought_together
                .entry(sku)
                .or_default()
                .push(Recommended { sku: other, score });
        }
    }
    let popular = ctx.sql(&popular_sql(options)).await?.collect().await?;
    for batch in &popular {
        let (regions, categories) = (strings(batch, 0)?, strings(batch, 1)?);
        let (skus, scores) = (strings(batch, 2)?, floats(batch, 3)?);
        for (((region, category), sku), score) in
            regions.into_iter().zip(categories).zip(skus).zip(scores)
        {
            computed
                .popular
                .entry((region, category))
                .or_default()
                .push(Recommended { sku, score });
        }
    }
    Ok(computed)
}
