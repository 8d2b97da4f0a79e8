//! The daemon's life: build the broker, serve, stop cleanly.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::broker::{Broker, BrokerEvent, BrokerParts, SystemClock};
use crate::config::{Config, DaemonConfig, Environment};
use crate::ipc::dbus::{BusLost, DbusService};
use crate::ipc::socket;
use crate::provider::HttpClient;
use crate::provider::ca_paths::unusable_ca_paths;
use crate::systemd::notify;

mod open_files;
mod reload;
mod signals;
mod slow_start;
mod socket_watch;
mod store_lock;
mod store_open;

use reload::{log_warnings, reload_heeding_stop, report_status, status_line};
pub use signals::{HeldSignals, hold_signals};
use signals::{Signal, Signals};
pub use socket_watch::SocketLost;
use socket_watch::{SocketWatch, watchdog_heartbeat};
pub use store_lock::{Pruned, prune, store_lock_target};
use store_open::lock_and_open_store;
pub use store_open::open_store;

/// How long, in all, requests and refreshes in flight get to finish at
/// shutdown (device logins waiting for a person end at once): long enough
/// for a slow provider's answer, whose new refresh token would otherwise
/// be lost, and within the units' `TimeoutStopSec=30s`, after which
/// systemd kills the daemon.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Makes the process harder to attack from the same uid, as ssh-agent
/// does: no core dumps and no ptrace attach (non-dumpable), and files it
/// creates are private (umask 077). Called first thing in `main`, before
/// the config (and the client secrets it names) is read.
///
/// # Errors
/// The kernel refused to make the process non-dumpable (the umask is set
/// regardless).
pub fn harden_process() -> rustix::io::Result<()> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
}

