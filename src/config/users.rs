//! User and group names, resolved through the system's name service
//! (NSS: `/etc/passwd` and `/etc/group`, and LDAP, sssd, systemd-homed or
//! whatever else `/etc/nsswitch.conf` names), by `nix`'s wrappers of
//! `getpwnam_r`/`getgrnam_r`.

use std::collections::BTreeSet;
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

    fn uid_of(name: &str) -> Option<u32> {
        User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
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
                IdItem::Name(name) => match Self::uid_of(&name) {
                    Some(uid) => {
                        out.insert(uid);
                    }
                    None => diags.error(&span, format!("`{key}`: no user named `{name}` in the name service (getent passwd {name}); use a numeric uid for a user it does not know")),
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
                IdItem::Name(ref name) => {
                    let g = Self::group(name);
                    if g.is_none() {
                        diags.error(&span, format!("`{key}`: no group named `{name}` in the name service (getent group {name})"));
                        continue;
                    }
                    g
                }
            };
            let gid = match (&group, &item) {
                (Some(g), _) => g.gid,
                (None, IdItem::Number(gid)) => *gid,
                (None, IdItem::Name(_)) => continue,
            };
            let member_uids = group
                .map(|g| g.members.iter().filter_map(|m| Self::uid_of(m)).collect())
                .unwrap_or_default();
            out.push(GroupGrant { gid, member_uids });
        }
        out
    }
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
