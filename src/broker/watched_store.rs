//! The store every session uses: the configured one, watched, so that a
//! store-wide failure of any call reaches the [`StoreHealth`] (see
//! `store_health`).

use std::sync::Arc;

use super::store_health::StoreHealth;
use crate::store::{ChangeFeed, LoadResult, PreparedSave, Store, StoreError, StoredSession};

/// The broker's store: every call goes to the real store, and every
/// store-wide failure is reported to the [`StoreHealth`]. Wrapping the store
/// (rather than checking at each call site) means that no path — a save
/// after a refresh, a logout's delete, a restore — can fail without the
/// health knowing. Successes are not reported: a store can list while it
/// cannot write (a full disk), so only the retry loop, which probes what
/// failed, declares the store available again.
#[derive(Debug)]
pub(crate) struct WatchedStore {
    inner: Arc<dyn Store>,
    health: Arc<StoreHealth>,
    metrics: Arc<super::metrics::Metrics>,
}

impl WatchedStore {
    /// `inner`, reporting to `health`.
    pub(crate) fn new(
        inner: Arc<dyn Store>,
        health: Arc<StoreHealth>,
        metrics: Arc<super::metrics::Metrics>,
    ) -> Self {
        Self {
            inner,
            health,
            metrics,
        }
    }

    /// Reports a failure of a call about one record, when store-wide.
    fn watch<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            self.report(error);
        }
        result
    }

    /// Counts a store error, and reports it to the health when store-wide.
    fn report(&self, error: &StoreError) {
        self.metrics.store_error();
        if error.is_store_wide() {
            self.health.failed(error);
        }
    }
}

impl Store for WatchedStore {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        self.watch(self.inner.load(provider))
    }

    fn load_batch(&self, providers: &[String]) -> Vec<LoadResult> {
        let results = self.inner.load_batch(providers);
        // A store-wide failure stands for every record after it: one
        // failure of the store, reported and counted once.
        for error in results.iter().filter_map(|r| r.as_ref().err()) {
            self.report(error);
            if error.is_store_wide() {
                break;
            }
        }
        results
    }

    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.watch(self.inner.save(provider, session))
    }

    fn prepares_saves(&self) -> bool {
        self.inner.prepares_saves()
    }

    fn prepare_save(&self, provider: &str) -> PreparedSave {
        self.inner.prepare_save(provider)
    }

    fn save_prepared(
        &self,
        provider: &str,
        session: &StoredSession,
        prepared: PreparedSave,
    ) -> Result<(), StoreError> {
        self.watch(self.inner.save_prepared(provider, session, prepared))
    }

    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.watch(self.inner.delete(provider))
    }

    fn list(&self) -> Result<Vec<String>, StoreError> {
        // Listing concerns no record: any failure is the store's.
        self.inner.list().inspect_err(|error| {
            self.metrics.store_error();
            self.health.failed(error);
        })
    }

    fn change_feed(&self) -> Option<ChangeFeed> {
        self.inner.change_feed()
    }

    fn forgets_at_stop(&self) -> bool {
        self.inner.forgets_at_stop()
    }

    fn tries_writes_while_down(&self) -> bool {
        self.inner.tries_writes_while_down()
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        // About no record: any failure is the store's.
        self.inner.check_writable().inspect_err(|error| {
            self.metrics.store_error();
            self.health.failed(error);
        })
    }

    fn remembers_logout(&self, provider: &str) -> bool {
        self.inner.remembers_logout(provider)
    }

    fn take_lost_records(&self) -> bool {
        self.inner.take_lost_records()
    }

    fn note_skipped_delete(&self, provider: &str) {
        // Not a store call: the store is down, and the note is made
        // beside it; its health is not told anything.
        self.inner.note_skipped_delete(provider);
    }
}
