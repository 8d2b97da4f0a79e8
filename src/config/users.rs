//! User and group names, resolved from `/etc/passwd` and `/etc/group`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use super::reader;
use super::{Diagnostics, GroupGrant};

/// Users and groups from `/etc/passwd` and `/etc/group`, for `allow_users`,
/// `allow_groups` and `socket_group` given by name.
#[derive(Debug, Default)]
pub(super) struct UserDb {
    users: Vec<(String, u32, u32)>,
    groups: Vec<Group>,
}

#[derive(Debug)]
pub(super) struct Group {
    name: String,
    pub(super) gid: u32,
    members: Vec<String>,
}

impl UserDb {
    pub(super) fn read(etc: &Path) -> Self {
        let lines = |file: &str| std::fs::read_to_string(etc.join(file)).unwrap_or_default();
        let users = lines("passwd")
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                Some((
                    f.first()?.to_string(),
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.parse().ok()?,
                ))
            })
            .collect();
        let groups = lines("group")
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                Some(Group {
                    name: f.first()?.to_string(),
                    gid: f.get(2)?.parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| {
                            m.split(',')
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect();
        Self { users, groups }
    }

    pub(super) fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub(super) fn resolve_users(
        &self,
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
                IdItem::Name(name) => match self.users.iter().find(|(n, _, _)| *n == name) {
                    Some((_, uid, _)) => {
                        out.insert(*uid);
                    }
                    None => diags.error(&span, format!("`{key}`: no user named `{name}` (use a numeric uid for users not in /etc/passwd)")),
                },
            }
        }
        out.into_iter().collect()
    }

    pub(super) fn resolve_groups(
        &self,
        key: &str,
        value: &reader::Value<'_>,
        diags: &mut Diagnostics<'_>,
    ) -> Vec<GroupGrant> {
        let mut out = Vec::new();
        for (item, span) in id_items(value, key, diags) {
            let group = match item {
                IdItem::Number(gid) => self.groups.iter().find(|g| g.gid == gid),
                IdItem::Name(ref name) => {
                    let g = self.group(name);
                    if g.is_none() {
                        diags.error(&span, format!("`{key}`: no group named `{name}`"));
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
                .map(|g| {
                    g.members
                        .iter()
                        .filter_map(|m| {
                            self.users
                                .iter()
                                .find(|(n, _, _)| n == m)
                                .map(|(_, uid, _)| *uid)
                        })
                        .collect()
                })
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
