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

    /// Time since an arbitrary start that counts a suspend, as the wall
    /// clock does, but not the wall clock being set (NTP's first sync on a
    /// machine without a battery-backed clock, a dual-boot machine's clock
    /// kept in local time corrected): `CLOCK_BOOTTIME`. Its difference to
    /// [`Self::now`] changes only when the wall clock is set (see
    /// [`ClockWatch`]). The test clocks take it from `now`, so that moving
    /// them forward is a suspend; [`OffsetClock::set`] sets one.
    fn since_boot(&self) -> Duration {
        self.now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }

    /// The wall-clock time, on the clock as it is set now, of the moment
    /// [`Self::since_boot`] read `since_boot`: a request's send time, read
    /// again once it is answered, so that a clock set while it was out
    /// does not date its answer on the old clock.
    fn wall_at(&self, since_boot: Duration) -> SystemTime {
        let now = self.now();
        now.checked_sub(self.since_boot().saturating_sub(since_boot))
            .unwrap_or(now)
    }

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

    fn since_boot(&self) -> Duration {
        let boot = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        Duration::new(
            u64::try_from(boot.tv_sec).unwrap_or_default(),
            u32::try_from(boot.tv_nsec).unwrap_or_default(),
        )
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
/// forward, as a suspend would, or set either way, as a person or NTP
/// setting the wall clock would.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: Mutex<Duration>,
    /// How far the wall clock was set: ahead, and back.
    set: Mutex<(Duration, Duration)>,
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

impl OffsetClock {
    /// Sets the wall clock ahead by `ahead` and back by `back` (one of them
    /// zero, as a rule): [`Clock::now`] moves, [`Clock::since_boot`] does
    /// not.
    pub fn set(&self, ahead: Duration, back: Duration) {
        let mut set = self
            .set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.0 += ahead;
        set.1 += back;
    }

    fn suspended(&self) -> Duration {
        *self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> SystemTime {
        let (ahead, back) = *self
            .set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        SystemTime::now() + self.suspended() + ahead - back
    }

    fn since_boot(&self) -> Duration {
        SystemClock.since_boot() + self.suspended()
    }
}

/// The wall clock being set, ahead or back, by how much (see
/// [`ClockWatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockStep {
    /// Set ahead by this much.
    Ahead(Duration),
    /// Set back by this much.
    Back(Duration),
}

impl ClockStep {
    /// `time`, a deadline or a moment read before the step, moved with the
    /// clock: as far from the clock's "now" after the step as it was
    /// before.
    #[must_use]
    pub fn shift(self, time: SystemTime) -> SystemTime {
        match self {
            Self::Ahead(by) => time.checked_add(by).unwrap_or(time),
            Self::Back(by) => time.checked_sub(by).unwrap_or(UNIX_EPOCH),
        }
    }

    /// How far, for messages.
    #[must_use]
    pub fn size(self) -> Duration {
        match self {
            Self::Ahead(by) | Self::Back(by) => by,
        }
    }
}

impl fmt::Display for ClockStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ahead(by) => write!(f, "ahead by {} s", by.as_secs()),
            Self::Back(by) => write!(f, "back by {} s", by.as_secs()),
        }
    }
}

/// Notices the wall clock being set: between two readings, the wall clock
/// moved more or less than [`Clock::since_boot`] did (a suspend moves
/// both alike). A change under [`ClockWatch::SMALLEST_STEP`] is no step
/// (two readings are not one instant; NTP's slewing moves the clock by
/// less than a millisecond a second), and each reading starts afresh, so
/// such changes never add up to one.
#[derive(Debug)]
pub struct ClockWatch {
    /// Wall clock minus `since_boot`, in nanoseconds, at the last reading.
    wall_minus_boot: i128,
}

impl ClockWatch {
    /// The smallest change taken as the clock being set.
    pub const SMALLEST_STEP: Duration = Duration::from_secs(2);

    /// A watch starting from `clock`'s reading now.
    #[must_use]
    pub fn new(clock: &dyn Clock) -> Self {
        Self {
            wall_minus_boot: Self::read(clock),
        }
    }

    fn read(clock: &dyn Clock) -> i128 {
        let wall = match clock.now().duration_since(UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
            Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
        };
        wall - i128::try_from(clock.since_boot().as_nanos()).unwrap_or(0)
    }

    /// How the wall clock was set since the last reading, if it was.
    pub fn check(&mut self, clock: &dyn Clock) -> Option<ClockStep> {
        let now = Self::read(clock);
        let moved = now - std::mem::replace(&mut self.wall_minus_boot, now);
        let by = Duration::from_nanos(u64::try_from(moved.unsigned_abs()).unwrap_or(u64::MAX));
        if by < Self::SMALLEST_STEP {
            None
        } else if moved > 0 {
            Some(ClockStep::Ahead(by))
        } else {
            Some(ClockStep::Back(by))
        }
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
    fn a_watch_tells_the_clock_set_from_a_suspend() {
        let clock = OffsetClock::new();
        let mut watch = ClockWatch::new(&clock);
        assert_eq!(watch.check(&clock), None);
        // A suspend moves both clocks: no step.
        clock.advance(Duration::from_secs(3600));
        assert_eq!(watch.check(&clock), None);
        clock.set(Duration::ZERO, Duration::from_secs(7200));
        let Some(ClockStep::Back(by)) = watch.check(&clock) else {
            panic!("no step back seen");
        };
        assert!(by.abs_diff(Duration::from_secs(7200)) < Duration::from_secs(1));
        // Told once.
        assert_eq!(watch.check(&clock), None);
        clock.set(Duration::from_secs(60), Duration::ZERO);
        assert!(matches!(watch.check(&clock), Some(ClockStep::Ahead(_))));
        // A second's difference is no step.
        clock.set(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(watch.check(&clock), None);
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            ClockStep::Back(Duration::from_secs(10)).shift(t),
            t - Duration::from_secs(10)
        );
    }

    #[test]
    fn offset_clock_jumps() {
        let clock = OffsetClock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now().duration_since(before).unwrap() >= Duration::from_secs(3600));
    }
}
