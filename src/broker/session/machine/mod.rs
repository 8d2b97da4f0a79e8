//! One session as a pure state machine: events in, effects out.
//!
//! [`SessionMachine::handle`] takes an [`Event`] (a token request, a
//! refresh that came due, the provider's answer, a store write that
//! finished, ...) with the facts of the moment in a [`Context`] (the time,
//! a random draw for jitter, whether the store works) and returns the
//! [`Effect`]s to carry out: start a refresh, write the record, schedule a
//! wake-up, publish an event, log a line, answer the caller. It does no I/O
//! and knows no runtime, so every rule below is tested as a table of
//! states × events (see `tests/`); the driver (`session/mod.rs`,
//! `session/effects.rs`) carries the effects out and feeds their outcomes
//! back as events.
//!
//! The rules the machine keeps:
//!
//! - **Single flight.** An active session has at most one refresh in
//!   flight ([`RefreshStage`]); every token request that needs one while it
//!   runs joins it rather than starting another.
//! - **Generations.** Login and logout start a new generation; a provider
//!   answer or a store write that comes back for an older one changes
//!   nothing, so a logout is never undone by an answer already on its way.
//! - **Store first.** New tokens (a refresh or a login) are written to the
//!   store before they are installed: the access token is handed out, and
//!   the old refresh token forgotten, only once the write is over, so a
//!   crash leaves the old or the new refresh token in the store. A failed
//!   write still installs the tokens (the provider has already rotated the
//!   old refresh token) and marks the session "not saved" for a retry.
//! - **Backoff.** A transient failure (no route, HTTP 5xx) or a permanent
//!   refusal retries later, doubling up to a cap; a revoked grant ends the
//!   session ("login required") and deletes its record.
//!
//! A device login in progress is not a state of its own: it runs beside
//! any state (a session can log in again while active) and changes the
//! machine only when it brings tokens ([`Event::LoginGranted`]). Its code,
//! while it waits for the person, reaches the machine in the [`Context`],
//! for the "login required" answers.

mod answer;
mod clock_step;
mod expiry_notices;
mod handover;
mod messages;
mod refresh;
mod restore;
mod schedule;
mod status;
mod store_writes;
mod token_request;
mod tokens;

#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use crate::broker::error::BrokerError;
use crate::broker::events::BrokerEvent;
use crate::broker::timing;
use crate::store::StoreError;

pub(crate) use handover::Handover;
pub use messages::WorldChange;
pub(crate) use messages::{Context, Effect, Event, Notice, Reply, WritePurpose};
pub(crate) use restore::{LoadResult, RestoreCause};
pub(crate) use tokens::Tokens;
pub use tokens::{AccessToken, Freshness, TokenFingerprint};

/// Whether, and how, the session can produce tokens.
#[derive(Debug, Clone)]
pub(crate) enum SessionState {
    /// Never logged in, or logged out.
    LoggedOut,
    /// Logged out as far as anyone can tell, but the stored session could
    /// not be read yet (the store is unavailable): the store's recovery, or
    /// a token request, reads it when the store works again.
    WaitingForStore,
    /// Logged in.
    Active {
        /// The current tokens.
        tokens: Tokens,
        /// Where the session's one refresh is.
        refresh: RefreshStage,
    },
    /// The stored record could not be read for a reason of its own (see
    /// [`StoreError::is_store_wide`]: damaged, sealed with another key, a
    /// file tokend's user may not read, two keyring items matching it)
    /// while the store works. No session is usable, but one may well be
    /// stored: not "logged out", whose "log in" would replace it. A `token`
    /// request is told the record's trouble, and the record is read again
    /// (on demand, spaced from `read_at`; when the store announces a
    /// change; after an outage), so mending the cause brings the session
    /// back without a restart. A login or a logout replaces it.
    Unreadable {
        /// Why, as the store said.
        error: StoreError,
        /// When it was last read (or a read was claimed).
        read_at: SystemTime,
    },
    /// The provider ended the session; a new login is needed.
    NeedsLogin {
        /// What the provider said, for a person.
        reason: String,
        /// When (Unix seconds), for the ended session's record.
        ended_at: i64,
    },
}

/// Where an active session's refresh is: at most one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshStage {
    /// No refresh in flight.
    Idle,
    /// The request is with the provider.
    Requested,
    /// The provider answered; its outcome is being written to the store.
    Saving,
}

