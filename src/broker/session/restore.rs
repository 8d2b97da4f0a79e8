//! Restoring a session's stored record: at start (in batches, by the
//! broker's `restore_all`), when the store works again after an outage (in
//! batches, by the broker's store recovery), and for a `token` request.
//!
//! Restoring holds the session's persist lock, like every other store write
//! and the state change that goes with it; the machine installs a record
//! only while the session is still logged out and waiting for it.
//!
//! A record that could not be read because the store as a whole cannot be
//! used (no Secret Service, a locked keyring, an unusable directory) leaves
//! the session waiting for the store: no timer, no retry and no error of
//! its own. The store's health says what is wrong, once for every session,
//! and its one retry loop restores the waiting sessions when the store
//! works again.
//!
//! A record that could not be read for its own sake (damaged, sealed with
//! another key, a file tokend's user may not read, two keyring items
//! matching it) leaves the session unreadable, with that error of its own
//! and no timer either: it is read again for a `token` or `status` request
//! (at most once per 5 s), when the store announces a change (see
//! `broker::record_reread`), and at the end of an outage, so that mending
//! the cause brings the session back without a restart.

use std::sync::Arc;

use super::Session;
use super::machine::{Event, LoadResult, Reply, RestoreCause};
use crate::broker::error::BrokerError;
use crate::store::StoreError;

impl Session {
    /// Loads the stored session (at start, or for a provider a reload
    /// added). While the store is unavailable the session waits for it
    /// without trying. Returns whether the session was restored.
    pub(crate) async fn restore(self: &Arc<Self>) -> bool {
        if !self.shared.store_health.is_available() {
            self.wait_for_store().await;
            return false;
        }
        self.load_stored(RestoreCause::Start).await
    }

    /// Reads the record of a session a reload built while the store was
    /// down, if the store works again by the time the reload is published:
    /// the store's recovery restores the sessions of the map it finds, and
    /// one that came back during the reload found the old map, without
    /// this session (which then stayed logged out with a record to read).
    pub(crate) async fn restore_if_store_back(self: &Arc<Self>) {
        if self.waits_for_store() && self.shared.store_health.is_available() {
            self.load_stored(RestoreCause::Recovery).await;
        }
    }

    /// Whether the session waits for the store to read its record.
    pub(crate) fn waits_for_store(&self) -> bool {
        self.state().machine.waits_for_store()
    }

    /// Whether the session's record could not be read for its own sake.
    pub(crate) fn is_unreadable(&self) -> bool {
        self.state().machine.is_unreadable()
    }

    /// Claims a read again of the session's unreadable record for a
    /// request, at most once per spacing (see
    /// `SessionMachine::claim_reread`).
    pub(crate) fn claim_reread(&self) -> bool {
        let now = self.shared.clock.now();
        self.state().machine.claim_reread(now)
    }

    /// Makes a logged-out session wait for the store: its record could not
    /// be read (the store is unavailable).
    pub(crate) async fn wait_for_store(self: &Arc<Self>) {
        let _persist = self.persist.lock().await;
        self.dispatch_now(Event::StoreUnavailable);
    }

    /// The store lost this session's record (see
    /// [`crate::store::Store::take_lost_records`]): tokens it holds are
    /// unsaved until written again.
    pub(crate) async fn record_lost(self: &Arc<Self>) {
        let _persist = self.persist.lock().await;
        self.dispatch_now(Event::RecordLost);
    }

    /// The store works again and has no record of this session: there is
    /// nothing to wait for.
    pub(crate) async fn no_stored_record(self: &Arc<Self>) {
        let _persist = self.persist.lock().await;
        self.dispatch_now(Event::NoStoredRecord);
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
        BrokerError::Store {
            provider: self.name.clone(),
            source,
        }
    }

