//! What the machine shows of itself to `tokenctl status`.

use std::time::{Duration, SystemTime};

use super::{RefreshStage, SessionMachine, SessionState, Tokens};
use crate::broker::error::BrokerError;
use crate::broker::report::SessionPhase;

impl SessionMachine {
    /// The phase `status` shows, but for a pending login (which the
    /// driver knows of, and checks first).
    pub(crate) fn phase(&self, now: SystemTime) -> SessionPhase {
        match &self.state {
            SessionState::LoggedOut | SessionState::WaitingForStore => SessionPhase::LoggedOut,
            SessionState::NeedsLogin { .. } => SessionPhase::LoginRequired,
            SessionState::Unreadable { .. } => SessionPhase::Unreadable,
            SessionState::Active { tokens, .. } => {
                let valid = tokens
                    .access
                    .as_ref()
                    .is_some_and(|a| a.valid_for(now, Duration::ZERO));
                // An expired token with a refresh token and no failure is
                // one whose refresh is about to come: active, for
                // `EXPIRED_SHOWN_ACTIVE_FOR` past its expiry (then it
                // shows what it is, whatever holds the refresh). Not while its
                // endpoint holds refreshes back (another account's
                // `Retry-After`): that counts no failure of this session's,
                // but nothing will come before the wait ends.
                let held = self
                    .provider_asked_wait
                    .is_some_and(|(since, wait)| crate::broker::timing::within(now, since, wait));
                // Nor while the provider has not answered its refresh (a
                // late answer listened for), or its endpoint's refreshes
                // out are unanswered: the failure is said, none counted.
                let unanswered = matches!(
                    self.last_failure,
                    Some(crate::broker::error::BrokerError::ProviderUnavailable { .. })
                );
                // Counted from the expiry, or from the refresh's start
                // when that came later: after a start or a resume every
                // restored token expired long ago, and its refresh is
                // answered within the window.
                let grace = crate::broker::timing::EXPIRED_SHOWN_ACTIVE_FOR;
                let expired_lately = tokens
                    .access
                    .as_ref()
                    .and_then(|a| a.expires_at)
                    .is_none_or(|at| crate::broker::timing::within(now, at, grace));
                let refreshing_lately = self.refresh_under_way()
                    && self
                        .last_attempt
                        .is_some_and(|at| crate::broker::timing::within(now, at, grace));
                let lately = expired_lately || refreshing_lately;
                if valid
                    || (tokens.refresh.is_some()
                        && self.failures == 0
                        && !held
                        && !unanswered
                        && lately)
                {
                    SessionPhase::Active
                } else if tokens.refresh.is_none() {
                    // Nothing refreshes it: only a login brings another,
                    // as a token request says.
                    SessionPhase::LoginRequired
                } else {
                    SessionPhase::Expired
                }
            }
        }
    }

    /// The tokens of an active session.
    pub(crate) fn tokens(&self) -> Option<&Tokens> {
        match &self.state {
            SessionState::Active { tokens, .. } => Some(tokens),
            _ => None,
        }
    }

    /// Saves of the session's tokens that failed since the last one that
    /// did.
    pub(crate) fn save_failures(&self) -> u32 {
        self.save_failures
    }

    /// When the last refresh (or login) brought tokens.
    pub(crate) fn last_refresh(&self) -> Option<SystemTime> {
        self.last_refresh
    }

    /// The last failure, cleared by a success.
    pub(crate) fn last_failure(&self) -> Option<&BrokerError> {
        self.last_failure.as_ref()
    }

    /// Whether a refresh request is with the provider, unanswered.
    pub(crate) fn awaits_provider(&self) -> bool {
        matches!(
            self.state,
            SessionState::Active {
                refresh: RefreshStage::Requested,
                ..
            }
        )
    }

    /// Whether a refresh is under way: with the provider, or its answer
    /// being saved.
    pub(crate) fn refresh_under_way(&self) -> bool {
        matches!(
            self.state,
            SessionState::Active {
                refresh: RefreshStage::Requested | RefreshStage::Saving,
                ..
            }
        )
    }

    /// Whether the store holds the session's current tokens (or there are
    /// none to hold).
    pub(crate) fn is_saved(&self) -> bool {
        !(self.store_dirty && self.tokens().is_some())
    }
}
