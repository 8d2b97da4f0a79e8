//! The table of the bus's peers that [`super::peers::Peers`] keeps: the
//! callers known by unique name, the last ones to leave, and when each
//! peer appeared (for the reading of its unit), each bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::broker::Caller;
use crate::ipc::caller_unit;

/// Peers remembered at most; beyond this a caller is identified afresh on
/// each call and gets no unicast signals. The bus's own per-user and total
/// connection limits keep real systems far below it.
const PEER_LIMIT: usize = 65_536;

/// Departed peers remembered, so that a lookup that ends after its peer
/// left (its `NameOwnerChanged` handled first) does not remember a peer
/// that will never be forgotten. Far more than can leave during one lookup.
const DEPARTED_REMEMBERED: usize = 1024;

/// Arrivals remembered (when a unique name appeared on the bus), for a
/// peer's first call: see [`caller_unit::of_pid_connected_by`]. Each is
/// let go at the peer's departure, or as newer ones push it out; a peer
/// whose arrival is not remembered gets no unit on a bus without pidfds
/// (its connect time unknown, a process that reuses its pid could not be
/// told apart).
const ARRIVALS_REMEMBERED: usize = 4096;

/// How long a caller whose primary group could not be confirmed (the name
/// service did not answer, or did not know the user) is taken as found,
/// before its next call asks again: as often as the group grants' member
/// lists are read again (`broker::group_recheck`). A name service that was
/// restarting then costs the peer its group grant for this long, not for
/// the life of its connection. Also how often every known peer's primary
/// group is asked for again (`signals::regrouped`), sure or not.
pub(super) const GROUPS_LOOK_AGAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// What some provider grants by, besides uids: only then is that of a
/// caller read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct GrantsBy {
    /// Some provider grants by systemd unit (`allow_units`).
    pub(super) units: bool,
    /// Some provider grants by group (`allow_groups`, `manage_groups`).
    pub(super) groups: bool,
}

/// What a peer's lookup found of its groups. The groups the bus reported
/// of a peer are kept when its primary group was asked for, to be
/// confirmed again (`peer_groups::confirm_again`): the user's primary
/// group may change while the peer stays (`usermod -g`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GroupsFound {
    /// None to confirm: root or the daemon's own user, or a peer the bus
    /// reported in no group.
    Nothing,
    /// Its primary group confirmed; the groups the bus reported.
    Sure(Arc<[u32]>),
    /// Not confirmed at this instant: the name service did not answer or
    /// did not know the user (see [`GROUPS_LOOK_AGAIN`]); the groups the
    /// bus reported.
    UnsureSince(std::time::Instant, Arc<[u32]>),
    /// Not asked for: no provider granted by group; the groups the bus
    /// reported, to be confirmed when a reload grants by group (see
    /// `Peers::read_unread_groups`), or by the peer's next call.
    Unread(Arc<[u32]>),
}

/// The peers known by unique name, the last ones to leave, and when the
/// newest appeared.
#[derive(Debug, Default)]
pub(super) struct PeerTable {
    pub(super) callers: HashMap<String, Caller>,
    pub(super) departed: VecDeque<String>,
    /// When each peer on the bus appeared (`CLOCK_BOOTTIME`), and in which
    /// order, to let the oldest go; each let go when its peer leaves.
    pub(super) arrived: HashMap<String, std::time::Duration>,
    pub(super) arrival_order: VecDeque<String>,
    /// Known peers whose unit was not read (no provider granted units).
    pub(super) units_unread: std::collections::HashSet<String>,
    /// Known peers whose primary group could not be confirmed, and when
    /// they were looked up (see [`GROUPS_LOOK_AGAIN`]).
    pub(super) groups_unsure: HashMap<String, std::time::Instant>,
    /// Known peers whose primary group was not asked for (no provider
    /// granted by group), with the groups the bus reported.
    pub(super) groups_unread: HashMap<String, std::sync::Arc<[u32]>>,
    /// Known peers whose primary group was asked for (sure or unsure),
    /// with the groups the bus reported: confirmed again every
    /// [`GROUPS_LOOK_AGAIN`] (`peer_groups::confirm_again`).
    pub(super) groups_asked: HashMap<String, std::sync::Arc<[u32]>>,
    /// When tokend began to watch peers arrive and leave.
    pub(super) watching_since: Option<std::time::Duration>,
    /// The number of the first unique name seen arrive: a peer numbered
    /// from it on came after the watch began.
    pub(super) first_seen: Option<u64>,
}

