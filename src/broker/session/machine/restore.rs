//! The machine's restore rules: a stored record is installed only while
//! the session is still logged out and waiting for it, so a restore never
//! overwrites what a login, a logout or a refresh installed meanwhile.

use std::time::{Duration, SystemTime};

use super::{Context, Effect, Notice, RefreshStage, SessionMachine, SessionState, Tokens};
use crate::broker::error::BrokerError;
use crate::broker::events::{AttentionKind, BrokerEvent};
use crate::broker::timing;

/// What the store said of one session's record.
pub(crate) use crate::store::LoadResult;

/// Why a record is being read; decides what is logged and announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestoreCause {
    /// At start, or for a provider a reload added: the broker logs one line
    /// for all, and nobody has seen the session yet.
    Start,
    /// The store works again: one line for all, but front-ends hear of
    /// each session that changed.
    Recovery,
    /// A request for this session: a `token` request, or a `status`
    /// request that reads an unreadable record again.
    Request,
    /// The store announced a change while the record was unreadable (see
    /// [`SessionState::Unreadable`]).
    Change,
}

impl SessionMachine {
    /// Whether the session waits for the store to read its record.
    pub(crate) fn waits_for_store(&self) -> bool {
        matches!(self.state, SessionState::WaitingForStore)
    }

    /// Whether the record could not be read for a reason of its own (see
    /// [`SessionState::Unreadable`]).
    pub(crate) fn is_unreadable(&self) -> bool {
        matches!(self.state, SessionState::Unreadable { .. })
    }

    /// Claims a read again of an unreadable record at `now`, for a request:
    /// granted at most once per [`timing::ON_DEMAND_RETRY_SPACING`] from
    /// the last read (or claim), so that a script asking in a loop does
    /// not read it at every call.
    pub(crate) fn claim_reread(&mut self, now: SystemTime) -> bool {
        let SessionState::Unreadable { read_at, .. } = &mut self.state else {
            return false;
        };
        if timing::within(now, *read_at, timing::ON_DEMAND_RETRY_SPACING) {
            return false;
        }
        *read_at = now;
        true
    }

    /// Whether a record read now for `cause` may still be installed: not
    /// if restored meanwhile, or replaced by a login.
    pub(crate) fn may_restore(&self, cause: RestoreCause) -> bool {
        match self.state {
            SessionState::WaitingForStore | SessionState::Unreadable { .. } => true,
            SessionState::LoggedOut => cause == RestoreCause::Start,
            SessionState::Active { .. } | SessionState::NeedsLogin { .. } => false,
        }
    }

