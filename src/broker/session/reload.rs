//! Handing a session over when a config reload rebuilds its provider.

use super::{Session, SessionState, wait_for_refresh};

impl Session {
    // ----- reload ------------------------------------------------------

    /// Whether both sessions hold tokens of the same client and endpoint.
    pub(crate) fn same_identity(&self, other: &Session) -> bool {
        self.identity == other.identity
    }

    /// Ends this session's work for good (the provider left the config, or
    /// its config changed): cancels a pending login and waits for a refresh
    /// in flight to land, so whatever it brought is in memory and the store.
    pub(crate) async fn retire(&self) {
        let (login, refresh) = {
            let mut state = self.state();
            (state.login.take(), state.refresh.clone())
        };
        if let Some(login) = login {
            login.cancel();
        }
        if let Some(rx) = refresh {
            let _ = wait_for_refresh(rx, &self.shared).await;
        }
    }

    /// Takes over the tokens of `old`, a retired session of the same
    /// identity, so a config change that keeps client and endpoint keeps the
    /// session too.
    pub(crate) async fn inherit(&self, old: &Session) {
        // Serialised with old's store writes: nothing of old's can land after this.
        let old_persist = old.persist.lock().await;
        let old_session_state = old.state().phase.clone();
        if matches!(old_session_state, SessionState::LoggedOut) {
            // Nothing to take over, but perhaps a stored session the old
            // one could not read yet: try again.
            drop(old_persist);
            self.restore().await;
            return;
        }
        let now = self.now();
        let mut state = self.state();
        {
            let old_state = old.state();
            state.phase = old_state.phase.clone();
            state.last_refresh = old_state.last_refresh;
            state.last_failure.clone_from(&old_state.last_failure);
            state.failures = old_state.failures;
            state.store_dirty = old_state.store_dirty;
        }
        if let SessionState::Active(tokens) = &state.phase {
            let tokens = tokens.clone();
            self.schedule_next(&mut state, &tokens, now);
        }
    }

    /// Cheap proof of life for the watchdog: the state lock can be taken.
    pub(crate) fn probe(&self) {
        drop(self.state());
    }
}