    /// Tries to read the record for a `token` request if the session waits
    /// for the store: at once when the store works (its recovery has not
    /// reached this session yet), else at most once per spacing for the
    /// whole daemon. A record read during an outage means the store works:
    /// the retry loop is woken to restore the other sessions.
    ///
    /// A session whose tokens are not saved (its save met the outage) asks
    /// the retry loop to probe now, within the same spacing: if the store
    /// works again (a keyring unlocked), its tokens are saved at once, not
    /// at the loop's next try minutes later.
    ///
    /// A session whose record is unreadable for its own sake reads it
    /// again, at most once per spacing for that session, while the store
    /// works (during an outage its recovery reads it).
    pub(super) async fn restore_on_demand(self: &Arc<Self>) {
        let (waits, unsaved) = {
            let state = self.state();
            (
                state.machine.waits_for_store(),
                state.machine.is_store_dirty(),
            )
        };
        let health = &self.shared.store_health;
        if unsaved {
            // Nothing to wait for: the token in memory is answered now.
            let _ = health.probe_on_demand(self.shared.clock.now());
        }
        if !waits {
            if health.is_available() && self.claim_reread() {
                self.load_stored(RestoreCause::Request).await;
            }
            return;
        }
        let available = health.is_available();
        if !available && !health.claim_on_demand(self.shared.clock.now()) {
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
    pub(crate) async fn restore_loaded(
        self: &Arc<Self>,
        loaded: LoadResult,
        cause: RestoreCause,
    ) -> bool {
        let _persist = self.persist.lock().await;
        self.apply_loaded(loaded, cause)
    }

    /// One attempt to load the stored session.
    async fn load_stored(self: &Arc<Self>, cause: RestoreCause) -> bool {
        let _persist = self.persist.lock().await;
        if !self.state().machine.may_restore(cause) {
            return false;
        }
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        let loaded = super::store::reported(&self.shared, move || store.load(&name)).await;
        self.apply_loaded(loaded, cause)
    }

    /// Hands what the store said to the machine; the caller holds the
    /// persist lock. Returns whether the session was restored. A record
    /// found unreadable is told to the task that reads such records again
    /// at the store's change notices.
    fn apply_loaded(self: &Arc<Self>, loaded: LoadResult, cause: RestoreCause) -> bool {
        let per_record = matches!(&loaded, Err(e) if !e.is_store_wide());
        let restored = matches!(
            self.dispatch_now(Event::RecordLoaded { cause, loaded }),
            Some(Reply::Changed(true))
        );
        if per_record && self.is_unreadable() {
            self.shared.unreadable_found.notify_one();
        }
        restored
    }

    /// Whether the session's tokens are not in the store (a save failed).
    pub(crate) fn is_store_dirty(&self) -> bool {
        self.state().machine.is_store_dirty()
    }

    /// How many saves of this session's tokens failed since one did.
    pub(crate) fn save_failures(&self) -> u32 {
        self.state().machine.save_failures()
    }

    /// Whether the store still holds the record of this session, logged
    /// out in memory only (the logout's delete failed).
    pub(crate) fn owes_a_logouts_delete(&self) -> bool {
        self.state().machine.owes_a_logouts_delete()
    }

    /// What the session was still doing when a stop's grace ran out, in
    /// words for the log, or `None`: a refresh the provider had not
    /// answered, or a store write that had not returned.
    pub(crate) fn unfinished_work(&self) -> Option<&'static str> {
        if self.state().machine.awaits_provider() {
            Some("the provider had not answered a refresh")
        } else if self.persist.try_lock().is_err() {
            // Held by whoever writes the store for this session.
            Some("the store had not finished writing the session")
        } else {
            None
        }
    }

    /// Saves the session's tokens if its last save failed; returns whether
    /// it saved.
    ///
    /// # Errors
    /// The save failed again.
    pub(crate) async fn save_if_dirty(self: &Arc<Self>) -> Result<bool, BrokerError> {
        let _persist = self.persist.lock().await;
        match self.dispatch(Event::SaveIfDirty).await {
            Some(Reply::Changed(saved)) => Ok(saved),
            Some(Reply::Done(Err(e))) => Err(e),
            _ => Ok(false),
        }
    }
}
