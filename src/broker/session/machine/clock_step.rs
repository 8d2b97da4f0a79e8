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

use super::{Effect, RefreshStage, SessionMachine, SessionState};
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
            record_moved = (counted.access_expiry && !ahead)
                || (counted.refresh_expiry && tokens.refresh_expires_at.is_some())
                || counted.obtained;
            if let Some(access) = &mut tokens.access {
                let idle = *refresh == RefreshStage::Idle && self.failures == 0;
                if counted.access_expiry && !ahead {
                    shift(&mut access.expires_at);
                    shift(&mut self.expiry_told);
                } else if access.expires_at.is_some() && idle {
                    replan = Some(tokens.clone());
                }
            }
            if counted.obtained {
                tokens.obtained_at = step.shift(tokens.obtained_at);
            }
            if counted.refresh_expiry {
                shift(&mut tokens.refresh_expires_at);
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
        if record_moved {
            self.store_dirty = true;
            if ctx.store_available {
                out.push(Effect::RetryStoreSave);
            }
        }
        out.push(self.changed());
    }
}
