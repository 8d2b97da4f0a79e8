//! logind's side of the world: the machine resuming (`PrepareForSleep(false)`)
//! retries waiting refreshes, and before a sleep (`PrepareForSleep(true)`)
//! a `delay` inhibitor lets the refreshes in flight finish and save (see
//! `broker::sleep`).

use std::os::fd::OwnedFd;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::RETRY_SPREAD;
use crate::broker::{Broker, WorldChange};

/// Retries due and failed refreshes when logind says the machine resumed,
/// until `stop`. Without a system bus or logind it returns quietly (the
/// refresh timer fires after a resume on its own; this only adds the
/// retries of refreshes that failed before the sleep).
///
/// A system bus that goes away (restarted) is connected to again, with a
/// backoff, and said: the watch ended silently for good before.
pub async fn retry_on_resume(broker: Broker, stop: CancellationToken) {
    let mut watched_before = false;
    let mut backoff = RESUME_WATCH_BACKOFF_FIRST;
    loop {
        match watch_logind(&broker, &stop, watched_before).await {
            WatchEnded::Stopped => return,
            // Never connected: no system bus here (a container), or no
            // logind; nothing to come back for.
            WatchEnded::NotWatched if !watched_before => return,
            WatchEnded::NotWatched => {}
            WatchEnded::Lost => {
                warn!(
                    "lost the system bus while watching logind for resume: connecting again (refreshes overdue after a sleep meanwhile wait for their own timers)"
                );
                // A sleep announced before the loss may have no resume
                // that reaches this daemon: the held refreshes go now.
                if broker.held_for_sleep() {
                    end_sleep_hold(&broker, "the system bus went away");
                }
                watched_before = true;
                backoff = RESUME_WATCH_BACKOFF_FIRST;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RESUME_WATCH_BACKOFF_CAP);
    }
}

/// The first wait before connecting to the system bus again after losing
/// it, doubled up to [`RESUME_WATCH_BACKOFF_CAP`] while it stays away.
const RESUME_WATCH_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const RESUME_WATCH_BACKOFF_CAP: Duration = Duration::from_secs(300);

/// How a watch of logind ended.
enum WatchEnded {
    /// The daemon is stopping.
    Stopped,
    /// It never began: no system bus, or the match could not be added.
    NotWatched,
    /// The connection ended while watching.
    Lost,
}

/// Connects to the system bus and handles `PrepareForSleep` until the
/// connection ends or `stop`. `again`: a reconnection, whose success is
/// said.
async fn watch_logind(broker: &Broker, stop: &CancellationToken, again: bool) -> WatchEnded {
    let connection = match zbus::Connection::system().await {
        Ok(connection) => connection,
        Err(e) => {
            debug!("not watching for resume (no system bus: {e})");
            return WatchEnded::NotWatched;
        }
    };
    let mut signals = match prepare_for_sleep_signals(&connection).await {
        Ok(stream) => stream,
        Err(e) => {
            debug!("not watching for resume: {e}");
            return WatchEnded::NotWatched;
        }
    };
    if again {
        info!("watching logind for resume again");
    } else {
        debug!("watching logind for resume");
    }
    let mut logind = LogindName::default();
    let mut inhibitor = take_inhibitor(&connection).await;
    // While a sleep's hold is on: when it ends without a resume, or (after
    // a resume whose network went down before the sleep) without the
    // network coming back.
    let mut hold_ends: Option<tokio::time::Instant> = None;
    let mut awaiting_network = false;
    let mut world = broker.world_changes();
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return WatchEnded::Stopped,
            () = until(hold_ends) => {
                hold_ends = None;
                if std::mem::take(&mut awaiting_network) {
                    resumed(broker, "the network did not come back within 5 s");
                } else {
                    end_sleep_hold(broker, "no resume was announced");
                    inhibitor = take_inhibitor(&connection).await;
                }
                continue;
            }
            changed = world.changed(), if awaiting_network => {
                // A link up is not enough: it waits for an address or a
                // default route (`Reach::Routable`), which clears the loss.
                let back = changed.is_err()
                    || (*world.borrow_and_update() == Some(WorldChange::Network)
                        && !broker.network_left_before_sleep());
                if back {
                    awaiting_network = false;
                    hold_ends = None;
                    resumed(broker, "the network is back");
                }
                continue;
            }
            message = signals.next() => message,
        };
        let Some(Ok(message)) = message else {
            return WatchEnded::Lost;
        };
        let sender = message.header().sender().map(ToString::to_string);
        if !logind.sent(&connection, sender.as_deref()).await {
            debug!(
                sender = sender.as_deref().unwrap_or("none"),
                "ignored a PrepareForSleep not from logind"
            );
            continue;
        }
        // PrepareForSleep(true) comes before the sleep, (false) after it.
        match message.body().deserialize::<bool>() {
            Ok(true) => {
                awaiting_network = false;
                prepare_for_sleep(broker, inhibitor.take()).await;
                hold_ends = Some(tokio::time::Instant::now() + HOLD_LIMIT);
            }
            Ok(false) => {
                hold_ends = None;
                world.borrow_and_update();
                if broker.held_for_sleep() && broker.network_left_before_sleep() {
                    // A network manager took the network down before the
                    // sleep: its return (seconds away on Wi-Fi) ends the
                    // hold, not this instant, when every retry would fail.
                    info!(
                        "resumed from sleep: the network went down before it; refreshes wait for it to come back (at most {} s)",
                        NETWORK_AFTER_RESUME.as_secs()
                    );
                    awaiting_network = true;
                    hold_ends = Some(tokio::time::Instant::now() + NETWORK_AFTER_RESUME);
                } else {
                    awaiting_network = false;
                    resumed(broker, "");
                }
                if inhibitor.is_none() {
                    inhibitor = take_inhibitor(&connection).await;
                }
            }
            Err(e) => debug!("ignored a PrepareForSleep without a boolean: {e}"),
        }
    }
}

