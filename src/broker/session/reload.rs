//! Handing a session over when a config reload rebuilds its provider.

use std::sync::{Arc, PoisonError};

use super::machine::Event;
use super::{Session, Table, wait_for_refresh_end};
use crate::broker::policy::AccessPolicy;
use crate::config::ProviderConfig;

impl Session {
    /// Applies `config`, which differs from the session's table at most in
    /// keys the session does not depend on (who may use and manage it,
    /// what the credential helpers are told): the session, its tokens and
    /// a pending login carry on. Returns the policy it had, or `None` when
    /// the table is the same.
    pub(crate) fn adopt_table(&self, config: &ProviderConfig) -> Option<AccessPolicy> {
        debug_assert!(self.config().same_session_keys(config));
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if *table.config == *config {
            return None;
        }
        let previous = AccessPolicy::clone(&table.policy);
        *table = Table {
            policy: Arc::new(AccessPolicy::new(self.shared.owner_uid, config)),
            config: Arc::new(config.clone()),
        };
        Some(previous)
    }

    /// Whether both sessions hold tokens of the same client and endpoint.
    pub(crate) fn same_identity(&self, other: &Session) -> bool {
        self.identity == other.identity
    }

    /// Ends this session's work for good (the provider left the config, or
    /// its config changed): it starts no refresh again, its pending login is
    /// cancelled, and a refresh in flight is waited for, so whatever it
    /// brought is in memory and the store before the tokens are handed over.
    ///
    /// `inherited` says that a session of the same identity takes over
    /// (see [`Self::inherit`]): what the store does not hold yet goes with
    /// the handover, and is not tried once more here (against a keyring
    /// that hangs, each such try held the reload for the store's timeout).
    pub(crate) async fn retire(self: &Arc<Self>, why: Retirement, inherited: bool) {
        self.begin_retirement();
        let (login, flight) = {
            let mut state = self.state();
            // In the same critical section as the flight is taken: no
            // refresh starts after the one waited for below.
            state.machine.retire();
            // A flight that is over answers at once.
            (state.login.take(), state.flight.clone())
        };
        if let Some(login) = login {
            // One whose tokens arrived is installed, and handed over with
            // the rest.
            login
                .cancel_or_await_install(match why {
                    Retirement::Removed => "a reload removed the provider from the config",
                    Retirement::Replaced => {
                        "a reload changed the provider's table: run the login again"
                    }
                })
                .await;
        }
        if let Some(rx) = flight {
            wait_for_refresh_end(rx, &self.shared).await;
        }
        // What only memory holds (a rotated refresh token whose save
        // failed) would be lost with this session unless it is handed over:
        // one more try, and a warning if the store still cannot take it.
        if !inherited
            && self.is_store_dirty()
            && let Err(e) = self.save_if_dirty().await
        {
            tracing::warn!(provider = %self.name, event = "unsaved_at_reload", "the reload retires this session while the store cannot take it ({e}): the store keeps its older copy");
        }
    }

    /// The first step of [`Self::retire`], which a reload takes for every
    /// session it retires before it waits for any: the session starts no
    /// refresh again, and one still waiting for its endpoint's permit
    /// gives up (see `run_refresh`). Retired one by one, each wait let the
    /// next session's queued refresh take the permit the last one freed,
    /// and be sent, and be waited for in turn.
    pub(crate) fn begin_retirement(&self) {
        self.state().machine.retire();
        self.retiring.cancel();
    }

    /// Takes over the tokens of `old`, a retired session of the same
    /// identity, so a config change that keeps client and endpoint keeps the
    /// session too.
    pub(crate) async fn inherit(self: &Arc<Self>, old: &Session) {
        // Serialised with old's store writes: nothing of old's can land after this.
        let old_persist = old.persist.lock().await;
        let handover = old.state().machine.handover();
        drop(old_persist);
        match handover {
            Some(handover) => {
                self.dispatch_now(Event::TakeOver(Box::new(handover)));
            }
            // Nothing to take over, but perhaps a stored session the old
            // one could not read yet: try again.
            None => {
                self.restore().await;
            }
        }
    }

    /// Whether a reload replaced this session ([`Self::retire`]): the
    /// broker then serves its callers from the provider's new session.
    pub(crate) fn is_retired(&self) -> bool {
        self.state().machine.is_retired()
    }

    /// Cheap proof of life for the watchdog: the state lock can be taken.
    pub(crate) fn probe(&self) {
        drop(self.state());
    }
}

/// Why a reload retires a session, for a login it cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retirement {
    /// The provider left the config.
    Removed,
    /// Its table changed: a new session replaces it.
    Replaced,
}
