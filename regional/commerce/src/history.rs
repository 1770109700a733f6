//! The demo's order history, deterministic from a seed, with planted
//! structure so the recommendations' quality can be measured:
//!
//! - **bought together**: products are paired at random (across
//!   categories); an order of a product includes its partner with
//!   probability [`PARTNER_RATE`];
//! - **best-sellers**: which products an order starts from follows a Zipf
//!   law, and most orders add one or two more products drawn from the
//!   same law (noise that co-occurs with everything, which a similarity
//!   that favoured best-sellers would recommend);
//! - **regional tastes**: each region prefers some categories (an anchor
//!   from them is [`TASTE_WEIGHT`] times as likely).
//!
//! Orders are spread over [`DAYS`] days before `now_ms`, each in the
//! shard of a shopper of that region.

use std::collections::BTreeMap;

use crate::recommend::SaleLine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use topology::ShardId;

/// How often an order of a paired product includes its partner.
pub const PARTNER_RATE: f64 = 0.5;
/// How much more likely a region's preferred category is as an anchor.
pub const TASTE_WEIGHT: f64 = 3.0;
/// The history's span, in days.
pub const DAYS: u64 = 90;
/// Most order lines one history holds.
pub const MAX_LINES: usize = 5_000_000;

/// A product as the history sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub sku: String,
    pub category: String,
}

/// A generated history: its order lines per shard, and what was planted.
#[derive(Debug, Clone)]
pub struct History {
    pub lines: BTreeMap<ShardId, Vec<SaleLine>>,
    /// Each paired product's partner (both ways).
    pub partners: BTreeMap<String, String>,
    /// Each shard's preferred categories.
    pub tastes: BTreeMap<ShardId, Vec<String>>,
}

impl History {
    pub fn line_count(&self) -> usize {
        self.lines.values().map(Vec::len).sum()
    }
}

/// About `lines` order lines over `items` (at least two), spread over
/// `shards`, deterministic from `seed`.
pub fn generate(
    items: &[Item],
    shards: &[ShardId],
    lines: usize,
    seed: u64,
    now_ms: u64,
) -> History {
    let lines = lines.min(MAX_LINES);
    let mut rng = StdRng::seed_from_u64(seed);
    let n = items.len();
    // Pairs: a shuffled order, neighbours paired.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let mut partner = vec![usize::MAX; n];
    for pair in order.chunks(2) {
        if let [a, b] = pair {
            partner[*a] = *b;
            partner[*b] = *a;
        }
    }
    // Popularity: Zipf over a second shuffle (rank r has weight 1/(r+1)).
    let mut by_rank: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        by_rank.swap(i, j);
    }
    let weight: Vec<f64> = {
        let mut w = vec![0.0; n];
        for (rank, &i) in by_rank.iter().enumerate() {
            w[i] = 1.0 / (rank as f64 + 1.0);
        }
        w
    };
    let mut categories: Vec<String> = items.iter().map(|i| i.category.clone()).collect();
    categories.sort();
    categories.dedup();
    let mut tastes = BTreeMap::new();
    for shard in shards {
        let mut liked = Vec::new();
        for _ in 0..2.min(categories.len()) {
            liked.push(categories[rng.random_range(0..categories.len())].clone());
        }
        tastes.insert(shard.clone(), liked);
    }
    // Cumulative anchor weights per shard (tastes applied).
    let cumulative: BTreeMap<&ShardId, Vec<f64>> = shards
        .iter()
        .map(|shard| {
            let liked = &tastes[shard];
            let mut acc = 0.0;
            let c = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let taste = if liked.contains(&item.category) {
                        TASTE_WEIGHT
                    } else {
                        1.0
                    };
                    acc += weight[i] * taste;
                    acc
                })
                .collect();
            (shard, c)
        })
        .collect();
    let plain: Vec<f64> = weight
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect();
    let pick = |rng: &mut StdRng, cumulative: &[f64]| -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
        cumulative.partition_point(|c| *c <= x).min(n - 1)
    };
    let span_ms = DAYS * 24 * 3600 * 1000;
    let mut out: BTreeMap<ShardId, Vec<SaleLine>> =
        shards.iter().map(|s| (s.clone(), Vec::new())).collect();
    let mut written = 0;
    let mut order_no = 0u64;
    while written < lines {
        let shard = &shards[rng.random_range(0..shards.len())];
        let at_ms = now_ms.saturating_sub(span_ms) + rng.random_range(0..span_ms);
        let mut basket = vec![pick(&mut rng, &cumulative[shard])];
        if partner[basket[0]] != usize::MAX && rng.random_bool(PARTNER_RATE) {
            basket.push(partner[basket[0]]);
        }
        for _ in 0..rng.random_range(0..=2) {
            let extra = pick(&mut rng, &plain);
            if !basket.contains(&extra) {
                basket.push(extra);
            }
        }
        let order_id = format!("{shard}.h{seed:x}-{order_no:08}");
        order_no += 1;
        let lines_of = out.entry(shard.clone()).or_default();
        for i in basket {
            lines_of.push(SaleLine {
                order_id: order_id.clone(),
                at_ms,
                sku: items[i].sku.clone(),
                qty: rng.random_range(1..=2),
            });
            written += 1;
        }
    }
    let partners = (0..n)
        .filter(|i| partner[*i] != usize::MAX)
        .map(|i| (items[i].sku.clone(), items[partner[i]].sku.clone()))
        .collect();
    History {
        lines: out,
        partners,
        tastes,
    }
}

impl crate::Commerce {
    /// Writes a generated history of about `lines` order lines over the
    /// catalog into the sales logs, ending now, when every sales log is
    /// empty (a restarted stack keeps the history it has). Returns the
    /// lines written.
    pub async fn seed_history(
        &self,
        lines: usize,
        seed: u64,
        progress: impl Fn(usize),
    ) -> crate::error::Result<usize> {
        let shards = self.warehouses();
        for shard in &shards {
            if !self.sales_page(shard, None, 1).await?.sales.is_empty() {
                return Ok(0);
            }
        }
        let mut items = Vec::new();
        self.for_each_product(1_000, |products| {
            items.extend(products.into_iter().map(|p| Item {
                sku: p.sku,
                category: p.category,
            }));
            Ok(())
        })
        .await?;
        if items.len() < 2 || lines == 0 {
            return Ok(0);
        }
        let history = generate(&items, &shards, lines, seed, self.now_ms());
        let mut written = 0;
        for (shard, shard_lines) in &history.lines {
            for page in shard_lines.chunks(crate::recommend::MAX_WRITE_PAGE) {
                self.record_sales(shard, page).await?;
                written += page.len();
                progress(written);
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                sku: format!("P-{i}"),
                category: format!("c{}", i % 4),
            })
            .collect()
    }

    #[test]
    fn one_seed_gives_one_history() {
        let shards: Vec<ShardId> = ["eu", "us"].iter().map(|s| s.parse().unwrap()).collect();
        let a = generate(&items(50), &shards, 2_000, 7, 10_000_000_000);
        let b = generate(&items(50), &shards, 2_000, 7, 10_000_000_000);
        assert_eq!(a.lines, b.lines);
        assert_eq!(a.partners, b.partners);
        assert!(a.line_count() >= 2_000);
        let c = generate(&items(50), &shards, 2_000, 8, 10_000_000_000);
        assert_ne!(a.lines, c.lines);
        // Paired both ways.
        for (x, y) in &a.partners {
            assert_eq!(a.partners.get(y), Some(x));
        }
    }
}
