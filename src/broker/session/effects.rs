//! Carrying out the machine's effects, and feeding their outcomes back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::failure_lines::{self, whole_secs_up};
use super::machine::{Effect, Event, Freshness, Notice, Reply, RestoreCause, WritePurpose};
use super::store::{PreparingSave, unix_micros_now};
use super::{RefreshResult, Session};
use crate::broker::BrokerError;

impl Session {
    /// Hands `event` to the machine under the state lock, and carries out
    /// there the effects whose order with other events matters: scheduler
    /// wake-ups, and the start of a refresh (whose channel must be in place
    /// before any other caller can see that one is in flight). Returns the
    /// other effects.
    fn step(self: &Arc<Self>, event: Event) -> Vec<Effect> {
        self.step_and_join(event).0
    }

    /// [`Self::step`], with the refresh in flight once the event is handled
    /// (taken under the same lock, so a caller told to join a refresh joins
    /// that one).
    fn step_and_join(
        self: &Arc<Self>,
        event: Event,
    ) -> (Vec<Effect>, Option<watch::Receiver<RefreshResult>>) {
        let mut state = self.state();
        let ctx = self.context(&state);
        let mut rest = Vec::new();
        for effect in state.machine.handle(&ctx, event) {
            match effect {
                Effect::Schedule(at) => self.shared.scheduler.schedule(&self.name, at),
                Effect::StartRefresh {
                    generation,
                    refresh_token,
                    access_token,
                } => {
                    state.flight =
                        Some(self.spawn_refresh(refresh_token, access_token, generation));
                }
                other => rest.push(other),
            }
        }
        (rest, state.flight.clone())
    }

    /// Hands a token request to the machine: its answer, and the refresh
    /// to wait for when the answer is to join one.
    pub(super) fn request_token(
        self: &Arc<Self>,
        want: Freshness,
    ) -> (Option<Reply>, Option<watch::Receiver<RefreshResult>>) {
        let (effects, flight) = self.step_and_join(Event::TokenRequested { want });
        let mut reply = None;
        for effect in effects {
            reply = self.carry_out(effect).or(reply);
        }
        (reply, flight)
    }

    /// Hands `event` to the machine and carries out every effect, store
    /// writes included, whose outcomes go back to the machine in turn.
    /// A caller whose event may write holds the persist lock. Returns the
    /// machine's answer.
    pub(super) async fn dispatch(self: &Arc<Self>, event: Event) -> Option<Reply> {
        self.dispatch_timed(event, None, None).await
    }

    /// [`Self::dispatch`] for a provider's answer received at `answered`:
    /// the store write that follows uses `prepared` (see
    /// [`Self::prepare_save`]) and logs how long after the answer it was saved.
    pub(super) async fn dispatch_timed(
        self: &Arc<Self>,
        event: Event,
        answered: Option<Instant>,
        mut prepared: Option<PreparingSave>,
    ) -> Option<Reply> {
        let mut events = VecDeque::from([event]);
        let mut reply = None;
        while let Some(event) = events.pop_front() {
            for effect in self.step(event) {
                match effect {
                    Effect::WriteRecord { record, purpose } => {
                        let deleting = record.is_none();
                        // The ended session's record takes the dead refresh
                        // token (and an access token that may still work)
                        // out of the store: when it cannot be written, the
                        // old record is noted as a logout's would be, so
                        // that a restart before the store works deletes it
                        // rather than restore the ended session.
                        let revoking = matches!(purpose, WritePurpose::Revoked { .. });
                        let outage = self.store_known_down(&purpose);
                        let skipped = outage.is_some();
                        let result = match outage {
                            Some(outage) => Err(outage),
                            None => self.write_record(record, prepared.take()).await,
                        };
                        // A delete that failed is the journal's own to note
                        // (it notes before it deletes).
                        if (deleting && skipped) || (revoking && result.is_err()) {
                            self.note_skipped_delete().await;
                        }
                        self.log_write(&purpose, deleting, result.as_ref().err(), answered);
                        events.push_back(Event::RecordWritten { purpose, result });
                    }
                    other => reply = self.carry_out(other).or(reply),
                }
            }
        }
        if let Some(unused) = prepared {
            self.discard_prepared(unused);
        }
        // A logout whose record stays: whether the store noted it, now that
        // the note was made or failed (the machine cannot know).
        if let Some(Reply::Done(Err(BrokerError::RecordNotDeleted { remembered, .. }))) = &mut reply
        {
            *remembered = self.shared.store.remembers_logout(&self.name);
        }
        reply
    }

