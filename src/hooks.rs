//! Telling the world when a session needs a person: the `on_event` program
//! and, for a daemon on the session bus, a desktop notification.
//!
//! Both follow broker events: `logged_in` (a login succeeded),
//! `login_required` (the provider ended the session), `refresh_failed`,
//! `refresh_token_expiring`; the program also follows the store:
//! `store_unavailable` (with why) and `store_available`, which concern no
//! provider. The program gets `EVENT` and `PROVIDER` (empty for the store's
//! events) in its environment and nothing secret: no token is in any
//! event. Runs are bounded so a hanging or slow
//! program cannot pile up: at most [`MAX_RUNNING`] at once (an event that
//! finds them all busy waits for one, in order, up to [`MAX_WAITING`]
//! events; one beyond is skipped, and the log says so), each killed after
//! [`RUN_TIMEOUT`] with every process it started (the run is a process
//! group of its own: a script's `curl` goes with the script). A stop does
//! not wait for runs: it kills the groups of those still going (systemd
//! would end them with the unit, but not every tokend runs under it), and
//! the events still waiting are not run (the log says how many). The
//! program's file is checked and started on the blocking pool, so a file
//! system that hangs holds that run only. A notification server that does not answer holds nothing: each
//! notification is sent on its own, for at most [`NOTIFY_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zbus::Connection;

use crate::broker::{AttentionKind, Broker, BrokerEvent, StoreState};

/// Runs of the `on_event` program at once.
pub const MAX_RUNNING: usize = 4;

/// Events that wait for a run while [`MAX_RUNNING`] are going, few enough
/// that a hung webhook does not pile up work: past it, an event is
/// skipped, unless it needs a person ([`MAX_WAITING_FOR_A_PERSON`]).
pub const MAX_WAITING: usize = 64;

/// Events that need a person (`login_required`, `refresh_token_expiring`,
/// `store_unavailable`) wait up to this many: enough for every session of
/// a large config to need a person at once (a password change at the
/// provider ends them all), behind a queue full of `logged_in` and
/// `refreshed` runs that once took their places.
pub const MAX_WAITING_FOR_A_PERSON: usize = 1024;

/// Whether `event` may wait for a run behind `waiting` others.
fn may_wait(event: &str, waiting: usize) -> bool {
    let cap = if needs_a_person(event) || ends_a_need(event) {
        MAX_WAITING_FOR_A_PERSON
    } else {
        MAX_WAITING
    };
    waiting < cap
}

/// Whether `event` asks a person to act: never skipped for the
/// informational ones waiting before it.
fn needs_a_person(event: &str) -> bool {
    event == AttentionKind::LoginRequired.name()
        || event == AttentionKind::RefreshTokenExpiring.name()
        || event == "store_unavailable"
}

/// Whether `event` says a need of a person is over (`logged_in` after
/// `login_required`, `store_available` after `store_unavailable`): it waits
/// as long as the need did, or a hook that raised an alert on the one
/// would never hear the other and keep the alert up for good.
fn ends_a_need(event: &str) -> bool {
    event == "logged_in" || event == "store_available"
}

/// Skipped events' lines: a hung hook skips every event that comes (the
/// audit saw 716 lines in a second), so they are counted into a few lines.
static SKIPPED: crate::broker::refusal_log::RefusalLog =
    crate::broker::refusal_log::RefusalLog::new();

/// A run still going after this long is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// A desktop notification not answered within this long is given up.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// An event for the outside, as hooks name it.
struct Happened<'a> {
    provider: &'a str,
    event: &'static str,
    reason: Option<&'a str>,
}

fn happened(event: &BrokerEvent) -> Option<Happened<'_>> {
    match event {
        BrokerEvent::LoginFinished {
            provider, ok: true, ..
        } => Some(Happened {
            provider,
            event: "logged_in",
            reason: None,
        }),
        BrokerEvent::Attention {
            provider,
            kind,
            reason,
        } => Some(Happened {
            provider,
            event: kind.name(),
            reason: Some(reason),
        }),
        _ => None,
    }
}

