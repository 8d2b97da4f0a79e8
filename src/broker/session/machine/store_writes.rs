//! The machine's store writes: a logout's delete, the retry of a write
//! that failed (and when it comes), and what follows each write (a
//! refresh's tokens installed once their record is stored, a logout's
//! record deleted or owed).

use super::{
    BrokerError, Context, Effect, Notice, Reply, SessionMachine, SessionState, StoreError,
    WritePurpose,
};
use crate::broker::timing;
use crate::broker::{AttentionKind, BrokerEvent};

impl SessionMachine {
    /// Forgets the session in memory at once and deletes its record (the
    /// reply comes when the delete is done, or failed and owed).
    pub(super) fn logout(&mut self, out: &mut Vec<Effect>) {
        // Logging out a session that shows nothing to forget still deletes
        // any record (one a restore skipped has none of its own state), but
        // tells no front-end that anything changed.
        let showed_nothing = matches!(self.state, SessionState::LoggedOut)
            && self.last_failure.is_none()
            && self.last_refresh.is_none()
            && !self.store_dirty;
        self.generation += 1;
        self.refusal_refresh_out = None;
        self.refused_replacement = None;
        self.state = SessionState::LoggedOut;
        self.failures = 0;
        self.last_failure = None;
        // The last refresh was the ended session's, not the next one's.
        self.last_refresh = None;
        self.next_refresh = None;
        self.store_dirty = false;
        self.save_retry_at = None;
        self.save_failures = 0;
        out.push(Effect::Schedule(None));
        out.push(Effect::WriteRecord {
            record: None,
            purpose: WritePurpose::LoggedOut { showed_nothing },
        });
    }

    /// The store lost this session's record (see
    /// [`crate::store::Store::take_lost_records`]): tokens it holds are
    /// unsaved, and are written at the next [`Self::save_if_dirty`]
    /// (a stop's, the store's probe). Nothing else lost its record.
    pub(super) fn record_lost(&mut self) {
        if matches!(self.state, SessionState::Active { .. }) {
            self.store_dirty = true;
        }
    }

    /// Writes what the store should hold and does not, after a failed
    /// write: the session's tokens, the ended session's record after a
    /// revocation, or, after a logout whose delete failed, no record (a
    /// restart must not bring back a session that was logged out).
    pub(super) fn save_if_dirty(&self, out: &mut Vec<Effect>) {
        let record = match &self.state {
            _ if !self.store_dirty => return out.push(Effect::Reply(Reply::Changed(false))),
            SessionState::Active { tokens, .. } => tokens.to_record(&self.identity),
            SessionState::NeedsLogin { reason, ended_at } => Some(
                crate::store::StoredSession::ended(&self.identity, *ended_at, reason),
            ),
            SessionState::LoggedOut => None,
            SessionState::WaitingForStore | SessionState::Unreadable { .. } => {
                return out.push(Effect::Reply(Reply::Changed(false)));
            }
        };
        out.push(Effect::WriteRecord {
            record,
            purpose: WritePurpose::DirtyRetry {
                generation: self.generation,
            },
        });
    }

    /// Says a refresh's tokens are in place: the log line, and after
    /// failed refreshes the end of the `refresh_failed` hooks were told.
    fn say_refreshed(
        &self,
        rotated: bool,
        expires_at: Option<i64>,
        after_failures: u32,
        out: &mut Vec<Effect>,
    ) {
        out.push(Effect::Log(Notice::Refreshed {
            rotated,
            expires_at,
            after_failures,
        }));
        if after_failures > 0 {
            out.push(Effect::Emit(BrokerEvent::Attention {
                provider: self.name.clone(),
                kind: AttentionKind::RefreshRecovered,
                reason: format!(
                    "refreshed after {after_failures} failed refresh(es): the provider answers again"
                ),
            }));
        }
    }

