//! What `tokenctl status` shows of a session.

use super::Session;
use crate::broker::report::{SessionPhase, SessionReport};

impl Session {
    /// The session as `tokenctl status` shows it to a caller who may
    /// (`may_log_in`) or may not manage the provider: the latter's last
    /// error holds no login code and no advice to log in that it cannot
    /// follow (the prompt itself is dropped by `broker::status`).
    pub(crate) fn report(&self, may_log_in: bool) -> SessionReport {
        let state = self.state();
        let machine = &state.machine;
        let now = self.shared.clock.now();
        let config = self.config();
        let since_boot = self.shared.clock.since_boot();
        let pending = state
            .login
            .as_ref()
            .and_then(|l| l.prompt_for_status(since_boot));
        let (expires_at, scopes, login_needed_by) = match machine.tokens() {
            None => (None, config.scopes.clone(), None),
            Some(tokens) => {
                let scopes = tokens.scope.as_deref().map_or_else(
                    || config.scopes.clone(),
                    // RFC 6749 separates scopes with spaces; GitHub with
                    // commas (`repo,read:org`).
                    |s| {
                        s.split(|c: char| c == ',' || c.is_whitespace())
                            .filter(|scope| !scope.is_empty())
                            .map(str::to_owned)
                            .collect()
                    },
                );
                (
                    tokens.access.as_ref().and_then(|a| a.expires_at),
                    scopes,
                    tokens.refresh_expires_at,
                )
            }
        };
        // A login still asking the provider for its code is pending too:
        // "logged out" told a person whose `tokenctl login` had just said
        // the login goes on in tokend that there was none.
        let asking = state
            .login
            .as_ref()
            .is_some_and(crate::broker::login::LoginHandle::is_asking_for_a_code);
        let installing = state
            .login
            .as_ref()
            .is_some_and(|l| l.installing_tokens().is_some());
        let phase = shown_phase(
            machine.phase(now),
            pending.is_some() || asking || installing,
        );
        SessionReport {
            name: self.name.clone(),
            dialect: config.dialect.name,
            phase,
            expires_at,
            last_refresh: machine.last_refresh(),
            // A refresh under way is due now: the planned time of the next
            // background one (an hour off, for a refresh a request asked
            // for) read as if none was out.
            next_refresh: if machine.refresh_under_way() {
                Some(now)
            } else {
                machine.next_refresh()
            },
            // A login's failing polls are the news for whoever follows it
            // (the person approving waits on them).
            last_error: match state
                .login
                .as_ref()
                .and_then(crate::broker::login::LoginHandle::poll_trouble)
            {
                _ if installing => Some(crate::broker::LOGIN_APPROVED_SAVING.to_owned()),
                Some(trouble) if may_log_in && pending.is_some() => Some(format!(
                    "polling for the login's approval fails (tokend keeps trying until the code expires): {trouble}"
                )),
                _ => machine.last_failure().map(|e| {
                    if may_log_in {
                        e.to_string()
                    } else {
                        e.clone().for_caller_without_login().to_string()
                    }
                }),
            },
            scopes,
            login: pending,
            saved: machine.is_saved(),
            hosts: config.hosts.clone(),
            username: config
                .username
                .clone()
                .unwrap_or_else(|| crate::config::DEFAULT_USERNAME.to_owned()),
            login_needed_by,
            git_auth: config.git_auth,
        }
    }

    /// The phase `tokenctl status` shows, without building the rest of the
    /// report: `summary()` asks every session for it.
    pub(crate) fn phase(&self) -> SessionPhase {
        let state = self.state();
        let now = self.shared.clock.now();
        let pending = state.login.as_ref().is_some_and(|l| {
            l.is_asking_for_a_code()
                || l.installing_tokens().is_some()
                || l.prompt_for_status(self.shared.clock.since_boot())
                    .is_some()
        });
        shown_phase(state.machine.phase(now), pending)
    }
}

/// The phase shown for a session in `phase` with a login that waits for
/// its person (`pending`) or none: `login_pending`, unless the session is
/// active. A login started again on an active session (new scopes, habit)
/// left its tokens serving, while status, `status --check`, the metrics
/// and D-Bus said `login_pending` for the code's whole life: a unit's
/// `ExecCondition=tokenctl status --check` was skipped and monitoring
/// alerted. The waiting login is shown beside the phase either way.
fn shown_phase(phase: SessionPhase, pending: bool) -> SessionPhase {
    match phase {
        SessionPhase::Active => SessionPhase::Active,
        _ if pending => SessionPhase::LoginPending,
        other => other,
    }
}
