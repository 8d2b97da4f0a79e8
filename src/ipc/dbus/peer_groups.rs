//! The groups of a D-Bus caller that a grant by group matches directly,
//! asked of the user database as the socket's are (`ipc::primary_groups`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::peer_table::{GroupsFound, PeerTable};
use crate::broker::Caller;
use crate::ipc::primary_groups::{PrimaryGroups, Said, grantable, manages_all};

/// The groups of a D-Bus caller that a grant by group matches directly:
/// its user's primary group, when the bus reports the process in it.
///
/// The other groups the bus reports are the process's supplementary
/// groups, fixed when its session began: a user taken out of a group
/// (`gpasswd -d`) keeps it there until they log in again, and `setpriv`
/// or a unit's `SupplementaryGroups=` give groups the group database does
/// not list. Grants match those only through the group database's member
/// lists, which are read again every 30 s (`broker::group_recheck`), as
/// on the socket, where the kernel's gid counts only when it is the
/// user's primary group too (`ipc::socket::admission`): the two
/// front-ends give one answer, and a removal takes effect on both. A
/// name service that does not answer leaves the member lists alone.
///
/// The user database is asked as on the socket (`ipc::primary_groups`):
/// only while some provider grants by group (`groups_granted`; else the
/// groups are [`GroupsFound::Unread`]), never for root or the daemon's own
/// user, once per uid in 30 s, a few lookups at once. The answer is not
/// sure when the name service did not answer or did not know the user
/// (sssd or LDAP restarting looks like either), so the peer is asked
/// about again later rather than kept without its group for the life of
/// its connection. Sure or not, its primary group is confirmed again
/// every 30 s while it stays ([`confirm_again`]).
pub(super) async fn grantable_groups(
    uid: u32,
    reported: Option<&[u32]>,
    groups_granted: bool,
    primary_groups: &PrimaryGroups,
) -> (Arc<[u32]>, GroupsFound) {
    let Some(reported) = reported.filter(|groups| !groups.is_empty()) else {
        return (Arc::from([]), GroupsFound::Nothing);
    };
    if manages_all(uid) {
        return (Arc::from([]), GroupsFound::Nothing);
    }
    let reported: Arc<[u32]> = Arc::from(reported);
    if !groups_granted {
        return (Arc::from([]), GroupsFound::Unread(reported));
    }
    judged(&reported, primary_groups.said(uid).await)
}

/// The groups a grant matches of a caller the bus reports in `reported`,
/// whose user's primary group the user database `said`.
pub(super) fn judged(reported: &Arc<[u32]>, said: Option<Said>) -> (Arc<[u32]>, GroupsFound) {
    let kept = Arc::clone(reported);
    let found = match said {
        Some(Said::Primary(_)) => GroupsFound::Sure(kept),
        Some(Said::NoSuchUser) | None => GroupsFound::UnsureSince(std::time::Instant::now(), kept),
    };
    (grantable(reported, said.and_then(Said::primary)), found)
}

/// A known peer whose groups changed when its primary group was confirmed
/// again: its unique name, and the caller it was and is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Regrouped {
    /// The peer's unique name.
    pub(super) name: String,
    /// The caller before.
    pub(super) before: Caller,
    /// The caller now.
    pub(super) after: Caller,
}

/// Asks the user database anew for the primary group of each uid among
/// the peers of `table` whose primary group was asked for, and applies the
/// answers: the peers whose groups changed.
///
/// Why: the bus's credentials of a peer never change, but the user's
/// primary group may (`usermod -g`), and a group grant must then go from
/// (or come to) the peers the user keeps, as it does when the member
/// lists change (`broker::group_recheck`). Asked anew, not taken from the
/// answers kept for new peers, which may be as old as the period between
/// two of these: no peer is judged on a word older than that period.
/// Each uid once, all at once (bounded as every lookup is); a uid the name
/// service did not answer for keeps what it had, as the member lists do.
pub(super) async fn confirm_again(
    table: &Mutex<PeerTable>,
    primary_groups: &PrimaryGroups,
) -> Vec<Regrouped> {
    let uids: BTreeSet<u32> = {
        let table = lock(table);
        table
            .groups_asked
            .keys()
            .filter_map(|name| table.callers.get(name).map(|caller| caller.uid))
            .collect()
    };
    if uids.is_empty() {
        return Vec::new();
    }
    let answers =
        futures_util::future::join_all(uids.iter().map(|uid| primary_groups.look_up(*uid))).await;
    let said: HashMap<u32, Said> = uids
        .into_iter()
        .zip(answers)
        .filter_map(|(uid, said)| Some((uid, said?)))
        .collect();
    apply(&mut lock(table), &said)
}

/// Applies `said` (per uid) to the peers of `table` whose primary group
/// was asked for: the peers whose groups changed.
fn apply(table: &mut PeerTable, said: &HashMap<u32, Said>) -> Vec<Regrouped> {
    let asked: Vec<(String, Arc<[u32]>)> = table
        .groups_asked
        .iter()
        .map(|(name, reported)| (name.clone(), Arc::clone(reported)))
        .collect();
    let mut changed = Vec::new();
    for (name, reported) in asked {
        let Some(caller) = table.callers.get_mut(&name) else {
            continue;
        };
        let Some(said) = said.get(&caller.uid) else {
            continue;
        };
        let (groups, found) = judged(&reported, Some(*said));
        if groups != caller.groups {
            let before = caller.clone();
            caller.groups = groups;
            let after = caller.clone();
            changed.push(Regrouped {
                name: name.clone(),
                before,
                after,
            });
        }
        table.note_groups(&name, found);
    }
    changed
}

