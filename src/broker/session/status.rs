//! What `tokenctl status` shows of a session.

use crate::broker::clock::unix_secs;
use crate::protocol::ProviderStatus;

use super::Session;

impl Session {
    /// The session as `tokenctl status` shows it.
    pub(crate) fn status(&self) -> ProviderStatus {
        let state = self.state();
        let machine = &state.machine;
        let now = self.shared.clock.now();
        let pending = state.login.as_ref().and_then(|l| l.prompt_for_status(now));
        let (expires_at, scopes, login_needed_by) = match machine.tokens() {
            None => (None, self.config.scopes.clone(), None),
            Some(tokens) => {
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
            machine.state_name(now)
        };
        ProviderStatus {
            name: self.name.clone(),
            dialect: self.config.dialect.name.to_owned(),
            state: name.to_owned(),
            expires_at: expires_at.map(unix_secs),
            last_refresh: machine.last_refresh().map(unix_secs),
            next_refresh: machine.next_refresh().map(unix_secs),
            last_error: machine.last_failure().map(ToString::to_string),
            scopes,
            login: pending,
            saved: machine.is_saved(),
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
        let now = self.shared.clock.now();
        if state
            .login
            .as_ref()
            .is_some_and(|l| l.prompt_for_status(now).is_some())
        {
            return "login_pending";
        }
        state.machine.state_name(now)
    }
}
