//! A word in the log when a start-up step that touches the file system
//! does not come back: a state directory on a hung file system (an NFS
//! server gone, a frozen mount) would otherwise keep the start silent,
//! with no socket and no log line, until systemd's start timeout.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::warn;

use crate::systemd::notify;

/// How long a start-up step may take before the log says what the start
/// waits for. Such a step is a few file operations: milliseconds.
pub(super) const SLOW_START_STEP: Duration = Duration::from_secs(5);

/// Runs `step`, which does `what` (for the log: "taking the store's lock
/// at /path"), and says in the log and to systemd (`STATUS=`) when it has
/// not finished within [`SLOW_START_STEP`]. The step itself is not cut
/// short: the daemon cannot start without it, and a thread stuck in the
/// kernel on a hung file system cannot be cancelled.
pub(super) fn watch_start_step<T>(what: &str, step: impl FnOnce() -> T) -> T {
    let (finished, wait) = mpsc::channel::<()>();
    let message = format!(
        "the start has waited {}s for {what}: is its file system hung? tokend starts \
         when it answers",
        SLOW_START_STEP.as_secs()
    );
    let watcher = std::thread::Builder::new()
        .name("start-watch".into())
        .spawn(move || {
            if wait.recv_timeout(SLOW_START_STEP) == Err(RecvTimeoutError::Timeout) {
                warn!(event = "slow_start", "{message}");
                notify(&[NotifyState::Status(&message)]);
            }
        });
    let result = step();
    drop(finished);
    // The watcher ends at once when the step is done (its channel closes).
    if let Ok(watcher) = watcher {
        let _ = watcher.join();
    }
    result
}

/// Says in the log and to systemd that the start has waited
/// [`SLOW_START_STEP`] for the store `store` (its name) to give the stored
/// sessions: until then the socket is not bound, and clients are told no
/// tokend listens there.
pub(super) fn say_slow_restore(store: &str) {
    let message = format!(
        "the start has waited {}s for the {store} to give the stored sessions (a keyring \
         waiting for an unlock prompt, or not answering?): the socket opens once it has, or once \
         the store counts as down after `store_timeout`",
        SLOW_START_STEP.as_secs()
    );
    warn!(event = "slow_start", "{message}");
    notify(&[NotifyState::Status(&message)]);
}
