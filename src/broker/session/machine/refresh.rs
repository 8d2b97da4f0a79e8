//! The machine's refresh rules: when one starts, a failure and its
//! backoff (what an answer does is in `answer`; when the next refresh
//! comes, in `schedule`).

use std::time::{Duration, SystemTime};

use super::{
    Context, Effect, Notice, RefreshStage, Reply, SessionMachine, SessionState, Tokens, WorldChange,
};
use crate::broker::error::BrokerError;
use crate::broker::events::{AttentionKind, BrokerEvent};
use crate::broker::timing;
use crate::provider::{FailureClass, ProviderError};

/// The least life an access token keeps while its refresh is put off for
/// a store that is down (see `hold_for_store`): about the refresh margin
/// of short-lived tokens, so callers are not handed a dying one.
const STORE_HOLD_FLOOR: Duration = Duration::from_secs(60);

impl SessionMachine {
    /// Starts the refresh; the caller checked that the session is active
    /// with a refresh token and none in flight.
    pub(super) fn start_refresh(&mut self, ctx: &Context, out: &mut Vec<Effect>) {
        let SessionState::Active { tokens, refresh } = &mut self.state else {
            return;
        };
        let Some(refresh_token) = tokens.refresh.clone() else {
            return;
        };
        *refresh = RefreshStage::Requested;
        self.last_attempt = Some(ctx.now);
        let access_token = tokens.access.as_ref().map(|a| a.secret.clone());
        out.push(Effect::StartRefresh {
            generation: self.generation,
            refresh_token,
            access_token,
        });
    }

    /// Whether the session is active with a refresh token.
    fn holds_refresh_token(&self) -> bool {
        matches!(&self.state, SessionState::Active { tokens, .. } if tokens.refresh.is_some())
    }

    /// Whether the session holds a refresh token, with no refresh in flight.
    fn can_start_refresh(&self) -> bool {
        !self.retired
            && matches!(
                &self.state,
                SessionState::Active { tokens, refresh: RefreshStage::Idle } if tokens.refresh.is_some()
            )
    }

    /// The scheduler's wake-up: a background refresh if one is due and
    /// none is in flight; the refresh-token warning if that is due.
    pub(super) fn refresh_due(&mut self, ctx: &Context, out: &mut Vec<Effect>) {
        if matches!(self.state, SessionState::WaitingForStore) {
            // The store's recovery restores it when the store works again:
            // nothing is due until then.
            return;
        }
        if self.save_retry_at.is_some_and(|at| at <= ctx.now) {
            self.save_retry_at = None;
            if self.store_dirty && ctx.store_available {
                // During an outage the store's recovery saves it instead.
                out.push(Effect::RetryStoreSave);
            }
        }
        self.warn_if_refresh_token_expiring(ctx.now, out);
        let due = self.next_refresh.is_some_and(|at| at <= ctx.now);
        if due && self.can_start_refresh() {
            if let Some((left, held_for)) = self.hold_for_store(ctx) {
                self.next_refresh = Some(ctx.now + held_for);
                out.push(Effect::Log(Notice::RefreshHeldForStore { left, held_for }));
                self.schedule_wake(ctx.now, out);
                return;
            }
            self.start_refresh(ctx, out);
        } else if !due {
            // The wake-up was for the warning, or for the access token's
            // expiry (no refresh comes first): its status is "expired" from
            // now, which front-ends learn only if told. The refresh keeps
            // its time. Not for a token restored expired whose first
            // refresh is still to come (this wake-up came first): that
            // refresh says it if it fails, and the status said "expired"
            // from the restore.
            let refresh_to_come = self.last_attempt.is_none()
                && self.last_failure.is_none()
                && self.holds_refresh_token();
            if !refresh_to_come && self.access_expired_unseen(ctx.now) {
                self.say_if_only_a_login_helps(out);
                self.say_expired_while_refreshes_fail(ctx.now, out);
                out.push(self.changed());
            }
            self.schedule_wake(ctx.now, out);
        }
    }

    /// Whether a background refresh that came due waits, while the store
    /// is down: the access token's life left, and how long to wait (half
    /// of it). A refresh would bring a new refresh token that cannot be
    /// saved: with a provider that rotates them, the stored one is then
    /// spent, and a stop or crash before the store is back loses the
    /// session. Put off while the token has [`STORE_HOLD_FLOOR`] of life
    /// left or more, a short outage (a keyring locked for a while) costs
    /// no rotation at all; past it the token is refreshed, saved or not, so
    /// that callers keep getting one.
    pub(super) fn hold_for_store(&self, ctx: &Context) -> Option<(Duration, Duration)> {
        if ctx.store_available {
            return None;
        }
        let SessionState::Active { tokens, .. } = &self.state else {
            return None;
        };
        let left = tokens
            .access
            .as_ref()
            .and_then(|a| a.expires_at)?
            .duration_since(ctx.now)
            .ok()?;
        (left >= STORE_HOLD_FLOOR * 2).then(|| (left, left / 2))
    }

