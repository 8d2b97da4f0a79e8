//! The watchdog's beat, and the socket it checks on each: a daemon whose
//! socket was removed or replaced under it (by hand, by a cleanup job, by
//! another daemon) serves no one at that path and would never notice. The
//! beat notices, and the daemon stops as for SIGTERM and exits 1, as when
//! it loses its bus, so that the service manager starts it again and the
//! new one binds the path.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::broker::Heartbeat;
use crate::ipc::socket;
use sd_notify::NotifyState;

use crate::systemd::notify;

/// The daemon's socket as bound, and whether it is gone.
#[derive(Debug, Default)]
pub(super) struct SocketWatch {
    /// The path and its identity (see [`socket::identity`]), once bound.
    bound: OnceLock<(PathBuf, Option<(u64, u64)>)>,
    /// Cancelled once the socket at the path is not this one.
    lost: CancellationToken,
}

/// Why the daemon stopped: its socket is not there any more.
#[derive(Debug, thiserror::Error)]
#[error("the socket {} was removed or replaced: clients cannot reach tokend there", path.display())]
pub struct SocketLost {
    /// The socket's path.
    pub path: PathBuf,
}

impl SocketWatch {
    /// Records the socket bound at `path`.
    pub(super) fn bound(&self, path: PathBuf, identity: Option<(u64, u64)>) {
        let _ = self.bound.set((path, identity));
    }

    /// Waits until the socket is found gone.
    pub(super) async fn lost(&self) -> SocketLost {
        self.lost.cancelled().await;
        SocketLost {
            path: self
                .bound
                .get()
                .map(|(path, _)| path.clone())
                .unwrap_or_default(),
        }
    }

    /// Whether the socket at the path is still this one (cancels `lost`
    /// the first time it is not).
    fn still_there(&self) -> bool {
        let Some((path, identity)) = self.bound.get() else {
            return true;
        };
        if socket::identity(path) == *identity {
            return true;
        }
        self.lost.cancel();
        false
    }
}

/// Feeds systemd's watchdog from the broker's scheduler task when
/// `WatchdogSec=` is set, at half the timeout, checking on each beat that
/// the socket is still there. A socket found gone is not fed for: should
/// the stop it starts hang, the watchdog ends it.
pub(super) fn watchdog_heartbeat(watch: Arc<SocketWatch>) -> Option<Heartbeat> {
    let timeout = sd_notify::watchdog_enabled()?;
    info!(timeout_ms = timeout.as_millis(), "watchdog enabled");
    Some(Heartbeat {
        interval: ping_interval(timeout),
        beat: Box::new(move || {
            if watch.still_there() {
                notify(&[NotifyState::Watchdog]);
            } else {
                debug!("watchdog ping withheld: the socket is gone");
            }
        }),
    })
}

/// How often the watchdog is fed for a timeout of `timeout`
/// (`WATCHDOG_USEC`): half of it, as sd_watchdog_enabled(3) advises, so
/// that a beat a little late still comes in time.
fn ping_interval(timeout: Duration) -> Duration {
    timeout / 2
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ping_interval;

    /// The watchdog is fed at half its timeout: fed once a timeout, any
    /// beat a little late (a busy scheduler, a slow store call) let the
    /// service manager kill a daemon that was working.
    #[test]
    fn the_watchdog_is_fed_at_half_its_timeout() {
        for (timeout_us, interval_us) in [(30_000_000, 15_000_000), (3_000_000, 1_500_000)] {
            assert_eq!(
                ping_interval(Duration::from_micros(timeout_us)),
                Duration::from_micros(interval_us),
                "WATCHDOG_USEC={timeout_us}"
            );
        }
    }
}