/// Follows `broker`'s events (`events`, subscribed before the broker
/// started, so that a session's first refresh, which may fail at once, is
/// not missed) until `shutdown`: runs `program` (argv, may be empty: none)
/// and, when `desktop` is a session-bus connection, shows a notification
/// for sessions that need a login.
pub async fn follow_events(
    broker: Broker,
    mut events: crate::broker::EventFeed,
    program: Vec<String>,
    socket: PathBuf,
    desktop: Option<Connection>,
    shutdown: CancellationToken,
) {
    if program.is_empty() && desktop.is_none() {
        return;
    }
    let mut store = broker.store_changes();
    let slots = Arc::new(Semaphore::new(MAX_RUNNING));
    let waiting = Arc::new(AtomicUsize::new(0));
    let runner = Runner {
        program: &program,
        socket: &socket,
        slots: &slots,
        waiting: &waiting,
    };
    // The hooks follow from the end of start-up: a store already down
    // then (a keyring locked at boot) is said now, as it would have been.
    let mut store_was_available = true;
    let state = store.borrow_and_update().clone();
    runner.store_changed(&mut store_was_available, state);
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            changed = store.changed() => {
                // (The broker, alive here, keeps the sender.)
                if changed.is_err() {
                    return;
                }
                let state = store.borrow_and_update().clone();
                runner.store_changed(&mut store_was_available, state);
                continue;
            }
            () = shutdown.cancelled() => {
                let left = waiting.load(Ordering::SeqCst);
                if left > 0 {
                    info!("{left} on_event runs that waited for a free one were not started: tokend is stopping");
                }
                return;
            }
        };
        // (A feed loses no event: one behind a burst folds repeats.)
        let Some(event) = event else {
            return;
        };
        let Some(what) = happened(&event) else {
            continue;
        };
        if let Some(bus) = &desktop {
            let needs = if what.event == AttentionKind::LoginRequired.name() {
                Some("needs a login")
            } else if what.event == AttentionKind::RefreshTokenExpiring.name() {
                Some("needs a new login soon")
            } else {
                None
            };
            if let Some(needs) = needs {
                // On its own: a notification server that takes its time
                // (or never answers) must not hold the program's runs.
                let (bus, provider) = (bus.clone(), what.provider.to_owned());
                tokio::spawn(async move {
                    if tokio::time::timeout(NOTIFY_TIMEOUT, notify(&bus, &provider, needs))
                        .await
                        .is_err()
                    {
                        debug!(
                            provider,
                            "no desktop notification: no answer within {} s",
                            NOTIFY_TIMEOUT.as_secs()
                        );
                    }
                });
            }
        }
        runner.spawn(
            what.provider.to_owned(),
            what.event,
            what.reason.map(str::to_owned),
        );
    }
}

/// Starts runs of the `on_event` program, within [`MAX_RUNNING`].
struct Runner<'a> {
    program: &'a [String],
    socket: &'a Path,
    slots: &'a Arc<Semaphore>,
    /// Events waiting for a slot.
    waiting: &'a Arc<AtomicUsize>,
}

impl Runner<'_> {
    /// Runs the program when the store became unavailable or available
    /// again (`was_available` says how it was last said to be). A new
    /// reason during an outage is no event for the program.
    fn store_changed(&self, was_available: &mut bool, state: StoreState) {
        if state.is_available() == *was_available {
            return;
        }
        *was_available = state.is_available();
        let (event, reason) = match state {
            StoreState::Available => ("store_available", None),
            StoreState::Unavailable { error, .. } => ("store_unavailable", Some(error.to_string())),
        };
        self.spawn(String::new(), event, reason);
    }

    /// Runs the program for `event` of `provider` (empty for the store's
    /// events), at once or when a slot is free (in order), unless there is
    /// no program or [`MAX_WAITING`] events wait already.
    fn spawn(&self, provider: String, event: &'static str, reason: Option<String>) {
        if self.program.is_empty() {
            return;
        }
        let slot = Arc::clone(self.slots).try_acquire_owned().ok();
        if slot.is_none() {
            let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
            if !may_wait(event, waiting) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                if let Some(untold) = SKIPPED.admit(std::time::Instant::now()) {
                    let earlier = crate::broker::refusal_log::not_logged_note_of(untold, "skips");
                    warn!(
                        provider,
                        hook_event = event,
                        event = "on_event_skipped",
                        "on_event skipped: {MAX_RUNNING} runs are still going and {waiting} \
                         events wait{earlier}"
                    );
                }
                return;
            }
        }
        let (argv, socket) = (self.program.to_vec(), self.socket.to_owned());
        // When it happened, for a hook that runs late (behind a hung one).
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (slots, waiting) = (Arc::clone(self.slots), Arc::clone(self.waiting));
        // Not a tracked task: a stop does not wait for the program (its
        // run would hold every stop up to the grace, and be reported as a
        // request left unanswered).
        tokio::spawn(async move {
            // The semaphore hands slots out in the order they were asked.
            let slot = if let Some(slot) = slot {
                slot
            } else {
                let slot = slots.acquire_owned().await;
                waiting.fetch_sub(1, Ordering::SeqCst);
                let Ok(slot) = slot else { return };
                slot
            };
            let what = Run {
                provider: &provider,
                event,
                reason: reason.as_deref(),
                at,
            };
            run(&argv, &socket, &what, RUN_TIMEOUT).await;
            drop(slot);
        });
    }
}

