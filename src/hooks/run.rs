//! One run of the `on_event` program: started aside from the daemon's work,
//! in a process group of its own, killed with what it started after its
//! time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tracing::{debug, warn};

use super::MAX_RUNNING;
#[cfg(doc)]
use super::RUN_TIMEOUT;

/// What one run of the program is told.
pub(super) struct Run<'a> {
    pub(super) provider: &'a str,
    pub(super) event: &'a str,
    pub(super) reason: Option<&'a str>,
    /// When the event happened, in Unix seconds (`EVENT_TIME`).
    pub(super) at: u64,
}

/// One run of the program, killed with the processes it started after
/// `timeout` ([`RUN_TIMEOUT`]).
pub(super) async fn run(argv: &[String], socket: &Path, what: &Run<'_>, timeout: Duration) {
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
        // Time for the shell to start its job and write the pid on a
        // loaded machine; then the run is killed, job and all.
        run(&argv, dir.path(), &what, Duration::from_secs(3)).await;
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