/// The number a bus gives a unique name (`:1.42`: 42), in order of
/// connection.
fn number_of(name: &str) -> Option<u64> {
    name.rsplit('.').next()?.parse().ok()
}

impl PeerTable {
    /// Remembers `caller` as the peer `name`, unless the table is full or
    /// the peer has already left (the bus never reuses a unique name).
    /// `units_read` says whether its unit was read (a provider granted
    /// units): if not, a later call that needs it looks the peer up again.
    /// `groups` says what its lookup found of its primary group: a later
    /// call asks again after [`GROUPS_LOOK_AGAIN`] if it was unsure, or
    /// when a provider grants by group if it was not asked for.
    pub(super) fn remember(
        &mut self,
        name: &str,
        caller: &Caller,
        units_read: bool,
        groups: GroupsFound,
    ) {
        if self.callers.len() < PEER_LIMIT && !self.departed.iter().any(|d| d == name) {
            self.callers.insert(name.to_owned(), caller.clone());
            if units_read {
                self.units_unread.remove(name);
            } else {
                self.units_unread.insert(name.to_owned());
            }
            self.note_groups(name, groups);
        }
    }

    /// Notes what was found of the groups of the known peer `name`.
    pub(super) fn note_groups(&mut self, name: &str, groups: GroupsFound) {
        match groups {
            GroupsFound::UnsureSince(at, reported) => {
                self.groups_unread.remove(name);
                self.groups_unsure.insert(name.to_owned(), at);
                self.groups_asked.insert(name.to_owned(), reported);
            }
            GroupsFound::Sure(reported) => {
                self.groups_unread.remove(name);
                self.groups_unsure.remove(name);
                self.groups_asked.insert(name.to_owned(), reported);
            }
            GroupsFound::Nothing => {
                self.groups_unread.remove(name);
                self.groups_unsure.remove(name);
                self.groups_asked.remove(name);
            }
            GroupsFound::Unread(reported) => {
                self.groups_unsure.remove(name);
                self.groups_asked.remove(name);
                self.groups_unread.insert(name.to_owned(), reported);
            }
        }
    }

    /// The groups of the known peer `name`, which were not asked for, as
    /// the user database has now confirmed them (`groups`, and what was
    /// found); nothing if it left meanwhile, or was looked up again.
    pub(super) fn groups_read(&mut self, name: &str, (groups, found): (Arc<[u32]>, GroupsFound)) {
        if !self.groups_unread.contains_key(name) {
            return;
        }
        if let Some(caller) = self.callers.get_mut(name) {
            caller.groups = groups;
            self.note_groups(name, found);
        }
    }

    /// The remembered caller `name`, unless it must be looked up again:
    /// its unit is needed (`grants.units`) and was not read, its groups
    /// are needed (`grants.groups`) and were not asked for, or they were
    /// unsure [`GROUPS_LOOK_AGAIN`] ago or more.
    pub(super) fn current(
        &self,
        name: &str,
        grants: GrantsBy,
        now: std::time::Instant,
    ) -> Option<&Caller> {
        let caller = self.callers.get(name)?;
        if grants.units && self.units_unread.contains(name) {
            return None;
        }
        if grants.groups && self.groups_unread.contains_key(name) {
            return None;
        }
        if self
            .groups_unsure
            .get(name)
            .is_some_and(|at| now.saturating_duration_since(*at) >= GROUPS_LOOK_AGAIN)
        {
            return None;
        }
        Some(caller)
    }

