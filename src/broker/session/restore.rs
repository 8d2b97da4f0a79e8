//! Restoring a session's stored record: at start (in batches, by the
//! broker's `restore_all`), when the store works again after an outage (in
//! batches, by the broker's store recovery), and for a `token` request.
//!
//! Restoring holds the session's persist lock, like every other store write
//! and the state change that goes with it, so a restore can never overwrite
//! a session that a login, a logout or a refresh installed meanwhile: it is
//! applied only while the session is still logged out and waiting for it.
//!
//! A record that could not be read because the store as a whole cannot be
//! used (no Secret Service, a locked keyring, an unusable directory) leaves
//! the session waiting for the store ([`PendingRestore`]): no timer, no
//! retry and no error of its own. The store's health says what is wrong,
//! once for every session, and its one retry loop restores the waiting
//! sessions when the store works again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use super::{Session, SessionState, State, Tokens};
use crate::broker::error::BrokerError;
use crate::broker::store_health::is_store_wide;
use crate::store::{StoreError, StoredSession};

/// What the store said of one session's record.
pub(crate) type LoadResult = Result<Option<StoredSession>, StoreError>;

/// The session's stored record has not been read: the store was
/// unavailable. The session waits, logged out, until the store's recovery
/// (or a `token` request) reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingRestore;

/// Why a record is being read; decides what is logged and announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestoreCause {
    /// At start, or for a provider a reload added: the broker logs one line
    /// for all, and nobody has seen the session yet.
    Start,
    /// The store works again: one line for all, but front-ends hear of
    /// each session that changed.
    Recovery,
    /// A `token` request for this session.
    Request,
}

impl Session {
    /// Loads the stored session (at start, or for a provider a reload
    /// added). While the store is unavailable the session waits for it
    /// without trying. Returns whether the session was restored.
    pub(crate) async fn restore(&self) -> bool {
        if !self.shared.store_health.is_available() {
            self.wait_for_store().await;
            return false;
        }
        self.load_stored(RestoreCause::Start).await
    }

    /// Whether the session waits for the store to read its record.
    pub(crate) fn waits_for_store(&self) -> bool {
        self.state().pending_restore.is_some()
    }

    /// Makes a logged-out session wait for the store: its record could not
    /// be read (the store is unavailable).
    pub(crate) async fn wait_for_store(&self) {
        let _persist = self.persist.lock().await;
        let mut state = self.state();
        if matches!(state.phase, SessionState::LoggedOut) {
            state.pending_restore = Some(PendingRestore);
        }
    }

    /// The store works again and has no record of this session: there is
    /// nothing to wait for.
    pub(crate) async fn no_stored_record(&self) {
        let _persist = self.persist.lock().await;
        self.state().pending_restore = None;
    }

    /// What a `token` request for a session that waits for the store is
    /// told: the store's problem, not "log in", which would start a second
    /// session beside the stored one.
    pub(super) fn waiting_error(&self) -> BrokerError {
        let source = self.shared.store_health.error().unwrap_or_else(|| {
            // The store works again and the recovery has not reached this
            // session yet.
            StoreError::Unavailable {
                store: self.shared.store.name(),
                reason: "the stored session is being read: try again in a moment".into(),
            }
        });
        self.store_error(source)
    }

    /// Tries to read the record for a `token` request if the session waits
    /// for the store: at once when the store works (its recovery has not
    /// reached this session yet), else at most once per spacing for the
    /// whole daemon. A record read during an outage means the store works:
    /// the retry loop is woken to restore the other sessions.
    pub(super) async fn restore_on_demand(&self) {
        if !self.waits_for_store() {
            return;
        }
        let health = &self.shared.store_health;
        let available = health.is_available();
        if !available && !health.claim_on_demand(self.now()) {
            return;
        }
        self.load_stored(RestoreCause::Request).await;
        if !available && !self.waits_for_store() {
            health.nudge();
        }
    }

    /// Installs a record the broker read for this session (with those of
    /// other sessions, in one store call), as [`Self::restore`] would have.
    /// Returns whether the session was restored.
    pub(crate) async fn restore_loaded(&self, loaded: LoadResult, cause: RestoreCause) -> bool {
        let _persist = self.persist.lock().await;
        self.may_restore(cause) && self.apply_loaded(loaded, cause)
    }

    /// Whether a record read now may still be installed; the caller holds
    /// the persist lock.
    fn may_restore(&self, cause: RestoreCause) -> bool {
        let state = self.state();
        let waiting = cause == RestoreCause::Start || state.pending_restore.is_some();
        // Not if restored meanwhile, or replaced by a login.
        waiting && matches!(state.phase, SessionState::LoggedOut)
    }

    /// One attempt to load the stored session.
    async fn load_stored(&self, cause: RestoreCause) -> bool {
        let _persist = self.persist.lock().await;
        if !self.may_restore(cause) {
            return false;
        }
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        let loaded = super::blocking(move || store.load(&name)).await;
        self.apply_loaded(loaded, cause)
    }

    /// Applies the outcome of a load; the caller holds the persist lock.
    /// Returns whether the session was restored.
    fn apply_loaded(&self, loaded: LoadResult, cause: RestoreCause) -> bool {
        let now = self.now();
        let mut state = self.state();
        state.pending_restore = None;
        if matches!(state.last_failure, Some(BrokerError::Store { .. })) {
            state.last_failure = None;
        }
        let mut restored = false;
        let mut store_failure = None;
        match loaded {
            Ok(Some(record)) if record.identity == self.identity => {
                self.install_restored(&mut state, Tokens::from_record(record), now);
                if cause == RestoreCause::Request {
                    info!(provider = %self.name, event = "restored", "session restored from the {}", self.shared.store.name());
                } else {
                    // The broker says at info level how many were restored:
                    // ten thousand lines would cost more than the restore.
                    debug!(provider = %self.name, event = "restored", "session restored from the {}", self.shared.store.name());
                }
                restored = true;
            }
            Ok(Some(_)) => {
                warn!(provider = %self.name, event = "restore_skipped",
                    "the stored session belongs to a different client or endpoint; it is not used (log in again)");
            }
            Ok(None) => {}
            Err(source) if is_store_wide(&source) => {
                state.pending_restore = Some(PendingRestore);
                store_failure = Some(source);
            }
            Err(source) => {
                warn!(provider = %self.name, event = "store_failed", "could not load the stored session: {source}");
                state.last_failure = Some(self.store_error(source));
            }
        }
        drop(state);
        match store_failure {
            // The store reported it already, unless the call timed out (the
            // store never answered): reporting twice changes nothing.
            Some(source) => self.shared.store_health.failed(&source),
            None if cause != RestoreCause::Start => self.changed(),
            None => {}
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
        state.phase = SessionState::Active(tokens);
    }

    /// Whether the session's tokens are not in the store (a save failed).
    pub(crate) fn is_store_dirty(&self) -> bool {
        self.state().store_dirty
    }

    /// Saves the session's tokens if its last save failed; returns whether
    /// it saved.
    ///
    /// # Errors
    /// The save failed again.
    pub(crate) async fn save_if_dirty(&self) -> Result<bool, BrokerError> {
        let _persist = self.persist.lock().await;
        let tokens = {
            let state = self.state();
            match (&state.phase, state.store_dirty) {
                (SessionState::Active(tokens), true) => tokens.clone(),
                _ => return Ok(false),
            }
        };
        self.save(&tokens).await?;
        let mut state = self.state();
        state.store_dirty = false;
        if matches!(state.last_failure, Some(BrokerError::Store { .. })) {
            state.last_failure = None;
        }
        drop(state);
        self.changed();
        Ok(true)
    }
}
