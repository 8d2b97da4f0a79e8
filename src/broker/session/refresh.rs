//! Refreshing: starting one (single flight), running it, applying its result.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::store::unix_micros_now;
use super::{Grant, RefreshResult, Session, State, Tokens};
use crate::broker::clock::unix_secs;
use crate::broker::error::BrokerError;
use crate::broker::{AttentionKind, BrokerEvent, timing};
use crate::provider::{FailureClass, ProviderError, TokenGrant};
use crate::secret::Secret;

impl Session {
    // ----- refresh -----------------------------------------------------

    /// Starts a refresh task; the caller holds the state lock and has
    /// checked that none is in flight and that there is a refresh token.
    pub(super) fn start_refresh(
        self: &Arc<Self>,
        state: &mut State,
    ) -> watch::Receiver<RefreshResult> {
        let (tx, rx) = watch::channel(None);
        state.refresh = Some(rx.clone());
        state.last_attempt = Some(self.now());
        let refresh_token = match &state.grant {
            Grant::Active(tokens) => tokens.refresh.clone(),
            _ => None,
        };
        let generation = state.generation;
        let session = Arc::clone(self);
        self.shared.tasks.spawn(async move {
            let result = match refresh_token {
                Some(token) => session.run_refresh(&token, generation).await,
                None => Err(BrokerError::LoginRequired {
                    provider: session.name.clone(),
                    reason: None,
                }),
            };
            let _ = tx.send(Some(result));
        });
        rx
    }

    /// Starts a background refresh if one is due and none is in flight.
    pub(crate) fn refresh_if_due(self: &Arc<Self>) {
        let mut state = self.state();
        let now = self.now();
        if state.pending_restore.is_some() {
            // Waiting for the store, which restores it when it works again:
            // nothing is due until then.
            return;
        }
        if state.store_dirty && self.shared.store_health.is_available() {
            // During an outage the store's recovery saves it instead.
            self.spawn_store_retry();
        }
        self.warn_if_refresh_token_expiring(&mut state, now);
        let due = state.next_refresh.is_some_and(|at| at <= now);
        let refreshable = matches!(&state.grant, Grant::Active(t) if t.refresh.is_some());
        if due && refreshable && state.refresh.is_none() {
            self.start_refresh(&mut state);
        } else if !due {
            // The wake-up was for the warning: the refresh keeps its time.
            self.schedule_wake(&state, now);
        }
    }

    /// When the refresh token itself expires within the warning time (a
    /// new login is needed by then, which no refresh avoids), says so once:
    /// a log line, and an event for hooks and the desktop.
    fn warn_if_refresh_token_expiring(&self, state: &mut State, now: SystemTime) {
        let Grant::Active(tokens) = &state.grant else {
            return;
        };
        let Some(expires_at) = tokens.refresh_expires_at else {
            return;
        };
        let warning = self.shared.refresh_token_warning;
        if warning.is_zero()
            || state.expiry_warned == Some(expires_at)
            || now + warning < expires_at
        {
            return;
        }
        state.expiry_warned = Some(expires_at);
        let at = unix_secs(expires_at);
        warn!(provider = %self.name, event = "refresh_token_expiring", expires_at = at,
            "the refresh token expires in {} h: log in again before then (tokenctl login {})",
            expires_at.duration_since(now).unwrap_or_default().as_secs() / 3600, self.name);
        self.shared.emit(BrokerEvent::Attention {
            provider: self.name.clone(),
            kind: AttentionKind::RefreshTokenExpiring,
            reason: format!(
                "the refresh token expires at {at} (Unix time); log in again before then"
            ),
        });
    }

    /// Asks the scheduler to wake the session at its next refresh, or
    /// earlier for the refresh-token warning when that is still to come.
    pub(super) fn schedule_wake(&self, state: &State, now: SystemTime) {
        let warn_at = match &state.grant {
            Grant::Active(tokens) => tokens
                .refresh_expires_at
                .filter(|at| {
                    state.expiry_warned != Some(*at) && !self.shared.refresh_token_warning.is_zero()
                })
                .map(|at| {
                    at.checked_sub(self.shared.refresh_token_warning)
                        .unwrap_or(now)
                        .max(now)
                }),
            _ => None,
        };
        let wake = match (state.next_refresh, warn_at) {
            (Some(refresh), Some(warn)) => Some(refresh.min(warn)),
            (refresh, warn) => refresh.or(warn),
        };
        self.shared.scheduler.schedule(&self.name, wake);
    }