/// A failure the daemon cannot recover from in-process, which made it
/// stop (as for SIGTERM) after logging it as it happened: `main` only turns
/// it into a failed exit status, which the units restart.
#[derive(Debug, thiserror::Error)]
pub enum DaemonFailure {
    /// The D-Bus connection was lost.
    #[error(transparent)]
    BusLost(#[from] BusLost),
    /// The socket was removed or replaced under the daemon (found by the
    /// watchdog's beat).
    #[error(transparent)]
    SocketLost(#[from] SocketLost),
}

/// The HTTP client all providers share, and a word on each CA path of the
/// environment it could not read (see `provider::ca_paths`).
fn http_client(daemon: &DaemonConfig) -> anyhow::Result<HttpClient> {
    let http = HttpClient::new(daemon.http_timeout)?;
    for problem in unusable_ca_paths(&|name| std::env::var(name).ok()) {
        warn!(event = "ca_path_unreadable", "{problem}");
    }
    Ok(http)
}

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the config.
/// `held` holds those signals back since `main` began (see
/// [`hold_signals`]): one that came while the config was read is handled
/// here, a stop by ending the start, a reload by reloading once the daemon
/// is up.
///
/// # Errors
/// Set-up failed (socket, bus, HTTP client, signal handlers), or the
/// daemon stopped for a [`DaemonFailure`] (already logged).
pub async fn run(mut config: Config, env: Environment, held: HeldSignals) -> anyhow::Result<()> {
    // Signal handlers first, then the signals let through: a SIGTERM or
    // SIGHUP that arrives during start-up must be handled, not kill us
    // with the default action.
    let mut signals = Signals::new(held)?;
    prepare_process(&config);
    let store = lock_and_open_store(&config, &env)?;
    let http = http_client(&config.daemon)?;
    // Each session keeps its provider's config, taken from here: a second
    // copy would only cost memory (a reload compares with the sessions').
    let providers = std::mem::take(&mut config.providers);
    let broker = Broker::new(
        &config.daemon,
        providers,
        BrokerParts {
            store,
            clock: Arc::new(SystemClock),
            http,
            owner_uid: rustix::process::geteuid().as_raw(),
        },
    );
    config.warnings = Vec::new();
    let socket_watch = Arc::new(SocketWatch::default());
    // The restore waits on the store, each call for up to `store_timeout`
    // (a keyring prompt nobody answers): a listing and a batch before the
    // store counts as down, which with `store_timeout` over 30 s outlasts
    // systemd's default start timeout (90 s). Ask systemd for that long.
    // And say what the start waits for: reading thousands of sessions
    // from a keyring takes a while, with no socket yet.
    let reading = format!(
        "starting: reading the stored sessions from the {}",
        broker.store_status().name
    );
    notify(&[
        NotifyState::ExtendTimeoutUsec(start_allowance_usec(config.daemon.store_timeout)),
        NotifyState::Status(&reading),
    ]);
    let hooks = crate::hooks::HookFeeds::follow(&broker); // before the start: see HookFeeds
    let Some(reload_when_up) = start_broker(&broker, &mut signals, Arc::clone(&socket_watch)).await
    else {
        info!("stopping during start-up");
        notify(&[NotifyState::Stopping]);
        return Ok(());
    };

    let listener = bind_socket(&config.daemon, &broker).await?;
    // Removed at the end only if it is still this socket.
    let bound = socket::identity(&config.daemon.socket);
    socket_watch.bound(config.daemon.socket.clone(), bound);
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let server = tokio::spawn(socket::serve(
        listener,
        broker.clone(),
        stop.clone(),
        connections.clone(),
    ));
    info!(socket = %config.daemon.socket.display(), "listening");
    let dbus = match DbusService::start(
        config.daemon.bus,
        broker.clone(),
        stop.clone(),
        &connections,
    )
    .await
    {
        Ok(dbus) => dbus,
        Err(e) => {
            // Not started: leave no socket that nothing answers.
            stop.cancel();
            let _ = server.await;
            socket::remove_bound(&config.daemon.socket, bound);
            abandon_start(&broker).await;
            return Err(e.into());
        }
    };
    // Ready only now: the socket is bound and the bus name is ours.
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&status_line(&broker)),
    ]);
    let code_pages = follow_events(
        &broker,
        hooks,
        &config.daemon,
        dbus.as_ref(),
        &stop,
        &connections,
    );

    let current = config;
    // A reload asked for during the start, heeding a stop as any reload.
    let stopped_in_reload =
        reload_when_up && reload_heeding_stop(&mut signals, &broker, &current, &env).await;
    if reload_when_up {
        code_pages.notify_one();
    }
    let failure = if stopped_in_reload {
        None
    } else {
        serve_until_stop(
            &mut signals,
            dbus.as_ref(),
            &socket_watch,
            &broker,
            &current,
            &env,
            &code_pages,
        )
        .await
    };

    stop_daemon(&broker, &stop, server, dbus, &connections).await;
    socket::remove_bound(&current.daemon.socket, bound);
    failure.map_or(Ok(()), |failure| Err(failure.into()))
}

/// Serves, reloading on SIGHUP, until SIGTERM or SIGINT (`None`) or until
/// a failure the daemon must stop for, which is logged here, as it happens.
async fn serve_until_stop(
    signals: &mut Signals,
    dbus: Option<&DbusService>,
    socket_watch: &SocketWatch,
    broker: &Broker,
    current: &Config,
    env: &Environment,
    code_pages: &Notify,
) -> Option<DaemonFailure> {
    loop {
        let signal = tokio::select! {
            signal = signals.next() => signal,
            lost = bus_lost(dbus) => {
                // No reconnection in-process: a new connection would need
                // the name, the match rules and the peers taken afresh,
                // and clients would see the name change owner all the
                // same. A restart does all of that cleanly, and the
                // watchdog, fed by the core, would never ask for one.
                let failure = DaemonFailure::from(lost);
                error!("{failure}: stopping, so that the service manager starts tokend again");
                return Some(failure);
            }
            lost = socket_watch.lost() => {
                let failure = DaemonFailure::from(lost);
                error!("{failure}: stopping, so that the service manager starts tokend again");
                return Some(failure);
            }
        };
        match signal {
            Some(Signal::Reload) => {
                let stop_asked = reload_heeding_stop(signals, broker, current, env).await;
                code_pages.notify_one();
                if stop_asked {
                    return None;
                }
            }
            Some(Signal::Stop) | None => return None,
        }
    }
}

/// Waits for the loss of the D-Bus connection; for ever without one.
async fn bus_lost(dbus: Option<&DbusService>) -> BusLost {
    match dbus {
        Some(dbus) => dbus.lost().await,
        None => std::future::pending().await,
    }
}

