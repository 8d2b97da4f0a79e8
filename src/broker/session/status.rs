//! What `tokenctl status` shows of a session.

use std::time::{Duration, SystemTime};

use super::{Session, SessionState, State};
use crate::broker::clock::unix_secs;
use crate::protocol::ProviderStatus;

impl Session {
    /// The session as `tokenctl status` shows it.
    pub(crate) fn status(&self) -> ProviderStatus {
        let state = self.state();
        let now = self.now();
        let pending = state.login.as_ref().and_then(|l| l.prompt_for_status(now));
        let (expires_at, scopes, login_needed_by) = match &state.phase {
            SessionState::LoggedOut | SessionState::NeedsLogin { .. } => {
                (None, self.config.scopes.clone(), None)
            }
            SessionState::Active(tokens) => {
                let scopes = tokens.scope.as_deref().map_or_else(
                    || self.config.scopes.clone(),
                    |s| s.split_whitespace().map(str::to_owned).collect(),
                );
                (
                    tokens.access.as_ref().and_then(|a| a.expires_at),
                    scopes,
                    tokens.refresh_expires_at.map(unix_secs),
                )
            }
        };
        let name = if pending.is_some() {
            "login_pending"
        } else {
            state_name(&state, now)
        };
        ProviderStatus {
            name: self.name.clone(),
            dialect: self.config.dialect.name().to_owned(),
            state: name.to_owned(),
            expires_at: expires_at.map(unix_secs),
            last_refresh: state.last_refresh.map(unix_secs),
            next_refresh: state.next_refresh.map(unix_secs),
            last_error: state.last_failure.as_ref().map(ToString::to_string),
            scopes,
            login: pending,
            saved: !(state.store_dirty && matches!(state.phase, SessionState::Active(_))),
            hosts: self.config.hosts.clone(),
            username: Some(
                self.config
                    .username
                    .clone()
                    .unwrap_or_else(|| crate::config::DEFAULT_USERNAME.to_owned()),
            ),
            login_needed_by,
        }
    }

    /// The state `tokenctl status` shows, without building the rest of the
    /// status: `summary()` asks every session for it.
    pub(crate) fn state_name(&self) -> &'static str {
        let state = self.state();
        let now = self.now();
        if state
            .login
            .as_ref()
            .is_some_and(|l| l.prompt_for_status(now).is_some())
        {
            return "login_pending";
        }
        state_name(&state, now)
    }
}

/// The state's name, but for a pending login (which the caller checks).
fn state_name(state: &State, now: SystemTime) -> &'static str {
    match &state.phase {
        SessionState::LoggedOut => "logged_out",
        SessionState::NeedsLogin { .. } => "login_required",
        SessionState::Active(tokens) => {
            let valid = tokens
                .access
                .as_ref()
                .is_some_and(|a| a.valid_for(now, Duration::ZERO));
            if valid || (tokens.refresh.is_some() && state.failures == 0) {
                "active"
            } else {
                "expired"
            }
        }
    }
}
