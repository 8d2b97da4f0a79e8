//! Who may do what with a provider: the one place that decides.
//!
//! Both front-ends identify the caller by uid (the socket through
//! `SO_PEERCRED`, D-Bus through the bus daemon's credentials) and the broker
//! asks the provider's [`AccessPolicy`] for the caller's [`Role`]; neither
//! front-end decides on its own.
//!
//! - **Use** (`allow_users`, `allow_groups`, `allow_units`): get tokens,
//!   see the provider's status.
//! - **Manage** (`manage_users`, `manage_groups`): also log in and out, and
//!   see the login's prompt (its user code: whoever approves a code first
//!   binds the provider to their own account).
//! - Root and the daemon's own uid manage every provider. Anyone else has
//!   no role unless granted one, and a caller without a role learns nothing
//!   about the provider, not even that it exists.

use std::sync::Arc;

use crate::config::{GroupGrant, ProviderConfig, UnitPattern};

/// Who is asking, as the kernel (or the bus daemon) vouches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group ids a grant by group matches directly: its user's primary
    /// group in the user database, when the process holds it (on the
    /// socket its gid from `SO_PEERCRED`; on D-Bus when the bus daemon
    /// reports the process in it). Not the other groups a process holds:
    /// supplementary groups outlive a `gpasswd -d`, and so does a gid
    /// taken with `sg`/`newgrp` or from a setgid program.
    /// Empty when unknown. Group grants also match by the member lists of
    /// the group database (read again every 30 s), so both front-ends
    /// give the same answer for the same user.
    pub groups: Arc<[u32]>,
    /// Process id, when known (for logs only: pids are reused).
    pub pid: Option<i32>,
    /// The systemd unit (service or scope) the caller's process runs in,
    /// read from its cgroup through a pidfd so that a reused pid cannot
    /// lend it another process's unit; `None` when unknown or not looked
    /// up (no provider grants units).
    pub unit: Option<Arc<str>>,
}

impl Caller {
    /// A caller known only by uid.
    #[must_use]
    pub fn uid(uid: u32) -> Self {
        Self {
            uid,
            groups: Arc::from([]),
            pid: None,
            unit: None,
        }
    }
}

/// What a caller may do with one provider, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Nothing; the provider does not exist for this caller.
    None,
    /// Get tokens and see the status.
    Use,
    /// Also log in and out, and see login prompts.
    Manage,
}

/// Users and groups granted one role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RoleHolders {
    users: Vec<u32>,
    groups: Vec<GroupGrant>,
    units: Vec<UnitPattern>,
}

impl RoleHolders {
    fn includes(&self, caller: &Caller) -> bool {
        self.users.contains(&caller.uid)
            || self
                .groups
                .iter()
                .any(|g| caller.groups.contains(&g.gid) || g.member_uids.contains(&caller.uid))
            || caller
                .unit
                .as_deref()
                .is_some_and(|unit| self.units.iter().any(|p| p.matches(unit)))
    }
}

/// The rule for one provider: root and the daemon's own uid manage it; the
/// configured users and groups use or manage it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    owner_uid: u32,
    users: RoleHolders,
    managers: RoleHolders,
}

impl AccessPolicy {
    /// A policy granting nothing beyond the daemon's own uid, for tests.
    #[cfg(test)]
    pub(crate) fn owner_only(owner_uid: u32) -> Self {
        Self {
            owner_uid,
            users: RoleHolders::default(),
            managers: RoleHolders::default(),
        }
    }

    /// The policy of `config` in a daemon running as `owner_uid`.
    #[must_use]
    pub fn new(owner_uid: u32, config: &ProviderConfig) -> Self {
        Self {
            owner_uid,
            users: RoleHolders {
                users: config.allow_users.clone(),
                groups: config.allow_groups.clone(),
                units: config.allow_units.clone(),
            },
            managers: RoleHolders {
                users: config.manage_users.clone(),
                groups: config.manage_groups.clone(),
                units: Vec::new(),
            },
        }
    }

    /// The caller's role on the provider.
    #[must_use]
    pub fn role(&self, caller: &Caller) -> Role {
        // Root can read the store and the daemon's memory anyway; the
        // daemon's own uid is the owner of every session.
        if caller.uid == 0 || caller.uid == self.owner_uid || self.managers.includes(caller) {
            Role::Manage
        } else if self.users.includes(caller) {
            Role::Use
        } else {
            Role::None
        }
    }

    /// Whether the rule grants anything by group: only then is a socket
    /// caller's primary group worth asking the user database for.
    #[must_use]
    pub fn grants_groups(&self) -> bool {
        !self.users.groups.is_empty() || !self.managers.groups.is_empty()
    }

    /// Whether the rule grants anything by systemd unit: only then is a
    /// caller's unit worth reading.
    #[must_use]
    pub fn grants_units(&self) -> bool {
        !self.users.units.is_empty()
    }

    /// Whether `caller` may use the provider (get tokens, see its status).
    #[must_use]
    pub fn allows(&self, caller: &Caller) -> bool {
        self.role(caller) >= Role::Use
    }
}