/// Starts what follows the broker's events and the world's: systemd's
/// `STATUS=`, the `on_event` program and desktop notifications (from
/// `hooks`, subscribed before the broker started), the network and resume
/// watchers, and the release of start-up's code pages; returns what asks
/// for that release again.
fn follow_events(
    broker: &Broker,
    hook_events: crate::hooks::HookFeeds,
    daemon: &DaemonConfig,
    dbus: Option<&DbusService>,
    stop: &CancellationToken,
    connections: &TaskTracker,
) -> Arc<Notify> {
    connections.spawn(report_status(broker.clone(), stop.clone()));
    // Desktop notifications only from a daemon on a session bus: a system
    // service has no desktop to show them on.
    let desktop = dbus
        .filter(|_| daemon.notify && daemon.bus == crate::config::BusKind::Session)
        .map(|service| service.connection().clone());
    connections.spawn(crate::hooks::follow_events(
        broker.clone(),
        hook_events,
        daemon.on_event.clone(),
        daemon.socket.clone(),
        desktop,
        stop.clone(),
    ));
    connections.spawn(crate::world::retry_on_network_change(
        broker.clone(),
        stop.clone(),
    ));
    connections.spawn(crate::world::retry_on_resume(broker.clone(), stop.clone()));
    connections.spawn(crate::broker::group_recheck::recheck_groups_until(
        broker.clone(),
        stop.clone(),
    ));
    // Start-up's code (arguments, config, TLS set-up, restore, the
    // watchers just spawned) runs once: let its pages go once it is over,
    // and again after each login and reload (the returned `Notify`).
    let code_pages = Arc::new(Notify::new());
    code_pages.notify_one();
    connections.spawn(release_code_pages_when_quiet(
        broker.clone(),
        code_pages.clone(),
        stop.clone(),
    ));
    code_pages
}

/// A start that fails after the broker started (the socket or the bus
/// name cannot be had): the refreshes the restore began, overdue sessions'
/// ones, are waited for within the grace, as at a stop. Dropped with the
/// runtime, one whose provider had rotated the refresh token would lose
/// the session.
async fn abandon_start(broker: &Broker) {
    broker.end_logins();
    broker.end_refreshes();
    broker.shutdown(SHUTDOWN_GRACE).await;
}

