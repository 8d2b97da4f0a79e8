//! The store side of a session: saving, restoring, login results, logout,
//! and handing a session over on reload.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::{Grant, Session, Tokens, wait_for_refresh};
use crate::broker::BrokerEvent;
use crate::broker::clock::unix_secs;
use crate::broker::error::BrokerError;
use crate::provider::TokenGrant;
use crate::store::StoreError;

impl Session {
    // ----- store -------------------------------------------------------

    /// Saves the session's record (or deletes it when there is no refresh
    /// token to keep). Runs the blocking store off the async threads.
    pub(super) async fn save(&self, tokens: &Tokens) -> Result<(), BrokerError> {
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        let result = match tokens.to_record(&self.identity) {
            Some(record) => blocking(move || store.save(&name, &record)).await,
            None => blocking(move || store.delete(&name)).await,
        };
        result.map_err(|source| {
            warn!(provider = %self.name, event = "store_failed", "could not save the session: {source}");
            self.store_error(source)
        })
    }

    pub(super) async fn delete_stored(&self) -> Result<(), BrokerError> {
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        blocking(move || store.delete(&name)).await.map_err(|source| {
            warn!(provider = %self.name, event = "store_failed", "could not delete the stored session: {source}");
            self.store_error(source)
        })
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

    /// Loads the stored session at start-up.
    pub(crate) async fn restore(&self) {
        let store = Arc::clone(&self.shared.store);
        let name = self.name.clone();
        let loaded = blocking(move || store.load(&name)).await;
        let now = self.now();
        let mut state = self.state();
        match loaded {
            Ok(Some(record)) if record.identity == self.identity => {
                let tokens = Tokens::from_record(record);
                let has_access = tokens
                    .access
                    .as_ref()
                    .is_some_and(|a| a.valid_for(now, Duration::ZERO));
                state.grant = Grant::Active(tokens.clone());
                if has_access {
                    self.schedule_next(&mut state, &tokens, now);
                } else {
                    // Check the refresh token soon (a revoked one turns into
                    // "login required" now rather than at first use), spread
                    // so that many sessions do not all start at once.
                    state.next_refresh =
                        Some(now + Duration::from_secs(5).mul_f64(fastrand::f64()));
                    self.shared
                        .scheduler
                        .schedule(&self.name, state.next_refresh);
                }
                info!(provider = %self.name, event = "restored", "session restored from the {}", self.shared.store.name());
            }
            Ok(Some(_)) => {
                warn!(provider = %self.name, event = "restore_skipped",
                    "the stored session belongs to a different client or endpoint; it is not used (log in again)");
            }
            Ok(None) => {}
            Err(source) => {
                warn!(provider = %self.name, event = "store_failed", "could not load the stored session: {source}");
                state.last_failure = Some(self.store_error(source));
            }
        }
    }

    // ----- login and logout ----------------------------------------------

    /// Installs the tokens of a successful device login.
    pub(crate) async fn accept_login(&self, grant: TokenGrant, sent_at: SystemTime) {
        let _persist = self.persist.lock().await;
        let tokens = Tokens::from_grant(grant, sent_at, None);
        let saved = self.save(&tokens).await;
        let now = self.now();
        let expires_at = tokens
            .access
            .as_ref()
            .and_then(|a| a.expires_at)
            .map(unix_secs);
        {
            let mut state = self.state();
            state.generation += 1;
            state.store_dirty = saved.is_err();
            state.last_failure = saved.err();
            state.grant = Grant::Active(tokens.clone());
            state.last_refresh = Some(now);
            state.failures = 0;
            self.schedule_next(&mut state, &tokens, now);
        }
        info!(provider = %self.name, event = "logged_in", expires_at, "device login succeeded");
        self.shared.emit(BrokerEvent::TokenRefreshed {
            provider: self.name.clone(),
            expires_at,
        });
        self.changed();
    }

    /// Forgets the session: memory first, then the store.
    pub(crate) async fn logout(&self) -> Result<(), BrokerError> {
        let login = self.state().login.take();
        if let Some(login) = login {
            login.cancel();
        }
        let _persist = self.persist.lock().await;
        {
            let mut state = self.state();
            state.generation += 1;
            state.grant = Grant::LoggedOut;
            state.failures = 0;
            state.last_failure = None;
            state.next_refresh = None;
            state.store_dirty = false;
        }
        self.shared.scheduler.schedule(&self.name, None);
        let result = self.delete_stored().await;
        info!(provider = %self.name, event = "logged_out", "session forgotten");
        self.changed();
        result
    }

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
        let _old_persist = old.persist.lock().await;
        let now = self.now();
        let mut state = self.state();
        {
            let old_state = old.state();
            state.grant = old_state.grant.clone();
            state.last_refresh = old_state.last_refresh;
            state.last_failure.clone_from(&old_state.last_failure);
            state.failures = old_state.failures;
            state.store_dirty = old_state.store_dirty;
        }
        if let Grant::Active(tokens) = &state.grant {
            let tokens = tokens.clone();
            self.schedule_next(&mut state, &tokens, now);
        }
    }

    /// Cheap proof of life for the watchdog: the state lock can be taken.
    pub(crate) fn probe(&self) {
        drop(self.state());
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
        Ok(Err(e)) => Err(StoreError::Failed {
            store: "store",
            reason: format!("the store call did not complete: {e}"),
        }),
        Err(_) => Err(StoreError::Failed {
            store: "store",
            reason: format!(
                "no answer within {} s (is the keyring waiting for an unlock prompt?)",
                STORE_TIMEOUT.as_secs()
            ),
        }),
    }
}
