//! The session's store calls: writing and deleting its record (restoring
//! it is in `restore`).
//!
//! Every store call runs on the blocking pool, bounded by the store's call
//! timeout (`[daemon] store_timeout`, [`StoreHealth::call_timeout`]), and
//! at most [`MAX_STORE_CALLS`] at once ([`StoreHealth::call_slot`]): a
//! store that hangs holds no more threads than that (the one exception is
//! [`blocking`]'s).
//!
//! [`MAX_STORE_CALLS`]: crate::broker::store_health::MAX_STORE_CALLS

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
        // And only in a free call slot, held until the preparation
        // returns: a directory that has just hung keeps at most
        // `MAX_STORE_CALLS` threads. None free: the save does it all.
        if !self.shared.store.prepares_saves()
            || !self.shared.store_health.is_available()
            || self.shared.store_health.may_call().is_err()
        {
            return None;
        }
        let slot = self.shared.store_health.try_call_slot()?;
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        Some(tokio::task::spawn_blocking(move || {
            let _slot = slot;
            store.prepare_save(&name)
        }))
    }

    /// Undoes a preparation no save used (the refresh failed), off the
    /// event loop: it removes a file, a store call like any other (in a
    /// call slot, see [`StoreHealth::call_slot`]). When no slot comes free
    /// within the store timeout (the store's directory hangs), the file is
    /// left, unclosed, to the next start's removal of temporary files:
    /// closing or removing it on the event loop could hang it too.
    pub(super) fn discard_prepared(&self, prepared: PreparingSave) {
        let health = Arc::clone(&self.shared.store_health);
        self.shared.tasks.spawn(async move {
            let Ok(prepared) = prepared.await else {
                return;
            };
            match health.call_slot(health.call_timeout()).await {
                Ok(slot) => {
                    let _ = tokio::task::spawn_blocking(move || {
                        let _slot = slot;
                        drop(prepared);
                    })
                    .await;
                }
                Err(_) => std::mem::forget(prepared),
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

/// Runs a blocking store call on the blocking pool, bounded by `timeout`,
/// outside [`MAX_STORE_CALLS`](crate::broker::store_health::MAX_STORE_CALLS):
/// for `tokend --prune` (no broker, one call at a time) and a logout's
/// note in the state directory ([`Session::note_skipped_delete`]), made
/// once per logout while the store is down, which must not wait behind
/// the calls a keyring that hangs holds: the note is what keeps that
/// logout across a restart.
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
    /// Tells who learns of it that a call got no answer within its
    /// timeout: the metrics count it, and a session's call makes the store
    /// unavailable.
    fn timed_out(&self, error: &StoreError) {
        match self {
            Self::Nothing => {}
            Self::Count(metrics, _) => metrics.store_error(),
            Self::CountAndHealth(shared) => {
                shared.metrics.store_error();
                shared.store_health.failed(error);
            }
        }
    }

    /// The store's health, when the report reaches it.
    fn health(&self) -> Option<&Arc<StoreHealth>> {
        match self {
            Self::Nothing => None,
            Self::Count(_, health) => Some(health),
            Self::CountAndHealth(shared) => Some(&shared.store_health),
        }
    }
}

/// Runs `call` on the blocking pool, waiting at most `timeout` for it:
/// for a slot ([`StoreHealth::call_slot`], when the report reaches a
/// store health) and for the call together. The slot goes with the call
/// into its thread, and comes back only when the call returns.
async fn bounded<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    timeout: Duration,
    report: Report<'_>,
) -> Result<T, StoreError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let slot = match report.health() {
        Some(health) => {
            health.may_call()?;
            let slot = match health.call_slot(timeout).await {
                Ok(slot) => slot,
                Err(error) => {
                    // As a call that timed out, but not a hung one: it
                    // made no call and holds no thread.
                    report.timed_out(&error);
                    return Err(error);
                }
            };
            // Calls that timed out while this one waited for its slot.
            health.may_call()?;
            Some(slot)
        }
        None => None,
    };
    let mut task = tokio::task::spawn_blocking(move || {
        // Held until the call returns, however long the caller waits.
        let _slot = slot;
        call()
    });
    match tokio::time::timeout_at(deadline, &mut task).await {
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
            report.timed_out(&error);
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
