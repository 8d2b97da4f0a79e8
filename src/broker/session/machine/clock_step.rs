//! The wall clock set ahead or back while the session lives.
//!
//! The session's times are wall-clock times (a suspend must age tokens),
//! taken from lifetimes the provider gave in seconds. When the clock is
//! set (NTP's first sync on a machine without a battery-backed clock, a
//! dual-boot machine's clock kept in local time corrected), those times
//! must move with it: set back by two hours, a token that had an hour
//! left looked to have three, was handed out for two hours after it died
//! and refreshed two hours late.
//!
//! Set ahead, the access token's expiry does not move. A clock set ahead
//! cannot be told from time that passed unseen: a virtual machine paused
//! while its host slept (WSL2, VirtualBox, a libvirt guest) counts no time
//! since boot either, and its clock is stepped ahead when it runs again.
//! Moved with the step, its dead tokens were served as fresh for the
//! step's length. Left in place, a token whose clock was merely corrected
//! is refreshed early, once: the cheap mistake of the two. The broker
//! spreads those refreshes over a second, as a resume's. The refresh
//! token's own expiry does move (taken as passed, the session would be
//! given up while the provider may still take it), as do the planned
//! waits (a backoff, the provider's `Retry-After`).

use std::time::SystemTime;

use super::{Effect, RefreshStage, SessionMachine, SessionState, Tokens};
use crate::broker::clock::ClockStep;
use crate::broker::session::machine::Context;

impl SessionMachine {
    /// Moves every time the session counted on this clock by `step`, so
    /// that each is as far from "now" as before the clock was set, and
    /// plans its wake-up again. Times read from the store or given by the
    /// provider as dates stay (see [`super::tokens::CountedHere`]): a
    /// refresh planned from such an expiry is planned again from it. A
    /// record whose times moved is saved again.
    pub(super) fn clock_stepped(&mut self, ctx: &Context, step: ClockStep, out: &mut Vec<Effect>) {
        let shift = |time: &mut Option<SystemTime>| {
            if let Some(time) = time {
                *time = step.shift(*time);
            }
        };
        // Noted for the tokens a write will install (see `shift_by_steps_since`).
        self.clock_steps += 1;
        if self.recent_steps.len() == RECENT_STEPS {
            self.recent_steps.pop_front();
        }
        self.recent_steps.push_back((self.clock_steps, step));
        // Set ahead, the access token may have aged by the step (see the
        // module doc): its expiry stays, and the next refresh is planned
        // from it again.
        let ahead = matches!(step, ClockStep::Ahead(_));
        let mut replan = None;
        // Whether a time the record holds moved: saved again, or a restart
        // reads the old one (set back two hours, a dead token served for
        // two hours after the restart).
        let mut record_moved = false;
        if let SessionState::Active { tokens, refresh } = &mut self.state {
            let counted = tokens.counted_here;
            record_moved = shift_tokens(tokens, step);
            if counted.access_expiry && !ahead {
                shift(&mut self.expiry_told);
            } else if let Some(access) = &tokens.access
                && access.expires_at.is_some()
                && *refresh == RefreshStage::Idle
                && self.failures == 0
            {
                replan = Some(tokens.clone());
            }
            if counted.refresh_expiry {
                shift(&mut self.expiry_warned);
            }
        }
        // Readings of this clock, and times planned from them.
        for time in [
            &mut self.last_refresh,
            &mut self.last_attempt,
            &mut self.save_retry_at,
            &mut self.last_on_demand_refresh,
        ] {
            shift(time);
        }
        if let Some((since, _)) = &mut self.provider_asked_wait {
            *since = step.shift(*since);
        }
        if let Some(tokens) = replan {
            self.schedule_next(ctx, &tokens, None, out);
        } else {
            shift(&mut self.next_refresh);
            if !ahead {
                shift(&mut self.fresh_until);
            }
            self.schedule_wake(ctx.now, out);
        }
        self.save_again_if(record_moved, ctx, out);
        out.push(self.changed());
    }

    /// Moves `tokens`, made when the session had taken in `steps_seen`
    /// clock steps, by the steps taken in since (their write waited while
    /// the clock was set: a slow keyring). Whether a time the record holds
    /// moved. Steps older than the last [`RECENT_STEPS`] are not known any
    /// more: a write does not wait through that many.
    pub(super) fn shift_by_steps_since(&self, steps_seen: u64, tokens: &mut Tokens) -> bool {
        let mut moved = false;
        for (_, step) in self.recent_steps.iter().filter(|(n, _)| *n > steps_seen) {
            moved |= shift_tokens(tokens, *step);
        }
        moved
    }

    /// When `moved` (a time the stored record holds moved with the clock),
    /// marks the session unsaved and has its record saved again.
    pub(super) fn save_again_if(&mut self, moved: bool, ctx: &Context, out: &mut Vec<Effect>) {
        if moved {
            self.store_dirty = true;
            if ctx.store_available {
                out.push(Effect::RetryStoreSave);
            }
        }
    }
}

/// The clock steps a session keeps for the writes under way (see
/// `SessionMachine::shift_by_steps_since`).
const RECENT_STEPS: usize = 8;

/// Moves the times of `tokens` counted on this clock by `step`: not the
/// access token's expiry when set ahead (see the module doc). Whether a
/// time the stored record holds moved.
fn shift_tokens(tokens: &mut Tokens, step: ClockStep) -> bool {
    let ahead = matches!(step, ClockStep::Ahead(_));
    let counted = tokens.counted_here;
    let moved = (counted.access_expiry && !ahead)
        || (counted.refresh_expiry && tokens.refresh_expires_at.is_some())
        || counted.obtained;
    if counted.access_expiry
        && !ahead
        && let Some(expires_at) = tokens.access.as_mut().and_then(|a| a.expires_at.as_mut())
    {
        *expires_at = step.shift(*expires_at);
    }
    if counted.obtained {
        tokens.obtained_at = step.shift(tokens.obtained_at);
    }
    if counted.refresh_expiry
        && let Some(expires_at) = tokens.refresh_expires_at.as_mut()
    {
        *expires_at = step.shift(*expires_at);
    }
    moved
}
