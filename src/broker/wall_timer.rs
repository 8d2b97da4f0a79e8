//! A timer on the wall clock, for the refresh scheduler.
//!
//! Tokio's timers run on the monotonic clock, which stops while the machine
//! is suspended: a laptop that sleeps through a token's refresh time would
//! wake with the timer still far off. This timer is a Linux `timerfd` on
//! `CLOCK_REALTIME` with an absolute deadline, which the kernel fires on
//! resume when the deadline passed during the suspend, and which, armed
//! with `TFD_TIMER_CANCEL_ON_SET`, also fires when the clock is set (an
//! NTP step, a manual change). With it the scheduler sleeps until its next
//! deadline and nothing else: no periodic wake-up to look at the clock.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;

/// A one-shot timer on the wall clock, re-armed for every wait.
#[derive(Debug)]
pub struct WallTimer {
    fd: AsyncFd<OwnedFd>,
}

impl WallTimer {
    /// A disarmed timer. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// The kernel refused a timerfd, or the runtime cannot watch it.
    pub fn new() -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Realtime,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // Tokio deprecated `AsyncFd::new` because a type whose raw fd can
        // change or close under the reactor makes it unsound; its
        // replacement is `unsafe`, which this crate forbids. An `OwnedFd`
        // owned by the `AsyncFd` is exactly the case that is sound: the
        // descriptor stays open and the same until the `AsyncFd` drops it.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Self { fd })
    }

    /// Waits until the wall clock reaches `at` (at once if it has), or
    /// until the clock is set, whichever comes first: after a clock change
    /// the caller reads the time again and decides anew.
    ///
    /// # Errors
    /// The timer could not be armed or read.
    pub async fn sleep_until(&self, at: SystemTime) -> io::Result<()> {
        let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let value = Timespec {
            tv_sec: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: since_epoch.subsec_nanos().into(),
        };
        // An all-zero value would disarm the timer: the epoch itself is
        // "long past", which one nanosecond after it says as well.
        let value = if value.tv_sec == 0 && value.tv_nsec == 0 {
            Timespec {
                tv_sec: 0,
                tv_nsec: 1,
            }
        } else {
            value
        };
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        let armed = timerfd_settime(
            self.fd.get_ref(),
            TimerfdTimerFlags::ABSTIME | TimerfdTimerFlags::CANCEL_ON_SET,
            &spec,
        );
        if clock_was_set(&armed)? {
            return Ok(());
        }
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(Ok(_)) => return Ok(()),
                // The clock was set: the deadline may be anywhere now.
                Ok(Err(e))
                    if e.raw_os_error() == Some(rustix::io::Errno::CANCELED.raw_os_error()) =>
                {
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                // Readiness left over from an earlier expiry: wait again.
                Err(_would_block) => {}
            }
        }
    }
}

/// Whether arming the timer found the clock set since it was last armed,
/// or the error that kept it from being armed.
///
/// A clock set (or a resume, which the kernel counts as one) while the
/// timer was armed and nobody read it makes the next `timerfd_settime`
/// fail with `ECANCELED`, although it armed the timer all the same
/// (timerfd_create(2), NOTES). That is the news a read's `ECANCELED`
/// brings: the caller reads the time again. Taken as a failure, it made the
/// scheduler give up its wall-clock timer for good, after a logout and a
/// night's suspend, say (nothing armed is read while nothing is due).
fn clock_was_set(armed: &rustix::io::Result<Itimerspec>) -> io::Result<bool> {
    match armed {
        Ok(_) => Ok(false),
        Err(rustix::io::Errno::CANCELED) => Ok(true),
        Err(e) => Err((*e).into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn fires_at_a_wall_clock_deadline_and_at_once_for_a_past_one() {
        let timer = WallTimer::new().unwrap();
        let start = SystemTime::now();
        let at = start + Duration::from_millis(200);
        tokio::time::timeout(Duration::from_secs(30), timer.sleep_until(at))
            .await
            .expect("the timer fired")
            .unwrap();
        assert!(SystemTime::now() >= at, "fired before its deadline");

        // Re-armed for a deadline in the past, and for the epoch itself
        // (which must not disarm it): both fire at once.
        for past in [start, UNIX_EPOCH] {
            tokio::time::timeout(Duration::from_secs(30), timer.sleep_until(past))
                .await
                .expect("a past deadline fires at once")
                .unwrap();
        }
    }

    /// Setting the clock needs `CAP_SYS_TIME` and disturbs the machine, so
    /// the kernel's answer is fed in: `ECANCELED` from arming is a clock
    /// change (the timer is armed), any other error a failure.
    #[test]
    fn arming_that_finds_the_clock_set_is_no_failure() {
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let old = Itimerspec {
            it_interval: zero,
            it_value: zero,
        };
        assert!(!clock_was_set(&Ok(old)).unwrap());
        assert!(clock_was_set(&Err(rustix::io::Errno::CANCELED)).unwrap());
        assert_eq!(
            clock_was_set(&Err(rustix::io::Errno::INVAL))
                .unwrap_err()
                .raw_os_error(),
            Some(rustix::io::Errno::INVAL.raw_os_error())
        );
    }

    #[tokio::test]
    async fn re_arming_replaces_the_previous_deadline() {
        let timer = WallTimer::new().unwrap();
        let far = SystemTime::now() + Duration::from_secs(3600);
        // An abandoned wait for a far deadline, then a near one: the near
        // one is what the timer holds.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), timer.sleep_until(far))
                .await
                .is_err()
        );
        let near = SystemTime::now() + Duration::from_millis(100);
        tokio::time::timeout(Duration::from_secs(30), timer.sleep_until(near))
            .await
            .expect("the re-armed timer fired")
            .unwrap();
        assert!(SystemTime::now() >= near);
    }
}
