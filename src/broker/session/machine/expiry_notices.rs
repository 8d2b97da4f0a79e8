//! What a session says about its tokens' expiry: the refresh token's
//! coming end (which no refresh avoids), and an access token expiring
//! when no refresh brought another (no refresh token, or refreshes that
//! fail).

use std::time::SystemTime;

use super::{Effect, Notice, SessionMachine, SessionState};
use crate::broker::clock::unix_secs;
use crate::broker::error::BrokerError;
use crate::broker::events::{AttentionKind, BrokerEvent};
use crate::broker::timing;

impl SessionMachine {
    /// When the refresh token itself expires within the warning time and
    /// a refresh has shown that refreshing does not move that expiry (a
    /// new login is needed by then, which no refresh avoids), says so once.
    ///
    /// Not before such a refresh: a provider that slides the expiry at
    /// each refresh (GitHub's new refresh token of six months, a Keycloak
    /// realm's idle timeout of 30 minutes) needs no login as long as
    /// tokend refreshes, and a warning keyed on the expiry alone came at
    /// every refresh there, a false alarm with its hook run and desktop
    /// notification every few minutes. An absolute end (a session maximum,
    /// a token that is not replaced) shows at the first refresh, which
    /// comes before the refresh token's expiry (see `schedule_next`).
    pub(super) fn warn_if_refresh_token_expiring(
        &mut self,
        now: SystemTime,
        out: &mut Vec<Effect>,
    ) {
        let Some(expires_at) = self.refresh_expiry_to_warn_of() else {
            return;
        };
        if now + self.refresh_token_warning < expires_at {
            return;
        }
        self.expiry_warned = Some(expires_at);
        let at = unix_secs(expires_at);
        out.push(Effect::Log(Notice::RefreshTokenExpiring {
            expires_at: at,
            secs_left: expires_at.duration_since(now).unwrap_or_default().as_secs(),
        }));
        out.push(Effect::Emit(BrokerEvent::Attention {
            provider: self.name.clone(),
            kind: AttentionKind::RefreshTokenExpiring,
            reason: format!(
                "the refresh token expires at {at} (Unix time); log in again before then"
            ),
        }));
    }

    /// The refresh token's expiry that is to be warned about (when within
    /// the warning time): the active session's, once a refresh has shown
    /// that refreshing does not move it, and not warned about yet. One
    /// rule for the warning and for the wake-up that brings it: a wake-up
    /// planned for a warning that does not come would come again at once,
    /// for ever.
    pub(super) fn refresh_expiry_to_warn_of(&self) -> Option<SystemTime> {
        let SessionState::Active { tokens, .. } = &self.state else {
            return None;
        };
        let expires_at = tokens.refresh_expires_at?;
        let warned = self
            .expiry_warned
            .is_some_and(|warned| timing::about_the_same(warned, expires_at));
        (!self.refresh_token_warning.is_zero() && !self.refresh_extends_refresh_token && !warned)
            .then_some(expires_at)
    }

    /// At the expiry of an access token the provider gave no refresh token
    /// with: a login is needed now, said as a refused refresh says it (the
    /// log, `on_event`, the desktop notification).
    pub(super) fn say_if_only_a_login_helps(&mut self, out: &mut Vec<Effect>) {
        let SessionState::Active { tokens, .. } = &self.state else {
            return;
        };
        if tokens.refresh.is_some() {
            return;
        }
        let reason = super::token_request::no_refresh_token_reason("the access token expired");
        // Shown as the session's last error, as a refused refresh's is.
        self.last_failure = Some(BrokerError::login_required(
            &self.name,
            Some(reason.clone()),
        ));
        out.push(Effect::Log(Notice::AccessExpiredNoRefresh {
            reason: reason.clone(),
        }));
        out.push(Effect::Emit(BrokerEvent::Attention {
            provider: self.name.clone(),
            kind: AttentionKind::LoginRequired,
            reason,
        }));
    }

    /// At the expiry of an access token whose refreshes have not brought
    /// another (failing, or held while the store is down): from now on
    /// callers are refused, which is when an operator's clients stop
    /// working, and the log said nothing at that moment.
    pub(super) fn say_expired_while_refreshes_fail(&self, now: SystemTime, out: &mut Vec<Effect>) {
        let SessionState::Active { tokens, .. } = &self.state else {
            return;
        };
        if tokens.refresh.is_none() {
            return;
        }
        out.push(Effect::Log(Notice::AccessExpired {
            last_error: self.last_failure.as_ref().map(ToString::to_string),
            next_try_in: self
                .next_refresh
                .map(|at| at.duration_since(now).unwrap_or_default()),
        }));
    }

    /// Whether the active session's access token has expired since the
    /// session last said so (once per token).
    pub(super) fn access_expired_unseen(&mut self, now: SystemTime) -> bool {
        let SessionState::Active { tokens, .. } = &self.state else {
            return false;
        };
        let Some(expires_at) = tokens.access.as_ref().and_then(|a| a.expires_at) else {
            return false;
        };
        if expires_at > now || self.expiry_told == Some(expires_at) {
            return false;
        }
        self.expiry_told = Some(expires_at);
        true
    }
}
