//! The machine's answer to a `token` request: a token now, a refresh to
//! wait for (started or joined), or why not.

use std::time::{Duration, SystemTime};

use super::{Context, Effect, Notice, RefreshStage, Reply, SessionMachine, SessionState};
use crate::broker::error::BrokerError;
use crate::broker::timing;

use super::{AccessToken, Freshness, TokenFingerprint, Tokens};

impl SessionMachine {
    /// Decides how a request for a token as fresh as `want` proceeds.
    pub(super) fn token_requested(
        &mut self,
        ctx: &Context,
        want: Freshness,
        out: &mut Vec<Effect>,
    ) {
        let reply = self.plan_token(ctx, want, out);
        out.push(Effect::Reply(reply));
    }

    fn plan_token(&mut self, ctx: &Context, want: Freshness, out: &mut Vec<Effect>) -> Reply {
        let now = ctx.now;
        let (tokens, stage) = match &self.state {
            SessionState::Active { tokens, refresh } => (tokens, *refresh),
            // The session may be in a store that cannot be read yet: say
            // that rather than "log in", which would start a new session.
            SessionState::WaitingForStore => return Reply::WaitingForStore,
            // A stored session that could not be read is said as such,
            // with its advice (written with another key, a file to give
            // back, a keyring item to delete, a damaged record to remove):
            // "log in" would have a script replace a session that works
            // again once that is done. A login under way is what to do.
            SessionState::Unreadable { error, .. } if ctx.login_code.is_none() => {
                return Reply::Failed(self.store_error(error.clone()));
            }
            SessionState::LoggedOut
            | SessionState::NeedsLogin { .. }
            | SessionState::Unreadable { .. } => {
                return Reply::Failed(self.login_required(ctx));
            }
        };
        let usable = tokens
            .access
            .as_ref()
            .filter(|t| t.valid_for(now, Duration::ZERO));
        let fresh_enough = |token: &&AccessToken| match want {
            Freshness::AtLeast(min_valid) => {
                token.valid_for(now, min_valid)
                    && !self.unknown_life_wants_refresh(ctx, token, tokens, min_valid)
            }
            // While the store is down, a background refresh that comes
            // due is held (`hold_for_store`); the token it would replace is
            // the one a default request gets too, or the request would
            // rotate the refresh token the hold keeps from being spent.
            Freshness::Default => {
                self.fresh_until.is_none_or(|until| now < until)
                    || self.hold_for_store(ctx).is_some()
            }
            Freshness::Replacing(refused) => TokenFingerprint::of(token.secret.expose()) != refused,
        };
        if let Some(token) = usable.filter(fresh_enough) {
            return Reply::Token(token.clone());
        }
        if let (Freshness::Default, Some(token)) = (want, usable)
            && self.default_request_keeps_its_token(now, stage)
        {
            return Reply::Token(token.clone());
        }
        // A default request takes a still-valid token whenever a refresh
        // cannot be had now, rather than an error.
        // So does a request for some life of a token whose life is unknown:
        // the refresh that would have made sure cannot be had, and the
        // token may well work.
        let fallback = |failure: BrokerError| match (want, usable) {
            (Freshness::Default | Freshness::Replacing(_), Some(token)) => {
                Reply::Token(token.clone())
            }
            (Freshness::AtLeast(_), Some(token)) if token.expires_at.is_none() => {
                Reply::Token(token.clone())
            }
            _ => Reply::Failed(failure),
        };
        if tokens.refresh.is_none() {
            return fallback(self.not_renewable(now, tokens, usable.is_some(), want));
        }
        if stage != RefreshStage::Idle {
            // Single flight: join the refresh that is already out.
            return Reply::JoinRefresh;
        }
        if self.retired {
            // Replaced by a reload: no refresh here (see `retire`). The
            // broker sees the session retired and asks its successor; the
            // error is what a caller holding this session alone would get.
            return Reply::Failed(BrokerError::ShuttingDown);
        }
        // After a failure, requests wait 5 s between refreshes, or as long
        // as the provider asked (`Retry-After`) when that is longer.
        let recently_failed = self.failures > 0
            && (self
                .last_attempt
                .is_some_and(|at| timing::within(now, at, timing::ON_DEMAND_RETRY_SPACING))
                || self
                    .provider_asked_wait
                    .is_some_and(|(since, wait)| timing::within(now, since, wait)));
        if let (true, Some(failure)) = (recently_failed, &self.last_failure) {
            return fallback(failure.clone());
        }
        // A token that still works but has less life than asked for: a
        // refresh may bring a longer-lived one, but not every call (the
        // provider's lifetimes rarely change between two requests). Nor
        // more than once a minute when the provider's tokens are known to
        // live less than asked: each such refresh rotates the refresh
        // token to bring what the last one said it would (a caller asking
        // every second for more than 30 s tokens live had 720 rotations an
        // hour).
        let min_valid = match want {
            Freshness::AtLeast(min_valid) => min_valid,
            Freshness::Default | Freshness::Replacing(_) => Duration::ZERO,
        };
        let (spacing, refused_in_a_row) = self.on_demand_spacing(now, want, tokens, min_valid);
        if usable.is_some()
            && let Some(last) = self
                .last_on_demand_refresh
                .filter(|at| timing::within(now, *at, spacing))
        {
            let reply = fallback(self.too_short(now, tokens, min_valid));
            let left = spacing.saturating_sub(now.duration_since(last).unwrap_or_default());
            self.say_refused_again_held(want, refused_in_a_row, left, out);
            return reply;
        }
        self.last_on_demand_refresh = Some(now);
        if let Freshness::Replacing(_) = want {
            self.replacing_refused(refused_in_a_row, out);
        }
        out.push(Effect::Log(Notice::RefreshOnDemand));
        self.start_refresh(ctx, out);
        Reply::JoinRefresh
    }

