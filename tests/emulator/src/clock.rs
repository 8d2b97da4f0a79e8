//! The emulator's notion of time, injected so tests can move it.
//!
//! Every timing rule of an emulated provider (device codes that expire,
//! access and refresh tokens that die, polls too close together) reads
//! this clock, never the system's directly. The program uses
//! [`Clock::system`]; tests use [`Clock::manual`] and [`Clock::advance`] it
//! instead of waiting for the provider's time to pass.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Where an emulator's time comes from. Clones share the clock: advancing
/// one advances them all. The default is the system clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// How far this clock is ahead of the system's; `None` for the system
    /// clock itself, which cannot be advanced. A std mutex: held for a
    /// read or an add, never across anything else.
    ahead: Option<Arc<Mutex<Duration>>>,
}

impl Clock {
    /// The system clock: what the `tokend-emulator` program runs on.
    #[must_use]
    pub fn system() -> Self {
        Self { ahead: None }
    }

    /// A clock the test moves: it starts at the system's time and runs
    /// with it, and [`Self::advance`] jumps it ahead.
    ///
    /// It keeps running rather than standing still because the client
    /// under test is a real process with its own real clock: a provider
    /// whose time stood still would see a client that waits its interval
    /// for real as polling with no pause at all.
    #[must_use]
    pub fn manual() -> Self {
        Self {
            ahead: Some(Arc::new(Mutex::new(Duration::ZERO))),
        }
    }

    /// Whether [`Self::advance`] works on this clock.
    #[must_use]
    pub fn is_manual(&self) -> bool {
        self.ahead.is_some()
    }

    /// Moves a manual clock `by` ahead, at once. An emulator that runs on
    /// it answers every later request as if that time had passed (to wake
    /// its waiters too, advance through [`crate::Emulator::advance`]).
    ///
    /// # Panics
    /// On the system clock, which nobody moves.
    #[track_caller]
    pub fn advance(&self, by: Duration) {
        let ahead = self
            .ahead
            .as_ref()
            .expect("the system clock cannot be advanced: use Clock::manual()");
        *ahead.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// How far [`Self::advance`] has moved this clock so far.
    #[must_use]
    pub fn advanced(&self) -> Duration {
        self.ahead.as_ref().map_or(Duration::ZERO, |ahead| {
            *ahead.lock().unwrap_or_else(PoisonError::into_inner)
        })
    }

    /// Now, monotonic: what every expiry and interval is measured in.
    #[must_use]
    pub fn now(&self) -> Instant {
        Instant::now() + self.advanced()
    }

    /// Now, wall clock: for the dates and timestamps some dialects send.
    #[must_use]
    pub fn now_system(&self) -> SystemTime {
        SystemTime::now() + self.advanced()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_jumps_ahead_and_its_clones_with_it() {
        let clock = Clock::manual();
        let copy = clock.clone();
        let (before, before_system) = (Instant::now(), SystemTime::now());
        clock.advance(Duration::from_secs(600));
        assert!(copy.now() >= before + Duration::from_secs(600));
        assert!(copy.now_system() >= before_system + Duration::from_secs(600));
        assert_eq!(copy.advanced(), Duration::from_secs(600));
    }

    #[test]
    fn the_system_clock_is_the_system_clock() {
        let clock = Clock::system();
        assert!(!clock.is_manual());
        let before = Instant::now();
        assert!(clock.now() >= before);
        assert!(clock.now() < before + Duration::from_secs(60));
    }

    #[test]
    #[should_panic(expected = "cannot be advanced")]
    fn the_system_clock_cannot_be_advanced() {
        Clock::system().advance(Duration::from_secs(1));
    }
}