    /// Carries on after a store write.
    pub(super) fn record_written(
        &mut self,
        ctx: &Context,
        purpose: WritePurpose,
        result: Result<(), StoreError>,
        out: &mut Vec<Effect>,
    ) {
        let result = result.map_err(|source| self.store_error(source));
        match purpose {
            WritePurpose::Refreshed {
                generation,
                mut tokens,
                rotated,
                steps_seen,
            } => {
                if generation != self.generation {
                    out.push(Effect::Reply(Reply::Done(Ok(()))));
                    return;
                }
                let moved = self.shift_by_steps_since(steps_seen, &mut tokens);
                let expires_at = tokens.expires_at_unix();
                if let (Some(in_a_row), Some(access)) =
                    (self.refusal_refresh_out.take(), tokens.access.as_ref())
                {
                    self.refused_replacement = Some((
                        super::TokenFingerprint::of(access.secret.expose()),
                        ctx.now,
                        in_a_row,
                    ));
                }
                let after_failures = self.failures;
                self.install(ctx, tokens, result, out);
                self.save_again_if(moved, ctx, out);
                self.say_refreshed(rotated, expires_at, after_failures, out);
                self.emit_new_tokens(expires_at, out);
                out.push(Effect::Reply(Reply::Done(Ok(()))));
            }
            WritePurpose::LoggedIn { tokens, steps_seen } => {
                self.logged_in_written(ctx, tokens, steps_seen, result, out);
            }
            WritePurpose::LoggedOut { showed_nothing } => {
                // Logged out in memory either way; a record the store could
                // not delete is deleted when it works again (see
                // `save_if_dirty`), and status says so meanwhile.
                if let Err(e) = &result {
                    self.store_dirty = true;
                    self.last_failure = Some(e.clone());
                    self.save_failed(ctx, out);
                }
                out.push(Effect::Log(Notice::LoggedOut));
                if !showed_nothing || result.is_err() {
                    out.push(self.changed());
                }
                let result = result.map_err(|e| match e {
                    BrokerError::Store { provider, source } => {
                        // Whether the logout is noted the driver asks the
                        // store, once the note is made.
                        BrokerError::RecordNotDeleted {
                            provider,
                            source,
                            remembered: true,
                        }
                    }
                    other => other,
                });
                out.push(Effect::Reply(Reply::Done(result)));
            }
            WritePurpose::Revoked {
                generation,
                reason,
                at,
            } => self.revoked(ctx, generation, reason, at, result, out),
            WritePurpose::RefreshTokenKept {
                generation,
                tokens,
                failure,
            } => self.refresh_token_kept(ctx, generation, tokens, result.is_ok(), *failure, out),
            WritePurpose::DirtyRetry { generation } => {
                if let Err(e) = result {
                    if generation == self.generation && self.store_dirty {
                        self.save_failed(ctx, out);
                        // Status says why the save fails now: an outage's
                        // "store unavailable" is stale once the store works
                        // and the record itself is in the way. Only a store
                        // error is replaced: a provider's or a revocation's
                        // says more.
                        if matches!(self.last_failure, Some(BrokerError::Store { .. }))
                            && self.last_failure.as_ref() != Some(&e)
                        {
                            self.last_failure = Some(e.clone());
                            out.push(self.changed());
                        }
                    }
                    out.push(Effect::Reply(Reply::Done(Err(e))));
                    return;
                }
                if generation == self.generation {
                    self.store_dirty = false;
                    self.save_failures = 0;
                    self.save_retry_at = None;
                    self.clear_store_failure();
                    if let SessionState::NeedsLogin { reason, .. } = &self.state {
                        // The revoked session's record is replaced at
                        // last: what is left to say is why it ended.
                        self.last_failure = Some(BrokerError::login_required(
                            &self.name,
                            Some(reason.clone()),
                        ));
                    }
                    out.push(self.changed());
                }
                out.push(Effect::Reply(Reply::Changed(true)));
            }
        }
    }

    /// Installs a login's tokens once their write is done (or failed: then
    /// unsaved), moved by the clock steps taken in since they were made.
    fn logged_in_written(
        &mut self,
        ctx: &Context,
        mut tokens: super::Tokens,
        steps_seen: u64,
        result: Result<(), BrokerError>,
        out: &mut Vec<Effect>,
    ) {
        self.generation += 1;
        let moved = self.shift_by_steps_since(steps_seen, &mut tokens);
        let expires_at = tokens.expires_at_unix();
        self.install(ctx, tokens, result, out);
        self.save_again_if(moved, ctx, out);
        out.push(Effect::Log(Notice::LoggedIn { expires_at }));
        self.emit_new_tokens(expires_at, out);
    }

    /// A write of the session's record (a save, or a delete after a
    /// logout or a revocation) failed again while the store works: plans
    /// its retry, later each time, and wakes for it.
    pub(super) fn save_failed(&mut self, ctx: &Context, out: &mut Vec<Effect>) {
        self.save_failures = self.save_failures.saturating_add(1);
        self.plan_save_retry(ctx);
        self.schedule_wake(ctx.now, out);
    }

    /// Plans the retry of a failed save, sooner than the next refresh
    /// (the newest refresh token is only in memory until then). Not
    /// during an outage: the store's recovery saves every session that
    /// could not, with no timer per session.
    pub(super) fn plan_save_retry(&mut self, ctx: &Context) {
        self.save_retry_at = (self.store_dirty && ctx.store_available).then(|| {
            ctx.now
                + timing::backoff(
                    self.save_failures.max(1),
                    timing::SAVE_RETRY_BASE,
                    timing::SAVE_RETRY_CAP,
                    ctx.jitter,
                )
        });
    }
}
