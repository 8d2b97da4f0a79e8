//! Wall-clock time, injectable.
//!
//! Token expiry is judged on the wall clock: a laptop that sleeps for an
//! hour wakes with its tokens an hour older, while monotonic timers (and
//! tokio's) did not advance. The broker reads "now" from a [`Clock`] so
//! that tests can jump time forward as a suspend would.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::wall_timer::WallTimer;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// A timer that fires when this clock reaches a time, across suspend
    /// and clock changes; `None` when the clock has none (the test clocks),
    /// and the scheduler then reads the clock again at least every
    /// `scheduler::MAX_SLEEP`.
    fn wall_timer(&self) -> Option<WallTimer> {
        None
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn wall_timer(&self) -> Option<WallTimer> {
        match WallTimer::new() {
            Ok(timer) => Some(timer),
            Err(e) => {
                tracing::warn!("no wall-clock timer ({e}); the clock is read every minute instead");
                None
            }
        }
    }
}

/// A clock for tests: the real time plus an offset that can be moved
/// forward, as a suspend or a clock change would.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: Mutex<Duration>,
}

impl OffsetClock {
    /// A clock showing the real time.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut offset = self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *offset += by;
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> SystemTime {
        let offset = *self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        SystemTime::now() + offset
    }
}

/// Unix seconds of `time` (negative before 1970, which no token is).
#[must_use]
pub fn unix_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The time at `secs` Unix seconds.
#[must_use]
pub fn from_unix_secs(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_round_trip() {
        for secs in [0, 1, 1_790_000_000, -5] {
            assert_eq!(unix_secs(from_unix_secs(secs)), secs);
        }
    }

    #[test]
    fn offset_clock_jumps() {
        let clock = OffsetClock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now().duration_since(before).unwrap() >= Duration::from_secs(3600));
    }
}
