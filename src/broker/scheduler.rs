//! The refresh scheduler: one task that sleeps until the next due refresh.
//!
//! Sessions tell the scheduler when they want their next background refresh
//! ([`RefreshScheduler::schedule`]); the task sleeps until the earliest of
//! those deadlines, woken early by a [`Notify`] when an earlier one arrives.
//! Nothing polls: with no refresh due, the task sleeps.
//!
//! Deadlines are wall-clock times. Tokio's timers are monotonic and stop
//! while the machine is suspended, so beside its monotonic sleep the task
//! waits on the clock's [`WallTimer`](super::wall_timer::WallTimer), which fires at the deadline's wall
//! time even across a suspend, and when the clock is set. A clock without
//! one (the test clocks) gets sleeps capped at [`MAX_SLEEP`], the wall clock
//! read again on waking: overdue refreshes then start within that cap.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use tracing::warn;

use super::clock::Clock;

/// Without a wall-clock timer, the longest the scheduler sleeps before
/// reading the wall clock again.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The longest sleep with a wall-clock timer and nothing scheduled.
pub const LONGEST_SLEEP: Duration = Duration::from_secs(24 * 3600);

/// Deadlines by time and by session name.
#[derive(Debug, Default)]
struct Queue {
    by_time: BTreeSet<(SystemTime, Arc<str>)>,
    by_name: HashMap<Arc<str>, SystemTime>,
}

/// Due times of background refreshes, one per session at most.
#[derive(Debug, Default)]
pub struct RefreshScheduler {
    // A std Mutex: every critical section is a few map operations.
    queue: Mutex<Queue>,
    wake: Notify,
}

impl RefreshScheduler {
    /// An empty schedule.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets (or with `None` clears) when `name` is next due.
    pub fn schedule(&self, name: &str, at: Option<SystemTime>) {
        let mut queue = self.queue();
        if let Some((key, old)) = queue.by_name.remove_entry(name) {
            queue.by_time.remove(&(old, key));
        }
        let Some(at) = at else { return };
        let key: Arc<str> = Arc::from(name);
        let earliest = queue.by_time.first().is_none_or(|(first, _)| at < *first);
        queue.by_time.insert((at, key.clone()));
        queue.by_name.insert(key, at);
        drop(queue);
        if earliest {
            // notify_one keeps a permit when the task is not waiting yet,
            // so a deadline added between its check and its sleep is not lost.
            self.wake.notify_one();
        }
    }

    /// When `name` is next due, if scheduled.
    #[must_use]
    pub fn due(&self, name: &str) -> Option<SystemTime> {
        self.queue().by_name.get(name).copied()
    }

    /// The earliest deadline.
    #[must_use]
    pub fn next_due(&self) -> Option<SystemTime> {
        self.queue().by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns every session due at or before `now`.
    pub fn take_due(&self, now: SystemTime) -> Vec<Arc<str>> {
        let mut queue = self.queue();
        let mut due = Vec::new();
        while let Some((at, _)) = queue.by_time.first() {
            if *at > now {
                break;
            }
            if let Some((_, name)) = queue.by_time.pop_first() {
                queue.by_name.remove(&name);
                due.push(name);
            }
        }
        due
    }

    /// Number of scheduled sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue().by_name.len()
    }