    /// Moves a background refresh that waits out a backoff after a
    /// transient failure `change` may have ended, or one that came due, to
    /// `at`. Returns whether it moved.
    ///
    /// When its endpoint answers again (`EndpointAnswers`), any passing
    /// failure but a rate limit's, once until a refresh works: a session
    /// whose own refreshes keep failing while the others' work (one broken
    /// account) is not brought back by each of their successes.
    ///
    /// After a network change, only a failure to reach the provider (or a
    /// captive portal's answer): one whose provider answered that it is
    /// unavailable (HTTP 5xx, 429) keeps its backoff, as the network
    /// working says nothing of that, and a busy host announces links and
    /// routes all the time (every container's interface), which made such a
    /// backoff one request per announcement.
    pub(super) fn retry_at(
        &mut self,
        ctx: &Context,
        at: SystemTime,
        change: WorldChange,
        out: &mut Vec<Effect>,
    ) -> bool {
        let failing = match (&self.last_failure, change) {
            (Some(BrokerError::ProviderUnavailable { .. }), WorldChange::Resumed) => true,
            // Not a rate limit's (429): its retries come spread over a
            // tenth of the wait it asked after it, and the first answer
            // after the wait would bring them all at once, into the limit
            // again. (A wait asked that still lasts is kept below.)
            (
                Some(BrokerError::ProviderUnavailable { source, .. }),
                WorldChange::EndpointAnswers,
            ) => !source.is_too_many_requests() && self.endpoint_nudged.is_none(),
            (Some(BrokerError::ProviderUnavailable { source, .. }), WorldChange::Network) => {
                matches!(
                    source,
                    ProviderError::Unreachable { .. }
                        | ProviderError::Unanswered { .. }
                        | ProviderError::CutOff { .. }
                        | ProviderError::Malformed { .. }
                )
            }
            _ => false,
        };
        let due = self.next_refresh.is_some_and(|next| next <= ctx.now);
        if !self.can_start_refresh() || !(failing || due) {
            return false;
        }
        // Not within the wait the provider asked for: the retry planned
        // after it stands, spread as it is (moved to the wait's end, the
        // sessions one rate limit held back would all come back at once).
        if self.failures > 0
            && self
                .provider_asked_wait
                .is_some_and(|(since, wait)| timing::within(at, since, wait))
        {
            return false;
        }
        // One already coming before `at` keeps its time, unless it is
        // overdue: those are spread over the second too (at a resume every
        // session that came due while asleep is overdue, and would all
        // start at one instant), and counted.
        if !due && self.next_refresh.is_some_and(|next| next <= at) {
            return false;
        }
        self.next_refresh = Some(at);
        if change == WorldChange::EndpointAnswers {
            self.endpoint_nudged = Some(at);
        }
        out.push(Effect::Schedule(Some(at)));
        true
    }

    /// A refresh was not sent, its endpoint having asked for a wait
    /// (`failure`): it fails as a sent one told so would, but counts for
    /// no backoff (the provider refused nothing of this session's), and
    /// comes back once the wait is over, spread over a tenth of it.
    pub(super) fn refresh_held(
        &mut self,
        ctx: &Context,
        generation: u64,
        failure: ProviderError,
        out: &mut Vec<Effect>,
    ) {
        // Not sent: the refusal it was for counts anew.
        self.refusal_refresh_out = None;
        let SessionState::Active { refresh, .. } = &mut self.state else {
            out.push(Effect::Reply(Reply::Done(Ok(()))));
            return;
        };
        if generation != self.generation {
            out.push(Effect::Reply(Reply::Done(Ok(()))));
            return;
        }
        *refresh = RefreshStage::Idle;
        // Not sent behind refreshes the provider leaves unanswered: that
        // backs off as a failure does (it may last minutes), where a wait
        // the provider asked for is waited out as asked.
        let backs_off = matches!(failure, ProviderError::Stalled { .. });
        self.refresh_failed(ctx, failure, backs_off, out);
    }

