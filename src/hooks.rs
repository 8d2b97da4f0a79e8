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
//! finds them all busy is skipped, and the log says so), each killed after
//! [`RUN_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use zbus::Connection;

use crate::broker::{AttentionKind, Broker, BrokerEvent, StoreState};

/// Runs of the `on_event` program at once.
pub const MAX_RUNNING: usize = 4;

/// A run still going after this long is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Follows `broker`'s events until `shutdown`: runs `program` (argv, may be
/// empty: none) and, when `desktop` is a session-bus connection, shows a
/// notification for sessions that need a login.
pub async fn follow_events(
    broker: Broker,
    program: Vec<String>,
    socket: PathBuf,
    desktop: Option<Connection>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    if program.is_empty() && desktop.is_none() {
        return;
    }
    let mut events = broker.subscribe();
    let mut store = broker.store_changes();
    let slots = Arc::new(Semaphore::new(MAX_RUNNING));
    let runner = Runner {
        program: &program,
        socket: &socket,
        slots: &slots,
        tasks: &tasks,
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
            () = shutdown.cancelled() => return,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                warn!("event hooks fell {n} events behind; those were not run");
                continue;
            }
            Err(_) => return,
        };
        let Some(what) = happened(&event) else {
            continue;
        };
        if let Some(bus) = &desktop {
            if what.event == AttentionKind::LoginRequired.name() {
                notify(bus, what.provider, "needs a login").await;
            } else if what.event == AttentionKind::RefreshTokenExpiring.name() {
                notify(bus, what.provider, "needs a new login soon").await;
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
    tasks: &'a TaskTracker,
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
    /// events), unless there is none or every slot is taken.
    fn spawn(&self, provider: String, event: &'static str, reason: Option<String>) {
        if self.program.is_empty() {
            return;
        }
        let Ok(slot) = Arc::clone(self.slots).try_acquire_owned() else {
            warn!(
                provider,
                event, "on_event skipped: {MAX_RUNNING} runs are still going"
            );
            return;
        };
        let (argv, socket) = (self.program.to_vec(), self.socket.to_owned());
        self.tasks.spawn(async move {
            run(&argv, &socket, &provider, event, reason.as_deref()).await;
            drop(slot);
        });
    }
}

/// One run of the program, bounded by [`RUN_TIMEOUT`].
async fn run(argv: &[String], socket: &Path, provider: &str, event: &str, reason: Option<&str>) {
    let Some((program, arguments)) = argv.split_first() else {
        return;
    };
    // Checked at load too; again here, as the program may have changed
    // since (a few system calls, once per event).
    let owners = crate::trusted_path::Owners::daemon();
    if let Err(untrusted) = crate::trusted_path::check_file(Path::new(program), owners) {
        warn!(
            provider,
            event, "on_event: tokend will not run {program}: {untrusted}"
        );
        return;
    }
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        // Empty for the store's events: set all the same, as the contract
        // promises the program PROVIDER and EVENT (a script under `set -u`).
        .env("PROVIDER", provider)
        .env("EVENT", event)
        // The daemon's socket, for a `tokenctl` the program runs: whatever
        // the config chose, and not found by way of $RUNTIME_DIRECTORY,
        // which a client does not read.
        .env("TOKEND_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(reason) = reason {
        command.env("REASON", reason);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            warn!(provider, event, "on_event: cannot run {program}: {e}");
            return;
        }
    };
    match tokio::time::timeout(RUN_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            debug!(provider, event, "on_event ran");
        }
        Ok(Ok(status)) => warn!(provider, event, "on_event {program} ended with {status}"),
        Ok(Err(e)) => warn!(provider, event, "on_event {program}: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            warn!(
                provider,
                event,
                "on_event {program} was killed after {} s",
                RUN_TIMEOUT.as_secs()
            );
        }
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