    /// Moves a background refresh that waits out a backoff after a
    /// transient failure (no route, provider down), or one that came due,
    /// to `at`: the world changed (the network came back, the machine
    /// resumed), so the wait is likely over. Returns whether it moved.
    pub(crate) fn retry_at(&self, at: SystemTime) -> bool {
        let mut state = self.state();
        let now = self.now();
        let refreshable = matches!(&state.grant, Grant::Active(t) if t.refresh.is_some());
        let failing = matches!(
            state.last_failure,
            Some(BrokerError::ProviderUnavailable { .. })
        );
        let due = state.next_refresh.is_some_and(|next| next <= now);
        if !refreshable || state.refresh.is_some() || !(failing || due) {
            return false;
        }
        if state.next_refresh.is_some_and(|next| next <= at) {
            return false;
        }
        state.next_refresh = Some(at);
        self.shared.scheduler.schedule(&self.name, Some(at));
        true
    }

    pub(super) async fn run_refresh(
        self: &Arc<Self>,
        refresh_token: &Secret,
        generation: u64,
    ) -> Result<(), BrokerError> {
        let result = {
            // The permit bounds requests per token endpoint; it is released
            // as soon as the provider has answered.
            let _permit = self.refresh_limit.acquire().await;
            let sent_at = self.now();
            // From here until "refresh_saved" a crash may lose the session:
            // the provider may rotate the refresh token before we store the
            // new one. These debug lines let tests measure that window.
            debug!(provider = %self.name, event = "refresh_sent", at_unix_us = %unix_micros_now(), "refresh request sent");
            self.shared
                .metrics
                .refresh(&self.name, self.provider.refresh(refresh_token))
                .await
                .map(|grant| (grant, sent_at))
        };
        let answered = Instant::now();
        debug!(provider = %self.name, event = "refresh_answered", at_unix_us = %unix_micros_now(), ok = result.is_ok(), "refresh answer received");
        let _persist = self.persist.lock().await;
        if self.state().generation != generation {
            // Logged out or logged in anew while the request was out: the
            // answer belongs to a session that no longer exists.
            self.state().refresh = None;
            return Ok(());
        }
        match result {
            Ok((grant, sent_at)) => {
                self.apply_refresh(grant, sent_at, answered).await;
                Ok(())
            }
            Err(e) => Err(self.apply_refresh_failure(e).await),
        }
    }

    pub(super) async fn apply_refresh(
        &self,
        grant: TokenGrant,
        sent_at: SystemTime,
        answered: Instant,
    ) {
        let previous = match &self.state().grant {
            Grant::Active(tokens) => Some(tokens.clone()),
            _ => None,
        };
        let tokens = Tokens::from_grant(grant, sent_at, previous.as_ref());
        let rotated = previous.as_ref().and_then(|p| p.refresh.as_ref()) != tokens.refresh.as_ref();
        // The new refresh token is saved before anyone sees the new access
        // token: if the daemon dies after this, the store has the token the
        // provider now expects.
        let saved = self.save(&tokens).await;
        debug!(provider = %self.name, event = "refresh_saved", at_unix_us = %unix_micros_now(),
            answer_to_save_us = %answered.elapsed().as_micros(), ok = saved.is_ok(),
            "new refresh token stored");
        let now = self.now();
        let expires_at = tokens.access.as_ref().and_then(|a| a.expires_at);
        {
            let mut state = self.state();
            state.store_dirty = saved.is_err();
            state.last_failure = saved.err();
            state.grant = Grant::Active(tokens.clone());
            state.last_refresh = Some(now);
            state.failures = 0;
            state.refresh = None;
            self.schedule_next(&mut state, &tokens, now);
        }
        info!(provider = %self.name, event = "refreshed", rotated, expires_at = expires_at.map(unix_secs), "access token refreshed");
        self.shared.emit(BrokerEvent::TokenRefreshed {
            provider: self.name.clone(),
            expires_at: expires_at.map(unix_secs),
        });
        self.changed();
    }

