//! The machine going to sleep: background refreshes wait for the resume,
//! and the ones already out finish (and save) before the sleep.
//!
//! A refresh whose answer is lost to a suspend is not merely late: with a
//! provider that rotates refresh tokens, the answer carried the only copy
//! of the new refresh token, and the retry after the resume presents the
//! spent one, which the provider refuses: the session ends and a person
//! must log in again. So when logind announces a sleep (`world`, which
//! holds a `delay` inhibitor for this), no new background refresh starts,
//! and the sleep waits, within logind's limit, for the ones in flight and
//! their saves. At the resume (or when the announcement turns out to have
//! no resume, see `world`) the hold is lifted and the refreshes that came
//! due meanwhile are spread as a resume's retries are.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::info;

use super::api::Broker;
use super::session::WorldChange;

/// How often the wait for the refreshes in flight looks again, between
/// the broker's events (a refresh that ends raises one; its save may not).
const LOOK_AGAIN: Duration = Duration::from_millis(100);

impl Broker {
    /// The machine is about to sleep: no background refresh starts until
    /// [`Self::end_sleep_hold`]. Refreshes a request asks for still run
    /// (a client waits for them).
    pub fn hold_for_sleep(&self) {
        // A sleep again before the last one's hold ended (the resume still
        // waits for the network) keeps what that one saw go down.
        if !self.inner.shared.sleep_hold.swap(true, Ordering::SeqCst) {
            self.note_network_reach(true);
        }
    }

    /// What the network watch saw last: the network may have gone
    /// (`false`: a link, address or route removed) or come back. A sleep's
    /// start forgets it, so that a resume asks only about the teardown
    /// before that sleep (see [`Self::network_left_before_sleep`]).
    pub fn note_network_reach(&self, reachable: bool) {
        self.inner
            .shared
            .network_left
            .store(!reachable, Ordering::SeqCst);
    }

    /// Whether the network went away since the last sleep began, and has not
    /// come back: a laptop's network manager takes Wi-Fi down before the
    /// sleep and brings it back seconds after the resume, and refreshes
    /// retried at the resume went into no network, each a second failure,
    /// warning and hook run.
    #[must_use]
    pub fn network_left_before_sleep(&self) -> bool {
        self.inner.shared.network_left.load(Ordering::SeqCst)
    }

    /// The world's changes as they come (the network back, a resume).
    #[must_use]
    pub fn world_changes(&self) -> tokio::sync::watch::Receiver<Option<WorldChange>> {
        self.inner.shared.world_changes.subscribe()
    }

    /// Whether background refreshes are held for a sleep.
    #[must_use]
    pub fn held_for_sleep(&self) -> bool {
        self.inner.shared.sleep_hold.load(Ordering::SeqCst)
    }

    /// Waits, at most `within`, until no session has a refresh out or a
    /// store write unfinished. Returns the names of the sessions that
    /// still had, for the log (empty: all finished).
    pub async fn finish_before_sleep(&self, within: Duration) -> Vec<String> {
        let mut events = self.inner.shared.events.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let unfinished: Vec<String> = self
                .sessions()
                .iter()
                .filter(|s| s.unfinished_work().is_some())
                .map(|s| s.name.clone())
                .collect();
            if unfinished.is_empty() || tokio::time::Instant::now() >= deadline {
                return unfinished;
            }
            tokio::select! {
                _ = events.recv() => {}
                () = tokio::time::sleep(LOOK_AGAIN) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Lifts a sleep's hold: the refreshes that came due meanwhile (and
    /// those whose failures the sleep may have ended) start within
    /// `spread`, as [`Self::retry_waiting_refreshes`] spreads them.
    /// Returns how many sessions were moved; 0 when nothing was held.
    #[must_use = "the count is for the log line"]
    pub fn end_sleep_hold(&self, spread: Duration) -> usize {
        let woken = {
            let mut held = self.held_wakes();
            self.inner.shared.sleep_hold.store(false, Ordering::SeqCst);
            std::mem::take(&mut *held)
        };
        let moved = self.retry_waiting_refreshes(spread, WorldChange::Resumed);
        // After the due refreshes were spread: each session held does what
        // its wake-up was for (a warning, an expiry said, a save's retry)
        // and plans its next one.
        for name in woken {
            if let Some(session) = self.session(&name) {
                session.refresh_if_due();
            }
        }
        moved
    }

    /// The scheduler's wake-up of the sessions `due`, given back to be
    /// carried out; `None` when held for a sleep, the sessions then kept
    /// for the hold's end (and said).
    pub(super) fn wake_unless_held(&self, due: Vec<Arc<str>>) -> Option<Vec<Arc<str>>> {
        let mut held = self.held_wakes();
        if !self.held_for_sleep() {
            return Some(due);
        }
        if !due.is_empty() {
            info!(
                event = "refresh_held",
                sessions = due.len(),
                "the machine is going to sleep: {} session(s) woken for a refresh, a warning or a retry wait for the resume",
                due.len()
            );
            held.extend(due);
        }
        None
    }

    fn held_wakes(&self) -> std::sync::MutexGuard<'_, Vec<Arc<str>>> {
        self.inner
            .shared
            .held_wakes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
