//! SIGHUP's reload, and systemd's `STATUS=` line, which says how the
//! sessions are and what the daemon has not taken from its config file
//! (a refused reload, `[daemon]` keys that wait for a restart).

use std::fmt::Write as _;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::{Config, Environment};
use crate::systemd::notify;

use super::signals::{Signal, Signals};

mod refusal;
mod settle;

use refusal::Refusal;
pub(super) use refusal::log_warnings;

/// Keeps systemd's `STATUS=` line current ("3 providers: 2 active, 1 login
/// required"), at most once a second however busy the broker is.
pub(super) async fn report_status(broker: Broker, stop: CancellationToken) {
    let mut events = broker.subscribe();
    let mut store = broker.store_changes();
    let mut last = status_line(&broker);
    loop {
        tokio::select! {
            event = events.recv() => {
                if matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
            changed = store.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = stop.cancelled() => return,
        }
        // Coalesce a burst of events into one update.
        tokio::select! {
            () = tokio::time::sleep(STATUS_COALESCE) => {}
            () = stop.cancelled() => return,
        }
        while events.try_recv().is_ok() {}
        let summary = status_line(&broker);
        if summary != last {
            notify(&[NotifyState::Status(&summary)]);
            last = summary;
        }
    }
}

/// How long a reload may go on once a stop is asked for: its waits for
/// refreshes end at once (`Broker::stop_waiting`), but a config load that
/// waits for the name service, or a store call to a keyring that hangs
/// (up to `store_timeout`, 120 s at most), does not; past this the reload
/// is abandoned and the stop goes on within its grace.
const RELOAD_STOP_GRACE: Duration = Duration::from_secs(3);

/// How long status updates are held back to coalesce bursts.
const STATUS_COALESCE: Duration = Duration::from_secs(1);

/// Reloads the config from its file once it is written (see [`settle`]);
/// a file a start would refuse changes nothing (see [`Refusal`]).
async fn reload(broker: &Broker, current: &Config, env: &Environment) {
    // MONOTONIC_USEC lets systemd (253+) match this reload to its request.
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now());
    notify(&states);
    info!(config = %current.path.display(), event = "reload_started", "reloading the config");
    let loaded = settle::load_settled(&current.path, env).await;
    let running = broker.provider_count();
    match loaded {
        Err(refusal) => {
            refusal.log();
            broker.reload_failed();
        }
        Ok(new) if new.providers.is_empty() && running > 0 => {
            Refusal::NoProviders { running }.log();
            broker.reload_failed();
        }
        Ok(new) => {
            refusal::log_warnings(&new.path, &new.warnings);
            let restart_needed = current.daemon.changed_keys(&new.daemon);
            if !restart_needed.is_empty() {
                warn!(
                    "[daemon] {} changed: that takes effect at the next restart; the running daemon keeps its settings",
                    restart_needed.join(", ")
                );
            }
            broker.reload_succeeded(restart_needed);
            let summary = broker.reload(&new).await;
            info!(
                added = ?summary.added,
                removed = ?summary.removed,
                changed = ?summary.changed,
                event = "reloaded",
                "config reloaded"
            );
        }
    }
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&status_line(broker)),
    ]);
}

/// systemd's `STATUS=` line: the sessions' summary, a store that cannot be
/// used (its sessions not yet read show as logged out, which alone would
/// invite a new login), and what the config file's standing adds (a failed
/// reload, a restart needed).
pub(super) fn status_line(broker: &Broker) -> String {
    let mut line = broker.summary();
    let store = broker.store_status();
    if let Some(outage) = &store.outage {
        let _ = write!(
            line,
            "; the {} is unavailable ({}): sessions not yet read from it wait",
            store.name, outage.reason
        );
    }
    if let Some(note) = broker.config_standing().status_note() {
        line.push_str("; ");
        line.push_str(&note);
    }
    line
}

/// Reloads, and returns whether a stop was asked for meanwhile.
///
/// A reload can wait long: for the refresh in flight of each session it
/// retires (up to `http_timeout`), for the store. A stop (SIGTERM) that
/// came then was read only after it, so `systemctl stop` outlasted the
/// unit's stop timeout and ended in SIGKILL. Now a stop makes the broker's
/// waits end ([`Broker::stop_waiting`]): the reload finishes at once and
/// the stop follows. Further reloads asked for meanwhile run after it.
pub(super) async fn reload_heeding_stop(
    signals: &mut Signals,
    broker: &Broker,
    current: &Config,
    env: &Environment,
) -> bool {
    let mut stop_asked = false;
    loop {
        let mut again = false;
        let reloading = reload(broker, current, env);
        tokio::pin!(reloading);
        let give_up = tokio::time::sleep(Duration::MAX);
        tokio::pin!(give_up);
        loop {
            tokio::select! {
                () = &mut reloading => break,
                signal = signals.next(), if !stop_asked => match signal {
                    Some(Signal::Reload) => again = true,
                    Some(Signal::Stop) | None => {
                        info!("a stop was asked for during the reload: it ends the reload's waits");
                        stop_asked = true;
                        broker.stop_waiting();
                        give_up
                            .as_mut()
                            .reset(tokio::time::Instant::now() + RELOAD_STOP_GRACE);
                    }
                },
                () = &mut give_up, if stop_asked => {
                    warn!(
                        "the reload did not end within {} s of the stop (a name service or a \
                         store that does not answer): abandoned, and the previous config stays \
                         until the stop",
                        RELOAD_STOP_GRACE.as_secs()
                    );
                    break;
                }
            }
        }
        if stop_asked || !again {
            return stop_asked;
        }
    }
}
