//! Restoring the stored sessions at start, in few store calls.

use std::collections::VecDeque;
use std::sync::Arc;

use tracing::{info, warn};

use super::session::{Session, did_not_complete};
use super::{Broker, store_call};
use crate::store::{StoreError, StoredSession};

/// How many stored sessions one store call reads at start: small enough
/// that a slow store (the Secret Service, a record a few milliseconds) stays
/// well within [`super::STORE_TIMEOUT`] per call.
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
    /// call, not one per provider; the records are then read in batches,
    /// each batch one call on the blocking pool (bounded by the store
    /// timeout), a few batches at once, and applied in order as they
    /// arrive. A store that cannot list falls back to one attempt per
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
                let readers = std::thread::available_parallelism()
                    .map_or(1, std::num::NonZero::get)
                    .min(RESTORE_READERS);
                let mut batches = stored.chunks(RESTORE_BATCH);
                let mut reading = VecDeque::with_capacity(readers);
                reading.extend(batches.by_ref().take(readers).map(|b| self.read_batch(b)));
                while let Some((batch, read)) = reading.pop_front() {
                    let results = match read.await_records().await {
                        Ok(results) => results,
                        Err(e) => vec![Err(e); batch.len()],
                    };
                    // Keep the readers busy while this batch is applied.
                    reading.extend(batches.next().map(|b| self.read_batch(b)));
                    for (session, result) in batch.iter().zip(results) {
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

    /// Starts reading the stored records of `batch` in one store call; the
    /// read goes on while the caller awaits something else.
    fn read_batch<'b>(&self, batch: &'b [Arc<Session>]) -> (&'b [Arc<Session>], BatchRead) {
        let store = Arc::clone(&self.inner.shared.store);
        let names: Vec<String> = batch.iter().map(|s| s.name.clone()).collect();
        let read = tokio::spawn(store_call(move || {
            Ok(names.iter().map(|n| store.load(n)).collect())
        }));
        (batch, BatchRead(read))
    }
}

/// The records of one batch, being read.
struct BatchRead(tokio::task::JoinHandle<Result<Vec<LoadResult>, StoreError>>);

/// What the store said of one session's record.
type LoadResult = Result<Option<StoredSession>, StoreError>;

impl BatchRead {
    /// The records, or why none could be read.
    async fn await_records(self) -> Result<Vec<LoadResult>, StoreError> {
        self.0.await.unwrap_or_else(|e| Err(did_not_complete(&e)))
    }
}