/// What one run of the program is told.
struct Run<'a> {
    provider: &'a str,
    event: &'a str,
    reason: Option<&'a str>,
    /// When the event happened, in Unix seconds (`EVENT_TIME`).
    at: u64,
}

/// One run of the program, killed with the processes it started after
/// `timeout` ([`RUN_TIMEOUT`]).
async fn run(argv: &[String], socket: &Path, what: &Run<'_>, timeout: Duration) {
    let Some((program, arguments)) = argv.split_first() else {
        return;
    };
    let Run {
        provider,
        event,
        reason,
        at,
    } = *what;
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        // Empty for the store's events: set all the same, as the contract
        // promises the program PROVIDER and EVENT (a script under `set -u`).
        .env("PROVIDER", provider)
        .env("EVENT", event)
        .env("EVENT_TIME", at.to_string())
        // The daemon's socket, for a `tokenctl` the program runs: whatever
        // the config chose, and not found by way of $RUNTIME_DIRECTORY,
        // which a client does not read.
        .env("TOKEND_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // A group of its own, so that the timeout ends what the program
        // started too (a script's `curl` to a webhook that hangs).
        .process_group(0)
        .kill_on_drop(true);
    if let Some(reason) = reason {
        command.env("REASON", reason);
    }
    let mut child = match start(command, program, timeout).await {
        Ok(child) => child,
        Err(problem) => {
            warn!(
                provider,
                hook_event = event,
                event = "on_event_failed",
                "on_event: {problem}"
            );
            return;
        }
    };
    // Until the run ends: a stop (the runtime dropping this task) ends
    // the group too, or a script's jobs outlived tokend for good where no
    // systemd ends the unit's processes.
    let mut group = GroupKill(
        child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id.cast_signed())),
    );
    let failed = |problem: String| {
        warn!(
            provider,
            hook_event = event,
            event = "on_event_failed",
            "on_event {program} {problem}"
        );
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            debug!(provider, event, "on_event ran");
        }
        Ok(Ok(status)) => failed(format!("ended with {status}")),
        Ok(Err(e)) => failed(e.to_string()),
        Err(_) => {
            // The group first (the program leads it: its id is the
            // group's), then the program itself, reaped.
            group.kill();
            let _ = child.kill().await;
            failed(format!("was killed after {} s", timeout.as_secs()));
        }
    }
    // Ended: a job it left running in the background is its own.
    group.0 = None;
}

/// Checks `program` (at load too; again here, as it may have changed
/// since) and starts `command`, on the blocking pool: both are system
/// calls on the program's file system, and one that hangs (an NFS home, a
/// stalled FUSE mount) held the daemon's event loop, every request,
/// refresh and watchdog ping with it, for as long as it hung. Given up
/// after `timeout` (the thread may stay blocked; a child it starts later
/// is killed as it is dropped).
async fn start(
    mut command: tokio::process::Command,
    program: &str,
    timeout: Duration,
) -> Result<tokio::process::Child, String> {
    // A start that hangs keeps its thread of the blocking pool even once
    // given up; past [`MAX_STUCK_STARTS`] of them, no more are begun: a
    // steady stream of events would otherwise fill the pool, on which the
    // store's calls and the socket's connections wait too.
    if STUCK_STARTS.fetch_add(1, Ordering::SeqCst) >= MAX_STUCK_STARTS {
        STUCK_STARTS.fetch_sub(1, Ordering::SeqCst);
        return Err(format!(
            "{program} is not started: {MAX_STUCK_STARTS} earlier starts of it have not returned (does its file system answer?)"
        ));
    }
    let path = PathBuf::from(program);
    let started = tokio::task::spawn_blocking(move || {
        // Counted until the system calls return, however long after the
        // run gave them up.
        let _returned = StartReturned;
        let owners = crate::trusted_path::Owners::daemon();
        crate::trusted_path::check_file(&path, owners)
            .map_err(|untrusted| format!("tokend will not run {}: {untrusted}", path.display()))?;
        command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))
    });
    match tokio::time::timeout(timeout, started).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("cannot run {program}: {e}")),
        Err(_) => Err(format!(
            "{program} could not be started within {} s (does its file system answer?)",
            timeout.as_secs()
        )),
    }
}