    /// Applies what the store said. Returns whether the session was restored.
    pub(super) fn apply_loaded(
        &mut self,
        ctx: &Context,
        loaded: LoadResult,
        cause: RestoreCause,
        out: &mut Vec<Effect>,
    ) -> bool {
        // Read again, and still unreadable for the same reason: nothing to
        // log or announce (requests read it again every few seconds).
        let unreadable_before = match std::mem::replace(&mut self.state, SessionState::LoggedOut) {
            SessionState::Unreadable { error, .. } => Some(error),
            _ => None,
        };
        self.clear_store_failure();
        let mut restored = false;
        let mut store_wide = false;
        let mut unchanged = false;
        match loaded {
            // A session the provider ended: a login is needed, and status
            // says why and when, as before the restart. One of another
            // client or endpoint is no session of this config's, and not
            // worth a word: it holds no token, and the config's change
            // would be announced at every start.
            Ok(Some(record)) if record.ended.is_some() => {
                let ours = record.identity == self.identity
                    || self.older_identity.as_ref() == Some(&record.identity);
                if let Some(end) = record.ended.as_deref().filter(|_| ours) {
                    self.restore_ended(end, cause, out);
                }
            }
            Ok(Some(record)) if record.identity == self.identity => {
                self.install_restored(ctx, Tokens::from_record(record), out);
                out.push(Effect::Log(Notice::Restored { cause }));
                restored = true;
            }
            Ok(Some(record)) if self.older_identity.as_ref() == Some(&record.identity) => {
                self.install_restored(ctx, Tokens::from_record(record), out);
                out.push(Effect::Log(Notice::Restored { cause }));
                restored = true;
                // Under today's identity, so that the record no longer
                // depends on the older one being accepted.
                self.store_dirty = true;
                if ctx.store_available {
                    out.push(Effect::RetryStoreSave);
                }
            }
            Ok(Some(_)) => {
                // Said in status too, not only in the log: a person who
                // changed the config sees why a login is needed.
                let reason =
                    "the stored session is of another client or endpoint: the config changed";
                self.last_failure =
                    Some(BrokerError::login_required(&self.name, Some(reason.into())));
                out.push(Effect::Log(Notice::RestoreSkipped));
                // And to whoever is told a login is needed (`on_event`, the
                // desktop notification): a reload that logged an active
                // session out, or a start after such a change, said it
                // only in the log, and the clients just stopped working.
                out.push(Effect::Emit(BrokerEvent::Attention {
                    provider: self.name.clone(),
                    kind: AttentionKind::LoginRequired,
                    reason: format!("{reason}: log in again"),
                }));
            }
            Ok(None) => {}
            Err(source) if source.is_store_wide() => {
                // The store's health says what is wrong, once for every
                // session; this one waits for its recovery.
                self.state = SessionState::WaitingForStore;
                out.push(Effect::StoreWideFailure(source));
                store_wide = true;
            }
            Err(source) => {
                // That record's trouble, not the store's: the session is
                // not logged out, and says so (see `SessionState::Unreadable`).
                unchanged = unreadable_before.as_ref() == Some(&source);
                if !unchanged {
                    out.push(Effect::Log(Notice::LoadFailed(source.clone())));
                }
                self.last_failure = Some(self.store_error(source.clone()));
                self.state = SessionState::Unreadable {
                    error: source,
                    read_at: ctx.now,
                };
            }
        }
        if !store_wide && !unchanged && cause != RestoreCause::Start {
            out.push(self.changed());
        }
        restored
    }

    /// Makes the session one the provider ended, as its record `end` says.
    fn restore_ended(
        &mut self,
        end: &crate::store::SessionEnd,
        cause: RestoreCause,
        out: &mut Vec<Effect>,
    ) {
        let reason = format!(
            "{} (the session ended at {})",
            end.reason,
            crate::provider::datetime::utc_text(end.at)
        );
        self.last_failure = Some(BrokerError::login_required(
            &self.name,
            Some(reason.clone()),
        ));
        self.state = SessionState::NeedsLogin {
            reason: reason.clone(),
            ended_at: end.at,
        };
        // Said when it ended (`on_event`, the notification): the log
        // says it again, nobody is told anew.
        out.push(Effect::Log(Notice::RestoredEnded { cause, reason }));
    }

    /// Makes restored tokens the session's, and plans their next refresh.
    fn install_restored(&mut self, ctx: &Context, tokens: Tokens, out: &mut Vec<Effect>) {
        let now = ctx.now;
        let has_access = tokens
            .access
            .as_ref()
            .is_some_and(|a| a.valid_for(now, Duration::ZERO));
        // Without a refresh token there is nothing to check early: the
        // session wakes at its access token's expiry, as before the restart.
        if has_access || tokens.refresh.is_none() {
            // Planned while the session still looks logged out, as it
            // always was: the refresh-token warning waits for the first
            // wake-up rather than joining the restore's log lines.
            self.schedule_next(ctx, &tokens, None, out);
        } else {
            // Check the refresh token soon (a revoked one turns into
            // "login required" now rather than at first use), spread so
            // that many sessions do not all start at once.
            self.next_refresh = Some(now + Duration::from_secs(5).mul_f64(ctx.jitter));
            out.push(Effect::Schedule(self.next_refresh));
        }
        let refreshable = tokens.refresh.is_some();
        self.state = SessionState::Active {
            tokens,
            refresh: RefreshStage::Idle,
        };
        if !refreshable {
            // Planned again now that it is active: its wake-up is the
            // access token's expiry, which only an active session has; one
            // that expired while tokend was down wakes soon to say so.
            self.schedule_wake(now, out);
            if !has_access {
                out.push(Effect::Schedule(Some(
                    now + Duration::from_secs(5).mul_f64(ctx.jitter),
                )));
            }
        }
    }

    /// When the next background refresh is due.
    pub(crate) fn next_refresh(&self) -> Option<SystemTime> {
        self.next_refresh
    }
}
