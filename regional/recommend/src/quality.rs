//! How well the recommendations find what was planted in the history: on
//! the held-out orders (those at or after the job's `until_ms`), each
//! product bought with its planted partner is a case; it is found when the
//! partner is among the product's top 10 "bought together". The
//! popularity-only baseline recommends the same 10 products to everyone
//! (the region's most popular now) and is scored the same way.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::History;
use crate::job::Computed;

/// Recall at 10 of both, over `cases` held-out planted pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recall {
    pub cases: usize,
    pub ours: f64,
    pub popularity: f64,
}

pub const K: usize = 10;

pub fn recall_at_10(
    history: &History,
    computed: &Computed,
    until_ms: u64,
    region_of: impl Fn(&str) -> String,
) -> Recall {
    let mut cases = 0usize;
    let (mut ours, mut baseline) = (0usize, 0usize);
    for (shard, lines) in &history.lines {
        let region = region_of(shard.as_str());
        let popular: BTreeSet<&str> = computed
            .popular
            .get(&(
                region.clone(),
                commerce::recommend::ALL_CATEGORIES.to_owned(),
            ))
            .map(|items| items.iter().take(K).map(|r| r.sku.as_str()).collect())
            .unwrap_or_default();
        let mut orders: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for line in lines.iter().filter(|l| l.at_ms >= until_ms) {
            orders.entry(&line.order_id).or_default().insert(&line.sku);
        }
        for basket in orders.values() {
            for sku in basket {
                let Some(partner) = history.partners.get(*sku) else {
                    continue;
                };
                if !basket.contains(partner.as_str()) {
                    continue;
                }
                cases += 1;
                let top: BTreeSet<&str> = computed
                    .bought_together
                    .get(*sku)
                    .map(|items| items.iter().take(K).map(|r| r.sku.as_str()).collect())
                    .unwrap_or_default();
                ours += usize::from(top.contains(partner.as_str()));
                baseline += usize::from(popular.contains(partner.as_str()));
            }
        }
    }
    let share = |n: usize| {
        if cases == 0 {
            0.0
        } else {
            n as f64 / cases as f64
        }
    };
    Recall {
        cases,
        ours: share(ours),
        popularity: share(baseline),
    }
}
