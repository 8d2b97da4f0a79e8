//! Restoring the stored sessions at start, in few store calls.

use std::sync::Arc;

use tracing::{info, warn};

use super::session::Session;
use super::{Broker, store_call};
use crate::store::{StoreError, StoredSession};

/// How many stored sessions one store call reads at start: small enough
/// that a slow store (the Secret Service, a record a few milliseconds) stays
/// well within [`super::STORE_TIMEOUT`] per call.
const RESTORE_BATCH: usize = 256;

impl Broker {
    /// Restores every stored session; returns the number of providers.
    ///
    /// The store says first which providers have a record, so that a
    /// daemon with thousands of providers and few sessions makes one store
    /// call, not one per provider; the records are then read in batches,
    /// each batch one call on the blocking pool (bounded by the store
    /// timeout). A store that cannot list falls back to one attempt per
    /// session, each of which the session retries later on its own.
    pub(super) async fn restore_all(&self) -> usize {
        let sessions = self.session_map();
        let store = Arc::clone(&self.inner.shared.store);
        let mut restored = 0;
        match store_call(move || store.list()).await {
            Ok(stored) => {
                let stored: Vec<Arc<Session>> = stored
                    .iter()
                    .filter_map(|name| sessions.get(name).cloned())
                    .collect();
                for batch in stored.chunks(RESTORE_BATCH) {
                    for (session, result) in batch.iter().zip(self.load_batch(batch).await) {
                        restored += usize::from(session.restore_loaded(result).await);
                    }
                }
            }
            Err(e) => {
                warn!("{e}; sessions are kept in memory until the store works again");
                for session in sessions.values() {
                    restored += usize::from(session.restore().await);
                }
            }
        }
        info!(
            restored,
            store = self.inner.shared.store.name(),
            "restored {restored} stored session(s)"
        );
        sessions.len()
    }

    /// Reads the stored records of `batch` in one store call.
    async fn load_batch(
        &self,
        batch: &[Arc<Session>],
    ) -> Vec<Result<Option<StoredSession>, StoreError>> {
        let store = Arc::clone(&self.inner.shared.store);
        let names: Vec<String> = batch.iter().map(|s| s.name.clone()).collect();
        match store_call(move || Ok(names.iter().map(|n| store.load(n)).collect())).await {
            Ok(results) => results,
            Err(e) => vec![Err(e); batch.len()],
        }
    }
}