/// Who holds which role on the provider of `config`, in words, for
/// `tokend --check`: "manage: root, the daemon's user, uid 1001; use: uid
/// 34, group 100".
#[must_use]
pub fn describe_roles(config: &ProviderConfig) -> String {
    fn ids(users: &[u32], groups: &[GroupGrant]) -> Vec<String> {
        users
            .iter()
            .map(|u| format!("uid {u}"))
            .chain(groups.iter().map(|g| {
                if g.member_uids.is_empty() {
                    format!("gid {}", g.gid)
                } else {
                    let members: Vec<String> =
                        g.member_uids.iter().map(|u| format!("uid {u}")).collect();
                    format!("gid {} (members {})", g.gid, members.join(", "))
                }
            }))
            .collect()
    }
    let mut manage = vec!["root".to_owned(), "the daemon's user".to_owned()];
    manage.extend(ids(&config.manage_users, &config.manage_groups));
    let mut users = ids(&config.allow_users, &config.allow_groups);
    users.extend(
        config
            .allow_units
            .iter()
            .map(|u| format!("unit {}", u.as_str())),
    );
    let users = if users.is_empty() {
        "nobody else".to_owned()
    } else {
        users.join(", ")
    };
    format!("manage: {}; use: {users}", manage.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(users: Vec<u32>, groups: Vec<GroupGrant>, managers: Vec<u32>) -> AccessPolicy {
        AccessPolicy {
            owner_uid: 1000,
            users: RoleHolders {
                users,
                groups,
                units: vec![UnitPattern::parse("sync@*.service").unwrap()],
            },
            managers: RoleHolders {
                users: managers,
                groups: Vec::new(),
                units: Vec::new(),
            },
        }
    }

    #[test]
    fn owner_and_root_manage_and_nobody_else_has_a_role_by_default() {
        let p = policy(vec![], vec![], vec![]);
        assert_eq!(p.role(&Caller::uid(1000)), Role::Manage);
        assert_eq!(p.role(&Caller::uid(0)), Role::Manage);
        assert_eq!(p.role(&Caller::uid(1001)), Role::None);
        assert!(!p.allows(&Caller::uid(1001)));
    }

    #[test]
    fn users_and_groups_are_granted_use() {
        let p = policy(
            vec![2000],
            vec![GroupGrant {
                gid: 500,
                member_uids: vec![3000],
            }],
            vec![],
        );
        assert_eq!(p.role(&Caller::uid(2000)), Role::Use);
        assert_eq!(
            p.role(&Caller::uid(3000)),
            Role::Use,
            "supplementary member"
        );
        let primary = Caller {
            uid: 4000,
            groups: Arc::from([500]),
            pid: None,
            unit: None,
        };
        assert_eq!(p.role(&primary), Role::Use, "a group of the process");
        assert_eq!(
            p.role(&Caller::uid(4000)),
            Role::None,
            "gid unknown: no group match"
        );
    }

    #[test]
    fn a_unit_matching_a_pattern_is_granted_use_whatever_its_uid() {
        let p = policy(vec![], vec![], vec![]);
        let in_unit = |unit: &str| Caller {
            unit: Some(Arc::from(unit)),
            ..Caller::uid(61_234)
        };
        assert_eq!(p.role(&in_unit("sync@nightly.service")), Role::Use);
        assert_eq!(p.role(&in_unit("sync.service")), Role::None);
        assert_eq!(p.role(&Caller::uid(61_234)), Role::None, "unit unknown");
        assert!(p.grants_units());
    }

    /// The policy a loaded config gives: a unit granted by `allow_units`
    /// may use the provider, never manage it (log in or out), whatever it
    /// matches; `manage_users` manage. (The tests above build policies by
    /// hand; this one goes through the config and `AccessPolicy::new`,
    /// where a unit grant given to the managers too would pass them.)
    #[test]
    fn a_granted_unit_may_use_a_provider_and_not_manage_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n\
             [providers.demo]\ndevice_authorization_endpoint = \"https://idp.example/device\"\n\
             token_endpoint = \"https://idp.example/token\"\nclient_id = \"tokend-test\"\n\
             allow_units = [\"sync@*.service\"]\nmanage_users = [2000]\n",
        )
        .unwrap();
        let env = crate::config::Environment {
            etc: dir.path().to_owned(),
            ..Default::default()
        };
        let config = crate::config::load(&path, &env).unwrap();
        let policy = AccessPolicy::new(1000, &config.providers[0]);
        let in_unit = Caller {
            unit: Some(Arc::from("sync@nightly.service")),
            ..Caller::uid(61_234)
        };
        assert_eq!(policy.role(&in_unit), Role::Use);
        assert_eq!(policy.role(&Caller::uid(2000)), Role::Manage);
        assert_eq!(policy.role(&Caller::uid(61_234)), Role::None);
    }

    #[test]
    fn managers_manage_and_manage_includes_use() {
        let p = policy(vec![2000], vec![], vec![2000, 2001]);
        assert_eq!(
            p.role(&Caller::uid(2000)),
            Role::Manage,
            "the higher role wins"
        );
        assert_eq!(p.role(&Caller::uid(2001)), Role::Manage);
        assert!(p.allows(&Caller::uid(2001)));
        assert!(Role::Manage > Role::Use && Role::Use > Role::None);
    }
}