fn lock(table: &Mutex<PeerTable>) -> MutexGuard<'_, PeerTable> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user the name service knows gets its primary group, surely; one
    /// it does not know (or could not be asked about) is unsure, to be
    /// asked about again. Nothing is asked while no provider grants by
    /// group, nor for root. (Debian's user `daemon`, uid 1, has the
    /// primary group 1.)
    #[tokio::test]
    async fn an_unknown_user_leaves_its_groups_unsure() {
        if crate::config::primary_gid_answer(1) != Some(Some(1)) {
            eprintln!(
                "SKIPPED an_unknown_user_leaves_its_groups_unsure: no user of uid 1 in group 1"
            );
            return;
        }
        let groups = PrimaryGroups::default();
        let found = |uid, reported: Vec<u32>, granted| {
            let groups = &groups;
            async move { grantable_groups(uid, Some(&reported[..]), granted, groups).await }
        };
        let (got, sure) = found(1, vec![1, 5], true).await;
        assert_eq!(
            (&*got, sure),
            (&[1][..], GroupsFound::Sure(Arc::from([1, 5]))),
            "its primary group"
        );
        let (got, sure) = found(1, vec![5], true).await;
        assert_eq!(
            (&*got, sure),
            (&[][..], GroupsFound::Sure(Arc::from([5]))),
            "not in its primary group"
        );
        let (got, sure) = found(4_000_000_123, vec![5], true).await;
        assert!(got.is_empty(), "no such user");
        assert!(matches!(sure, GroupsFound::UnsureSince(..)), "no such user");
        let (got, sure) = grantable_groups(4_000_000_123, None, true, &groups).await;
        assert_eq!(
            (&*got, sure),
            (&[][..], GroupsFound::Nothing),
            "no groups to confirm"
        );
        let (got, sure) = found(4_000_000_124, vec![5], false).await;
        assert_eq!(
            (&*got, sure),
            (&[][..], GroupsFound::Unread(Arc::from([5]))),
            "no group grants"
        );
        assert_eq!(
            groups.known(4_000_000_124, std::time::Instant::now()),
            None,
            "asked"
        );
        let (got, sure) = found(0, vec![0], true).await;
        assert_eq!(
            (&*got, sure),
            (&[][..], GroupsFound::Nothing),
            "root manages all"
        );
        assert_eq!(
            groups.known(0, std::time::Instant::now()),
            None,
            "root asked for"
        );
    }

    /// Confirmed again, a peer's groups follow the user's primary group:
    /// a peer whose user was moved out of the group it holds loses it, one
    /// moved into it gains it; a uid the name service did not answer for
    /// keeps what it had; peers not asked for (root, no group grant) are
    /// left alone.
    #[test]
    fn confirmed_again_groups_follow_the_primary_group() {
        let mut table = PeerTable::default();
        let held = |uid, groups: &[u32]| Caller {
            groups: Arc::from(groups),
            ..Caller::uid(uid)
        };
        table.remember(
            ":1.1",
            &held(1000, &[100]),
            true,
            GroupsFound::Sure(Arc::from([100, 7])),
        );
        table.remember(
            ":1.2",
            &held(1001, &[]),
            true,
            GroupsFound::Sure(Arc::from([100])),
        );
        let unsure = GroupsFound::UnsureSince(std::time::Instant::now(), Arc::from([100]));
        table.remember(":1.3", &held(1002, &[]), true, unsure);
        table.remember(
            ":1.4",
            &held(1003, &[100]),
            true,
            GroupsFound::Sure(Arc::from([100])),
        );
        table.remember(":1.5", &held(0, &[]), true, GroupsFound::Nothing);
        table.remember(
            ":1.6",
            &held(1000, &[]),
            true,
            GroupsFound::Unread(Arc::from([100])),
        );
        let said = HashMap::from([
            (1000, Said::Primary(200)),
            (1001, Said::Primary(100)),
            (1002, Said::Primary(100)),
        ]);
        let mut changed = apply(&mut table, &said);
        changed.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<_> = changed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, [":1.1", ":1.2", ":1.3"]);
        assert_eq!(&*changed[0].before.groups, [100]);
        assert!(changed[0].after.groups.is_empty(), "moved out");
        assert_eq!(&*changed[1].after.groups, [100], "moved in");
        assert_eq!(&*table.callers[":1.3"].groups, [100], "confirmed at last");
        assert!(table.groups_unsure.is_empty());
        assert_eq!(&*table.callers[":1.4"].groups, [100], "no answer: kept");
        assert!(table.callers[":1.6"].groups.is_empty(), "not asked for");
        assert!(apply(&mut table, &said).is_empty(), "nothing changes twice");
    }
}