/// One session's state and the rules that change it.
#[derive(Debug)]
pub(crate) struct SessionMachine {
    /// Provider name, for errors and events.
    name: String,
    /// Which client and endpoint the tokens belong to (records of another
    /// identity are not restored).
    identity: String,
    /// The identity records of this session carried before the refresh
    /// endpoint counted, when they are still its own (see
    /// [`super::older_session_identity`]): restored, and saved again.
    older_identity: Option<String>,
    /// How long before the refresh token expires to warn (zero: never).
    refresh_token_warning: Duration,
    state: SessionState,
    /// Bumped by login and logout; see the module doc.
    generation: u64,
    last_refresh: Option<SystemTime>,
    last_attempt: Option<SystemTime>,
    /// The last failure, cleared by a success.
    last_failure: Option<BrokerError>,
    /// Consecutive failed refresh attempts, for backoff.
    failures: u32,
    /// When its endpoint answering again moved a retry to, if it did since
    /// the last refresh that worked (`WorldChange::EndpointAnswers`): once
    /// only, so that a session the provider keeps refusing (one broken
    /// account) is not brought back by every other session's success.
    endpoint_nudged: Option<SystemTime>,
    /// The wait the provider asked for with its last failure
    /// (`Retry-After`), from the moment it failed: while `failures` is
    /// not zero, no refresh (background, nudged or on demand) comes sooner.
    provider_asked_wait: Option<(SystemTime, Duration)>,
    /// When the next background refresh is due.
    next_refresh: Option<SystemTime>,
    /// When the current access token stops being fresh: the refresh due
    /// time planned for it, before a store retry or a nudge moved
    /// `next_refresh`. A default `token` request takes the token until then.
    fresh_until: Option<SystemTime>,
    /// The store does not hold the current refresh token (a save failed).
    store_dirty: bool,
    /// When to write again what a failed save could not, while the store
    /// as a whole works (one record's trouble). Apart from `next_refresh`:
    /// a retried save writes the tokens the session has, it does not ask
    /// the provider for new ones.
    save_retry_at: Option<SystemTime>,
    /// Saves failed in a row, for the save retry's backoff.
    save_failures: u32,
    /// Refreshes in a row whose access token was dead on arrival (the
    /// provider's lifetime shorter than the round trip, or a clock far
    /// off), for the backoff that keeps them from running back to back.
    expired_grants: u32,
    /// Whether the refresh is also planned before the refresh token's own
    /// expiry (when that comes first): true until a refresh shows that it
    /// does not move that expiry later, when only a new login helps.
    refresh_extends_refresh_token: bool,
    /// When the refresh-token expiry that verdict was last made against
    /// was read, and that expiry (see `judge_refresh_token_expiry`).
    expiry_reference: Option<(SystemTime, SystemTime)>,
    /// When a `token` request last started a refresh: those are spaced, so
    /// a caller asking for more life than tokens have, in a loop, does not
    /// cost a refresh per call.
    last_on_demand_refresh: Option<SystemTime>,
    /// The token a refresh brought in place of a refused one, when it was
    /// installed, and how many such refreshes in a row led to it: that
    /// token refused too, soon (see [`timing::REFUSED_AGAIN_WINDOW`]),
    /// is a server that refuses every token, which another
    /// refresh will not mend, so the next ones are spaced out (see
    /// [`timing::refused_again_spacing`]). One refused later had worked:
    /// its refusal counts anew (a token of unknown life that died).
    refused_replacement: Option<(TokenFingerprint, SystemTime, u32)>,
    /// How many times the wall clock was set while the session lived, and
    /// the last few of those steps, numbered: tokens made before a step
    /// and installed after it (their write waited: a slow keyring) move
    /// by it then (see `clock_step`).
    clock_steps: u64,
    recent_steps: std::collections::VecDeque<(u64, crate::broker::clock::ClockStep)>,
    /// The last such token whose refusal was said while its replacement
    /// waits (once per token, however many clients see it refused).
    refused_again_said: Option<TokenFingerprint>,
    /// The count a refresh out now for a refused token carries, given to
    /// the token it brings.
    refusal_refresh_out: Option<u32>,
    /// The refresh-token expiry already warned about (once per refresh
    /// token; a new one with another expiry is warned about again).
    expiry_warned: Option<SystemTime>,
    /// The access-token expiry whose "expired" status was last signalled.
    expiry_told: Option<SystemTime>,
    /// Replaced by a reload ([`Self::retire`]): it starts no refresh again.
    retired: bool,
}

