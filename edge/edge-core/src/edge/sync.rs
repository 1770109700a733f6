//! Keeping a POP current: the routing table (stored, refetched when old,
//! long-polled) and the purge feed.

use std::sync::atomic::Ordering;

use super::*;

/// How long a started refresh of a stale routing table keeps another from
/// starting on the same POP.
pub const TABLE_REFRESH_LEASE_MS: u64 = 5_000;

impl<H: Host> Edge<H> {
    /// The routing table: the stored one while young enough; an older
    /// stored one too (stale-while-revalidate: the request is not held
    /// while a lossy link to the routing layer times out), with a refresh
    /// due after the response ([`Deferred::RefreshTable`]); fetched on the
    /// request's path only when the POP has no table at all.
    pub async fn table(&self) -> Option<RoutingTable> {
        match self.stored_table().await {
            Some(s) if self.fresh(&s) => Some(s.table),
            Some(s) => {
                self.refresh_due.store(true, Ordering::Relaxed);
                Some(s.table)
            }
            None => self.fetch_table().await,
        }
    }

    async fn stored_table(&self) -> Option<StoredTable> {
        self.host
            .get(kv::TABLE)
            .await
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn fresh(&self, stored: &StoredTable) -> bool {
        self.host.now_ms().saturating_sub(stored.fetched_ms) < self.config.table_max_age_ms
    }

    /// Whether a request saw a stale table since the last call (the
    /// request's [`Handled`] then carries the refresh).
    pub(super) fn take_refresh_due(&self) -> bool {
        self.refresh_due.swap(false, Ordering::Relaxed)
    }

    /// Refreshes a stale table (deferred work): at most one refresh starts
    /// per [`TABLE_REFRESH_LEASE_MS`] on a POP, however many requests saw
    /// the stale table, so a routing layer that does not answer holds at
    /// most the host's call bound ÷ the lease refreshes in flight.
    pub(super) async fn refresh_table(&self) {
        if self.stored_table().await.is_some_and(|s| self.fresh(&s)) {
            return;
        }
        let now_ms = self.host.now_ms();
        let started = self
            .host
            .get(kv::TABLE_REFRESH)
            .await
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.parse::<u64>().ok());
        // A clock that went back does not stall refreshes for good.
        if started.is_some_and(|t| t <= now_ms && now_ms - t < TABLE_REFRESH_LEASE_MS) {
            return;
        }
        self.host
            .set(kv::TABLE_REFRESH, now_ms.to_string().as_bytes())
            .await;
        self.fetch_table().await;
    }

    /// Fetches the table from the routing API and stores it; `None` when
    /// the API gives none. (Stored whatever its version: a restarted
    /// routing layer counts versions from 1 again, and a watcher that
    /// stored a newer table meanwhile is corrected by its next long poll,
    /// which answers at once.)
    async fn fetch_table(&self) -> Option<RoutingTable> {
        let fetched = self
            .host
            .fetch(Outbound {
                method: "GET".into(),
                url: format!("{}/v1/table", self.config.routing_url.trim_end_matches('/')),
                headers: vec![("accept".into(), "application/json".into())],
                body: Vec::new(),
            })
            .await;
        let table = match fetched {
            Ok(r) if r.status == 200 => serde_json::from_slice::<RoutingTable>(&r.body).ok()?,
            _ => return None,
        };
        self.store_table(&table).await;
        Some(table)
    }

    /// Stores a routing table (from a fetch or a long-poll watcher).
    pub async fn store_table(&self, table: &RoutingTable) {
        let stored = StoredTable {
            fetched_ms: self.host.now_ms(),
            table: table.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&stored) {
            self.host.set(kv::TABLE, &bytes).await;
        }
    }

    /// One long poll of the routing API: waits (up to `timeout_ms`) for a
    /// table newer than the stored one and stores it. A POP's watcher calls
    /// it in a loop, so a failover reaches the edge within milliseconds.
    /// Returns the stored version.
    pub async fn watch_table(&self, timeout_ms: u64) -> Option<u64> {
        let since = self.table().await.map_or(0, |t| t.version);
        let fetched = self
            .host
            .fetch(Outbound {
                method: "GET".into(),
                url: format!(
                    "{}/v1/table/watch?since={since}&timeout_ms={}",
                    self.config.routing_url.trim_end_matches('/'),
                    timeout_ms.min(topology::routing::MAX_WATCH_MS)
                ),
                headers: vec![("accept".into(), "application/json".into())],
                body: Vec::new(),
            })
            .await;
        match fetched {
            Ok(r) if r.status == 200 => {
                let table: RoutingTable = serde_json::from_slice(&r.body).ok()?;
                // Versions only grow; a table older than the stored one
                // (another watcher was faster) is not stored over it.
                if table.version >= since {
                    self.store_table(&table).await;
                }
                Some(table.version.max(since))
            }
            _ => None,
        }
    }

    /// One long poll of the purge feed (catalog change events) from the
    /// nearest serving region: applies the events' tags and stores the
    /// cursor. A reset (the edge fell behind the feed) purges everything.
    /// Returns the events applied, `None` when no region answered.
    pub async fn sync_purge(&self, wait_ms: u64) -> Option<usize> {
        let table = self.table().await?;
        let cursor = self
            .host
            .get(kv::PURGE_CURSOR)
            .await
            .and_then(|c| String::from_utf8(c).ok())
            .unwrap_or_default();
        let request = Request {
            method: "GET".into(),
            path: regional_api::purge::PATH.into(),
            query: Some(regional_api::purge::query(&cursor, wait_ms)),
            ..Default::default()
        };
        for base in origin::nearest(&table, self.config.latitude, self.config.longitude) {
            let Ok(response) = self.host.fetch(self.signed(&request, &base)).await else {
                continue;
            };
            if response.status != 200 {
                continue;
            }
            let page: regional_api::purge::Page = serde_json::from_slice(&response.body).ok()?;
            if page.reset {
                self.purge(&[ALL_TAG.to_owned()]).await;
            }
            for event in &page.events {
                for tag in &event.tags {
                    self.purge_to_version(tag, event.version).await;
                }
            }
            self.host
                .set(kv::PURGE_CURSOR, page.cursor.as_bytes())
                .await;
            return Some(page.events.len());
        }
        None
    }
}
