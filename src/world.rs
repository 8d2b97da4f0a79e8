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
//!
//! Before a sleep (`PrepareForSleep(true)`), the other way round: the
//! daemon holds a `delay` inhibitor from logind, and on the announcement
//! holds background refreshes and lets the sleep wait for those in flight
//! and their saves before closing the inhibitor (see `broker::sleep` for
//! why), taking a new one at the resume.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::broker::{Broker, WorldChange};

mod logind;
pub use logind::{HOLD_LIMIT, SLEEP_GRACE, retry_on_resume};

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

    /// Waits for the next change; for one that brings reach, gathers the
    /// rest of its burst.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn changed(&self) -> io::Result<Reach> {
        let change = self.wait_and_drain().await?;
        if change == Reach::Lost {
            return Ok(change);
        }
        // The burst's later messages arrive within moments; one retry for
        // the whole burst, not one per message (a link comes up, then its
        // address: the burst is routable if any of it is).
        tokio::time::sleep(SETTLE).await;
        let rest = self.drain()?;
        Ok(if rest == Reach::Routable {
            rest
        } else {
            change
        })
    }

    /// Waits for an announcement that the network may be reachable again
    /// (see [`brings_reach`]) or may have gone (an address or route
    /// removed, a link going down: what a network manager's teardown before
    /// a suspend sends). Neither retries anything: only the first ends a
    /// wait; the second is noted, so that a resume waits for the first.
    async fn wait_and_drain(&self) -> io::Result<Reach> {
        loop {
            let mut ready = self.socket.readable().await?;
            let mut lost = false;
            while let Some(reach) = self.read_one()? {
                match reach {
                    Reach::Back | Reach::Routable => return Ok(reach),
                    Reach::Lost => lost = true,
                    Reach::Same => {}
                }
            }
            if lost {
                return Ok(Reach::Lost);
            }
            ready.clear_ready();
        }
    }

    /// Reads what is there: `Routable` if any of it was.
    fn drain(&self) -> io::Result<Reach> {
        let mut seen = Reach::Same;
        while let Some(reach) = self.read_one()? {
            if reach == Reach::Routable {
                seen = reach;
            }
        }
        Ok(seen)
    }

    /// Reads one datagram if one is there: what it says of reach.
    fn read_one(&self) -> io::Result<Option<Reach>> {
        let mut buf = [0u8; 8192];
        match rustix::net::recv(self.socket.get_ref(), &mut buf, RecvFlags::DONTWAIT) {
            Ok((read, _)) => {
                let datagram = &buf[..read.min(buf.len())];
                Ok(Some(if routable(datagram) {
                    Reach::Routable
                } else if brings_reach(datagram) {
                    Reach::Back
                } else if takes_reach(datagram) {
                    Reach::Lost
                } else {
                    Reach::Same
                }))
            }
            // NOBUFS: the kernel dropped messages for us; one may have
            // been a link coming up.
            Err(rustix::io::Errno::NOBUFS) => Ok(Some(Reach::Back)),
            Err(rustix::io::Errno::AGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// What a netlink announcement says of the network's reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// An address to route with (not a link-local one) or a default route
    /// was added: the network is back, not only a link (a Wi-Fi link
    /// comes up with its carrier seconds before DHCP gives it an address).
    Routable,
    /// It may be reachable again (an address or route added, a link up with
    /// a carrier).
    Back,
    /// It may have gone (an address, route or link removed, a link without
    /// a carrier).
    Lost,
    /// Neither.
    Same,
}

/// Whether a datagram of routing netlink messages adds what packets can be
/// routed with: an address whose scope is not the link's (`RTM_NEWADDR`,
/// `ifaddrmsg.ifa_scope` not `RT_SCOPE_LINK`: IPv6's `fe80::` comes with
/// any link), or a default route of the main table (`RTM_NEWROUTE`,
/// `rtmsg` with no destination bits in `RT_TABLE_MAIN`).
fn routable(datagram: &[u8]) -> bool {
    const RTM_NEWADDR: u16 = 20;
    const RTM_NEWROUTE: u16 = 24;
    const RT_SCOPE_LINK: u8 = 253;
    const RT_TABLE_MAIN: u8 = 254;
    netlink_messages(datagram)
        .flatten()
        .any(|(kind, body)| match kind {
            // ifaddrmsg: family, prefix length, flags, scope, index (4).
            RTM_NEWADDR => body.get(3).is_some_and(|scope| *scope != RT_SCOPE_LINK),
            // rtmsg: family, dst_len, src_len, tos, table, ...
            RTM_NEWROUTE => body.get(1) == Some(&0) && body.get(4) == Some(&RT_TABLE_MAIN),
            _ => false,
        })
}

/// Whether a datagram of routing netlink messages says the network may
/// have gone: an address, a route or a link removed (`RTM_DELADDR`,
/// `RTM_DELROUTE`, `RTM_DELLINK`), or a link without a carrier.
fn takes_reach(datagram: &[u8]) -> bool {
    const RTM_NEWLINK: u16 = 16;
    const RTM_DELLINK: u16 = 17;
    const RTM_DELADDR: u16 = 21;
    const RTM_DELROUTE: u16 = 25;
    netlink_messages(datagram)
        .flatten()
        .any(|(kind, body)| match kind {
            RTM_DELLINK | RTM_DELADDR | RTM_DELROUTE => true,
            RTM_NEWLINK => link_flags(body).is_some_and(|flags| !up_with_a_carrier(flags)),
            _ => false,
        })
}

/// A link message's flags (`ifinfomsg`: family, pad, type (2), index
/// (4), flags (4)).
fn link_flags(body: &[u8]) -> Option<u32> {
    body.get(8..12)
        .map(|f| u32::from_ne_bytes([f[0], f[1], f[2], f[3]]))
}

/// Whether link `flags` say up with a carrier (`IFF_UP`, `IFF_RUNNING`).
fn up_with_a_carrier(flags: u32) -> bool {
    const IFF_UP_RUNNING: u32 = 0x1 | 0x40;
    flags & IFF_UP_RUNNING == IFF_UP_RUNNING
}

/// The kind and body (what follows the header) of each message in a
/// datagram of routing netlink messages; `None` for one whose length
/// cannot be read, after which nothing more is.
fn netlink_messages(mut datagram: &[u8]) -> impl Iterator<Item = Option<(u16, &[u8])>> + '_ {
    const HEADER: usize = 16;
    std::iter::from_fn(move || {
        if datagram.len() < HEADER {
            return None;
        }
        let length = usize::try_from(u32::from_ne_bytes([
            datagram[0],
            datagram[1],
            datagram[2],
            datagram[3],
        ]))
        .unwrap_or(usize::MAX);
        let kind = u16::from_ne_bytes([datagram[4], datagram[5]]);
        if length < HEADER || length > datagram.len() {
            datagram = &[];
            return Some(None);
        }
        let body = &datagram[HEADER..length];
        // Messages are aligned to 4 bytes.
        let next = (length + 3) & !3;
        datagram = &datagram[next.min(datagram.len())..];
        Some(Some((kind, body)))
    })
}

/// Whether a datagram of routing netlink messages says the network may
/// be reachable again: an address or a route added (`RTM_NEWADDR`,
/// `RTM_NEWROUTE`), or a link that is up with a carrier (`RTM_NEWLINK`
/// with `IFF_UP` and `IFF_RUNNING` in its `ifinfomsg`). Removals and
/// links going down are not (the README promises retries on the first
/// kind only; a teardown before a suspend sent a retry into it). A
/// datagram that cannot be read counts, to be safe.
fn brings_reach(datagram: &[u8]) -> bool {
    const RTM_NEWLINK: u16 = 16;
    const RTM_NEWADDR: u16 = 20;
    const RTM_NEWROUTE: u16 = 24;
    netlink_messages(datagram).any(|message| match message {
        // An unreadable message counts, to be safe.
        None | Some((RTM_NEWADDR | RTM_NEWROUTE, _)) => true,
        Some((RTM_NEWLINK, body)) => link_flags(body).is_some_and(up_with_a_carrier),
        Some(_) => false,
    })
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
                let reach = match changed {
                    Ok(reach) => reach,
                    Err(e) => {
                        info!("stopped watching the network (netlink: {e})");
                        return;
                    }
                };
                match reach {
                    Reach::Lost => {
                        broker.note_network_reach(false);
                        debug!("the network may have gone (a link, address or route removed)");
                        continue;
                    }
                    Reach::Routable => broker.note_network_reach(true),
                    Reach::Back | Reach::Same => {}
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

#[cfg(test)]
mod tests {
    use super::{brings_reach, routable, takes_reach};

    /// One routing netlink message of `kind` with `body` after its header.
    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let length = u32::try_from(16 + body.len()).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&length.to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&[0; 10]);
        bytes.extend_from_slice(body);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    /// A link message whose `ifinfomsg` has `flags`.
    fn link(kind: u16, flags: u32) -> Vec<u8> {
        let mut body = vec![0u8; 8];
        body.extend_from_slice(&flags.to_ne_bytes());
        body.extend_from_slice(&[0; 4]);
        message(kind, &body)
    }

    /// Additions and a link up with a carrier bring reach; removals and
    /// links going down do not (an address deletion retried every waiting
    /// refresh into a network being torn down), also when several
    /// messages share a datagram.
    #[test]
    fn only_additions_and_links_coming_up_bring_reach() {
        let (new_link, del_link, new_addr, del_addr, new_route, del_route) =
            (16, 17, 20, 21, 24, 25);
        assert!(brings_reach(&message(new_addr, &[0; 8])));
        assert!(brings_reach(&message(new_route, &[0; 12])));
        assert!(brings_reach(&link(new_link, 0x1 | 0x40)));
        assert!(!brings_reach(&link(new_link, 0x1)), "up, no carrier");
        assert!(!brings_reach(&link(new_link, 0)), "down");
        assert!(!brings_reach(&link(del_link, 0x41)));
        assert!(!brings_reach(&message(del_addr, &[0; 8])));
        assert!(!brings_reach(&message(del_route, &[0; 12])));
        let mut teardown = message(del_addr, &[0; 8]);
        teardown.extend(message(del_route, &[0; 12]));
        assert!(!brings_reach(&teardown));
        teardown.extend(message(new_addr, &[0; 8]));
        assert!(brings_reach(&teardown), "the addition after them");
        assert!(
            brings_reach(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
            "unreadable"
        );
    }

    /// Removals and a link without a carrier take reach (a network
    /// manager's teardown before a suspend); additions do not.
    #[test]
    fn removals_and_links_going_down_take_reach() {
        let (new_link, del_link, new_addr, del_addr, del_route) = (16, 17, 20, 21, 25);
        assert!(takes_reach(&message(del_addr, &[0; 8])));
        assert!(takes_reach(&message(del_route, &[0; 12])));
        assert!(takes_reach(&link(del_link, 0x41)));
        assert!(takes_reach(&link(new_link, 0x1)), "up, no carrier");
        assert!(!takes_reach(&link(new_link, 0x41)));
        assert!(!takes_reach(&message(new_addr, &[0; 8])));
        let mut burst = message(new_addr, &[0; 8]);
        burst.extend(message(del_addr, &[0; 8]));
        assert!(takes_reach(&burst), "the removal after the addition");
        assert!(!takes_reach(&[1, 2, 3]), "unreadable");
    }

    /// An address of more than the link's scope, or a default route of the
    /// main table, is routable; a link up, a link-local address (IPv6's
    /// `fe80::`, which comes with any link) or another route is not.
    #[test]
    fn an_address_or_a_default_route_is_routable() {
        let (new_link, new_addr, new_route) = (16, 20, 24);
        // ifaddrmsg: family, prefix length, flags, scope, index.
        let address = |scope: u8| message(new_addr, &[2, 24, 0, scope, 1, 0, 0, 0]);
        assert!(routable(&address(0)), "global");
        assert!(routable(&address(254)), "host (loopback)");
        assert!(!routable(&address(253)), "link-local");
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        let route = |dst_len: u8, table: u8| {
            message(new_route, &[2, dst_len, 0, 0, table, 4, 0, 1, 0, 0, 0, 0])
        };
        assert!(routable(&route(0, 254)), "default route");
        assert!(!routable(&route(64, 254)), "a prefix route");
        assert!(!routable(&route(0, 255)), "the local table");
        assert!(!routable(&link(new_link, 0x41)), "a link up");
        let mut burst = link(new_link, 0x41);
        burst.extend(address(0));
        assert!(routable(&burst));
    }
}
