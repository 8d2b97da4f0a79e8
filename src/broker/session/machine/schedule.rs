//! The machine's schedule: when the next refresh of new tokens comes, how
//! far apart refreshes stay, and when the session wakes next.

use std::time::SystemTime;

use super::{Context, Effect, Notice, SessionMachine, SessionState, Tokens};
use crate::broker::timing;

impl SessionMachine {
    /// Plans the refresh of `tokens`, newly installed at `ctx.now`.
    /// `not_before`: the earliest it may come (see
    /// [`Self::space_from_last_refresh`]).
    pub(super) fn schedule_next(
        &mut self,
        ctx: &Context,
        tokens: &Tokens,
        not_before: Option<SystemTime>,
        out: &mut Vec<Effect>,
    ) {
        let now = ctx.now;
        let expires_at = tokens.access.as_ref().and_then(|a| a.expires_at);
        self.next_refresh = match (expires_at, &tokens.refresh) {
            // The lifetime is counted from now: for a fresh token that is
            // when it was issued, for a restored one what is left of it.
            (Some(expires_at), Some(_)) => Some(timing::refresh_due(
                now.min(expires_at),
                expires_at,
                ctx.jitter,
            )),
            _ => None,
        };
        // A refresh token that expires before that refresh: refreshing
        // ahead of its expiry brings a new one from a provider that rotates
        // them or slides their expiry (a Keycloak session's idle timeout
        // shorter than the access token's life). Not once it has expired,
        // nor after a refresh that did not move that expiry.
        let for_refresh_token = tokens
            .refresh_expires_at
            .filter(|at| {
                *at > now && tokens.refresh.is_some() && self.refresh_extends_refresh_token
            })
            .map(|at| timing::refresh_due(tokens.obtained_at.min(at), at, ctx.jitter).max(now));
        self.next_refresh = [self.next_refresh, for_refresh_token]
            .into_iter()
            .flatten()
            .min()
            .map(|due| not_before.map_or(due, |at| due.max(at)));
        self.fresh_until = self.next_refresh;
        self.plan_save_retry(ctx);
        self.warn_if_refresh_token_expiring(now, out);
        self.schedule_wake(now, out);
    }

    /// The earliest time for the refresh of `tokens`, just brought by a
    /// refresh or a login, so that it does not follow back to back: not sooner than
    /// [`timing::MIN_REFRESH_SPACING`], and when their access token came
    /// spent (expired, or with less than half of its lifetime left: the
    /// answer took longer than the token lives, or the clock is off),
    /// later each time such tokens come in a row, with a warning, as after
    /// a failure. Otherwise a provider that issues tokens shorter-lived
    /// than the round trip would be asked again at once, forever.
    pub(super) fn space_from_last_refresh(
        &mut self,
        ctx: &Context,
        tokens: &Tokens,
        out: &mut Vec<Effect>,
    ) -> SystemTime {
        let expires_at = tokens.access.as_ref().and_then(|a| a.expires_at);
        let left = expires_at.map(|at| at.duration_since(ctx.now).unwrap_or_default());
        let spent = match (left, tokens.access_lifetime) {
            (Some(left), _) if left.is_zero() => true,
            (Some(left), Some(lifetime)) => left < lifetime / 2,
            _ => false,
        };
        let spacing = if spent {
            self.expired_grants = self.expired_grants.saturating_add(1);
            let delay = timing::backoff(
                self.expired_grants,
                timing::TRANSIENT_BACKOFF_BASE,
                timing::TRANSIENT_BACKOFF_CAP,
                ctx.jitter,
            )
            .max(timing::MIN_REFRESH_SPACING);
            out.push(Effect::Log(Notice::ArrivedSpent {
                left: left.unwrap_or_default(),
                lifetime: tokens.access_lifetime,
                retry_in: delay,
            }));
            delay
        } else {
            self.expired_grants = 0;
            timing::MIN_REFRESH_SPACING
        };
        ctx.now + spacing
    }

    /// Wakes the session at its next refresh, or earlier for the
    /// refresh-token warning when that is still to come.
    /// When the active session's access token expires, if that is still
    /// to come: then its status turns "expired", and the session wakes to
    /// say so (no refresh may come first: no refresh token, or retries
    /// spaced past the expiry during an outage).
    fn access_expiry_ahead(&self, now: SystemTime) -> Option<SystemTime> {
        let SessionState::Active { tokens, .. } = &self.state else {
            return None;
        };
        tokens
            .access
            .as_ref()
            .and_then(|a| a.expires_at)
            .filter(|at| *at > now)
    }

    /// Has the session woken at the first of: its next refresh, a write's
    /// retry, the refresh-token warning, its access token's expiry.
    pub(super) fn schedule_wake(&self, now: SystemTime, out: &mut Vec<Effect>) {
        let warn_at = self.refresh_expiry_to_warn_of().map(|at| {
            at.checked_sub(self.refresh_token_warning)
                .unwrap_or(now)
                .max(now)
        });
        let wake = [
            self.next_refresh,
            self.save_retry_at,
            warn_at,
            self.access_expiry_ahead(now),
        ]
        .into_iter()
        .flatten()
        .min();
        out.push(Effect::Schedule(wake));
    }
}
