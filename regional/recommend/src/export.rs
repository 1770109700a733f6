//! The sales log, exported from core-db to Parquet: the job's input. A
//! Ballista executor cannot open core-db, but it can read files on a
//! volume every executor mounts (or an object store).
//!
//! One file per shard per run (`sales-<shard>-<run>.parquet`): columns
//! `order_id`, `shard`, `region` (the shard's home), `at_ms`, `sku`,
//! `category` (as the catalog has it now) and `qty`. A full export clears
//! the directory first; an incremental one adds a file with the lines
//! after each shard's cursor, kept in `export.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// Lines one Parquet row group (and one read of the log) holds.
const PAGE: usize = 5_000;

/// Where each shard's export stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursors {
    /// The next run's number (names the files it writes).
    run: u64,
    /// Per shard: the sales log's cursor after the last line exported.
    after: BTreeMap<String, String>,
}

/// What an export did.
#[derive(Debug, Clone, Default)]
pub struct Exported {
    pub lines: u64,
    pub newest_ms: u64,
    pub files: Vec<PathBuf>,
}

pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("shard", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("at_ms", DataType::Int64, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("qty", DataType::Int64, false),
    ]))
}

/// Exports every shard's sales (all of them when `full`, else those after
/// the last export) into `dir`; `progress` is told the lines as they go.
pub async fn export(
    store: &impl Store,
    dir: &Path,
    full: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<Exported> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let state_path = dir.join("export.json");
    let mut cursors: Cursors = if full {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                std::fs::remove_file(&path)?;
            }
        }
        Cursors::default()
    } else {
        match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).context("export.json")?,
            Err(_) => Cursors::default(),
        }
    };
    // The catalog's categories, read once (a page at a time).
    let mut category = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.categories(after.as_deref()).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.sku.clone());
        category.extend(page.into_iter().map(|p| (p.sku, p.category)));
    }
    let schema = schema();
    let mut exported = Exported::default();
    for (shard, region) in store.shards().await? {
        let region = region.to_string();
        let path = dir.join(format!("sales-{shard}-{:06}.parquet", cursors.run));
        let file = std::fs::File::create(&path)?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
        let mut from = cursors.after.get(shard.as_str()).cloned();
        let mut wrote = 0u64;
        loop {
            let page = store.sales_page(&shard, from.as_deref(), PAGE).await?;
            if !page.sales.is_empty() {
                let n = page.sales.len();
                let column = |f: &dyn Fn(&commerce::recommend::SaleLine) -> String| -> ArrayRef {
                    Arc::new(StringArray::from_iter_values(page.sales.iter().map(f)))
                };
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        column(&|l| l.order_id.clone()),
                        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                            shard.as_str(),
                            n,
                        ))),
                        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                            region.as_str(),
                            n,
                        ))),
                        Arc::new(Int64Array::from_iter_values(
                            page.sales.iter().map(|l| l.at_ms as i64),
                        )),
                        column(&|l| l.sku.clone()),
                        column(&|l| category.get(&l.sku).cloned().unwrap_or_default()),
                        Arc::new(Int64Array::from_iter_values(
                            page.sales.iter().map(|l| l.qty),
                        )),
                    ],
                )?;
                writer.write(&batch)?;
                exported.newest_ms = page
                    .sales
                    .iter()
                    .map(|l| l.at_ms)
                    .fold(exported.newest_ms, u64::max);
                wrote += n as u64;
                progress(n as u64);
            }
            if let Some(after) = page.after {
                from = Some(after);
            }
            if !page.more {
                break;
            }
        }
        writer.close()?;
        if wrote == 0 {
            std::fs::remove_file(&path)?;
        } else {
            exported.files.push(path);
        }
        exported.lines += wrote;
        if let Some(next) = from {
            cursors.after.insert(shard.to_string(), next);
        }
    }
    cursors.run += 1;
    std::fs::write(&state_path, serde_json::to_vec_pretty(&cursors)?)?;
    Ok(exported)
}