/// Starts of the program on the blocking pool that have not returned yet
/// (see [`start`]).
static STUCK_STARTS: AtomicUsize = AtomicUsize::new(0);

/// The starts not returned at once past which no more are begun: as many
/// as runs go at once, so that only starts that hang (kept after their
/// runs gave them up) ever reach it.
const MAX_STUCK_STARTS: usize = MAX_RUNNING;

/// Counts a start as returned when dropped.
struct StartReturned;

impl Drop for StartReturned {
    fn drop(&mut self) {
        STUCK_STARTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Kills a run's process group when dropped: the run's task dropped
/// before the run ended, at a stop.
struct GroupKill(Option<rustix::process::Pid>);

impl GroupKill {
    fn kill(&self) {
        if let Some(group) = self.0 {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A desktop notification (freedesktop Notifications) that `provider`
/// `needs` a login, with the command that does it.
async fn notify(bus: &Connection, provider: &str, needs: &str) {
    let summary = format!("tokend: {provider} {needs}");
    let body = format!("Run: tokenctl login {provider}");
    let hints: std::collections::HashMap<&str, zbus::zvariant::Value<'_>> =
        std::collections::HashMap::new();
    let sent = bus
        .call_method(
            Some("org.freedesktop.Notifications"),
            "/org/freedesktop/Notifications",
            Some("org.freedesktop.Notifications"),
            "Notify",
            &(
                "tokend",
                0_u32,
                "",
                summary.as_str(),
                body.as_str(),
                Vec::<&str>::new(),
                hints,
                -1_i32,
            ),
        )
        .await;
    match sent {
        Ok(_) => info!(provider, event = "notified", "desktop notification shown"),
        Err(e) => debug!(provider, "no desktop notification: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether process `pid` is gone (or dead, waiting to be reaped by
    /// whoever inherited it).
    fn gone(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    }

    /// A queue full of informational events does not turn away one that
    /// needs a person, or one that ends a need: with a hook slower than events come (a hung
    /// webhook), 64 queued `logged_in` runs made every `login_required`
    /// of a revocation be skipped.
    #[test]
    fn events_that_need_a_person_wait_past_a_full_queue() {
        for informational in ["refreshed", "refresh_failed"] {
            assert!(may_wait(informational, MAX_WAITING - 1), "{informational}");
            assert!(!may_wait(informational, MAX_WAITING), "{informational}");
        }
        // And those that end a need wait as long: a hook that raised an
        // alert at `login_required` never heard the `logged_in` that came
        // minutes later, skipped, and kept the alert up for good.
        for attention in [
            "login_required",
            "refresh_token_expiring",
            "store_unavailable",
            "logged_in",
            "store_available",
        ] {
            assert!(may_wait(attention, MAX_WAITING), "{attention}");
            assert!(
                may_wait(attention, MAX_WAITING_FOR_A_PERSON - 1),
                "{attention}"
            );
            assert!(
                !may_wait(attention, MAX_WAITING_FOR_A_PERSON),
                "{attention}"
            );
        }
    }

    /// A run past its time is killed with what it started: a script's
    /// background job (a webhook's `curl`) outlived the script before, and
    /// runs piled up beyond [`MAX_RUNNING`] while a webhook hung.
    #[tokio::test]
    async fn a_run_past_its_time_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let argv = ["/bin/sh".to_owned(), "-c".to_owned(), script];
        let what = Run {
            provider: "demo",
            event: "refresh_failed",
            reason: None,
            at: 0,
        };
        run(&argv, dir.path(), &what, Duration::from_secs(1)).await;
        let started = std::fs::read_to_string(&pid_file).unwrap();
        let pid = started.trim();
        assert!(!pid.is_empty());
        // Killed at once; a moment for the kernel to tear it down.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "the script's background job {pid} outlived the run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
