//! The session's store calls: writing and deleting its record (restoring
//! it is in `restore`).
//!
//! Every store call runs on the blocking pool, bounded by the store's call
//! timeout (`[daemon] store_timeout`, [`StoreHealth::call_timeout`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::info;

use super::Session;
use crate::broker::metrics::Metrics;
use crate::broker::store_health::StoreHealth;
use crate::store::{PreparedSave, StoreError, StoredSession};

/// A save's preparation running on the blocking pool (see
/// [`Session::prepare_save`]).
pub(super) type PreparingSave = tokio::task::JoinHandle<PreparedSave>;

/// Wall-clock microseconds, for the debug lines that time the window between
/// a provider's answer and the store write (never used for decisions).
pub(super) fn unix_micros_now() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

impl Session {
    /// One write of this session's record (`record`, or a delete when
    /// `None`), in order with every other write of it (see
    /// `broker::record_writes`): its generation is taken when the write is
    /// made (the first poll, which callers make at once), and it runs on
    /// the blocking pool. A save uses what `prepared` made ready.
    pub(super) async fn write_record(
        &self,
        record: Option<StoredSession>,
        prepared: Option<PreparingSave>,
    ) -> Result<(), StoreError> {
        let slot = self.shared.record_writes.slot(&self.name);
        let generation = slot.issue();
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        // Ready before the provider answered, as a rule; a preparation
        // that failed or hangs (the save would too, and says why) leaves the
        // whole save to the store.
        let prepared = match prepared {
            Some(task) => tokio::time::timeout(self.shared.store_health.call_timeout(), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => PreparedSave::default(),
        };
        reported(&self.shared, move || {
            slot.apply(generation, || match &record {
                Some(record) => store.save_prepared(&name, record, prepared),
                None => store.delete(&name),
            })
        })
        .await
    }

    /// Has the store remember a delete of this session's record that is
    /// not tried now, the store being known down (see
    /// [`crate::store::Store::note_skipped_delete`]): a logout that a
    /// crash before the store's return must not undo. Within the store's
    /// call timeout, as a store call: the note goes to the state
    /// directory, which may be what hangs.
    pub(super) async fn note_skipped_delete(&self) {
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        let timeout = self.shared.store_health.call_timeout();
        let noted = blocking(timeout, move || {
            store.note_skipped_delete(&name);
            Ok(())
        })
        .await;
        if let Err(e) = noted {
            tracing::warn!(
                provider = %self.name,
                "could not note the logout for the store's return: {e}; a restart before \
                 the store works brings the session back"
            );
        }
    }

    /// Starts, on the blocking pool, the part of a save of this session's
    /// record that does not need the record (the encrypted file store
    /// creates its temporary file), for a refresh about to be sent: it runs
    /// while the provider answers, and a caller waiting for the refresh
    /// waits that much less for the save. `None` when the store has no
    /// such part.
    pub(super) fn prepare_save(&self) -> Option<PreparingSave> {
        // Not against a store that is down or holds calls it never
        // answered (a hung mount): the preparation would pin one more
        // blocking thread for each refresh, outside the cap on hung calls.
        if !self.shared.store.prepares_saves()
            || !self.shared.store_health.is_available()
            || self.shared.store_health.may_call().is_err()
        {
            return None;
        }
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        Some(tokio::task::spawn_blocking(move || {
            store.prepare_save(&name)
        }))
    }

    /// Undoes a preparation no save used (the refresh failed), off the
    /// event loop: it removes a file.
    pub(super) fn discard_prepared(&self, prepared: PreparingSave) {
        self.shared.tasks.spawn(async move {
            if let Ok(prepared) = prepared.await {
                let _ = tokio::task::spawn_blocking(move || drop(prepared)).await;
            }
        });
    }

    /// Retries the save that failed, in the background (the store works:
    /// see `refresh_if_due`; during an outage the store's recovery saves).
    pub(super) fn spawn_store_retry(self: &Arc<Self>) {
        let session = Arc::clone(self);
        self.shared.tasks.spawn(async move {
            if let Ok(true) = session.save_if_dirty().await {
                info!(provider = %session.name, event = "store_recovered", "session saved");
            }
        });
    }
}

/// Runs a blocking store call on the blocking pool, bounded by `timeout`.
pub(crate) async fn blocking<T: Send + 'static>(
    timeout: Duration,
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    bounded(call, timeout, Report::Nothing).await
}

/// As [`blocking`], for the broker's own calls (the start's listing and
/// batches, the retry loop's probe), whose callers report the outage
/// themselves: one that times out is counted in the metrics' store errors,
/// as a call that returns its failure is (by the store's watcher), and its
/// late answer, if one comes, told to `health`.
pub(crate) async fn counted<T: Send + 'static>(
    metrics: Arc<Metrics>,
    health: Arc<StoreHealth>,
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let timeout = health.call_timeout();
    bounded(call, timeout, Report::Count(&metrics, &health)).await
}

/// As [`blocking`], for a session's own calls: one that times out makes
/// the store unavailable (`shared`'s store health), as a store that
/// refuses does. The store itself reported nothing, and a keyring that
/// hangs hangs for every session, each of which would wait the timeout
/// again for each write.
pub(super) async fn reported<T: Send + 'static>(
    shared: &crate::broker::shared::Shared,
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let timeout = shared.store_health.call_timeout();
    bounded(call, timeout, Report::CountAndHealth(shared)).await
}

/// Who learns of a call that timed out.
enum Report<'a> {
    /// Nobody (no broker: `tokend --prune`).
    Nothing,
    /// The metrics; and the store's health of its late answer.
    Count(&'a Metrics, &'a Arc<StoreHealth>),
    /// The metrics and the store's health, of the timeout and of a late
    /// answer.
    CountAndHealth(&'a crate::broker::shared::Shared),
}

impl Report<'_> {
    /// The store's health, when the report reaches it.
    fn health(&self) -> Option<&Arc<StoreHealth>> {
        match self {
            Self::Nothing => None,
            Self::Count(_, health) => Some(health),
            Self::CountAndHealth(shared) => Some(&shared.store_health),
        }
    }
}

async fn bounded<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    timeout: Duration,
    report: Report<'_>,
) -> Result<T, StoreError> {
    if let Some(health) = report.health() {
        health.may_call()?;
    }
    let mut task = tokio::task::spawn_blocking(call);
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(did_not_complete(&e)),
        Err(_) => {
            let error = StoreError::Failed {
                store: "store",
                reason: format!(
                    "no answer within {} s (a keyring waiting for an unlock prompt or not answering at all, or a state directory on a file system that hangs)",
                    timeout.as_secs()
                ),
            };
            match report {
                Report::Nothing => {}
                Report::Count(metrics, _) => metrics.store_error(),
                Report::CountAndHealth(shared) => {
                    shared.metrics.store_error();
                    shared.store_health.failed(&error);
                }
            }
            if let Some(health) = report.health().map(Arc::clone) {
                // The call goes on in the blocking pool; when it returns,
                // the store answers again. Not a tracked task: a stop must
                // not wait for a keyring that never answers.
                health.call_hung();
                tokio::spawn(async move {
                    let returned = task.await;
                    health.hung_call_returned();
                    if returned.is_ok() {
                        health.answered_late();
                    }
                });
            }
            Err(error)
        }
    }
}

/// A store call whose task panicked or was cancelled.
pub(crate) fn did_not_complete(e: &tokio::task::JoinError) -> StoreError {
    StoreError::Failed {
        store: "store",
        reason: format!("the store call did not complete: {e}"),
    }
}
