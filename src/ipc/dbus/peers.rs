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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::names::{BusName, UniqueName};
use zbus::{Connection, MatchRule, MessageStream};

use super::DbusError;
use super::peer_groups::{self, grantable_groups};
use super::peer_table::{GrantsBy, GroupsFound, PeerTable};
use crate::broker::{AccessPolicy, Caller, Role};
use crate::ipc::caller_unit;
use crate::ipc::primary_groups::PrimaryGroups;

/// The bus daemon's own name, the sender of its signals.
const BUS_NAME: &str = "org.freedesktop.DBus";

/// How long a caller's first call waits for its arrival to be read.
const ARRIVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

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

/// A caller as the bus described it, and what was found of its groups
/// ([`grantable_groups`]).
type LookedUp = (Caller, GroupsFound);

/// Why the sender of a call is not known.
#[derive(Debug)]
pub(super) enum Unidentified {
    /// It left the bus before the bus was asked who it was (a
    /// fire-and-forget `dbus-send` exits at once): no one can be told.
    Gone,
    /// Any other reason, answered to the caller.
    Refused(DbusError),
}

impl From<DbusError> for Unidentified {
    fn from(error: DbusError) -> Self {
        Self::Refused(error)
    }
}

/// The known peers of the broker's connection.
#[derive(Debug, Clone)]
pub(super) struct Peers {
    known: Arc<Mutex<PeerTable>>,
    /// Lookups under way, one per sender that all its calls share: a
    /// burst of calls from a new peer asks the bus once, not once a call.
    looking_up: Arc<Mutex<HashMap<String, Arc<tokio::sync::OnceCell<LookedUp>>>>>,
    /// Told of each peer seen arriving.
    arrival: Arc<tokio::sync::Notify>,
    broadcast: bool,
    /// The user database's answers, shared by every peer's lookup.
    primary_groups: Arc<PrimaryGroups>,
}

impl Peers {
    /// Peers of a connection to the system bus (`broadcast` false) or to a
    /// session bus (`broadcast` true).
    pub(super) fn new(broadcast: bool) -> Self {
        Self {
            known: Arc::default(),
            looking_up: Arc::default(),
            arrival: Arc::default(),
            broadcast,
            primary_groups: Arc::default(),
        }
    }

    /// The sender of a method call, as the bus daemon vouches. Its unit and
    /// primary group are read once, with the rest, only when some provider
    /// grants by them (`grants`); a failure to read its unit is logged.
    pub(super) async fn caller(
        &self,
        connection: &Connection,
        header: &Header<'_>,
        grants: GrantsBy,
    ) -> Result<Caller, Unidentified> {
        let sender = header
            .sender()
            .ok_or_else(|| DbusError::Internal("the call has no sender".into()))?;
        // Known, unless its unit or groups were not read (no provider
        // granted by them then) and are needed now (a reload added a
        // grant), or its groups were unsure a while ago.
        if let Some(caller) = self
            .map()
            .current(sender.as_str(), grants, std::time::Instant::now())
        {
            return Ok(caller.clone());
        }
        let lookup = Arc::clone(
            self.looking_up
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(sender.as_str().to_owned())
                .or_default(),
        );
        // Asked only while some provider grants units: when the peer
        // connected matters only to the reading of its unit.
        let connected_by = if grants.units {
            self.connected_by(sender.as_str()).await
        } else {
            Err(caller_unit::CallerUnitError::Unwatched)
        };
        let found = lookup
            .get_or_try_init(|| {
                let primary_groups = &self.primary_groups;
                Self::look_up(connection, sender, grants, connected_by, primary_groups)
            })
            .await
            .cloned();
        self.looking_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(sender.as_str());
        let (caller, groups) = found?;
        self.map()
            .remember(sender.as_str(), &caller, grants.units, groups);
        Ok(caller)
    }

    /// When the peer `name` had connected by: when it appeared on the bus.
    /// The bus announces a peer before it delivers the peer's first call,
    /// but the announcement is read by another task: a peer that came
    /// after the watch began (its name's number is past the first one seen
    /// arrive) waits a moment for it.
    ///
    /// # Errors
    /// Unknown: no watch ([`caller_unit::CallerUnitError::Unwatched`]), or
    /// the peer came before the watch began or its arrival is forgotten
    /// ([`caller_unit::CallerUnitError::ConnectedUnseen`]). The watch's
    /// start is no bound then: a process of the granted unit that started
    /// before tokend, at the pid of a peer gone since, would pass it.
    async fn connected_by(
        &self,
        name: &str,
    ) -> Result<std::time::Duration, caller_unit::CallerUnitError> {
        let deadline = tokio::time::Instant::now() + ARRIVAL_WAIT;
        loop {
            let arrival = self.arrival.notified();
            tokio::pin!(arrival);
            // Enabled before the look, so an arrival noted after it wakes us.
            arrival.as_mut().enable();
            {
                let table = self.map();
                if let Some(at) = table.arrived.get(name) {
                    return Ok(*at);
                }
                if !table.may_still_arrive(name) {
                    return Err(table.unseen());
                }
            }
            if tokio::time::timeout_at(deadline, arrival).await.is_err() {
                return Err(self.map().unseen());
            }
        }
    }

