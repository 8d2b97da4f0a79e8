//! Who is on the other end of the bus: callers identified once per
//! connection, and the peers a signal about a provider may go to.
//!
//! The bus daemon vouches for a connection's uid, groups and pid
//! (`GetConnectionCredentials`); they never change while the connection
//! lives, and the bus never reuses a unique name, so each peer is asked
//! about once and forgotten when the bus says it left (`NameOwnerChanged`).
//!
//! Signals say things about providers (a login's code, a state, an
//! expiry). On the system bus, where every local user is a peer, they are
//! sent to each known peer that holds the role the signal needs, never
//! broadcast; a peer becomes known by calling the broker (any method, for
//! instance `GetManagedObjects` or `ListProviders`). A session bus admits
//! only its owner's connections, and the owner manages every provider, so
//! there signals are broadcast as usual and any monitor sees them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::names::{BusName, UniqueName};
use zbus::{Connection, MatchRule, MessageStream};

use super::DbusError;
use crate::broker::{AccessPolicy, Caller, Role};
use crate::ipc::caller_unit;

/// The bus daemon's own name, the sender of its signals.
const BUS_NAME: &str = "org.freedesktop.DBus";

/// Peers remembered at most; beyond this a caller is identified afresh on
/// each call and gets no unicast signals. The bus's own per-user and total
/// connection limits keep real systems far below it.
const PEER_LIMIT: usize = 65_536;

/// Departed peers remembered, so that a lookup that ends after its peer
/// left (its `NameOwnerChanged` handled first) does not remember a peer
/// that will never be forgotten. Far more than can leave during one lookup.
const DEPARTED_REMEMBERED: usize = 1024;

/// How long the bus may take to say who a caller is.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Recipients {
    /// To every peer of the bus (session bus).
    Broadcast,
    /// To each of these peers (system bus); none when nobody may see it.
    Unicast(Vec<String>),
}

/// The known peers of the broker's connection.
#[derive(Debug, Clone)]
pub(super) struct Peers {
    known: Arc<Mutex<PeerTable>>,
    /// Lookups under way, one per sender that all its calls share: a
    /// burst of calls from a new peer asks the bus once, not once a call.
    looking_up: Arc<Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Caller>>>>>,
    broadcast: bool,
}

impl Peers {
    /// Peers of a connection to the system bus (`broadcast` false) or to a
    /// session bus (`broadcast` true).
    pub(super) fn new(broadcast: bool) -> Self {
        Self {
            known: Arc::default(),
            looking_up: Arc::default(),
            broadcast,
        }
    }

    /// The sender of a method call, as the bus daemon vouches. Its unit is
    /// read once, with the rest; a failure to read it is logged when
    /// `units_granted` (some provider has `allow_units`).
    pub(super) async fn caller(
        &self,
        connection: &Connection,
        header: &Header<'_>,
        units_granted: bool,
    ) -> Result<Caller, DbusError> {
        let sender = header
            .sender()
            .ok_or_else(|| DbusError::Internal("the call has no sender".into()))?;
        if let Some(caller) = self.map().callers.get(sender.as_str()) {
            return Ok(caller.clone());
        }
        let lookup = Arc::clone(
            self.looking_up
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(sender.as_str().to_owned())
                .or_default(),
        );
        let found = lookup
            .get_or_try_init(|| Self::look_up(connection, sender, units_granted))
            .await
            .cloned();
        self.looking_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(sender.as_str());
        let caller = found?;
        self.map().remember(sender.as_str(), &caller);
        Ok(caller)
    }