    /// How far apart refreshes a request for `want` starts come, and, for
    /// a refusal, how many tokens refusals' refreshes brought were refused
    /// in a row before it. A token a refusal's refresh brought, refused
    /// too, is replaced no sooner than a minute later, doubling (see
    /// `refused_replacement`); a token known to live less than
    /// `min_valid`, once a minute; any other, every 5 s.
    fn on_demand_spacing(
        &self,
        now: SystemTime,
        want: Freshness,
        tokens: &Tokens,
        min_valid: Duration,
    ) -> (Duration, u32) {
        let refused_in_a_row = match want {
            Freshness::Replacing(refused) => self
                .refused_replacement
                .filter(|(replacement, arrived, in_a_row)| {
                    *replacement == refused
                        && timing::within(
                            now,
                            *arrived,
                            timing::refused_again_spacing(*in_a_row) + timing::REFUSED_AGAIN_WINDOW,
                        )
                })
                .map_or(0, |(_, _, in_a_row)| in_a_row),
            Freshness::Default | Freshness::AtLeast(_) => 0,
        };
        let spacing = if refused_in_a_row > 0 {
            timing::refused_again_spacing(refused_in_a_row)
        } else if tokens.access_lifetime.is_some_and(|life| life < min_valid)
            || (matches!(want, Freshness::AtLeast(_))
                && self.failures == 0
                && self.fresh_until.is_some_and(|until| now < until))
        {
            // Also while the token is one tokend would not refresh yet: a
            // caller asking for nearly a whole lifetime (`--min-valid 3595`
            // of hour-long tokens) made a refresh, and a rotation, every
            // 5 s, which a provider limiting its clients' rate answered
            // with a 429 that held every session of that client, other
            // users' included. A caller that needs more than a token
            // has left gets its refresh; asking again within the minute,
            // it is told to ask for less. (After a failure, the retry's
            // own spacing holds.)
            timing::UNKNOWN_LIFE_REFRESH_SPACING
        } else {
            timing::ON_DEMAND_RETRY_SPACING
        };
        (spacing, refused_in_a_row)
    }