    /// Asks the bus who `sender` is, within [`LOOKUP_TIMEOUT`]; and what
    /// was found of its groups (see [`grantable_groups`]).
    async fn look_up(
        connection: &Connection,
        sender: &UniqueName<'_>,
        grants: GrantsBy,
        connected_by: Result<std::time::Duration, caller_unit::CallerUnitError>,
        primary_groups: &PrimaryGroups,
    ) -> Result<LookedUp, Unidentified> {
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
            .map_err(|e| match e {
                zbus::fdo::Error::NameHasNoOwner(_) => Unidentified::Gone,
                e => DbusError::Internal(format!("cannot identify the caller: {e}")).into(),
            })?;
        let uid = credentials.unix_user_id().ok_or_else(|| {
            DbusError::AccessDenied("the bus does not know the caller's uid".into())
        })?;
        let pid = credentials.process_id().and_then(|p| i32::try_from(p).ok());
        // The unit is read only while some provider grants one (README).
        // The bus's ProcessFD pins the very process (dbus-daemon 1.15.8+);
        // else its pid is pinned now, and must be of a process that
        // started before the peer appeared, and of its uid.
        let unit = match (grants.units, credentials.process_fd(), pid) {
            (true, Some(fd), _) => caller_unit::logged(
                caller_unit::of_pidfd(std::os::fd::AsFd::as_fd(fd), uid),
                uid,
                pid,
            ),
            (true, None, Some(pid)) => {
                let unit =
                    connected_by.and_then(|by| caller_unit::of_pid_connected_by(pid, uid, by));
                caller_unit::logged(unit, uid, Some(pid))
            }
            (false, ..) | (true, None, None) => None,
        };
        let reported = credentials.unix_group_ids().map(Vec::as_slice);
        let (groups, found) = grantable_groups(uid, reported, grants.groups, primary_groups).await;
        Ok((
            Caller {
                uid,
                groups,
                pid,
                unit,
            },
            found,
        ))
    }

    /// Asks the user database for the primary group of each known peer
    /// whose groups were not asked for (no provider granted by group when
    /// it called), after a reload that made some provider grant by group:
    /// the signals of the providers it gains by its primary group reach it
    /// from now on (`InterfacesAdded` among them), not only once it calls
    /// again (an object manager client that called once never would).
    pub(super) async fn read_unread_groups(&self) {
        let unread: Vec<(String, u32, Arc<[u32]>)> = {
            let table = self.map();
            table
                .groups_unread
                .iter()
                .filter_map(|(name, reported)| {
                    let caller = table.callers.get(name)?;
                    Some((name.clone(), caller.uid, Arc::clone(reported)))
                })
                .collect()
        };
        // Each uid once, all at once (bounded as every lookup is): a name
        // service that does not answer holds the reload's signals one
        // lookup's timeout, not one per peer.
        let mut uids: Vec<u32> = unread.iter().map(|(_, uid, _)| *uid).collect();
        uids.sort_unstable();
        uids.dedup();
        let answers =
            futures_util::future::join_all(uids.iter().map(|uid| self.primary_groups.said(*uid)))
                .await;
        let said: HashMap<u32, _> = uids.into_iter().zip(answers).collect();
        let mut table = self.map();
        for (name, uid, reported) in unread {
            let said = said.get(&uid).copied().flatten();
            table.groups_read(&name, peer_groups::judged(&reported, said));
        }
    }

    /// Asks the user database again for the primary group of each known
    /// peer whose primary group was asked for, and applies the answers:
    /// the peers whose groups changed (see [`peer_groups::confirm_again`]).
    pub(super) async fn confirm_groups_again(&self) -> Vec<peer_groups::Regrouped> {
        peer_groups::confirm_again(&self.known, &self.primary_groups).await
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

    /// Begins to watch peers arrive and leave the bus (`NameOwnerChanged`):
    /// before the broker's name is taken, so that every caller either
    /// came before the watch began or is seen arriving. `None` (said in
    /// the debug log) when the bus refuses the watch.
    pub(super) async fn watch_arrivals_and_departures(
        &self,
        connection: &Connection,
    ) -> Option<MessageStream> {
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(BUS_NAME)
            .and_then(|b| b.interface("org.freedesktop.DBus"))
            .and_then(|b| b.member("NameOwnerChanged"))
            .map(zbus::match_rule::Builder::build);
        let stream = match rule {
            Ok(rule) => MessageStream::for_match_rule(rule, connection, None).await,
            Err(e) => Err(e),
        };
        match stream {
            Ok(stream) => {
                // Peers that appear from now on are seen arriving; those
                // already there connected before now.
                self.map().watching_since = Some(caller_unit::since_boot());
                Some(stream)
            }
            Err(e) => {
                debug!("cannot watch peers arrive and leave the bus: {e}");
                None
            }
        }
    }

    /// Notes peers as the bus reports them arriving, and forgets them as
    /// it reports them gone, from `stream` (of
    /// [`Self::watch_arrivals_and_departures`]) until the stop.
    pub(super) async fn follow_arrivals_and_departures(
        self,
        mut stream: MessageStream,
        shutdown: CancellationToken,
    ) {
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
            // only: a signal sent to tokend's own name reaches the
            // connection whoever sent it. zbus's filter of the rule drops
            // it today (it reads the bus's name as a unique name and
            // compares senders), but that is a detail of its name parsing:
            // only the bus may say a peer left (a forged word would cost
            // that peer its signals), so it is checked here too (e2e
            // need_to_know_departure).
            if !sent_by_the_bus(&message) {
                continue;
            }
            let body = message.body();
            let Ok((name, _old, new)) = body.deserialize::<(&str, &str, &str)>() else {
                continue;
            };
            let Ok(name) = UniqueName::try_from(name) else {
                continue;
            };
            if new.is_empty() {
                self.map().forget(name.as_str());
            } else if new == name.as_str() {
                self.map().arrive(name.as_str(), caller_unit::since_boot());
                self.arrival.notify_waiters();
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

#[cfg(test)]
mod tests {
    use super::*;

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
