//! What `tokenctl status` shows of a session.

use std::time::Duration;

use super::{Grant, Session};
use crate::broker::clock::unix_secs;
use crate::protocol::ProviderStatus;

impl Session {
    /// The session as `tokenctl status` shows it.
    pub(crate) fn status(&self) -> ProviderStatus {
        let state = self.state();
        let now = self.now();
        let pending = state.login.as_ref().and_then(|l| l.prompt_for_status(now));
        let (name, expires_at, scopes) = match &state.grant {
            Grant::LoggedOut => ("logged_out", None, self.config.scopes.clone()),
            Grant::NeedsLogin { .. } => ("login_required", None, self.config.scopes.clone()),
            Grant::Active(tokens) => {
                let valid = tokens
                    .access
                    .as_ref()
                    .is_some_and(|a| a.valid_for(now, Duration::ZERO));
                let state_name = if valid || (tokens.refresh.is_some() && state.failures == 0) {
                    "active"
                } else {
                    "expired"
                };
                let scopes = tokens.scope.as_deref().map_or_else(
                    || self.config.scopes.clone(),
                    |s| s.split_whitespace().map(str::to_owned).collect(),
                );
                (
                    state_name,
                    tokens.access.as_ref().and_then(|a| a.expires_at),
                    scopes,
                )
            }
        };
        ProviderStatus {
            name: self.name.clone(),
            dialect: self.config.dialect.name().to_owned(),
            state: if pending.is_some() {
                "login_pending"
            } else {
                name
            }
            .to_owned(),
            expires_at: expires_at.map(unix_secs),
            last_refresh: state.last_refresh.map(unix_secs),
            next_refresh: state.next_refresh.map(unix_secs),
            last_error: state.last_failure.as_ref().map(ToString::to_string),
            scopes,
            login: pending,
        }
    }
}