    /// A request `want` held back, `left` before the next refresh: when it
    /// refuses a token a refusal's refresh brought (`in_a_row` such in a
    /// row), that token is kept until then, which is said once per such
    /// token, when its refusal comes (it was said only at the replacement,
    /// a minute or an hour later, or never if none came).
    fn say_refused_again_held(
        &mut self,
        want: Freshness,
        in_a_row: u32,
        left: Duration,
        out: &mut Vec<Effect>,
    ) {
        let Freshness::Replacing(refused) = want else {
            return;
        };
        if in_a_row == 0 || self.refused_again_said == Some(refused) {
            return;
        }
        self.refused_again_said = Some(refused);
        out.push(Effect::Log(Notice::RefusedAgain {
            in_a_row,
            next_in: left,
            replacing_now: false,
        }));
    }

    /// A refresh starts for a refused token, `refused_in_a_row` tokens
    /// refusals' refreshes brought having been refused before it: the
    /// token it brings carries the count, and a repeat is warned of.
    fn replacing_refused(&mut self, refused_in_a_row: u32, out: &mut Vec<Effect>) {
        self.refusal_refresh_out = Some(refused_in_a_row + 1);
        if refused_in_a_row > 0 {
            out.push(Effect::Log(Notice::RefusedAgain {
                in_a_row: refused_in_a_row,
                next_in: timing::refused_again_spacing(refused_in_a_row + 1),
                replacing_now: true,
            }));
        }
    }

    /// Whether a default request, whose token is still valid but past the
    /// refresh margin, takes it as it is rather than wait for a refresh:
    /// while refreshes fail (the backoff's retries are the provider's
    /// share; a request every few seconds must not add its own, nor wait
    /// on a provider that is down), and when the refresh that is out has
    /// been out for [`timing::DEFAULT_REQUEST_REFRESH_WAIT`] already (a
    /// provider that hangs). Otherwise the request starts or joins the
    /// refresh, and waits for it that long at most (`Session::token`).
    fn default_request_keeps_its_token(&self, now: SystemTime, stage: RefreshStage) -> bool {
        let refresh_out_long = stage != RefreshStage::Idle
            && self
                .last_attempt
                .is_some_and(|at| !timing::within(now, at, timing::DEFAULT_REQUEST_REFRESH_WAIT));
        self.failures > 0 || refresh_out_long
    }

    /// Whether a request for `min_valid` of life of `token`, whose expiry
    /// the provider did not say (or said what cannot be believed), has it
    /// refreshed first: "refresh on demand", as RFC 6749 leaves a token
    /// without `expires_in`. Its life is unknown, so only a refresh can
    /// make sure of some; but at most one per
    /// [`timing::UNKNOWN_LIFE_REFRESH_SPACING`] from the last refresh or
    /// login (none known after a restart), the token just had being as
    /// fresh as can be had. Without this, a token that had died (one that
    /// came already expired by the provider's own clock is kept so, with
    /// its rotated refresh token) was handed out to every `--min-valid`
    /// caller until one refused it. A request for none of its life (the
    /// default's) takes it as it is, and so does any while the store is
    /// down: the refresh would bring a refresh token that cannot be saved
    /// (see `hold_for_store`), for a token that may well work.
    fn unknown_life_wants_refresh(
        &self,
        ctx: &Context,
        token: &AccessToken,
        tokens: &Tokens,
        min_valid: Duration,
    ) -> bool {
        let recent = |at: Option<SystemTime>| {
            at.is_some_and(|at| timing::within(ctx.now, at, timing::UNKNOWN_LIFE_REFRESH_SPACING))
        };
        token.expires_at.is_none()
            && !min_valid.is_zero()
            && ctx.store_available
            && tokens.refresh.is_some()
            && !recent(self.last_refresh)
            && !recent(self.last_on_demand_refresh)
    }

