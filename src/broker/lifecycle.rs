//! Starting and stopping the broker: restoring the stored sessions, the
//! refresh scheduler's task (which also feeds a watchdog), and a shutdown
//! that lets refreshes in flight save what they got.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use super::api::Broker;
use super::clock::{ClockStep, ClockWatch};
use super::scheduler;
use super::session::{Session, WorldChange};

/// A periodic proof of life from the broker's scheduler task.
pub struct Heartbeat {
    /// At most this long between beats.
    pub interval: Duration,
    /// Called on each beat.
    pub beat: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// How widely the refreshes that a clock set ahead made due are spread.
const CLOCK_AHEAD_SPREAD: Duration = Duration::from_secs(1);

impl Broker {
    /// Restores stored sessions and starts the refresh scheduler.
    ///
    /// With a `heartbeat`, the scheduler task beats at most `interval`
    /// apart (see `scheduler::BeatPacer`): it checks that every session's state can be
    /// locked, and calls `beat`: a watchdog fed from here stops being fed when the core
    /// is stuck, not merely when a timer runs.
    pub async fn start(&self, heartbeat: Option<Heartbeat>) {
        // From before the restore reads the clock: a clock set from then
        // on is seen at the scheduler's first wake-up.
        let mut clock_watch = ClockWatch::new(self.inner.shared.clock.as_ref());
        let providers = self.restore_all().await;
        self.spawn_store_watch();
        self.spawn_reread_watch();
        self.spawn_endpoint_recovery();
        let broker = self.clone();
        self.inner.shared.tasks.spawn(async move {
            let shared = Arc::clone(&broker.inner.shared);
            let mut pacer = heartbeat
                .as_ref()
                .map(|h| scheduler::BeatPacer::new(h.interval));
            let max_sleep = pacer.as_ref().map_or(
                scheduler::LONGEST_SLEEP,
                scheduler::BeatPacer::longest_sleep,
            );
            shared
                .scheduler
                .run(shared.clock.as_ref(), &shared.shutdown, max_sleep, |due| {
                    // The clock being set wakes the task (the wall-clock
                    // timer): the sessions' times move with it before the
                    // due ones start, or a clock set ahead would start
                    // every refresh at once (each due one checks again).
                    if let Some(step) = clock_watch.check(shared.clock.as_ref()) {
                        broker.clock_stepped(step);
                    }
                    // The heartbeat goes on while a stop waits for the
                    // requests in flight; new background refreshes do not.
                    let due = broker.wake_unless_held(due);
                    if let Some(due) = due
                        && !shared.background.is_cancelled()
                    {
                        for name in due {
                            if let Some(session) = broker.session(&name) {
                                session.refresh_if_due();
                            }
                        }
                    }
                    if let (Some(h), Some(pacer)) = (&heartbeat, &mut pacer)
                        && pacer.beat_due(tokio::time::Instant::now())
                    {
                        broker.sessions().iter().for_each(|s| s.probe());
                        (h.beat)();
                    }
                })
                .await;
        });
        info!(providers, "broker started");
    }

    /// Moves every session's times, and the token endpoints' asked waits,
    /// with the wall clock, which was set by `step` (set ahead, not the
    /// access tokens' expiries: see `machine::clock_step`).
    pub(super) fn clock_stepped(&self, step: ClockStep) {
        match step {
            ClockStep::Back(_) => info!(
                step = %step,
                "the wall clock was set {step}: token expiries and planned refreshes move with it"
            ),
            ClockStep::Ahead(_) => info!(
                step = %step,
                "the wall clock was set {step}: access tokens are taken as that much older (the time may have passed unseen, as in a virtual machine that was paused), planned waits move with it"
            ),
        }
        for session in self.sessions() {
            session.clock_stepped(step);
        }
        // Set ahead, tokens kept their expiries (the time may have passed
        // unseen: a paused virtual machine): those now due go spread over
        // a second, as after a resume, not all at this instant.
        if matches!(step, ClockStep::Ahead(_)) {
            let moved = self.retry_waiting_refreshes(CLOCK_AHEAD_SPREAD, WorldChange::Resumed);
            if moved > 0 {
                info!(
                    sessions = moved,
                    "{moved} refresh(es) due after the clock was set ahead start within a second"
                );
            }
        }
        let limits = self
            .inner
            .endpoint_limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for limit in limits.values() {
            limit.clock_stepped(step);
        }
    }

    /// Ends every device login still waiting (for its code, or for the
    /// person to approve it), and refuses new ones: their callers are told
    /// [`BrokerError::ShuttingDown`](super::BrokerError::ShuttingDown).
    /// Called first when the daemon stops. A person may take minutes, so a
    /// login is not work in flight to wait for, and the stream of a
    /// client waiting for it ends only with it. A login whose tokens have
    /// arrived is not cut short: it saves them (as a refresh does), within
    /// [`Self::shutdown`]'s grace.
    pub fn end_logins(&self) {
        self.inner.shared.logins.cancel();
    }