    pub(super) async fn apply_refresh_failure(&self, failure: ProviderError) -> BrokerError {
        let now = self.now();
        let class = failure.class();
        let error = match class {
            FailureClass::GrantRevoked => {
                // The provider ended the session: the stored refresh token is
                // dead, remove it so a restart does not try it again.
                let deleted = self.delete_stored().await;
                let reason = failure.to_string();
                error!(provider = %self.name, event = "login_required", "session ended by the provider: {reason}; run `tokenctl login {}`", self.name);
                let mut state = self.state();
                state.grant = Grant::NeedsLogin {
                    reason: reason.clone(),
                };
                state.failures = 0;
                state.refresh = None;
                state.next_refresh = None;
                state.store_dirty = false;
                let err = BrokerError::LoginRequired {
                    provider: self.name.clone(),
                    reason: Some(reason.clone()),
                };
                state.last_failure = Some(deleted.err().unwrap_or_else(|| err.clone()));
                self.shared.scheduler.schedule(&self.name, None);
                drop(state);
                self.shared.emit(BrokerEvent::Attention {
                    provider: self.name.clone(),
                    kind: AttentionKind::LoginRequired,
                    reason,
                });
                err
            }
            FailureClass::Transient | FailureClass::Permanent => {
                let (err, base, cap) = if class == FailureClass::Transient {
                    (
                        BrokerError::ProviderUnavailable {
                            provider: self.name.clone(),
                            source: failure,
                        },
                        timing::TRANSIENT_BACKOFF_BASE,
                        timing::TRANSIENT_BACKOFF_CAP,
                    )
                } else {
                    (
                        BrokerError::ProviderRejected {
                            provider: self.name.clone(),
                            source: failure,
                        },
                        timing::PERMANENT_BACKOFF_BASE,
                        timing::PERMANENT_BACKOFF_CAP,
                    )
                };
                let mut state = self.state();
                state.failures = state.failures.saturating_add(1);
                let delay = timing::backoff(state.failures, base, cap, fastrand::f64());
                warn!(provider = %self.name, event = "refresh_failed", retry_in = delay.as_secs(), "refresh failed: {err}");
                state.last_failure = Some(err.clone());
                state.refresh = None;
                state.next_refresh = Some(now + delay);
                self.shared
                    .scheduler
                    .schedule(&self.name, state.next_refresh);
                drop(state);
                self.shared.emit(BrokerEvent::Attention {
                    provider: self.name.clone(),
                    kind: AttentionKind::RefreshFailed,
                    reason: err.to_string(),
                });
                err
            }
        };
        self.changed();
        error
    }

    pub(super) fn schedule_next(&self, state: &mut State, tokens: &Tokens, now: SystemTime) {
        let expires_at = tokens.access.as_ref().and_then(|a| a.expires_at);
        state.next_refresh = match (expires_at, &tokens.refresh) {
            // The lifetime is counted from now: for a fresh token that is
            // when it was issued, for a restored one what is left of it.
            (Some(expires_at), Some(_)) => Some(timing::refresh_due(
                now.min(expires_at),
                expires_at,
                fastrand::f64(),
            )),
            _ => None,
        };
        state.fresh_until = state.next_refresh;
        if state.store_dirty && self.shared.store_health.is_available() {
            // Retry the save soon rather than at the next refresh. (Not
            // during an outage: the store's recovery saves every session
            // that could not, with no timer per session.)
            let retry = now + timing::ON_DEMAND_RETRY_SPACING * 6;
            state.next_refresh = Some(state.next_refresh.map_or(retry, |at| at.min(retry)));
        }
        self.warn_if_refresh_token_expiring(state, now);
        self.schedule_wake(state, now);
    }
}
