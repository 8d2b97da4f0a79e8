//! How often a session may ask its provider for a new device code.
//!
//! A login that waits is joined by every later `login` request, so a person
//! retrying, or a script run again, asks the provider for nothing. Only a
//! login that ended (cancelled, logged out, denied, expired) lets the next
//! one ask for a new code, and a manager's script that starts and cancels
//! logins in a loop did so about 900 times a second: each a request to the
//! provider's device authorization endpoint, which rate-limits its clients
//! (and may lock out the client id, every user's), and three log lines.
//! [`MAX_STARTS`] new logins in [`WINDOW`] are far more than a person
//! needs; beyond them a start is refused, saying when the next may start.

use std::collections::VecDeque;
use std::time::Duration;

/// New logins a session may start within [`WINDOW`].
pub(crate) const MAX_STARTS: usize = 6;

/// The window [`MAX_STARTS`] counts in.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// When a session's last logins started (on the clock since boot, which a
/// change of the wall clock does not move).
#[derive(Debug, Default)]
pub(crate) struct LoginStarts {
    recent: VecDeque<Duration>,
}

impl LoginStarts {
    /// Takes a start at `now`, or answers how long until one may start.
    pub(crate) fn start(&mut self, now: Duration) -> Result<(), Duration> {
        while self
            .recent
            .front()
            .is_some_and(|at| now.saturating_sub(*at) >= WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= MAX_STARTS {
            let oldest = self.recent.front().copied().unwrap_or(now);
            return Err((oldest + WINDOW).saturating_sub(now));
        }
        self.recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_start_beyond_the_share_waits_for_the_oldest_to_leave_the_window() {
        let mut starts = LoginStarts::default();
        for at in 0..6 {
            assert_eq!(starts.start(s(100 + at * 2)), Ok(()));
        }
        assert_eq!(starts.start(s(111)), Err(s(49)));
        assert_eq!(starts.start(s(159)), Err(s(1)));
        // The first left the window: one more, then the second's turn.
        assert_eq!(starts.start(s(160)), Ok(()));
        assert_eq!(starts.start(s(160)), Err(s(2)));
        // A quiet minute: a full set again.
        for _ in 0..6 {
            assert_eq!(starts.start(s(300)), Ok(()));
        }
        assert!(starts.start(s(300)).is_err());
    }
}