    /// The store's outage, when it is known to be down and `purpose` is
    /// not the store's recovery retrying a save: the write is not tried
    /// then. It would fail anyway, or, against a keyring that hangs, make
    /// its caller wait the store's call timeout for each token; the tokens
    /// stay in memory (the session is marked unsaved) and the recovery
    /// writes them when the store works again.
    ///
    /// Every write is tried all the same where the store says it is worth
    /// it ([`Store::tries_writes_while_down`](crate::store::Store::tries_writes_while_down):
    /// the encrypted file store, whose deletes work on a full disk, and
    /// whose saves write over a record's spare, needing no new blocks: a
    /// rotated refresh token not even tried was lost to a crash, while one
    /// record needing new space kept the store down).
    fn store_known_down(&self, purpose: &WritePurpose) -> Option<crate::store::StoreError> {
        if matches!(purpose, WritePurpose::DirtyRetry { .. })
            || self.shared.store.tries_writes_while_down()
        {
            return None;
        }
        self.shared.store_health.error()
    }

    /// Hands `event`, which writes nothing, to the machine and carries out
    /// its effects at once. Returns the machine's answer.
    pub(super) fn dispatch_now(self: &Arc<Self>, event: Event) -> Option<Reply> {
        let mut reply = None;
        for effect in self.step(event) {
            if let Effect::WriteRecord { .. } = effect {
                // Writes need the persist lock and an await: only the
                // events given to `dispatch` lead to them.
                error!(provider = %self.name, "a store write was asked outside the store's order; not made");
                debug_assert!(false, "store write from dispatch_now");
                continue;
            }
            reply = self.carry_out(effect).or(reply);
        }
        reply
    }

    /// Carries out an effect that needs no await; returns a reply.
    fn carry_out(self: &Arc<Self>, effect: Effect) -> Option<Reply> {
        match effect {
            Effect::Emit(event) => self.shared.emit(event),
            Effect::Log(notice) => self.log(notice),
            Effect::RetryStoreSave => self.spawn_store_retry(),
            // The store reported it already, unless the call timed out (the
            // store never answered): reporting twice changes nothing.
            Effect::StoreWideFailure(source) => {
                self.shared.store_health.failed(&source);
            }
            Effect::Reply(reply) => return Some(reply),
            Effect::Schedule(_) | Effect::StartRefresh { .. } | Effect::WriteRecord { .. } => {}
        }
        None
    }

    /// Logs a write's failure; `deleting` when it deleted the record (a
    /// logout's, a revocation's, or the retry of one).
    fn log_write(
        &self,
        purpose: &WritePurpose,
        deleting: bool,
        failure: Option<&crate::store::StoreError>,
        answered: Option<Instant>,
    ) {
        if let Some(source) = failure {
            let what = if deleting {
                "delete the stored session"
            } else {
                "save the session"
            };
            if source.is_store_wide() {
                // The store's outage: its health says it once, when it
                // starts and when it ends; a line per session and write
                // (each refresh, each probe, a write not even tried while
                // the store is known down) buried that. `status` shows
                // which sessions are not saved, and the stop names them.
                debug!(provider = %self.name, event = "store_failed", "could not {what}: {source}");
            } else {
                warn!(provider = %self.name, event = "store_failed", "could not {what}: {source}");
            }
        }
        if let (WritePurpose::Refreshed { .. }, Some(answered)) = (purpose, answered) {
            let outcome = if failure.is_none() {
                "new refresh token stored"
            } else {
                "store write failed, tokens kept in memory"
            };
            debug!(provider = %self.name, event = "refresh_saved", at_unix_us = %unix_micros_now(),
                answer_to_save_us = %answered.elapsed().as_micros(), ok = failure.is_none(),
                "{outcome}");
        }
    }

