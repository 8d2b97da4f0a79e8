//! How often refused callers are logged.
//!
//! Every refusal of a caller for a provider that exists is worth a line to
//! the administrator, but any local user can ask as fast as the socket or
//! the bus carries requests (the audit saw 230,000 lines in 5 s), drowning
//! the real events and tripping journald's own rate limit. So at most
//! [`LINES_PER_WINDOW`] refusals are logged per [`WINDOW`]; the next line
//! after a window that dropped some says how many. `tokenctl metrics`
//! still counts every one (`access_denied`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window refusal lines are counted in.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The refusal lines logged at most per window.
pub(crate) const LINES_PER_WINDOW: u32 = 10;

/// Counts refusal lines per window.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    logged: u32,
    /// Dropped since the last line (a window drops only after its last
    /// line, so these are told by the next window's first).
    untold: u64,
}

impl RefusalLog {
    /// A log with nothing counted yet, for a `static`.
    pub(crate) const fn new() -> Self {
        Self {
            state: Mutex::new(Window {
                started: None,
                logged: 0,
                untold: 0,
            }),
        }
    }

    /// Whether a refusal at `now` may be logged: `Some(n)` with the number
    /// of refusals not logged since the last line, `None` to stay quiet.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut w = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.started
            .is_none_or(|started| now.duration_since(started) >= WINDOW)
        {
            w.started = Some(now);
            w.logged = 0;
        }
        if w.logged < LINES_PER_WINDOW {
            w.logged += 1;
            Some(std::mem::take(&mut w.untold))
        } else {
            w.untold += 1;
            None
        }
    }
}

/// ", after N refusals not logged" for a line that follows dropped ones.
pub(crate) fn not_logged_note(dropped: u64) -> String {
    not_logged_note_of(dropped, "refusals")
}

/// As [`not_logged_note`], of other lines counted so (`what`: "skips").
pub(crate) fn not_logged_note_of(dropped: u64, what: &str) -> String {
    if dropped == 0 {
        String::new()
    } else {
        format!(" ({dropped} earlier {what} were not logged)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_a_few_lines_a_minute_and_counted() {
        let log = RefusalLog::default();
        let start = Instant::now();
        let admitted: Vec<_> = (0..1000).filter_map(|_| log.admit(start)).collect();
        assert_eq!(admitted, vec![0; LINES_PER_WINDOW as usize]);
        // Still the same window: quiet.
        let late = (start + WINDOW)
            .checked_sub(Duration::from_millis(1))
            .unwrap();
        assert_eq!(log.admit(late), None);
        // The next window's first line tells what was dropped, once.
        let next = start + WINDOW;
        assert_eq!(
            log.admit(next),
            Some(1000 - u64::from(LINES_PER_WINDOW) + 1)
        );
        assert_eq!(log.admit(next), Some(0));
        assert_eq!(not_logged_note(0), "");
        assert_eq!(
            not_logged_note(991),
            " (991 earlier refusals were not logged)"
        );
    }
}