    /// Notes that the peer `name` appeared on the bus at `at`.
    pub(super) fn arrive(&mut self, name: &str, at: std::time::Duration) {
        // The order may name peers already looked up or gone: letting such
        // a name go is a no-op, and the order stays bounded with the map.
        if self.arrival_order.len() >= ARRIVALS_REMEMBERED
            && let Some(oldest) = self.arrival_order.pop_front()
        {
            self.arrived.remove(&oldest);
        }
        self.arrived.insert(name.to_owned(), at);
        self.arrival_order.push_back(name.to_owned());
        if self.first_seen.is_none() {
            self.first_seen = number_of(name);
        }
    }

    /// Why a peer's arrival is unknown: no watch, or not seen.
    pub(super) fn unseen(&self) -> caller_unit::CallerUnitError {
        if self.watching_since.is_some() {
            caller_unit::CallerUnitError::ConnectedUnseen
        } else {
            caller_unit::CallerUnitError::Unwatched
        }
    }

    /// Whether the arrival of `name` may be still unread: the watch began,
    /// and `name` is numbered past the first arrival seen (or none was seen
    /// yet). A name without a number is taken as having come before.
    pub(super) fn may_still_arrive(&self, name: &str) -> bool {
        self.watching_since.is_some()
            && number_of(name)
                .is_some_and(|number| self.first_seen.is_none_or(|first| number >= first))
    }

