//! The wall clock set ahead or back while the session lives.
//!
//! The session's times are wall-clock times (a suspend must age tokens),
//! taken from lifetimes the provider gave in seconds. When the clock is
//! set (NTP's first sync on a machine without a battery-backed clock, a
//! dual-boot machine's clock kept in local time corrected), those times
//! must move with it: set back by two hours, a token that had an hour
//! left looked to have three, was handed out for two hours after it died
//! and refreshed two hours late; set ahead, every token looked dead at
//! once and every session refreshed together.

use super::{Effect, SessionMachine, SessionState};
use crate::broker::clock::ClockStep;
use crate::broker::session::machine::Context;

impl SessionMachine {
    /// Moves every time the session holds by `step`, so that each is as
    /// far from "now" as before the clock was set, and plans its wake-up
    /// again. The stored record keeps the times it was written with until
    /// the next save.
    pub(super) fn clock_stepped(&mut self, ctx: &Context, step: ClockStep, out: &mut Vec<Effect>) {
        let shift = |time: &mut Option<std::time::SystemTime>| {
            if let Some(time) = time {
                *time = step.shift(*time);
            }
        };
        if let SessionState::Active { tokens, .. } = &mut self.state {
            if let Some(access) = &mut tokens.access {
                shift(&mut access.expires_at);
            }
            tokens.obtained_at = step.shift(tokens.obtained_at);
            shift(&mut tokens.refresh_expires_at);
        }
        for time in [
            &mut self.last_refresh,
            &mut self.last_attempt,
            &mut self.next_refresh,
            &mut self.fresh_until,
            &mut self.save_retry_at,
            &mut self.last_on_demand_refresh,
            &mut self.expiry_warned,
            &mut self.expiry_told,
        ] {
            shift(time);
        }
        if let Some((since, _)) = &mut self.provider_asked_wait {
            *since = step.shift(*since);
        }
        self.schedule_wake(ctx.now, out);
        out.push(self.changed());
    }
}
