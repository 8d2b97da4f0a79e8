//! The session's side of persistence: saving and deleting its record, and
//! restoring it, at start and again later when the store could not be read
//! then (a locked keyring, a Secret Service that starts after tokend).
//!
//! Every store call runs on the blocking pool, bounded by [`STORE_TIMEOUT`].
//! Restoring holds the session's persist lock, like every other store write
//! and the state change that goes with it, so a restore can never overwrite
//! a session that a login, a logout or a refresh installed meanwhile: it is
//! applied only while the session is still logged out and waiting for it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use super::{Grant, Session, State, Tokens, timing};
use crate::broker::error::BrokerError;
use crate::store::{StoreError, StoredSession};

/// A stored session that could not be read yet, retried with backoff in the
/// background and on `token` requests.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingRestore {
    /// Failed attempts so far.
    attempts: u32,
    /// When the next background attempt is due.
    pub(super) retry_at: SystemTime,
    /// When a `token` request last made an attempt: those are spaced, so a
    /// script asking in a loop does not pop a keyring unlock prompt per call.
    last_on_demand: Option<SystemTime>,
}

/// Whether a failed load may succeed later without a person changing the
/// config: a locked or missing store may; a damaged record or another key
/// will not.
fn may_recover(error: &StoreError) -> bool {
    match error {
        StoreError::Unavailable { .. } | StoreError::Locked { .. } | StoreError::Failed { .. } => {
            true
        }
        StoreError::Corrupt { .. } | StoreError::WrongKey { .. } => false,
    }
}

/// Wall-clock microseconds, for the debug lines that time the window between
/// a provider's answer and the store write (never used for decisions).
pub(super) fn unix_micros_now() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

impl Session {
    /// Saves the session's record (or deletes it when there is no refresh
    /// token to keep). Runs the blocking store off the async threads.
    pub(super) async fn save(&self, tokens: &Tokens) -> Result<(), BrokerError> {
        let result = self.write_record(tokens.to_record(&self.identity)).await;
        result.map_err(|source| {
            warn!(provider = %self.name, event = "store_failed", "could not save the session: {source}");
            self.store_error(source)
        })
    }

    pub(super) async fn delete_stored(&self) -> Result<(), BrokerError> {
        self.write_record(None).await.map_err(|source| {
            warn!(provider = %self.name, event = "store_failed", "could not delete the stored session: {source}");
            self.store_error(source)
        })
    }

    /// One write of this session's record (`record`, or a delete when
    /// `None`), in order with every other write of it (see
    /// `broker::record_writes`): its generation is taken when the write is
    /// made (the first poll, which callers make at once), and it runs on
    /// the blocking pool.
    async fn write_record(&self, record: Option<StoredSession>) -> Result<(), StoreError> {
        let slot = self.shared.record_writes.slot(&self.name);
        let generation = slot.issue();
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        blocking(move || {
            slot.apply(generation, || match &record {
                Some(record) => store.save(&name, record),
                None => store.delete(&name),
            })
        })
        .await
    }

    pub(super) fn store_error(&self, source: StoreError) -> BrokerError {
        BrokerError::Store {
            provider: self.name.clone(),
            source,
        }
    }

    pub(super) fn spawn_store_retry(self: &Arc<Self>) {
        let session = Arc::clone(self);
        self.shared.tasks.spawn(async move {
            let _persist = session.persist.lock().await;
            let tokens = match &session.state().grant {
                Grant::Active(tokens) => tokens.clone(),
                _ => return,
            };
            if session.save(&tokens).await.is_ok() {
                let mut state = session.state();
                state.store_dirty = false;
                if matches!(state.last_failure, Some(BrokerError::Store { .. })) {
                    state.last_failure = None;
                }
                info!(provider = %session.name, event = "store_recovered", "session saved");
            }
        });
    }

    /// Loads the stored session at start-up. When the store cannot be read
    /// now but may be later, the session stays logged out and the load is
    /// retried (see [`PendingRestore`]).
    /// Returns whether the session was restored.
    pub(crate) async fn restore(&self) -> bool {
        self.load_stored(true).await
    }

    /// Starts a background restore attempt (the scheduler found it due).
    pub(super) fn spawn_restore_retry(self: &Arc<Self>) {
        let session = Arc::clone(self);
        self.shared.tasks.spawn(async move {
            session.load_stored(false).await;
        });
    }

    /// Makes a restore attempt for a `token` request, if one is pending and
    /// none was made for a request within [`timing::ON_DEMAND_RETRY_SPACING`].
    pub(super) async fn restore_on_demand(&self) {
        let claimed = {
            let mut state = self.state();
            let now = self.now();
            let logged_out = matches!(state.grant, Grant::LoggedOut);
            match &mut state.pending_restore {
                Some(pending)
                    if logged_out
                        && pending
                            .last_on_demand
                            .is_none_or(|at| now >= at + timing::ON_DEMAND_RETRY_SPACING) =>
                {
                    pending.last_on_demand = Some(now);
                    true
                }
                _ => false,
            }
        };
        if claimed {
            self.load_stored(false).await;
        }
    }

