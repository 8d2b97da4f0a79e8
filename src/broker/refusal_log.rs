//! How often refused callers are logged.
//!
//! Every refusal of a caller for a provider that exists is worth a line to
//! the administrator, but any local user can ask as fast as the socket or
//! the bus carries requests (the audit saw 230,000 lines in 5 s), drowning
//! the real events and tripping journald's own rate limit. So at most
//! [`LINES_PER_WINDOW`] refusals are logged per [`WINDOW`]; the next line
//! after a window that dropped some says how many. `tokenctl metrics`
//! still counts every one (`access_denied`).
//!
//! Refused callers are counted per uid ([`CallerRefusals`]): with one
//! budget for everyone, a single looping client used it up and hid every
//! other user's refusals (the ones an administrator most wants to see),
//! and the "not logged" count of its flood was told on another caller's
//! line, under another provider's name.

use std::collections::BTreeMap;
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
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(now)
    }
}

/// The uids whose refusals are counted apart at most. Beyond them (a
/// flood of uids: user namespaces map many), the rest share one budget, so
/// the map stays small whatever callers do.
pub(crate) const MAX_CALLERS_COUNTED: usize = 256;

/// [`RefusalLog`] kept per caller uid: each uid has its own
/// [`LINES_PER_WINDOW`] a [`WINDOW`], so one client's flood does not hide
/// another's refusals, and the count of lines not logged is told on that
/// uid's own next line.
#[derive(Debug, Default)]
pub(crate) struct CallerRefusals {
    state: Mutex<Callers>,
}

#[derive(Debug, Default)]
struct Callers {
    by_uid: BTreeMap<u32, Window>,
    /// The budget of uids beyond [`MAX_CALLERS_COUNTED`].
    others: Window,
}

impl CallerRefusals {
    /// As [`RefusalLog::admit`], for a refusal of a caller with `uid`.
    pub(crate) fn admit(&self, uid: u32, now: Instant) -> Option<u64> {
        let mut callers = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !callers.by_uid.contains_key(&uid) && callers.by_uid.len() >= MAX_CALLERS_COUNTED {
            // Room is made from windows that are over and told all they
            // dropped: forgetting one that was not loses its count.
            callers
                .by_uid
                .retain(|_, w| w.untold > 0 || !w.is_over(now));
            if callers.by_uid.len() >= MAX_CALLERS_COUNTED {
                // Then from those that are over with a count untold: a uid
                // that went quiet never tells it, and kept, 256 uids that
                // each dropped a line once held the map full for good, so
                // every later caller (a real user among them) shared the
                // one budget of the rest. Their count is lost from the
                // log only; `tokenctl metrics` counted every refusal.
                callers.by_uid.retain(|_, w| !w.is_over(now));
            }
        }
        let full = callers.by_uid.len() >= MAX_CALLERS_COUNTED;
        let window = match callers.by_uid.entry(uid) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(_) if full => &mut callers.others,
            std::collections::btree_map::Entry::Vacant(e) => e.insert(Window::default()),
        };
        window.admit(now)
    }
}

impl Window {
    fn is_over(&self, now: Instant) -> bool {
        self.started
            .is_none_or(|started| now.duration_since(started) >= WINDOW)
    }

    fn admit(&mut self, now: Instant) -> Option<u64> {
        if self.is_over(now) {
            self.started = Some(now);
            self.logged = 0;
        }
        if self.logged < LINES_PER_WINDOW {
            self.logged += 1;
            Some(std::mem::take(&mut self.untold))
        } else {
            self.untold += 1;
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

    #[test]
    fn one_callers_flood_leaves_the_others_budget_alone() {
        let log = CallerRefusals::default();
        let start = Instant::now();
        let flooding: Vec<_> = (0..500).filter_map(|_| log.admit(1000, start)).collect();
        assert_eq!(flooding.len(), LINES_PER_WINDOW as usize);
        // Another uid in the same window is logged, and told nothing of
        // the flood: that count is not its own.
        assert_eq!(log.admit(1001, start), Some(0));
        // The flooding uid's next line, a window later, tells its count.
        let next = start + WINDOW;
        assert_eq!(
            log.admit(1000, next),
            Some(500 - u64::from(LINES_PER_WINDOW))
        );
        assert_eq!(log.admit(1001, next), Some(0));
    }

    #[test]
    fn uids_beyond_the_counted_share_one_budget() {
        let log = CallerRefusals::default();
        let start = Instant::now();
        for uid in 0..u32::try_from(MAX_CALLERS_COUNTED).unwrap() {
            assert_eq!(log.admit(uid, start), Some(0));
        }
        let beyond = u32::try_from(MAX_CALLERS_COUNTED).unwrap();
        let shared: Vec<_> = (beyond..beyond + 100)
            .filter_map(|uid| log.admit(uid, start))
            .collect();
        assert_eq!(shared.len(), LINES_PER_WINDOW as usize);
        // Once the first windows are over, a new uid gets a window of its
        // own again; the map does not grow past the cap.
        let later = start + WINDOW;
        assert_eq!(log.admit(beyond + 500, later), Some(0));
        let counted = log.state.lock().unwrap().by_uid.len();
        assert!(counted <= MAX_CALLERS_COUNTED, "{counted}");
        assert!(
            log.state
                .lock()
                .unwrap()
                .by_uid
                .contains_key(&(beyond + 500))
        );
    }

    /// Uids that each dropped a line once and went quiet do not keep the
    /// map full for good: once their windows are over, a new caller gets
    /// a budget of its own (it shared the rest's, a flood's, forever).
    #[test]
    fn quiet_uids_with_untold_counts_make_room_once_their_windows_are_over() {
        let log = CallerRefusals::default();
        let start = Instant::now();
        for uid in 0..u32::try_from(MAX_CALLERS_COUNTED).unwrap() {
            for _ in 0..=LINES_PER_WINDOW {
                log.admit(uid, start);
            }
        }
        let beyond = u32::try_from(MAX_CALLERS_COUNTED).unwrap();
        // Within the window, the rest share one budget, used up here.
        for _ in 0..LINES_PER_WINDOW {
            log.admit(beyond, start);
        }
        assert_eq!(log.admit(beyond + 1, start), None);
        // A window later, a real user's refusal is logged on its own.
        let later = start + WINDOW * 4;
        for _ in 0..LINES_PER_WINDOW {
            log.admit(beyond + 2, later);
        }
        assert_eq!(log.admit(beyond + 3, later), Some(0));
        assert!(log.state.lock().unwrap().by_uid.len() <= MAX_CALLERS_COUNTED);
    }
}
