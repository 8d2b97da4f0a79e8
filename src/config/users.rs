//! User and group names, resolved through the system's name service
//! (NSS: `/etc/passwd` and `/etc/group`, and LDAP, sssd, systemd-homed or
//! whatever else `/etc/nsswitch.conf` names), by `nix`'s wrappers of
//! `getpwnam_r`/`getgrnam_r`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use nix::unistd::{Gid, Group as NssGroup, User};

use super::reader;
use super::{Diagnostics, GroupGrant};

/// Users and groups by name, for `allow_users`, `allow_groups`,
/// `manage_*` and `socket_group`. Looked up when asked; a name service
/// that fails counts as "no such name", and the error says so.
#[derive(Debug, Default)]
pub(super) struct UserDb;

/// A group as the name service describes it.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) gid: u32,
    members: Vec<String>,
}

impl From<NssGroup> for Group {
    fn from(group: NssGroup) -> Self {
        Self {
            gid: group.gid.as_raw(),
            members: group.mem,
        }
    }
}

impl UserDb {
    pub(super) fn group(name: &str) -> Option<Group> {
        NssGroup::from_name(name).ok().flatten().map(Group::from)
    }

    fn group_by_id(gid: u32) -> Option<Group> {
        NssGroup::from_gid(Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(Group::from)
    }

    /// The uid of user `name`: `Ok(None)` when the name service says there
    /// is none, `Err` when it could not be asked (sssd or LDAP not up yet:
    /// not the same as no such user).
    fn look_up_uid(name: &str) -> Result<Option<u32>, nix::errno::Errno> {
        User::from_name(name).map(|user| user.map(|u| u.uid.as_raw()))
    }

    /// What to say of a name service that could not be asked about `name`.
    fn unreachable(key: &str, what: &str, name: &str, error: nix::errno::Errno) -> String {
        format!(
            "`{key}`: the name service could not be asked about the {what} `{name}` ({error}); is it running (sssd, LDAP, nscd)? The unit orders tokend after nss-user-lookup.target"
        )
    }

    pub(super) fn resolve_users(
        key: &str,
        value: &reader::Value<'_>,
        diags: &mut Diagnostics<'_>,
    ) -> Vec<u32> {
        let mut out = BTreeSet::new();
        for (item, span) in id_items(value, key, diags) {
            match item {
                IdItem::Number(uid) => {
                    out.insert(uid);
                }
                IdItem::Name(name) => match Self::look_up_uid(&name) {
                    Ok(Some(uid)) => {
                        out.insert(uid);
                    }
                    Err(e) => diags.error(&span, Self::unreachable(key, "user", &name, e)),
                    Ok(None) => diags.error(&span, format!("`{key}`: no user named `{name}` in the name service (getent passwd {name}); use a numeric uid for a user it does not know")),
                },
            }
        }
        out.into_iter().collect()
    }

    pub(super) fn resolve_groups(
        key: &str,
        value: &reader::Value<'_>,
        diags: &mut Diagnostics<'_>,
    ) -> Vec<GroupGrant> {
        let mut out = Vec::new();
        for (item, span) in id_items(value, key, diags) {
            let group = match item {
                IdItem::Number(gid) => Self::group_by_id(gid),
                IdItem::Name(ref name) => match NssGroup::from_name(name) {
                    Ok(Some(group)) => Some(Group::from(group)),
                    Ok(None) => {
                        diags.error(&span, format!("`{key}`: no group named `{name}` in the name service (getent group {name})"));
                        continue;
                    }
                    Err(e) => {
                        diags.error(&span, Self::unreachable(key, "group", name, e));
                        continue;
                    }
                },
            };
            let gid = match (&group, &item) {
                (Some(g), _) => g.gid,
                (None, IdItem::Number(gid)) => *gid,
                (None, IdItem::Name(_)) => continue,
            };
            let mut member_uids = Vec::new();
            for member in group.iter().flat_map(|g| &g.members) {
                match Self::look_up_uid(member) {
                    Ok(Some(uid)) => member_uids.push(uid),
                    // Said, not silently left out: the member is refused.
                    Ok(None) => diags.warning(&span, format!("`{key}`: the group's member `{member}` is no user the name service knows: left out")),
                    Err(e) => diags.error(&span, Self::unreachable(key, "group member", member, e)),
                }
            }
            out.push(GroupGrant { gid, member_uids });
        }
        out
    }
}

/// The primary group of user `uid` in the user database (its `passwd`
/// entry's gid), when the name service knows the user: what D-Bus callers'
/// group grants match beside the group database's member lists (see
/// `ipc::dbus::peers`).
#[must_use]
pub fn primary_gid(uid: u32) -> Option<u32> {
    primary_gid_answer(uid).flatten()
}

/// [`primary_gid`], telling apart a user the name service does not know
/// (`Some(None)`, a sure answer) from a name service that did not answer
/// (`None`).
#[must_use]
pub fn primary_gid_answer(uid: u32) -> Option<Option<u32>> {
    User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .map(|user| user.map(|user| user.gid.as_raw()))
}

/// The members of each group of `gids` as the name service lists them now,
/// by uid: for the daemon's recheck of group grants, which were resolved
/// when the config was read. A group the name service cannot be asked
/// about, or one with a member it cannot resolve, is left out (its grant
/// stays as it was): a name service that is down revokes nothing.
#[must_use]
pub fn current_group_members(gids: &BTreeSet<u32>) -> BTreeMap<u32, Vec<u32>> {
    let mut found = BTreeMap::new();
    'groups: for &gid in gids {
        let Ok(group) = NssGroup::from_gid(Gid::from_raw(gid)) else {
            continue;
        };
        let mut member_uids = BTreeSet::new();
        for member in group.iter().flat_map(|g| &g.mem) {
            match UserDb::look_up_uid(member) {
                Ok(Some(uid)) => {
                    member_uids.insert(uid);
                }
                // As when the config is read: an unknown member is left out.
                Ok(None) => {}
                Err(_) => continue 'groups,
            }
        }
        found.insert(gid, member_uids.into_iter().collect());
    }
    found
}

enum IdItem {
    Number(u32),
    Name(String),
}

fn id_items(
    value: &reader::Value<'_>,
    key: &str,
    diags: &mut Diagnostics<'_>,
) -> Vec<(IdItem, Range<usize>)> {
    let Some(items) = value.get_ref().as_array() else {
        diags.error(
            &value.span(),
            format!("`{key}` must be an array of names or numeric ids"),
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item.get_ref() {
            toml::de::DeValue::String(s) => Some((IdItem::Name(s.to_string()), item.span())),
            toml::de::DeValue::Integer(_) => {
                reader::expect_integer(diags, key, item, 0..=i64::from(u32::MAX - 1))
                    .and_then(|n| u32::try_from(n).ok())
                    .map(|n| (IdItem::Number(n), item.span()))
            }
            other => {
                diags.error(
                    &item.span(),
                    format!(
                        "`{key}` entries must be names or numeric ids, not {}",
                        other.type_str()
                    ),
                );
                None
            }
        })
        .collect()
}