    /// A stop has begun: no refresh is sent from now on, background ones
    /// (the scheduler's due ones, a reload's) not started, those a request
    /// asks for (or that wait for their endpoint's permit) answered
    /// "shutting down". One sent during the stop's wait for the requests
    /// in flight would have only the rest of the grace to finish in, and
    /// one cut short may cost the session (a rotated refresh token never
    /// saved): behind a slow endpoint's queue, requests' refreshes were
    /// sent seconds into the stop and answered after it. Refreshes
    /// already sent are waited for.
    pub fn end_refreshes(&self) {
        self.inner.shared.background.cancel();
    }

    /// A stop is on its way: what waits inside the broker (a reload's wait
    /// for a refresh in flight, requests waiting for one) ends now, with
    /// "shutting down", rather than hold the stop. [`Self::shutdown`]
    /// follows, and waits for the work itself within its grace.
    pub fn stop_waiting(&self) {
        self.inner.shared.shutdown.cancel();
    }

    /// Stops the scheduler and logins, and waits (at most `grace`) for
    /// refreshes in flight, and logins whose tokens have arrived, to finish
    /// and save what they got; then tries once more to write each session
    /// whose write failed (`write_before_stop`). Whether
    /// everything finished, and was written, in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let started = std::time::Instant::now();
        let shared = &self.inner.shared;
        shared.shutdown.cancel();
        shared.tasks.close();
        let finished = tokio::time::timeout(grace, shared.tasks.wait())
            .await
            .is_ok();
        let written = self
            .write_before_stop(grace.saturating_sub(started.elapsed()))
            .await;
        if !finished {
            self.report_unfinished();
        }
        finished && written
    }

    /// Names each session whose work the stop cut short: its refresh token
    /// may be lost. A provider that rotates refresh tokens may have
    /// answered, or be about to, with a new one that no one will save, and
    /// the stored one is then spent; a write that never returned (a
    /// keyring that hangs) held the new one. Sessions whose write failed
    /// are named by `write_before_stop` already.
    fn report_unfinished(&self) {
        let retired = std::mem::take(
            &mut *self
                .inner
                .retired_unfinished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for session in self.sessions().iter().chain(&retired) {
            if session.is_store_dirty() {
                continue;
            }
            if let Some(what) = session.unfinished_work() {
                error!(
                    provider = %session.name,
                    event = "unfinished_at_stop",
                    "{what} when tokend stopped: if the provider rotated the refresh token meanwhile, the stored one no longer works and the next start needs `tokenctl login {}`",
                    session.name
                );
            }
        }
    }

    /// A session whose store write failed holds in memory alone what the
    /// store should have: the newest refresh token (the stored one may
    /// already be rotated away), or a logout whose delete failed. A stop
    /// would lose it, and the next start would read the store's older copy,
    /// so each is tried once more (within `within`, at least a second);
    /// each that still fails is logged as an error naming what the next
    /// start will find. Whether every one was written.
    async fn write_before_stop(&self, within: Duration) -> bool {
        // Records the store lost and no probe has written again yet.
        self.save_lost_records_again().await;
        let dirty: Vec<Arc<Session>> = self
            .sessions()
            .into_iter()
            .filter(|s| s.is_store_dirty())
            .collect();
        if dirty.is_empty() {
            return true;
        }
        let attempt = async {
            for session in &dirty {
                let _ = session.save_if_dirty().await;
            }
        };
        let _ = tokio::time::timeout(within.max(Duration::from_secs(1)), attempt).await;
        let mut all = true;
        for session in dirty.iter().filter(|s| s.is_store_dirty()) {
            all = false;
            let owes_a_delete = session.owes_a_logouts_delete();
            let logout_noted = self.inner.shared.store.remembers_logout(&session.name);
            if owes_a_delete && logout_noted {
                // Not lost: the journal has it (see `store::logout_journal`).
                warn!(
                    provider = %session.name,
                    event = "logout_pending_at_stop",
                    "the store could not delete the record of this logged-out session before \
                     the stop: the logout is noted beside the store, and the next start deletes \
                     the record once the store works"
                );
                continue;
            }
            // A logout's record: the next start finds the session again,
            // so say what undoes that, not what a lost refresh token needs.
            let what = if owes_a_delete {
                format!(
                    "the store could not delete the record of this logged-out session before \
                     the stop: the next start finds the session again; run `tokenctl logout {}` \
                     once the store works",
                    session.name
                )
            } else if logout_noted {
                // A login after a logout the store never carried out: the
                // noted logout deletes the older record at the next start,
                // so nothing of the session comes back.
                format!(
                    "the store could not save this session's login before the stop: the next \
                     start deletes the record from before its logout and finds the session \
                     logged out; run `tokenctl login {}` then",
                    session.name
                )
            } else {
                format!(
                    "the store could not be written before the stop: the next start reads its \
                     older copy of the session (a refresh token that may no longer work); if it \
                     fails, run `tokenctl login {}`",
                    session.name
                )
            };
            error!(provider = %session.name, event = "unsaved_at_stop", "{what}");
        }
        all
    }
}