    /// Whether nothing is scheduled.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes the task at once, to read the clock again (for tests, whose
    /// clocks have no wall-clock timer to tell them it was set).
    #[cfg(test)]
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown`. On every wake-up (a deadline, an earlier
    /// deadline arriving, a clock change, or `max_sleep` passing) it calls
    /// `on_wake` with the sessions whose deadline has passed (possibly
    /// none). `on_wake` must not block: it starts work, it does not wait
    /// for it.
    pub async fn run(
        &self,
        clock: &dyn Clock,
        shutdown: &CancellationToken,
        max_sleep: Duration,
        mut on_wake: impl FnMut(Vec<Arc<str>>),
    ) {
        let mut wall = clock.wall_timer();
        loop {
            let now = clock.now();
            on_wake(self.take_due(now));
            let next = self.next_due();
            let cap = if wall.is_some() {
                max_sleep
            } else {
                max_sleep.min(MAX_SLEEP)
            };
            let sleep = next
                .map_or(cap, |at| at.duration_since(now).unwrap_or_default())
                .min(cap);
            // Armed when nothing is due too: the timer also fires when the
            // clock is set, and a clock step must move the sessions' times
            // at once, not at the next wake-up (a login meanwhile had its
            // fresh tokens moved by the whole step).
            let wall_deadline = async {
                match &wall {
                    Some(timer) => timer.sleep_until(next.unwrap_or(now + sleep)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                fired = wall_deadline => {
                    if let Err(e) = fired {
                        warn!("the wall-clock timer failed ({e}); the clock is read every minute instead");
                        wall = None;
                    }
                }
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// When the scheduler task beats, so that beats are never more than a
/// heartbeat's `interval` apart however its other wake-ups fall.
///
/// Why half the interval: the task wakes for deadlines too. Beating only
/// once a whole interval had passed, and sleeping at most an interval, a
/// wake-up just before a beat was due (a refresh's deadline) put the next
/// beat almost two intervals after the last: with systemd's watchdog fed
/// at half its timeout, a healthy daemon could be killed. Waking at least
/// every half interval and beating once half an interval has passed keeps
/// the gap at most one interval.
#[derive(Debug)]
pub(crate) struct BeatPacer {
    half: Duration,
    last: Option<tokio::time::Instant>,
}

impl BeatPacer {
    /// A pacer for beats at most `interval` apart.
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            half: interval / 2,
            last: None,
        }
    }

    /// The longest the scheduler task may sleep between wake-ups.
    pub(crate) fn longest_sleep(&self) -> Duration {
        self.half
    }

    /// Whether to beat on a wake-up at `now`; notes the beat if so.
    pub(crate) fn beat_due(&mut self, now: tokio::time::Instant) -> bool {
        let due = self
            .last
            .is_none_or(|at| now.duration_since(at) >= self.half);
        if due {
            self.last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;
    use crate::broker::clock::OffsetClock;

    #[test]
    fn rescheduling_replaces_the_old_deadline() {
        let s = RefreshScheduler::new();
        let t0 = SystemTime::now();
        s.schedule("a", Some(t0 + Duration::from_secs(10)));
        s.schedule("b", Some(t0 + Duration::from_secs(5)));
        s.schedule("a", Some(t0 + Duration::from_secs(1)));
        assert_eq!(s.len(), 2);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(s.take_due(t0 + Duration::from_secs(5)).len(), 2);
        assert!(s.is_empty());
        s.schedule("c", Some(t0));
        s.schedule("c", None);
        assert!(s.is_empty());
    }

    /// A deadline earlier than every other wakes the task (which sleeps
    /// until the earliest it knew of); a later one does not, nor does one
    /// that was already first.
    #[tokio::test]
    async fn only_an_earlier_deadline_wakes_the_task() {
        let s = RefreshScheduler::new();
        let t0 = SystemTime::now();
        s.schedule("a", Some(t0 + Duration::from_secs(10)));
        assert!(woken(&s).await, "the first deadline");
        s.schedule("late", Some(t0 + Duration::from_secs(20)));
        assert!(!woken(&s).await, "a later deadline woke the task");
        s.schedule("early", Some(t0 + Duration::from_secs(5)));
        assert!(woken(&s).await, "an earlier deadline did not wake the task");
    }

    /// Whether the task would wake at once: a wake-up is pending.
    async fn woken(s: &RefreshScheduler) -> bool {
        tokio::time::timeout(Duration::ZERO, s.wake.notified())
            .await
            .is_ok()
    }

    /// With the real clock (and so its wall-clock timer), a deadline fires
    /// when the wall clock reaches it, after it and not before, in a few
    /// wake-ups: an armed timer that fired at once and kept firing would
    /// spin the task instead.
    #[tokio::test]
    async fn the_wall_clock_timer_wakes_the_task_at_the_deadline_only() {
        let scheduler = Arc::new(RefreshScheduler::new());
        let shutdown = CancellationToken::new();
        let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel();
        let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let at = SystemTime::now() + Duration::from_millis(300);
        scheduler.schedule("soon", Some(at));
        let task = {
            let (scheduler, shutdown, wakes) = (scheduler.clone(), shutdown.clone(), wakes.clone());
            tokio::spawn(async move {
                let clock = crate::broker::clock::SystemClock;
                scheduler
                    .run(&clock, &shutdown, LONGEST_SLEEP, |due| {
                        wakes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        for name in due {
                            let _ = due_tx.send((name.to_string(), SystemTime::now()));
                        }
                    })
                    .await;
            })
        };
        let (name, when) = tokio::time::timeout(Duration::from_secs(30), due_rx.recv())
            .await
            .expect("the deadline fired")
            .unwrap();
        assert_eq!(name, "soon");
        assert!(when >= at, "fired before its deadline");
        let wakes = wakes.load(std::sync::atomic::Ordering::Relaxed);
        assert!(wakes <= 3, "{wakes} wake-ups for one deadline");
        shutdown.cancel();
        task.await.unwrap();
    }

    /// With paused tokio time, a deadline fires when its time comes, an
    /// earlier deadline added later wakes the sleeping task, and nothing
    /// fires early.
    #[tokio::test(start_paused = true)]
    async fn fires_at_deadlines_and_wakes_for_earlier_ones() {
        let scheduler = Arc::new(RefreshScheduler::new());
        let clock = Arc::new(PausedClock::new());
        let fired = Arc::new(StdMutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let t0 = clock.now();
        scheduler.schedule("late", Some(t0 + Duration::from_secs(50)));
        let task = {
            let (scheduler, clock, fired, shutdown) = (
                scheduler.clone(),
                clock.clone(),
                fired.clone(),
                shutdown.clone(),
            );
            tokio::spawn(async move {
                scheduler
                    .run(clock.as_ref(), &shutdown, MAX_SLEEP, |due| {
                        for name in due {
                            fired.lock().unwrap().push((name.to_string(), clock.now()));
                        }
                    })
                    .await;
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        scheduler.schedule("early", Some(t0 + Duration::from_secs(20)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        shutdown.cancel();
        task.await.unwrap();
        let fired = fired.lock().unwrap().clone();
        let names: Vec<_> = fired.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["early", "late"]);
        for ((_, at), due) in fired.iter().zip([20, 50]) {
            assert!(*at >= t0 + Duration::from_secs(due), "fired early");
        }
    }

    /// A suspend: the wall clock jumps while the monotonic timer does not
    /// advance. The overdue deadline fires within one capped sleep.
    #[tokio::test(start_paused = true)]
    async fn overdue_deadlines_fire_after_a_wall_clock_jump() {
        let scheduler = Arc::new(RefreshScheduler::new());
        let clock = Arc::new(OffsetClock::new());
        let fired = Arc::new(StdMutex::new(0));
        let shutdown = CancellationToken::new();
        scheduler.schedule("s", Some(clock.now() + Duration::from_secs(3 * 3600)));
        let task = {
            let (scheduler, clock, fired, shutdown) = (
                scheduler.clone(),
                clock.clone(),
                fired.clone(),
                shutdown.clone(),
            );
            tokio::spawn(async move {
                scheduler
                    .run(clock.as_ref(), &shutdown, MAX_SLEEP, |due| {
                        *fired.lock().unwrap() += due.len();
                    })
                    .await;
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*fired.lock().unwrap(), 0);
        clock.advance(Duration::from_secs(4 * 3600));
        tokio::time::sleep(MAX_SLEEP + Duration::from_secs(1)).await;
        assert_eq!(*fired.lock().unwrap(), 1);
        shutdown.cancel();
        task.await.unwrap();
    }

    /// The watchdog's beats stay at most their interval apart when the
    /// scheduler's other wake-ups come just before a beat is due (each
    /// deadline here falls a hair before the pacer's half interval).
    #[tokio::test(start_paused = true)]
    async fn beats_stay_within_their_interval_whatever_else_wakes_the_task() {
        let interval = Duration::from_secs(10);
        let scheduler = Arc::new(RefreshScheduler::new());
        let clock = Arc::new(PausedClock::new());
        let beats = Arc::new(StdMutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let task = {
            let (scheduler, clock, beats, shutdown) = (
                scheduler.clone(),
                clock.clone(),
                beats.clone(),
                shutdown.clone(),
            );
            tokio::spawn(async move {
                let mut pacer = BeatPacer::new(interval);
                let longest = pacer.longest_sleep();
                scheduler
                    .run(clock.as_ref(), &shutdown, longest, |_| {
                        let now = tokio::time::Instant::now();
                        if pacer.beat_due(now) {
                            beats.lock().unwrap().push(now);
                        }
                    })
                    .await;
            })
        };
        for _ in 0..20 {
            let at = clock.now() + Duration::from_millis(4_990);
            scheduler.schedule("refresh", Some(at));
            tokio::time::sleep(Duration::from_millis(4_990)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        let beats = beats.lock().unwrap().clone();
        assert!(beats.len() > 5, "{beats:?}");
        for pair in beats.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap <= interval, "beats {gap:?} apart");
        }
    }

    /// Wall time that follows tokio's (paused) clock.
    #[derive(Debug)]
    struct PausedClock {
        wall: SystemTime,
        start: tokio::time::Instant,
    }

    impl PausedClock {
        fn new() -> Self {
            Self {
                wall: SystemTime::now(),
                start: tokio::time::Instant::now(),
            }
        }
    }

    impl Clock for PausedClock {
        fn now(&self) -> SystemTime {
            self.wall + self.start.elapsed()
        }
    }
}
