//! Searches running while batches are applied never see half a batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use search::{SearchIndex, SearchQuery};

use crate::support::doc;

const BATCHES: usize = 30;
const READERS: usize = 2;
/// Bounds each reader even if the writer stalls.
const MAX_READS_PER_READER: usize = 100_000;

#[test]
fn readers_see_whole_batches_only() {
    let index = Arc::new(SearchIndex::open_or_create(None).expect("open"));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let index = Arc::clone(&index);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut reads = 0;
                while !done.load(Ordering::Acquire) && reads < MAX_READS_PER_READER {
                    let page = index.search(&SearchQuery::default()).expect("search");
                    // Every batch adds three documents.
                    assert_eq!(page.total % 3, 0, "saw part of a batch: {}", page.total);
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    for batch in 0..BATCHES {
        let docs = (0..3)
            .map(|i| doc(&format!("b{batch}-{i}"), "Item", "", "c", 1))
            .collect();
        index
            .apply(docs, Vec::new(), &format!("{batch}"))
            .expect("apply");
        // Visible as soon as apply returns.
        assert_eq!(index.num_docs(), 3 * (batch as u64 + 1));
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        let reads = reader.join().expect("reader thread");
        assert!(reads > 0);
    }
    assert_eq!(index.cursor().as_deref(), Some("29"));
}