/// logind's `PrepareForSleep` signals on `connection`.
async fn prepare_for_sleep_signals(
    connection: &zbus::Connection,
) -> zbus::Result<zbus::MessageStream> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.login1")?
        .interface("org.freedesktop.login1.Manager")?
        .member("PrepareForSleep")?
        .path("/org/freedesktop/login1")?
        .build();
    zbus::MessageStream::for_match_rule(rule, connection, Some(16)).await
}

/// How long after a resume refreshes wait for a network that went down
/// before the sleep (a laptop's Wi-Fi takes a few seconds to come back).
pub const NETWORK_AFTER_RESUME: Duration = Duration::from_secs(5);

/// The hold of a sleep ends at its resume: the refreshes that came due
/// meanwhile go, spread (`after`: what the resume waited for, if anything).
fn resumed(broker: &Broker, after: &str) {
    let moved = broker.end_sleep_hold(RETRY_SPREAD);
    let after = if after.is_empty() {
        String::new()
    } else {
        format!(" ({after})")
    };
    info!(
        event = "resumed",
        sessions = moved,
        "resumed from sleep: retrying {moved} waiting refresh(es){after}"
    );
}

/// How long the sleep waits for refreshes in flight and their saves:
/// within logind's default limit for delay inhibitors
/// (`InhibitDelayMaxSec=5`), after which it sleeps anyway.
pub const SLEEP_GRACE: Duration = Duration::from_secs(4);