    /// Why a session without a refresh token cannot give the token asked
    /// for: its token expired, or it has less life left than asked (said as
    /// such: "expired" would send the person looking for a clock problem).
    /// A login helps only when a new token would live long enough.
    fn not_renewable(
        &self,
        now: SystemTime,
        tokens: &Tokens,
        still_valid: bool,
        want: Freshness,
    ) -> BrokerError {
        let min_valid = match want {
            Freshness::AtLeast(min_valid) if still_valid => min_valid,
            // A default request is handed a token that still works.
            _ => return self.no_refresh_token("the access token expired"),
        };
        if tokens.access_lifetime.is_some_and(|life| life < min_valid) {
            return self.too_short(now, tokens, min_valid);
        }
        self.no_refresh_token(&format!(
            "the access token has {} s left, less than the {} s asked for",
            tokens.access_left(now).as_secs(),
            min_valid.as_secs()
        ))
    }

    fn no_refresh_token(&self, why: &str) -> BrokerError {
        BrokerError::login_required(&self.name, Some(no_refresh_token_reason(why)))
    }

    /// The answer to a request that waited for a refresh: one refresh per
    /// request at most, so a token that is still too short-lived after it
    /// is an error rather than a second refresh.
    pub(super) fn refresh_awaited(
        &self,
        ctx: &Context,
        want: Freshness,
        refreshed: Result<(), BrokerError>,
    ) -> Reply {
        let now = ctx.now;
        // A reload retired the session while its refresh was out or
        // queued: the successor answers (the broker asks it on this
        // error), not the tokens this one had, which the caller may have
        // refused.
        if self.retired && refreshed.is_err() {
            return Reply::Failed(BrokerError::ShuttingDown);
        }
        let SessionState::Active { tokens, .. } = &self.state else {
            return Reply::Failed(refreshed.err().unwrap_or_else(|| self.login_required(ctx)));
        };
        let Some(token) = &tokens.access else {
            return Reply::Failed(refreshed.err().unwrap_or_else(|| self.login_required(ctx)));
        };
        match want {
            // The refresh failed, but the token still works: hand it out.
            Freshness::Default | Freshness::Replacing(_)
                if token.valid_for(now, Duration::ZERO) =>
            {
                Reply::Token(token.clone())
            }
            Freshness::Default | Freshness::Replacing(_) => Reply::Failed(
                refreshed
                    .err()
                    .unwrap_or_else(|| self.spent_on_arrival(now, tokens)),
            ),
            Freshness::AtLeast(min_valid) => match refreshed {
                // A token of unknown life, whose refresh on demand failed,
                // may well work: handed out as to a default request.
                Err(_) if token.expires_at.is_none() => Reply::Token(token.clone()),
                Err(e) => Reply::Failed(e),
                Ok(()) if token.valid_for(now, min_valid) => Reply::Token(token.clone()),
                Ok(()) => Reply::Failed(self.too_short(now, tokens, min_valid)),
            },
        }
    }
}

impl SessionMachine {
    /// Why a refresh that worked brought no token to hand out: its access
    /// token was spent by the time it was installed, most likely while its
    /// save waited for a store that did not answer (that store's error,
    /// which says so); otherwise as a token too short-lived. Not "login
    /// required": the session has a refresh token, and the next request
    /// refreshes again.
    fn spent_on_arrival(&self, now: SystemTime, tokens: &Tokens) -> BrokerError {
        match &self.last_failure {
            Some(error @ BrokerError::Store { .. }) => error.clone(),
            _ => self.too_short(now, tokens, Duration::ZERO),
        }
    }
}

/// Why only a login helps a session whose provider issued no refresh
/// token: `why`, said with that. One text for a token request's error and
/// for the session's own notice at its access token's expiry.
pub(super) fn no_refresh_token_reason(why: &str) -> String {
    format!("{why}, and the provider issued no refresh token to get another")
}
