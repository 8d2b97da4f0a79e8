//! Restoring the stored sessions, in few store calls: at start, and when
//! the store works again after an outage (see `store_recovery`).

use std::collections::VecDeque;
use std::sync::Arc;

use tracing::info;

use super::api::Broker;
use super::session::counted;
use super::session::{LoadResult, RestoreCause, Session, did_not_complete};
use crate::store::StoreError;

/// How many stored sessions one store call reads: small enough that a slow
/// store (the Secret Service, a record a few milliseconds) stays well
/// within the store's call timeout (`[daemon] store_timeout`) per call.
const RESTORE_BATCH: usize = 256;

/// At most this many batches are read at once, and never more than there
/// are CPUs: reading a batch is mostly opening and decrypting files (or
/// waiting for the Secret Service), which a second blocking thread halves;
/// more would only add threads to the blocking pool.
const RESTORE_READERS: usize = 2;

impl Broker {
    /// Restores every stored session; returns the number of providers.
    ///
    /// The store says first which providers have a record, so that a
    /// daemon with thousands of providers and few sessions makes one store
    /// call, not one per provider; the records are then read in batches
    /// ([`Self::restore_records`]). A store that cannot list is unavailable:
    /// its health says so once, and every session waits for it, with no
    /// store call and no timer of its own, until the store's retry loop
    /// finds it working.
    pub(super) async fn restore_all(&self) -> usize {
        let sessions = self.session_map();
        let store = Arc::clone(&self.inner.shared.store);
        let metrics = Arc::clone(&self.inner.shared.metrics);
        let health = Arc::clone(&self.inner.shared.store_health);
        let restored = match counted(metrics, health, move || store.list()).await {
            Ok(stored) => {
                let stored: Vec<Arc<Session>> = stored
                    .iter()
                    .filter_map(|name| sessions.get(name).cloned())
                    .collect();
                let restored = self.restore_records(&stored, RestoreCause::Start).await;
                // Read, but maybe not written: said now (the store reports
                // it), not at the first refresh that rotates a token.
                let store = Arc::clone(&self.inner.shared.store);
                let metrics = Arc::clone(&self.inner.shared.metrics);
                let health = Arc::clone(&self.inner.shared.store_health);
                if let Err(e) = counted(metrics, health, move || store.check_writable()).await {
                    self.inner.shared.store_health.failed(&e);
                }
                restored
            }
            Err(e) => {
                // Already reported by the store, unless the call timed out.
                self.inner.shared.store_health.failed(&e);
                for session in sessions.values() {
                    session.wait_for_store().await;
                }
                0
            }
        };
        let waiting = sessions.values().filter(|s| s.waits_for_store()).count();
        info!(
            restored,
            waiting,
            store = self.inner.shared.store.name(),
            "restored {restored} stored session(s){}",
            if waiting == 0 {
                String::new()
            } else {
                format!("; {waiting} wait for the store")
            }
        );
        sessions.len()
    }

    /// Reads the records of `stored` (sessions the store lists) in batches,
    /// each batch one call on the blocking pool (bounded by the store
    /// timeout), a few batches at once, and applies them in order as they
    /// arrive. Once the store fails store-wide no further batch is read:
    /// the sessions not read wait for the store. Returns how many sessions
    /// were restored.
    pub(super) async fn restore_records(
        &self,
        stored: &[Arc<Session>],
        cause: RestoreCause,
    ) -> usize {
        let health = &self.inner.shared.store_health;
        let readers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(RESTORE_READERS);
        let mut restored = 0;
        let mut batches = stored.chunks(RESTORE_BATCH);
        let mut reading = VecDeque::with_capacity(readers);
        reading.extend(batches.by_ref().take(readers).map(|b| self.read_batch(b)));
        while let Some((batch, read)) = reading.pop_front() {
            let results = match read.await_records().await {
                Ok(results) => results,
                Err(e) => vec![Err(e); batch.len()],
            };
            // Keep the readers busy while this batch is applied.
            if health.is_available() {
                reading.extend(batches.next().map(|b| self.read_batch(b)));
            }
            for (session, result) in batch.iter().zip(results) {
                restored += usize::from(session.restore_loaded(result, cause).await);
            }
        }
        for session in batches.flatten() {
            session.wait_for_store().await;
        }
        restored
    }

    /// Starts reading the stored records of `batch` in one store call
    /// ([`Store::load_batch`](crate::store::Store::load_batch)); the read
    /// goes on while the caller awaits something else. It stops at the
    /// first store-wide failure, which then stands for the rest of the
    /// batch: a locked keyring is asked once, not 256 times.
    fn read_batch<'b>(&self, batch: &'b [Arc<Session>]) -> (&'b [Arc<Session>], BatchRead) {
        let store = Arc::clone(&self.inner.shared.store);
        let names: Vec<String> = batch.iter().map(|s| s.name.clone()).collect();
        let metrics = Arc::clone(&self.inner.shared.metrics);
        let health = Arc::clone(&self.inner.shared.store_health);
        let read = tokio::spawn(counted(metrics, health, move || {
            Ok(store.load_batch(&names))
        }));
        (batch, BatchRead(read))
    }
}

/// The records of one batch, being read.
struct BatchRead(tokio::task::JoinHandle<Result<Vec<LoadResult>, StoreError>>);

impl BatchRead {
    /// The records, or why none could be read.
    async fn await_records(self) -> Result<Vec<LoadResult>, StoreError> {
        self.0.await.unwrap_or_else(|e| Err(did_not_complete(&e)))
    }
}
