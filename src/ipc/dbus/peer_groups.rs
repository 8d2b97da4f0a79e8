//! The groups of a D-Bus caller that a grant by group matches directly,
//! asked of the user database as the socket's are (`ipc::primary_groups`).

use std::sync::Arc;

use super::peer_table::GroupsFound;
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
/// its connection.
pub(super) async fn grantable_groups(
    uid: u32,
    reported: Option<&[u32]>,
    groups_granted: bool,
    primary_groups: &PrimaryGroups,
) -> (Arc<[u32]>, GroupsFound) {
    let Some(reported) = reported.filter(|groups| !groups.is_empty()) else {
        return (Arc::from([]), GroupsFound::Sure);
    };
    if manages_all(uid) {
        return (Arc::from([]), GroupsFound::Sure);
    }
    if !groups_granted {
        return (Arc::from([]), GroupsFound::Unread(Arc::from(reported)));
    }
    judged(reported, primary_groups.said(uid).await)
}

/// The groups a grant matches of a caller the bus reports in `reported`,
/// whose user's primary group the user database `said`.
pub(super) fn judged(reported: &[u32], said: Option<Said>) -> (Arc<[u32]>, GroupsFound) {
    let found = match said {
        Some(Said::Primary(_)) => GroupsFound::Sure,
        Some(Said::NoSuchUser) | None => GroupsFound::UnsureSince(std::time::Instant::now()),
    };
    (grantable(reported, said.and_then(Said::primary)), found)
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
            (&[1][..], GroupsFound::Sure),
            "its primary group"
        );
        let (got, sure) = found(1, vec![5], true).await;
        assert_eq!(
            (&*got, sure),
            (&[][..], GroupsFound::Sure),
            "not in its primary group"
        );
        let (got, sure) = found(4_000_000_123, vec![5], true).await;
        assert!(got.is_empty(), "no such user");
        assert!(matches!(sure, GroupsFound::UnsureSince(_)), "no such user");
        let (got, sure) = grantable_groups(4_000_000_123, None, true, &groups).await;
        assert_eq!(
            (&*got, sure),
            (&[][..], GroupsFound::Sure),
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
            (&[][..], GroupsFound::Sure),
            "root manages all"
        );
        assert_eq!(
            groups.known(0, std::time::Instant::now()),
            None,
            "root asked for"
        );
    }
}