impl SessionMachine {
    /// The session's generation: changed by a login and a logout (an answer
    /// of an older one changes nothing).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// A logged-out session of provider `name`.
    pub(crate) fn new(name: String, identity: String, refresh_token_warning: Duration) -> Self {
        Self {
            name,
            identity,
            older_identity: None,
            refresh_token_warning,
            state: SessionState::LoggedOut,
            generation: 0,
            last_refresh: None,
            last_attempt: None,
            last_failure: None,
            failures: 0,
            provider_asked_wait: None,
            endpoint_nudged: None,
            next_refresh: None,
            fresh_until: None,
            store_dirty: false,
            save_retry_at: None,
            save_failures: 0,
            expired_grants: 0,
            refresh_extends_refresh_token: true,
            expiry_reference: None,
            last_on_demand_refresh: None,
            refused_replacement: None,
            clock_steps: 0,
            recent_steps: std::collections::VecDeque::new(),
            refused_again_said: None,
            refusal_refresh_out: None,
            expiry_warned: None,
            expiry_told: None,
            retired: false,
        }
    }

    /// This machine, also restoring records of the `older` identity (the
    /// field `older_identity` says which).
    pub(crate) fn with_older_identity(mut self, older: Option<String>) -> Self {
        self.older_identity = older;
        self
    }

    /// Marks the session as replaced by a reload: from now on it starts no
    /// refresh, on demand or in the background. Its tokens are about to be
    /// handed to the provider's new session (or the provider is gone), and
    /// a refresh here would spend the refresh token the new session holds:
    /// with a provider that rotates them, the new session's next refresh
    /// would then present a used one and end the login. A refresh already
    /// in flight still lands (the reload waits for it).
    pub(crate) fn retire(&mut self) {
        self.retired = true;
    }