/// The stop: logins first, then the front-ends, then the work in flight,
/// each within the grace.
async fn stop_daemon(
    broker: &Broker,
    stop: &CancellationToken,
    server: tokio::task::JoinHandle<()>,
    dbus: Option<DbusService>,
    connections: &TaskTracker,
) {
    info!("stopping");
    notify(&[NotifyState::Stopping]);
    // First the device logins: each waits for a person, not for work in
    // flight, and the stream of a client waiting for one ends only with
    // it, so the wait for connections below would last the whole grace.
    broker.end_logins();
    // Nor is a refresh sent, background or a request's: sent now, it
    // would have only the rest of the grace, and one cut short may lose a
    // rotated refresh token.
    broker.end_refreshes();
    stop.cancel();
    let _ = server.await;
    connections.close();
    // One grace for both: the requests wait for the refreshes they asked
    // for, and the refreshes then have what is left of it.
    let ends = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let answered = tokio::time::timeout_at(ends, connections.wait())
        .await
        .is_ok();
    if !answered {
        warn!(
            "requests still unanswered {} s after the stop began were cut off",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    // The broker names each session whose work was cut short.
    broker
        .shutdown(ends.saturating_duration_since(tokio::time::Instant::now()))
        .await;
    // The bus name last: until here a D-Bus call is told tokend is
    // stopping (no name, and the bus would say no such service, or start
    // tokend again by activation).
    drop(dbus);
}

/// How long the start may take before `READY=1`, in microseconds, for
/// systemd's `EXTEND_TIMEOUT_USEC`: three store calls' timeouts (a listing,
/// a batch and a probe) and half a minute for the rest.
fn start_allowance_usec(store_timeout: Duration) -> u32 {
    let allowance = store_timeout * 3 + Duration::from_secs(30);
    u32::try_from(allowance.as_micros()).unwrap_or(u32::MAX)
}

/// The process's first steps, before the store: the config's warnings
/// said, and the limit on open files raised (see [`open_files`]).
fn prepare_process(config: &Config) {
    log_warnings(&config.path, &config.warnings);
    open_files::raise_open_file_limit();
}

/// Starts the broker, restoring every stored session, which may wait on
/// the store. A stop asked for meanwhile ends the start there (`None`;
/// nothing is written while sessions are read); a reload asked for is
/// reported (`Some(true)`) to be done once the daemon is up, as the config
/// may have changed since it was read.
async fn start_broker(
    broker: &Broker,
    signals: &mut Signals,
    socket_watch: Arc<SocketWatch>,
) -> Option<bool> {
    let mut reload_when_up = false;
    let start = broker.start(watchdog_heartbeat(socket_watch));
    tokio::pin!(start);
    // A store that does not answer the restore (a keyring stuck on an
    // unlock prompt, or stopped) keeps the socket unbound for up to its
    // timeout per call, and clients are told that no tokend listens:
    // the log says what the start waits for.
    let slow = tokio::time::sleep(slow_start::SLOW_START_STEP);
    tokio::pin!(slow);
    let mut said_slow = false;
    loop {
        tokio::select! {
            () = &mut start => return Some(reload_when_up),
            () = &mut slow, if !said_slow => {
                said_slow = true;
                slow_start::say_slow_restore(broker.store_status().name);
            }
            signal = signals.next() => match signal {
                Some(Signal::Reload) => {
                    if !reload_when_up {
                        info!("a reload was asked for during start-up: it runs once tokend is up (the file may have changed since it was read)");
                    }
                    reload_when_up = true;
                }
                Some(Signal::Stop) | None => return None,
            },
        }
    }
}

/// Binds the daemon's socket, and warns when the group it is shared with
/// cannot reach it. A failure abandons the start ([`abandon_start`]).
async fn bind_socket(
    daemon: &DaemonConfig,
    broker: &Broker,
) -> Result<tokio::net::UnixListener, socket::SocketError> {
    let listener = match socket::bind(&daemon.socket, daemon.socket_mode, daemon.socket_group) {
        Ok(listener) => listener,
        Err(e) => {
            abandon_start(broker).await;
            return Err(e);
        }
    };
    // Searched only now: the directories tokend made for the socket are
    // in place, and the socket has its group.
    if let Some(warning) =
        socket::group_reach_warning(&daemon.socket, daemon.socket_mode, daemon.socket_group)
    {
        warn!("{warning}");
    }
    Ok(listener)
}

/// How long the daemon must have been quiet, after a burst of one-off
/// work, before its code pages are let go. The work's tail (the
/// login's last save and events, the answer to the waiting `tokenctl`, the
/// watchers set up after start-up) touches code too: released at once,
/// those pages would come straight back (about 0.7 MiB of an idle daemon).
const CODE_PAGES_QUIET: Duration = Duration::from_secs(1);

/// Lets go of the resident code pages (see [`crate::code_pages`])
/// [`CODE_PAGES_QUIET`] after the last of: start-up, a reload (`wake`), a
/// device login's end. One timer per burst, none while idle.
async fn release_code_pages_when_quiet(broker: Broker, wake: Arc<Notify>, stop: CancellationToken) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = broker.subscribe();
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let deadline = async move {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wake.notified() => due = Some(tokio::time::Instant::now() + CODE_PAGES_QUIET),
            event = events.recv() => match event {
                Ok(BrokerEvent::LoginFinished { .. }) => {
                    due = Some(tokio::time::Instant::now() + CODE_PAGES_QUIET);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            () = deadline => {
                due = None;
                release_code_pages();
            }
            () = stop.cancelled() => return,
        }
    }
}

/// Lets go of the resident code pages (the executable's and the shared
/// libraries') and the heap's free pages now.
fn release_code_pages() {
    crate::code_pages::release_free_heap();
    match crate::code_pages::release_code_pages() {
        Ok(released) => debug!(
            mappings = released.mappings,
            resident_kib = released.resident_kib,
            "released the resident code pages"
        ),
        Err(e) => debug!("could not release the code pages: {e}"),
    }
}