    /// Asks the bus who `sender` is, within [`LOOKUP_TIMEOUT`].
    async fn look_up(
        connection: &Connection,
        sender: &UniqueName<'_>,
        units_granted: bool,
    ) -> Result<Caller, DbusError> {
        let asked = async {
            DBusProxy::new(connection)
                .await?
                .get_connection_credentials(BusName::Unique(sender.clone()))
                .await
        };
        let credentials = tokio::time::timeout(LOOKUP_TIMEOUT, asked)
            .await
            .map_err(|_| {
                DbusError::Internal(format!(
                    "cannot identify the caller: the bus did not say within {} s",
                    LOOKUP_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| DbusError::Internal(format!("cannot identify the caller: {e}")))?;
        let uid = credentials.unix_user_id().ok_or_else(|| {
            DbusError::AccessDenied("the bus does not know the caller's uid".into())
        })?;
        let pid = credentials.process_id().and_then(|p| i32::try_from(p).ok());
        // The bus's ProcessFD pins the very process (dbus-daemon 1.15.8+);
        // else its pid is pinned now, and checked against its uid.
        let unit = match (credentials.process_fd(), pid) {
            (Some(fd), _) => caller_unit::of_pidfd(std::os::fd::AsFd::as_fd(fd), uid),
            (None, Some(pid)) => caller_unit::of_pid(pid, uid),
            (None, None) => Ok(None),
        };
        let unit = if units_granted {
            caller_unit::logged(unit, uid, pid)
        } else {
            unit.ok().flatten().map(Arc::from)
        };
        Ok(Caller {
            uid,
            groups: credentials
                .unix_group_ids()
                .map_or_else(|| Arc::from([]), |ids| Arc::from(ids.as_slice())),
            pid,
            unit,
        })
    }

    /// The peers a signal about a provider with `policy` may reach: those
    /// with at least the role `needed` on it.
    pub(super) fn recipients(&self, policy: &AccessPolicy, needed: Role) -> Recipients {
        self.recipients_where(|caller| policy.role(caller) >= needed)
    }

    /// The peers a signal may reach that `may_know` allows: every one on
    /// the session bus (all are the owner), the known callers it allows
    /// on the system bus.
    pub(super) fn recipients_where(&self, may_know: impl Fn(&Caller) -> bool) -> Recipients {
        if self.broadcast {
            return Recipients::Broadcast;
        }
        Recipients::Unicast(
            self.map()
                .callers
                .iter()
                .filter(|(_, caller)| may_know(caller))
                .map(|(name, _)| name.clone())
                .collect(),
        )
    }

    /// The known peer `name`, as the bus vouched for it.
    pub(super) fn known(&self, name: &str) -> Option<Caller> {
        self.map().callers.get(name).cloned()
    }

    /// The known peers that held `needed` under `before` and do not under
    /// `after` (lost), and those that gain it (gained): none on a session
    /// bus, where every peer is the owner.
    pub(super) fn role_changes(
        &self,
        before: &AccessPolicy,
        after: &AccessPolicy,
        needed: Role,
    ) -> (Vec<String>, Vec<String>) {
        let (mut lost, mut gained) = (Vec::new(), Vec::new());
        if self.broadcast {
            return (lost, gained);
        }
        for (name, caller) in &self.map().callers {
            match (before.role(caller) >= needed, after.role(caller) >= needed) {
                (true, false) => lost.push(name.clone()),
                (false, true) => gained.push(name.clone()),
                _ => {}
            }
        }
        (lost, gained)
    }

    /// Forgets peers as the bus reports them gone, until `connection`
    /// closes.
    pub(super) async fn forget_departed(self, connection: Connection, shutdown: CancellationToken) {
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(BUS_NAME)
            .and_then(|b| b.interface("org.freedesktop.DBus"))
            .and_then(|b| b.member("NameOwnerChanged"))
            .map(zbus::match_rule::Builder::build);
        let stream = match rule {
            Ok(rule) => MessageStream::for_match_rule(rule, &connection, None).await,
            Err(e) => Err(e),
        };
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                debug!("cannot watch peers leave the bus: {e}");
                return;
            }
        };
        // Until the daemon stops: this task holds the connection, so the
        // stream would not end by itself (and a stop would wait for it).
        loop {
            let message = tokio::select! {
                message = stream.next() => message,
                () = shutdown.cancelled() => return,
            };
            let Some(message) = message else { return };
            let Ok(message) = message else { continue };
            // The match rule's sender is checked by the bus for broadcasts
            // only: a signal sent to tokend's own name reaches this stream
            // whoever sent it. Only the bus may say a peer left (a forged
            // word would cost that peer its signals).
            if !sent_by_the_bus(&message) {
                continue;
            }
            let body = message.body();
            let Ok((name, _old, new)) = body.deserialize::<(&str, &str, &str)>() else {
                continue;
            };
            if new.is_empty()
                && let Ok(name) = UniqueName::try_from(name)
            {
                self.map().forget(name.as_str());
            }
        }
    }

    fn map(&self) -> MutexGuard<'_, PeerTable> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `message` comes from the bus daemon itself (whose sender field
/// the bus sets; a peer cannot forge it).
fn sent_by_the_bus(message: &zbus::Message) -> bool {
    message
        .header()
        .sender()
        .is_some_and(|sender| sender.as_str() == BUS_NAME)
}

/// The peers known by unique name, and the last ones to leave.
#[derive(Debug, Default)]
struct PeerTable {
    callers: HashMap<String, Caller>,
    departed: VecDeque<String>,
}

impl PeerTable {
    /// Remembers `caller` as the peer `name`, unless the table is full or
    /// the peer has already left (the bus never reuses a unique name).
    fn remember(&mut self, name: &str, caller: &Caller) {
        if self.callers.len() < PEER_LIMIT && !self.departed.iter().any(|d| d == name) {
            self.callers.insert(name.to_owned(), caller.clone());
        }
    }

    /// Forgets the peer `name`, which left the bus.
    fn forget(&mut self, name: &str) {
        self.callers.remove(name);
        if self.departed.len() == DEPARTED_REMEMBERED {
            self.departed.pop_front();
        }
        self.departed.push_back(name.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer whose lookup ends after the bus said it left is not
    /// remembered (it would never be forgotten: 65,536 such and new
    /// callers would get no signals); others are, until they leave.
    #[test]
    fn a_peer_that_left_during_its_lookup_is_not_remembered() {
        let mut table = PeerTable::default();
        table.remember(":1.5", &Caller::uid(1000));
        assert!(table.callers.contains_key(":1.5"));
        table.forget(":1.5");
        assert!(table.callers.is_empty());
        // :1.6 leaves while the bus is asked about it.
        table.forget(":1.6");
        table.remember(":1.6", &Caller::uid(1000));
        assert!(table.callers.is_empty());
        // The record of departures is bounded.
        for i in 0..2 * DEPARTED_REMEMBERED {
            table.forget(&format!(":2.{i}"));
        }
        assert_eq!(table.departed.len(), DEPARTED_REMEMBERED);
    }

    /// Only the bus may say that a peer left: a `NameOwnerChanged` sent
    /// to tokend by a peer (the match rule's sender is checked by the bus
    /// for broadcasts only) is not believed.
    #[test]
    fn only_the_bus_says_who_left() {
        let departure = |sender: Option<&str>| {
            let mut builder = zbus::Message::signal(
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NameOwnerChanged",
            )
            .unwrap();
            if let Some(sender) = sender {
                builder = builder.sender(sender).unwrap();
            }
            builder.build(&(":1.42", ":1.42", "")).unwrap()
        };
        assert!(sent_by_the_bus(&departure(Some("org.freedesktop.DBus"))));
        assert!(!sent_by_the_bus(&departure(Some(":1.7"))));
        assert!(!sent_by_the_bus(&departure(None)));
    }
}