    /// A refresh sent had no answer in time (`failure`), and its answer is
    /// listened for: the session says the failure (status, callers) while
    /// the refresh stays in flight, so that no other is sent with the same
    /// refresh token (see `session::refresh`). Its answer, or the end of
    /// the listening, comes as any answer does.
    pub(super) fn refresh_overdue(
        &mut self,
        generation: u64,
        failure: ProviderError,
        out: &mut Vec<Effect>,
    ) {
        if generation != self.generation
            || !matches!(
                self.state,
                SessionState::Active {
                    refresh: RefreshStage::Requested,
                    ..
                }
            )
        {
            return;
        }
        let error = BrokerError::ProviderUnavailable {
            provider: self.name.clone(),
            source: failure,
        };
        self.last_failure = Some(error.clone());
        out.push(Effect::Log(Notice::RefreshOverdue { error }));
        out.push(self.changed());
    }

    /// A refresh a reload's retirement stopped before it was sent: over,
    /// with no failure of its own (the successor, which takes over the
    /// tokens, refreshes); its waiters are told the session is gone, and
    /// ask the successor.
    pub(super) fn refresh_abandoned(&mut self, generation: u64, out: &mut Vec<Effect>) {
        self.refusal_refresh_out = None;
        // Its stamps go with it, or the successor, which inherits them,
        // took the refresh never sent for one just made: it refused the
        // caller's refresh ("ask for less", or the refused token back).
        self.last_attempt = None;
        self.last_on_demand_refresh = None;
        if let SessionState::Active { refresh, .. } = &mut self.state
            && generation == self.generation
        {
            *refresh = RefreshStage::Idle;
        }
        out.push(Effect::Reply(Reply::Done(Err(BrokerError::ShuttingDown))));
    }

