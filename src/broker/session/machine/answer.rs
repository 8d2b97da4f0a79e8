//! What a refresh's answer does: new tokens stored before they are
//! installed (see the module doc of `machine`), a new refresh token kept
//! from an answer that is otherwise unusable, a revoked grant's record
//! deleted, and a failure handed to the backoff (`refresh`).

use std::time::SystemTime;

use super::{
    Context, Effect, Notice, RefreshStage, Reply, SessionMachine, SessionState, Tokens,
    WritePurpose,
};
use crate::broker::error::BrokerError;
use crate::broker::events::{AttentionKind, BrokerEvent};
use crate::provider::{FailureClass, ProviderError, TokenGrant};

impl SessionMachine {
    /// The provider answered a refresh.
    pub(super) fn refresh_answered(
        &mut self,
        ctx: &Context,
        generation: u64,
        sent_at: SystemTime,
        answer: Result<TokenGrant, ProviderError>,
        out: &mut Vec<Effect>,
    ) {
        if answer.is_err() || generation != self.generation {
            // The next refusal of the token it was to replace counts anew.
            self.refusal_refresh_out = None;
        }
        if generation != self.generation {
            // Logged out or logged in anew while the request was out: the
            // answer belongs to a session that no longer exists.
            out.push(Effect::Reply(Reply::Done(Ok(()))));
            return;
        }
        let SessionState::Active { tokens, refresh } = &mut self.state else {
            out.push(Effect::Reply(Reply::Done(Ok(()))));
            return;
        };
        match answer {
            Ok(grant) => {
                let new = Tokens::from_grant(grant, sent_at, Some(tokens));
                let rotated = tokens.refresh != new.refresh;
                *refresh = RefreshStage::Saving;
                // Written before it is installed: see the module doc.
                out.push(Effect::WriteRecord {
                    record: new.to_record(&self.identity),
                    purpose: WritePurpose::Refreshed {
                        generation,
                        tokens: new,
                        rotated,
                        steps_seen: self.clock_steps,
                    },
                });
            }
            // The provider issued a new refresh token beside an access
            // token that cannot be used: stored first, as a refresh's
            // tokens are (a rotating provider retired the one sent), then
            // the refresh fails and is retried with it.
            Err(failure) if failure.kept_refresh_token().is_some() => {
                let mut kept = tokens.clone();
                kept.refresh = failure.kept_refresh_token().cloned();
                kept.obtained_at = sent_at;
                *refresh = RefreshStage::Saving;
                out.push(Effect::WriteRecord {
                    record: kept.to_record(&self.identity),
                    purpose: WritePurpose::RefreshTokenKept {
                        generation,
                        tokens: kept,
                        failure: Box::new(failure),
                    },
                });
            }
            Err(failure)
                if failure.class() == FailureClass::GrantRevoked
                    || (failure.class() == FailureClass::PerhapsRevoked
                        && tokens
                            .access
                            .as_ref()
                            .is_none_or(|a| a.expires_at.is_some_and(|at| at <= ctx.now))) =>
            {
                // The stored refresh token is dead: the record is replaced
                // by the ended session's (no token in it, only when and
                // why) so a restart does not try it again and still says
                // why a login is needed, then the session ends. A refusal
                // that only may mean so ends a session once its access
                // token has expired (it serves nothing more); until then
                // it is retried as a refusal, below.
                *refresh = RefreshStage::Saving;
                // A refusal right after a success answer that was cut off
                // (or could not be used) is most likely that answer's loss,
                // not the provider's doing: the rotated refresh token was
                // in it.
                let lost = match &self.last_failure {
                    Some(BrokerError::ProviderUnavailable { source, .. })
                        if source.is_lost_success() =>
                    {
                        Some("was answered with success but the answer was cut off")
                    }
                    Some(BrokerError::ProviderUnavailable { source, .. })
                        if source.is_unusable_success() =>
                    {
                        Some("was answered with success but the answer could not be used")
                    }
                    Some(BrokerError::ProviderUnavailable { source, .. })
                        if source.is_unanswered() =>
                    {
                        Some("was sent but got no answer in time")
                    }
                    _ => None,
                };
                let reason = if let Some(what) = lost {
                    format!(
                        "{failure}; the refresh before it {what}, and the new refresh token the provider may have put in it was lost with it"
                    )
                } else {
                    failure.to_string()
                };
                let at = crate::broker::clock::unix_secs(ctx.now);
                out.push(Effect::WriteRecord {
                    record: Some(crate::store::StoredSession::ended(
                        &self.identity,
                        at,
                        &reason,
                    )),
                    purpose: WritePurpose::Revoked {
                        generation,
                        reason,
                        at,
                    },
                });
            }
            Err(failure) => {
                *refresh = RefreshStage::Idle;
                self.refresh_failed(ctx, failure, true, out);
            }
        }
    }

    /// The new refresh token of an answer whose access token could not be
    /// used is written (`saved`: by the store) for `generation`: the
    /// session holds it from now on, beside the access token it had, and
    /// the refresh fails as `failure` (retried with the kept token, after
    /// the backoff).
    pub(super) fn refresh_token_kept(
        &mut self,
        ctx: &Context,
        generation: u64,
        tokens: Tokens,
        saved: bool,
        failure: ProviderError,
        out: &mut Vec<Effect>,
    ) {
        let SessionState::Active {
            tokens: held,
            refresh,
        } = &mut self.state
        else {
            out.push(Effect::Reply(Reply::Done(Ok(()))));
            return;
        };
        if generation != self.generation {
            out.push(Effect::Reply(Reply::Done(Ok(()))));
            return;
        }
        *held = tokens;
        *refresh = RefreshStage::Idle;
        self.store_dirty = !saved;
        if self.store_dirty {
            self.save_failures = self.save_failures.saturating_add(1);
            self.plan_save_retry(ctx);
        } else {
            self.save_failures = 0;
        }
        out.push(Effect::Log(Notice::RefreshTokenKept { saved }));
        self.refresh_failed(ctx, failure, true, out);
    }

    /// The record of a session revoked at `generation`, ended at `at`, is
    /// replaced by the ended session's (or not: `written`).
    pub(super) fn revoked(
        &mut self,
        ctx: &Context,
        generation: u64,
        reason: String,
        at: i64,
        written: Result<(), BrokerError>,
        out: &mut Vec<Effect>,
    ) {
        if generation != self.generation {
            out.push(Effect::Reply(Reply::Done(Ok(()))));
            return;
        }
        let err = BrokerError::login_required(&self.name, Some(reason.clone()));
        self.state = SessionState::NeedsLogin {
            reason: reason.clone(),
            ended_at: at,
        };
        self.failures = 0;
        self.next_refresh = None;
        // A dead record the store could not replace is replaced later.
        self.store_dirty = written.is_err();
        self.last_failure = Some(written.err().unwrap_or_else(|| err.clone()));
        out.push(Effect::Log(Notice::LoginRequired {
            reason: reason.clone(),
        }));
        if self.store_dirty {
            self.save_failed(ctx, out);
        } else {
            self.save_retry_at = None;
            out.push(Effect::Schedule(None));
        }
        out.push(Effect::Emit(BrokerEvent::Attention {
            provider: self.name.clone(),
            kind: AttentionKind::LoginRequired,
            reason,
        }));
        out.push(self.changed());
        out.push(Effect::Reply(Reply::Done(Err(err))));
    }
}