/// How long background refreshes stay held after a sleep's announcement
/// with no resume announced, counted in time the machine is awake (tokio's
/// timers stop during a suspend): a resume announcement lost (logind
/// restarted meanwhile), or a sleep that never came, does not hold them
/// for ever.
pub const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// The longest wait for logind to answer `Inhibit`.
const INHIBIT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Sleeps until `at`, or for ever without one.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Asks logind for a `delay` inhibitor of sleep: logind then waits (up to
/// its `InhibitDelayMaxSec`) for the returned fd to close before the
/// machine sleeps. `None` when refused (polkit) or not answered; the
/// daemon then holds its refreshes at a sleep's announcement all the same,
/// but cannot make the sleep wait for the ones in flight.
async fn take_inhibitor(connection: &zbus::Connection) -> Option<OwnedFd> {
    let call = connection.call_method(
        Some("org.freedesktop.login1"),
        "/org/freedesktop/login1",
        Some("org.freedesktop.login1.Manager"),
        "Inhibit",
        &(
            "sleep",
            "tokend",
            "finishing and saving token refreshes in flight",
            "delay",
        ),
    );
    let reply = match tokio::time::timeout(INHIBIT_CALL_TIMEOUT, call).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            info!(
                "logind refused a delay inhibitor for sleep ({e}): a refresh in flight when the machine sleeps may lose its answer"
            );
            return None;
        }
        Err(_) => {
            info!(
                "logind did not answer the request for a delay inhibitor for sleep: a refresh in flight when the machine sleeps may lose its answer"
            );
            return None;
        }
    };
    match reply.body().deserialize::<zbus::zvariant::OwnedFd>() {
        Ok(fd) => {
            debug!("holding a delay inhibitor for sleep");
            Some(fd.into())
        }
        Err(e) => {
            info!("logind's answer to Inhibit held no fd ({e})");
            None
        }
    }
}

/// The machine is about to sleep: holds background refreshes, waits (with
/// an inhibitor, within [`SLEEP_GRACE`]) for those in flight and their
/// saves, then lets the sleep go on by closing the inhibitor.
async fn prepare_for_sleep(broker: &Broker, inhibitor: Option<OwnedFd>) {
    broker.hold_for_sleep();
    if inhibitor.is_none() {
        info!(
            event = "sleeping",
            "the machine is going to sleep: background refreshes wait for the resume"
        );
        return;
    }
    let unfinished = broker.finish_before_sleep(SLEEP_GRACE).await;
    if unfinished.is_empty() {
        info!(
            event = "sleeping",
            "the machine is going to sleep: background refreshes wait for the resume"
        );
    } else {
        warn!(
            event = "sleeping",
            providers = %unfinished.join(","),
            "the machine is going to sleep before the refresh of {} was answered and saved: if its answer is lost and the provider rotates refresh tokens, the session needs `tokenctl login` after the resume",
            unfinished.join(", ")
        );
    }
    drop(inhibitor);
}

/// Lifts a sleep's hold that no resume ended (`why`), and says so.
fn end_sleep_hold(broker: &Broker, why: &str) {
    let moved = broker.end_sleep_hold(RETRY_SPREAD);
    warn!(
        event = "sleep_hold_ended",
        sessions = moved,
        "background refreshes held for a sleep go again: {why}; {moved} due refresh(es) start within a second"
    );
}

/// logind's unique name on the system bus, to check who sent a signal.
///
/// The match rule names `org.freedesktop.login1` as the sender, but the
/// bus applies a rule only to broadcasts: a signal sent straight to this
/// connection (any local user may send one: the stock system bus policy
/// allows signals) arrives whoever sent it, and the client cannot check a
/// well-known name by itself. The bus stamps each message with its
/// sender's unique name, which is compared with the name's owner, asked of
/// the bus again when it differs (logind restarted).
#[derive(Debug, Default)]
struct LogindName {
    owner: Option<String>,
}

impl LogindName {
    /// Whether `sender` is logind.
    async fn sent(&mut self, connection: &zbus::Connection, sender: Option<&str>) -> bool {
        let Some(sender) = sender else { return false };
        if self.owner.as_deref() == Some(sender) {
            return true;
        }
        self.owner = owner_of_logind(connection).await;
        self.owner.as_deref() == Some(sender)
    }
}

async fn owner_of_logind(connection: &zbus::Connection) -> Option<String> {
    let bus = zbus::fdo::DBusProxy::new(connection).await.ok()?;
    let name = zbus::names::BusName::try_from("org.freedesktop.login1").ok()?;
    bus.get_name_owner(name)
        .await
        .ok()
        .map(|owner| owner.to_string())
}
