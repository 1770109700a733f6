//! The regional cache of hot catalog reads. Entries are dropped when the
//! change feed's events are applied; a generation counter keeps a read that
//! raced with a change from putting the old product back (the read started
//! before the invalidation, so its result may predate the change).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::catalog::Product;

pub(crate) const DEFAULT_CAPACITY: usize = 50_000;

/// A bounded map from SKU to product.
#[derive(Debug)]
pub struct ProductCache {
    inner: Mutex<State>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    map: HashMap<String, Arc<Product>>,
    generation: u64,
}

impl ProductCache {
    pub fn new(capacity: usize) -> Self {
        ProductCache {
            inner: Mutex::new(State::default()),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, sku: &str) -> Option<Arc<Product>> {
        self.inner.lock().map.get(sku).cloned()
    }

    /// Take before reading the catalog; pass to [`Self::insert_if_current`].
    pub fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// Caches `product` unless an invalidation happened since `generation`.
    pub fn insert_if_current(&self, generation: u64, product: Product) {
        let mut state = self.inner.lock();
        if state.generation != generation {
            return;
        }
        if state.map.len() >= self.capacity && !state.map.contains_key(&product.sku) {
            // Full: drop an arbitrary entry. Hot products come back at once;
            // the bound is what matters here, not the eviction order.
            if let Some(victim) = state.map.keys().next().cloned() {
                state.map.remove(&victim);
            }
        }
        state.map.insert(product.sku.clone(), Arc::new(product));
    }

    pub fn invalidate(&self, sku: &str) {
        let mut state = self.inner.lock();
        state.map.remove(sku);
        state.generation += 1;
    }

    pub fn clear(&self) {
        let mut state = self.inner.lock();
        state.map.clear();
        state.generation += 1;
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