    /// Forgets the peer `name`, which left the bus.
    pub(super) fn forget(&mut self, name: &str) {
        self.callers.remove(name);
        self.units_unread.remove(name);
        self.groups_unsure.remove(name);
        self.groups_unread.remove(name);
        self.groups_asked.remove(name);
        if self.arrived.remove(name).is_some() {
            self.arrival_order.retain(|arrived| arrived != name);
        }
        if self.departed.len() == DEPARTED_REMEMBERED {
            self.departed.pop_front();
        }
        self.departed.push_back(name.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNITS: GrantsBy = GrantsBy {
        units: true,
        groups: false,
    };

    /// A peer whose lookup ends after the bus said it left is not
    /// remembered (it would never be forgotten: 65,536 such and new
    /// callers would get no signals); others are, until they leave.
    #[test]
    fn a_peer_that_left_during_its_lookup_is_not_remembered() {
        let mut table = PeerTable::default();
        table.remember(":1.5", &Caller::uid(1000), true, GroupsFound::Nothing);
        assert!(table.callers.contains_key(":1.5"));
        table.forget(":1.5");
        assert!(table.callers.is_empty());
        // :1.6 leaves while the bus is asked about it.
        table.forget(":1.6");
        table.remember(":1.6", &Caller::uid(1000), true, GroupsFound::Nothing);
        assert!(table.callers.is_empty());
        // The record of departures is bounded.
        for i in 0..2 * DEPARTED_REMEMBERED {
            table.forget(&format!(":2.{i}"));
        }
        assert_eq!(table.departed.len(), DEPARTED_REMEMBERED);
    }

    /// A peer's arrival is kept for its first call, at most
    /// `ARRIVALS_REMEMBERED` of them; a peer numbered before the first
    /// arrival seen came before the watch and is not waited for.
    #[test]
    fn arrivals_are_bounded_and_tell_who_may_still_arrive() {
        let mut table = PeerTable::default();
        assert!(
            !table.may_still_arrive(":1.9"),
            "no watch, nothing to wait for"
        );
        table.watching_since = Some(std::time::Duration::from_secs(10));
        assert!(table.may_still_arrive(":1.9"), "nothing seen yet");
        table.arrive(":1.10", std::time::Duration::from_secs(11));
        assert!(!table.may_still_arrive(":1.9"), "came before the watch");
        assert!(table.may_still_arrive(":1.11"));
        assert!(!table.may_still_arrive("not-unique"));
        for i in 0..2 * ARRIVALS_REMEMBERED {
            table.arrive(
                &format!(":1.{}", 100 + i),
                std::time::Duration::from_secs(12),
            );
        }
        assert_eq!(table.arrived.len(), ARRIVALS_REMEMBERED);
        assert!(!table.arrived.contains_key(":1.10"), "the oldest let go");
        table.forget(&format!(":1.{}", 99 + 2 * ARRIVALS_REMEMBERED));
        assert_eq!(table.arrived.len(), ARRIVALS_REMEMBERED - 1);
    }

    /// Peers that came and went do not push out the arrival of one still
    /// there (thousands of short `busctl` calls before a long-lived
    /// service first asks for a token).
    #[test]
    fn departed_peers_do_not_push_out_an_arrival() {
        let mut table = PeerTable::default();
        table.arrive(":1.10", std::time::Duration::from_secs(11));
        for i in 0..2 * ARRIVALS_REMEMBERED {
            let name = format!(":1.{}", 100 + i);
            table.arrive(&name, std::time::Duration::from_secs(12));
            table.forget(&name);
        }
        assert!(table.arrived.contains_key(":1.10"));
        assert_eq!(table.arrival_order.len(), 1);
    }

    /// A peer remembered while no provider granted units is marked, so
    /// that a call after a reload that grants one reads its unit.
    #[test]
    fn a_peer_whose_unit_was_not_read_is_marked() {
        let mut table = PeerTable::default();
        let now = std::time::Instant::now();
        table.remember(":1.5", &Caller::uid(1000), false, GroupsFound::Nothing);
        assert!(table.units_unread.contains(":1.5"));
        assert!(table.current(":1.5", GrantsBy::default(), now).is_some());
        assert!(
            table.current(":1.5", UNITS, now).is_none(),
            "its unit is needed"
        );
        table.remember(":1.5", &Caller::uid(1000), true, GroupsFound::Nothing);
        assert!(!table.units_unread.contains(":1.5"));
        assert!(table.current(":1.5", UNITS, now).is_some());
        table.remember(":1.6", &Caller::uid(1000), false, GroupsFound::Nothing);
        table.forget(":1.6");
        assert!(table.units_unread.is_empty());
    }

    /// A peer whose primary group the name service could not confirm is
    /// asked about again once [`GROUPS_LOOK_AGAIN`] has passed, not kept
    /// without its group grant for the life of its connection; a lookup
    /// that confirms it ends that.
    #[test]
    fn a_peer_whose_groups_were_unsure_is_looked_up_again() {
        let mut table = PeerTable::default();
        let then = std::time::Instant::now();
        table.remember(
            ":1.7",
            &Caller::uid(1),
            true,
            GroupsFound::UnsureSince(then, Arc::from([5])),
        );
        assert!(table.current(":1.7", GrantsBy::default(), then).is_some());
        let later = then + GROUPS_LOOK_AGAIN;
        assert!(table.current(":1.7", GrantsBy::default(), later).is_none());
        table.remember(
            ":1.7",
            &Caller::uid(1),
            true,
            GroupsFound::Sure(Arc::from([5])),
        );
        assert!(table.current(":1.7", GrantsBy::default(), later).is_some());
        assert!(table.groups_unsure.is_empty());
        // Its reported groups are kept to be confirmed again, sure or not.
        assert_eq!(table.groups_asked.get(":1.7").map(|g| &**g), Some(&[5][..]));
        table.remember(
            ":1.8",
            &Caller::uid(1),
            true,
            GroupsFound::UnsureSince(then, Arc::from([5])),
        );
        table.forget(":1.8");
        table.forget(":1.7");
        assert!(table.groups_unsure.is_empty());
        assert!(table.groups_asked.is_empty());
    }

    /// A peer remembered while no provider granted by group is marked, so
    /// that a call after a reload that grants one asks for its groups.
    #[test]
    fn a_peer_whose_groups_were_not_asked_for_is_marked() {
        let mut table = PeerTable::default();
        let now = std::time::Instant::now();
        let groups = GrantsBy {
            units: false,
            groups: true,
        };
        table.remember(
            ":1.5",
            &Caller::uid(1000),
            true,
            GroupsFound::Unread(Arc::from([])),
        );
        assert!(table.current(":1.5", GrantsBy::default(), now).is_some());
        assert!(table.current(":1.5", groups, now).is_none());
        table.remember(":1.5", &Caller::uid(1000), true, GroupsFound::Nothing);
        assert!(table.current(":1.5", groups, now).is_some());
        table.remember(
            ":1.6",
            &Caller::uid(1000),
            true,
            GroupsFound::Unread(Arc::from([])),
        );
        table.forget(":1.6");
        assert!(table.groups_unread.is_empty());
    }
}
