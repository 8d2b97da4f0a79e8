//! Changes outside the daemon that end a wait: the network coming back and
//! the machine resuming from sleep.
//!
//! A refresh that failed because the provider could not be reached waits
//! out a backoff of up to five minutes. When a link comes up, an address is
//! added or a route changes, the kernel says so on its routing netlink
//! socket; when the machine resumes, logind says so with
//! `PrepareForSleep(false)` on the system bus. Either way the waiting
//! refreshes are tried again at once (spread by jitter) instead of at the
//! end of their backoff: [`Broker::retry_waiting_refreshes`], which also
//! has device logins whose polls failed poll again at their interval.
//!
//! Both are event sources, not polls: a daemon whose network and power do
//! not change is never woken by them.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use futures_util::StreamExt as _;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::broker::{Broker, WorldChange};

/// How widely the retries after a change are spread: every waiting session
/// tries again within this time.
pub const RETRY_SPREAD: Duration = Duration::from_secs(1);

/// How long a burst of netlink messages (a link coming up announces the
/// link, its addresses and its routes) is gathered into one change.
const SETTLE: Duration = Duration::from_millis(200);

/// The routing netlink multicast groups that say the network may be
/// reachable again: links, IPv4 and IPv6 addresses and routes
/// (`RTMGRP_LINK`, `RTMGRP_IPV4_IFADDR`, `RTMGRP_IPV4_ROUTE`,
/// `RTMGRP_IPV6_IFADDR`, `RTMGRP_IPV6_ROUTE` of `<linux/rtnetlink.h>`).
const ROUTE_GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

/// The kernel's announcements of link, address and route changes.
#[derive(Debug)]
pub struct NetworkWatch {
    socket: AsyncFd<OwnedFd>,
}

impl NetworkWatch {
    /// Subscribes to the routing netlink groups. Must be called within a
    /// tokio runtime.
    ///
    /// # Errors
    /// The kernel or a sandbox (`RestrictAddressFamilies=` without
    /// `AF_NETLINK`) refused the socket.
    pub fn new() -> io::Result<Self> {
        let socket = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None, // NETLINK_ROUTE
        )?;
        rustix::net::bind(&socket, &SocketAddrNetlink::new(0, ROUTE_GROUPS))?;
        // See `broker::wall_timer`: an `OwnedFd` held by the `AsyncFd` is
        // the sound use of the deprecated constructor.
        #[allow(deprecated)]
        let socket: AsyncFd<OwnedFd> = AsyncFd::new(socket)?;
        Ok(Self { socket })
    }

    /// Waits for the next change, then gathers the rest of its burst.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn changed(&self) -> io::Result<()> {
        self.wait_and_drain().await?;
        // The burst's later messages arrive within moments; one retry for
        // the whole burst, not one per message.
        tokio::time::sleep(SETTLE).await;
        self.drain()
    }

    async fn wait_and_drain(&self) -> io::Result<()> {
        loop {
            let mut ready = self.socket.readable().await?;
            if self.drain_some()? {
                return Ok(());
            }
            ready.clear_ready();
        }
    }

    fn drain(&self) -> io::Result<()> {
        while self.drain_some()? {}
        Ok(())
    }

    /// Reads one message if one is there; what it says does not matter.
    fn drain_some(&self) -> io::Result<bool> {
        let mut buf = [0u8; 8192];
        match rustix::net::recv(self.socket.get_ref(), &mut buf, RecvFlags::DONTWAIT) {
            // NOBUFS: the kernel dropped messages for us, so there was a change.
            Ok(_) | Err(rustix::io::Errno::NOBUFS) => Ok(true),
            Err(rustix::io::Errno::AGAIN) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Retries waiting refreshes whenever the network changes, until `stop`.
/// Without a netlink socket (a sandbox forbids it) it says so once and
/// returns: refreshes then wait out their backoff.
pub async fn retry_on_network_change(broker: Broker, stop: CancellationToken) {
    let watch = match NetworkWatch::new() {
        Ok(watch) => watch,
        Err(e) => {
            info!(
                "not watching the network (netlink: {e}): failed refreshes wait out their backoff"
            );
            return;
        }
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = watch.changed() => {
                if let Err(e) = changed {
                    info!("stopped watching the network (netlink: {e})");
                    return;
                }
                let moved = broker.retry_waiting_refreshes(RETRY_SPREAD, WorldChange::Network);
                if moved > 0 {
                    info!(event = "network_changed", sessions = moved, "the network changed: retrying {moved} waiting refresh(es)");
                } else {
                    debug!(event = "network_changed", "the network changed");
                }
            }
        }
    }
}

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
    let rule = match zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.login1")
        .and_then(|b| b.interface("org.freedesktop.login1.Manager"))
        .and_then(|b| b.member("PrepareForSleep"))
        .and_then(|b| b.path("/org/freedesktop/login1"))
    {
        Ok(builder) => builder.build(),
        Err(e) => {
            debug!("not watching for resume: {e}");
            return WatchEnded::NotWatched;
        }
    };
    let mut signals = match zbus::MessageStream::for_match_rule(rule, &connection, Some(16)).await {
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
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return WatchEnded::Stopped,
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
        if let Ok(false) = message.body().deserialize::<bool>() {
            let moved = broker.retry_waiting_refreshes(RETRY_SPREAD, WorldChange::Resumed);
            info!(
                event = "resumed",
                sessions = moved,
                "resumed from sleep: retrying {moved} waiting refresh(es)"
            );
        }
    }
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