    /// Writes a line the machine asked for.
    fn log(&self, notice: Notice) {
        let name = &self.name;
        match notice {
            Notice::RefusedAgain {
                in_a_row,
                next_in,
                replacing_now,
            } => log_refused_again(name, in_a_row, next_in, replacing_now),
            Notice::RefreshOnDemand => {
                debug!(provider = %name, event = "refresh_on_demand", "a token request starts a refresh");
            }
            Notice::Refreshed {
                rotated,
                expires_at,
                after_failures,
            } => log_refreshed(name, rotated, expires_at, after_failures),
            Notice::RefreshTokenKept { saved } => log_refresh_token_kept(name, saved),
            Notice::ArrivedSpent {
                left,
                lifetime,
                retry_in,
            } => {
                let lifetime =
                    lifetime.map_or_else(String::new, |l| format!(" of {} s", l.as_secs_f32()));
                warn!(provider = %name, event = "token_arrived_spent", retry_in = whole_secs_up(retry_in),
                    "the new access token came with {:.1} s{lifetime} left (the provider answered slower than its tokens live, the store took as long to save them, or this machine's clock is off): the next refresh in {} s",
                    left.as_secs_f32(), retry_in.as_secs());
            }
            Notice::RefreshOverdue { error } => {
                warn!(provider = %name, event = "refresh_overdue", "{error}");
            }
            Notice::RefreshHeldForStore { left, held_for } => {
                info!(provider = %name, event = "refresh_held", held_for = held_for.as_secs(),
                    "refresh put off for {} s while the store is down (the access token has {} s left): a new refresh token could not be saved, and a stop before the store is back would lose it",
                    held_for.as_secs(), left.as_secs());
            }
            Notice::RefreshFailed {
                retry_in,
                error,
                repeated,
                in_a_row,
            } => {
                let line = self.refresh_failed_line(&error, repeated);
                failure_lines::log_refresh_failed(name, retry_in, &error, line, in_a_row);
            }
            Notice::LoginRequired { reason } => {
                error!(provider = %name, event = "login_required", "session ended by the provider: {reason}; run `tokenctl login {name}`");
            }
            Notice::AccessExpiredNoRefresh { reason } => {
                warn!(provider = %name, event = "login_required", "{reason}; run `tokenctl login {name}`");
            }
            Notice::AccessExpired {
                last_error,
                next_try_in,
            } => self.log_access_expired(last_error, next_try_in),
            Notice::LoggedIn { expires_at } => {
                info!(provider = %name, event = "logged_in", expires_at, "device login succeeded");
            }
            Notice::LoggedOut => info!(provider = %name, event = "logged_out", "session forgotten"),
            Notice::RefreshTokenExpiring {
                expires_at,
                secs_left,
            } => {
                let left = time_left(secs_left);
                warn!(provider = %name, event = "refresh_token_expiring", expires_at,
                    "the refresh token expires in {left}: log in again before then (tokenctl login {name})");
            }
            Notice::Restored { cause } => {
                let store = self.shared.store.name();
                if matches!(cause, RestoreCause::Request | RestoreCause::Change) {
                    info!(provider = %name, event = "restored", "session restored from the {store}");
                } else {
                    // The broker says at info level how many were restored:
                    // ten thousand lines would cost more than the restore.
                    debug!(provider = %name, event = "restored", "session restored from the {store}");
                }
            }
            Notice::RestoredEnded { cause, reason } => {
                let store = self.shared.store.name();
                if matches!(cause, RestoreCause::Request | RestoreCause::Change) {
                    warn!(provider = %name, event = "restored_ended", "the session restored from the {store} was ended by the provider: {reason}; run `tokenctl login {name}`");
                } else {
                    info!(provider = %name, event = "restored_ended", "the session restored from the {store} was ended by the provider: {reason}; run `tokenctl login {name}`");
                }
            }
            Notice::RestoreSkipped => {
                warn!(provider = %name, event = "restore_skipped",
                    "the stored session belongs to a different client or endpoint; it is not used (log in again)");
            }
            Notice::LoadFailed(source) => {
                warn!(provider = %name, event = "store_failed", "could not load the stored session: {source}");
            }
        }
    }
}

/// Time left before a refresh token expires, for the warning: whole days
/// past two days, whole hours past one, else minutes (a Keycloak session's
/// last half hour is not "0 h").
fn time_left(secs: u64) -> String {
    match secs {
        172_800.. => format!("{} days", secs / 86_400),
        3_600.. => format!("{} h", secs / 3_600),
        _ => format!("{} min", (secs / 60).max(1)),
    }
}

/// The warning that a token a refusal's refresh brought was refused too:
/// replaced now, or kept until `next_in` has passed.
fn log_refused_again(name: &str, in_a_row: u32, next_in: Duration, replacing_now: bool) {
    let when = if replacing_now {
        "replacing it again now, the next time no sooner than in"
    } else {
        "it is handed out as it is until it is replaced, no sooner than in"
    };
    warn!(
        provider = %name,
        event = "refused_again",
        in_a_row,
        "the token that replaced a refused one was refused too ({in_a_row} in a row): the server refuses this provider's tokens, which another refresh will not mend (does it want other scopes, or Bearer where `git_auth` answers Basic?); {when} {} s",
        next_in.as_secs()
    );
}

/// A refresh's line; after failed ones, the end of their warnings, as the
/// store's outage has its end (it read like any routine refresh).
fn log_refreshed(name: &str, rotated: bool, expires_at: Option<i64>, after_failures: u32) {
    if after_failures == 0 {
        info!(provider = %name, event = "refreshed", rotated, expires_at, "access token refreshed");
    } else {
        info!(provider = %name, event = "refreshed", rotated, expires_at, after_failures,
            "access token refreshed after {after_failures} failed refresh(es): the provider answers again and requests are served");
    }
}

/// The line of a new refresh token kept from an answer whose access token
/// could not be used (`saved`: and stored).
fn log_refresh_token_kept(name: &str, saved: bool) {
    let stored = if saved {
        "and stored"
    } else {
        "in memory (the store did not take it; retried)"
    };
    warn!(provider = %name, event = "refresh_token_kept",
        "the refresh answer's access token cannot be used, but the new refresh token beside it was kept {stored}: the refresh is retried with it");
}

#[cfg(test)]
mod tests {
    use super::time_left;

    #[test]
    fn time_left_is_never_zero_hours() {
        assert_eq!(time_left(1_800), "30 min");
        assert_eq!(time_left(20), "1 min");
        assert_eq!(time_left(3 * 3_600 + 59), "3 h");
        assert_eq!(time_left(2 * 86_400 - 10), "47 h");
        assert_eq!(time_left(6 * 86_400 + 3_600), "6 days");
    }
}