    /// A transient failure or a permanent refusal: back off and retry.
    /// `sent`: the provider answered this refresh (else its endpoint's
    /// asked wait held it back: no backoff grows, the wait alone counts).
    pub(super) fn refresh_failed(
        &mut self,
        ctx: &Context,
        failure: ProviderError,
        sent: bool,
        out: &mut Vec<Effect>,
    ) {
        let asked_wait = failure.retry_after();
        let perhaps_revoked = failure.class() == FailureClass::PerhapsRevoked;
        let (err, base, cap) = if failure.class() == FailureClass::Transient {
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
        if sent {
            self.failures = self.failures.saturating_add(1);
        }
        // The provider's own word on when to come back (`Retry-After`)
        // outweighs the backoff when it asks for longer; spread over a
        // tenth of it, so that sessions one rate limit held back do not
        // come back at one instant, to be limited again.
        let asked_spread = asked_wait.map(|wait| wait + wait.mul_f64(ctx.jitter / 10.0));
        let backoff = || timing::backoff(self.failures.max(1), base, cap, ctx.jitter);
        let delay = match asked_spread {
            Some(asked) if !sent => asked,
            Some(asked) => backoff().max(asked),
            None => backoff(),
        };
        let delay = if perhaps_revoked {
            self.retry_while_access_works(ctx.now, delay)
        } else {
            delay
        };
        self.provider_asked_wait = asked_wait.map(|wait| (ctx.now, wait));
        // Read before it is replaced: a failure like the one before it
        // (below) is no news, one of another kind is (the network back,
        // and now a refusal that needs the config mended), and so is one
        // asking for a wait where none was (a 500, then a 429 asking for
        // 15 minutes).
        let as_before = self
            .last_failure
            .as_ref()
            .is_some_and(|before| same_failure(before, &err));
        self.last_failure = Some(err.clone());
        // A refresh a request asked for (an expired token: every 5 s for a
        // client asking in a loop) that fails as the one before it did is
        // news to no one: during a day offline it made a warning and an
        // `on_event` run every 5 s. The background's retries, which back
        // off, the first failure of a run and a failure of another kind
        // still say it.
        let on_demand =
            self.last_attempt.is_some() && self.last_attempt == self.last_on_demand_refresh;
        // Nor does it put off the background's retry planned before it,
        // unless the provider asked for a wait: pushed back by each
        // request's failure, that retry (the one whose failures are said)
        // never came while a client asked in a loop, and the log stayed
        // silent for as long as the outage lasted.
        let delay = match self.next_refresh {
            Some(planned) if on_demand && asked_wait.is_none() && planned > ctx.now => {
                delay.min(planned.duration_since(ctx.now).unwrap_or_default())
            }
            _ => delay,
        };
        self.next_refresh = Some(ctx.now + delay);
        // A refresh held back as the one before it was is no news either
        // (each session of a rate-limited endpoint comes back once a wait).
        // Nor is every background retry of a long outage that fails as the
        // one before it did: said at the 1st, 2nd, 4th, 8th... failure in
        // a row (a day's outage: 9 lines and `on_event` runs a session,
        // not 290; 45 sessions of one endpoint made 280 warnings in two
        // minutes); the line after it works again says how many failed.
        let thinned = sent
            && !on_demand
            && as_before
            && self.failures > 2
            && !self.failures.is_power_of_two();
        let repeated =
            (on_demand && self.failures > 1 && as_before) || (!sent && as_before) || thinned;
        // Requests' refreshes are spaced from the failure, not from the
        // send: against a provider slower than the spacing (or a reload's
        // new session, asked as the answer came) a request asked again at
        // once, a second refresh behind the first.
        self.last_attempt = Some(ctx.now);
        if on_demand {
            self.last_on_demand_refresh = Some(ctx.now);
        }
        out.push(Effect::Log(Notice::RefreshFailed {
            retry_in: delay,
            error: err.clone(),
            repeated,
            in_a_row: self.failures,
        }));
        // The access token expired while this refresh was out (or before
        // it: a token restored expired): said now, since no wake-up for
        // the expiry is left to say it.
        if self.access_expired_unseen(ctx.now) {
            self.say_expired_while_refreshes_fail(ctx.now, out);
        }
        // The first of the retry and the access token's expiry (a retry
        // spaced past it would leave the status "active" until then), and
        // a write's retry.
        self.schedule_wake(ctx.now, out);
        if !repeated {
            out.push(Effect::Emit(BrokerEvent::Attention {
                provider: self.name.clone(),
                kind: AttentionKind::RefreshFailed,
                reason: err.to_string(),
            }));
        }
        out.push(self.changed());
        out.push(Effect::Reply(Reply::Done(Err(err))));
    }

    /// The wait before retrying a refusal that ends the session only once
    /// the access token has expired ([`FailureClass::PerhapsRevoked`]:
    /// Trakt's bare 400, which it also answers in passing): `delay`, but
    /// no more than half of what is left of the access token's life (at
    /// least [`timing::MIN_REFRESH_SPACING`]), so that the retry comes
    /// while the token still works. A refusal's backoff (30 to 60 s at
    /// first) put a short-lived token's retry past its expiry, where the
    /// same answer ends the session; a 7-day token's retries are as
    /// before until its last hour.
    fn retry_while_access_works(&self, now: SystemTime, delay: Duration) -> Duration {
        let SessionState::Active { tokens, .. } = &self.state else {
            return delay;
        };
        let Some(left) = tokens
            .access
            .as_ref()
            .and_then(|a| a.expires_at)
            .and_then(|at| at.duration_since(now).ok())
        else {
            return delay;
        };
        delay.min((left / 2).max(timing::MIN_REFRESH_SPACING))
    }

    /// The error for a caller that wants `min_valid` of life when the
    /// freshest token (`tokens`' access token) has less: it names the
    /// lifetime the provider gave that token, or, for a token restored
    /// from the store (whose lifetime is not kept), what is left of it.
    pub(super) fn too_short(
        &self,
        now: SystemTime,
        tokens: &Tokens,
        min_valid: Duration,
    ) -> BrokerError {
        let left = tokens.access_left(now);
        // Rounded, not cut: a 300 s lifetime counted from the request is a
        // few milliseconds short of it by the time the answer is read.
        let lifetime = tokens.access_lifetime.unwrap_or(left);
        BrokerError::TokenTooShort {
            provider: self.name.clone(),
            lifetime_secs: (lifetime + Duration::from_millis(500)).as_secs(),
            left_secs: left.as_secs(),
            min_valid_secs: min_valid.as_secs(),
        }
    }
}

/// Whether `now` fails as `before` did: the same kind of error and, from
/// the provider, a wait asked for (`Retry-After`) in both or in neither.
/// Not the HTTP status: a gateway in an outage mixes 502, 503 and 504, and
/// each change would be a warning and an `on_event` run again.
fn same_failure(before: &BrokerError, now: &BrokerError) -> bool {
    let asked_wait = |error: &BrokerError| match error {
        BrokerError::ProviderUnavailable { source, .. }
        | BrokerError::ProviderRejected { source, .. } => source.retry_after().is_some(),
        _ => false,
    };
    before.kind() == now.kind() && asked_wait(before) == asked_wait(now)
}
