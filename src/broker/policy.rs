//! Who may use a provider's tokens.
//!
//! Both front-ends identify the caller by uid (the socket through
//! `SO_PEERCRED`, D-Bus through `GetConnectionUnixUser`) and ask the same
//! [`AccessPolicy`]; neither decides on its own.

use crate::config::{GroupGrant, ProviderConfig};

/// Who is asking, as the kernel (or the bus daemon) vouches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Primary group id, when known (`SO_PEERCRED` gives it, the bus does not).
    pub gid: Option<u32>,
    /// Process id, when known (for logs only: pids are reused).
    pub pid: Option<i32>,
}

impl Caller {
    /// A caller known only by uid.
    #[must_use]
    pub fn uid(uid: u32) -> Self {
        Self {
            uid,
            gid: None,
            pid: None,
        }
    }
}

/// The rule for one provider: the daemon's own uid, plus the configured
/// users and groups. Root gets no exception: a root process that wants a
/// user's token can read the keyring anyway, and an explicit grant keeps
/// the rule easy to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    owner_uid: u32,
    users: Vec<u32>,
    groups: Vec<GroupGrant>,
}

impl AccessPolicy {
    /// The policy of `config` in a daemon running as `owner_uid`.
    #[must_use]
    pub fn new(owner_uid: u32, config: &ProviderConfig) -> Self {
        Self {
            owner_uid,
            users: config.allow_users.clone(),
            groups: config.allow_groups.clone(),
        }
    }

    /// Whether `caller` may use the provider.
    #[must_use]
    pub fn allows(&self, caller: &Caller) -> bool {
        caller.uid == self.owner_uid
            || self.users.contains(&caller.uid)
            || self
                .groups
                .iter()
                .any(|g| caller.gid == Some(g.gid) || g.member_uids.contains(&caller.uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(users: Vec<u32>, groups: Vec<GroupGrant>) -> AccessPolicy {
        AccessPolicy {
            owner_uid: 1000,
            users,
            groups,
        }
    }

    #[test]
    fn owner_only_by_default() {
        let p = policy(vec![], vec![]);
        assert!(p.allows(&Caller::uid(1000)));
        assert!(!p.allows(&Caller::uid(1001)));
        assert!(!p.allows(&Caller::uid(0)), "root gets no implicit grant");
    }

    #[test]
    fn users_and_groups_are_granted() {
        let p = policy(
            vec![2000],
            vec![GroupGrant {
                gid: 500,
                member_uids: vec![3000],
            }],
        );
        assert!(p.allows(&Caller::uid(2000)));
        assert!(p.allows(&Caller::uid(3000)), "supplementary member");
        let primary = Caller {
            uid: 4000,
            gid: Some(500),
            pid: None,
        };
        assert!(p.allows(&primary), "primary group");
        assert!(!p.allows(&Caller::uid(4000)), "gid unknown: no group match");
    }
}