    /// Whether [`Self::retire`] was called.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired
    }

    /// Handles `event` at the moment `ctx` describes; returns what to do,
    /// in order.
    pub(crate) fn handle(&mut self, ctx: &Context, event: Event) -> Vec<Effect> {
        let mut effects = Vec::new();
        let out = &mut effects;
        match event {
            Event::TokenRequested { want } => self.token_requested(ctx, want, out),
            Event::RefreshAwaited { want, outcome } => {
                let reply = self.refresh_awaited(ctx, want, outcome);
                out.push(Effect::Reply(reply));
            }
            Event::RefreshDue => self.refresh_due(ctx, out),
            Event::RetryAt { at, change } => {
                let moved = self.retry_at(ctx, at, change, out);
                out.push(Effect::Reply(Reply::Changed(moved)));
            }
            Event::RefreshAnswered {
                generation,
                sent_at,
                answer,
            } => self.refresh_answered(ctx, generation, sent_at, answer, out),
            Event::RefreshHeld {
                generation,
                failure,
            } => self.refresh_held(ctx, generation, failure, out),
            Event::RefreshAbandoned { generation } => self.refresh_abandoned(generation, out),
            Event::RefreshOverdue {
                generation,
                failure,
            } => self.refresh_overdue(generation, failure, out),
            Event::ClockStepped(step) => self.clock_stepped(ctx, step, out),
            Event::LoginGranted { grant, sent_at } => {
                let tokens = Tokens::from_grant(grant, sent_at, None);
                out.push(Effect::WriteRecord {
                    record: tokens.to_record(&self.identity),
                    purpose: WritePurpose::LoggedIn {
                        tokens,
                        steps_seen: self.clock_steps,
                    },
                });
            }
            Event::LoginFailed(error) => {
                // A session with tokens keeps its own last error: a login
                // that failed changed nothing of it (the login's caller
                // and `LoginFinished` said why).
                if matches!(
                    self.state,
                    SessionState::LoggedOut | SessionState::NeedsLogin { .. }
                ) {
                    self.last_failure = Some(error);
                }
            }
            Event::LogoutRequested => self.logout(out),
            Event::RecordWritten { purpose, result } => {
                self.record_written(ctx, purpose, result, out);
            }
            Event::RecordLoaded { cause, loaded } => {
                let restored =
                    self.may_restore(cause) && self.apply_loaded(ctx, loaded, cause, out);
                out.push(Effect::Reply(Reply::Changed(restored)));
            }
            Event::StoreUnavailable => {
                // A logout whose delete failed is no session waiting to be
                // read back: its record is to be deleted, not restored.
                if matches!(self.state, SessionState::LoggedOut) && !self.store_dirty {
                    self.state = SessionState::WaitingForStore;
                }
            }
            Event::NoStoredRecord => {
                if matches!(self.state, SessionState::WaitingForStore) {
                    self.state = SessionState::LoggedOut;
                }
            }
            Event::RecordLost => self.record_lost(),
            Event::SaveIfDirty => self.save_if_dirty(out),
            Event::TakeOver(handover) => self.take_over(ctx, *handover, out),
        }
        effects
    }

    /// Whether a logout would have anything to forget: tokens (usable or
    /// not), a record not yet read back, or a record a failed delete left.
    pub(crate) fn holds_tokens(&self) -> bool {
        !matches!(self.state, SessionState::LoggedOut) || self.store_dirty
    }

    /// Whether the session's tokens are not in the store (a save failed).
    pub(crate) fn is_store_dirty(&self) -> bool {
        self.store_dirty
    }

    /// Whether the store still holds the record of a session logged out in
    /// memory only (the logout's delete failed).
    pub(crate) fn owes_a_logouts_delete(&self) -> bool {
        self.store_dirty && matches!(self.state, SessionState::LoggedOut)
    }

    /// Makes written (or, when the write failed, unsaved) tokens the
    /// session's and plans their refresh.
    fn install(
        &mut self,
        ctx: &Context,
        tokens: Tokens,
        saved: Result<(), BrokerError>,
        out: &mut Vec<Effect>,
    ) {
        self.store_dirty = saved.is_err();
        if self.store_dirty {
            self.save_failures = self.save_failures.saturating_add(1);
        } else {
            self.save_failures = 0;
        }
        self.last_failure = saved.err();
        let previous_refresh = self.last_refresh.replace(ctx.now);
        self.failures = 0;
        self.endpoint_nudged = None;
        let not_before = self.space_from_last_refresh(ctx, &tokens, out);
        let before = match &self.state {
            SessionState::Active { tokens, .. } => tokens.refresh_expires_at,
            _ => None,
        };
        self.judge_refresh_token_expiry(
            ctx.now,
            previous_refresh,
            before,
            tokens.refresh_expires_at,
        );
        let planned = tokens.clone();
        self.state = SessionState::Active {
            tokens,
            refresh: RefreshStage::Idle,
        };
        self.schedule_next(ctx, &planned, Some(not_before), out);
    }

    /// Whether refreshes move the refresh token's expiry, from a refresh
    /// at `now` that had it end at `before` and brought one ending at
    /// `after`. A refresh token whose expiry refreshes do not move is not
    /// refreshed again for it: the warning says a login is needed. Tokens
    /// that follow none (a login after a logout) start afresh.
    ///
    /// A sliding expiry moves by the time between two readings, a fixed
    /// one read twice by a second or so: readings closer together than
    /// twice that slack cannot tell them apart, so the verdict is made
    /// against the reading it was last made at, once enough time has
    /// passed since (before, a refresh on demand a second after the
    /// background one took a sliding expiry for a fixed one, and the
    /// refresh ahead of that expiry was dropped).
    fn judge_refresh_token_expiry(
        &mut self,
        now: SystemTime,
        previous_refresh: Option<SystemTime>,
        before: Option<SystemTime>,
        after: Option<SystemTime>,
    ) {
        let (Some(before), Some(after)) = (before, after) else {
            self.refresh_extends_refresh_token = true;
            self.expiry_reference = after.map(|after| (now, after));
            return;
        };
        let reference = self
            .expiry_reference
            .or_else(|| previous_refresh.map(|at| (at, before)));
        let read_at = reference.map(|(at, _)| at);
        if read_at.is_some_and(|at| timing::within(now, at, 2 * timing::EXPIRY_READING_SLACK)) {
            return;
        }
        let judged_against = reference.map_or(before, |(_, end)| end);
        let lifetime = after.duration_since(now).unwrap_or_default();
        self.refresh_extends_refresh_token = timing::expiry_moved(judged_against, after, lifetime);
        self.expiry_reference = Some((now, after));
    }

    fn emit_new_tokens(&self, expires_at: Option<i64>, out: &mut Vec<Effect>) {
        out.push(Effect::Emit(BrokerEvent::TokenRefreshed {
            provider: self.name.clone(),
            expires_at,
        }));
        out.push(self.changed());
    }

    /// The event that tells front-ends the status changed.
    fn changed(&self) -> Effect {
        Effect::Emit(BrokerEvent::StateChanged {
            provider: self.name.clone(),
        })
    }

    fn store_error(&self, source: StoreError) -> BrokerError {
        BrokerError::Store {
            provider: self.name.clone(),
            source,
        }
    }

    fn clear_store_failure(&mut self) {
        if matches!(self.last_failure, Some(BrokerError::Store { .. })) {
            self.last_failure = None;
        }
    }

    /// "Login required", with what to do: enter the pending login's code,
    /// or why the provider ended the session.
    fn login_required(&self, ctx: &Context) -> BrokerError {
        let reason = match &self.state {
            SessionState::NeedsLogin { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        BrokerError::LoginRequired {
            provider: self.name.clone(),
            reason,
            // Dropped for callers who may not log in (see `Broker::token`).
            pending_code: ctx.login_code.clone(),
            may_log_in: true,
        }
    }
}