    /// Installs a record the broker loaded at start for this session (with
    /// those of other sessions, in one store call), as [`Self::restore`]
    /// would have.
    /// Returns whether the session was restored.
    pub(crate) async fn restore_loaded(
        &self,
        loaded: Result<Option<StoredSession>, StoreError>,
    ) -> bool {
        let _persist = self.persist.lock().await;
        self.apply_loaded(loaded, true)
    }

    /// One attempt to load the stored session; `at_start` for the first.
    async fn load_stored(&self, at_start: bool) -> bool {
        let _persist = self.persist.lock().await;
        {
            let state = self.state();
            let waiting = at_start || state.pending_restore.is_some();
            if !waiting || !matches!(state.grant, Grant::LoggedOut) {
                // Restored by a concurrent attempt, or replaced by a login.
                return false;
            }
        }
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        let loaded = blocking(move || store.load(&name)).await;
        self.apply_loaded(loaded, at_start)
    }

    /// Applies the outcome of a load; the caller holds the persist lock.
    /// Returns whether the session was restored.
    fn apply_loaded(
        &self,
        loaded: Result<Option<StoredSession>, StoreError>,
        at_start: bool,
    ) -> bool {
        let now = self.now();
        let mut state = self.state();
        let last_on_demand = state.pending_restore.and_then(|p| p.last_on_demand);
        let attempts = state.pending_restore.map_or(0, |p| p.attempts);
        state.pending_restore = None;
        if matches!(state.last_failure, Some(BrokerError::Store { .. })) {
            state.last_failure = None;
        }
        let mut restored = false;
        match loaded {
            Ok(Some(record)) if record.identity == self.identity => {
                self.install_restored(&mut state, Tokens::from_record(record), now);
                if at_start {
                    // The broker says at info level how many were restored:
                    // ten thousand lines would cost start-up more than the
                    // restore itself.
                    debug!(provider = %self.name, event = "restored", "session restored from the {}", self.shared.store.name());
                } else {
                    info!(provider = %self.name, event = "restored", "session restored from the {}", self.shared.store.name());
                }
                restored = true;
            }
            Ok(Some(_)) => {
                warn!(provider = %self.name, event = "restore_skipped",
                    "the stored session belongs to a different client or endpoint; it is not used (log in again)");
            }
            Ok(None) => {}
            Err(source) if may_recover(&source) => {
                let attempts = attempts.saturating_add(1);
                let delay = timing::backoff(
                    attempts,
                    timing::TRANSIENT_BACKOFF_BASE,
                    timing::TRANSIENT_BACKOFF_CAP,
                    fastrand::f64(),
                );
                warn!(provider = %self.name, event = "store_failed", retry_in = delay.as_secs(),
                    "could not load the stored session: {source}; trying again in {} s and on the next token request", delay.as_secs());
                state.last_failure = Some(self.store_error(source));
                state.pending_restore = Some(PendingRestore {
                    attempts,
                    retry_at: now + delay,
                    last_on_demand,
                });
                self.shared
                    .scheduler
                    .schedule(&self.name, Some(now + delay));
            }
            Err(source) => {
                warn!(provider = %self.name, event = "store_failed", "could not load the stored session: {source}");
                state.last_failure = Some(self.store_error(source));
            }
        }
        drop(state);
        if !at_start {
            self.changed();
        }
        restored
    }

    /// Makes restored tokens the session's, and plans their next refresh.
    fn install_restored(&self, state: &mut State, tokens: Tokens, now: SystemTime) {
        let has_access = tokens
            .access
            .as_ref()
            .is_some_and(|a| a.valid_for(now, Duration::ZERO));
        if has_access {
            self.schedule_next(state, &tokens, now);
        } else {
            // Check the refresh token soon (a revoked one turns into
            // "login required" now rather than at first use), spread
            // so that many sessions do not all start at once.
            state.next_refresh = Some(now + Duration::from_secs(5).mul_f64(fastrand::f64()));
            self.shared
                .scheduler
                .schedule(&self.name, state.next_refresh);
        }
        state.grant = Grant::Active(tokens);
    }
}

/// How long a store call may take. A locked desktop keyring shows an unlock
/// prompt and waits for the person; the broker does not wait that long.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a blocking store call on the blocking pool, bounded by [`STORE_TIMEOUT`].
pub(crate) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STORE_TIMEOUT, tokio::task::spawn_blocking(call)).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(did_not_complete(&e)),
        Err(_) => Err(StoreError::Failed {
            store: "store",
            reason: format!(
                "no answer within {} s (is the keyring waiting for an unlock prompt?)",
                STORE_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// A store call whose task panicked or was cancelled.
pub(crate) fn did_not_complete(e: &tokio::task::JoinError) -> StoreError {
    StoreError::Failed {
        store: "store",
        reason: format!("the store call did not complete: {e}"),
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "write_order_tests.rs"]
mod write_order_tests;
