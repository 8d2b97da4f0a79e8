//! Who may read a file the config names (a secret, the store's key), by
//! its permission bits, owner and group: files others can read are warned
//! of, files the daemon's user cannot read are refused with the reason.

use std::path::{Path, PathBuf};

use super::Environment;

/// A file's permission bits, owner and group, to tell who else may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileAccess {
    /// The permission bits.
    pub mode: u32,
    /// The owner.
    pub uid: u32,
    /// The owning group.
    pub gid: u32,
}

impl FileAccess {
    /// Of the file `meta` describes.
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }

    /// Who may read the file besides its owner and the daemon, in words,
    /// or `None`: every local user when it is world-readable; when it is
    /// group-readable, the group's members: those it lists, and the users
    /// whose primary group it is (in `/etc/passwd`) other than the owner,
    /// root, the daemon itself and the system service's user `tokend` (the daemon's own group has no one else:
    /// its one user has it as primary group). A socket group that users
    /// are added to is such a group, which is why the shipped system setup
    /// gives the socket a group of its own (`tokend-clients`).
    pub(super) fn other_readers(self) -> Option<String> {
        if self.mode & 0o004 != 0 {
            return Some("every local user (world-readable)".to_owned());
        }
        if self.mode & 0o040 == 0 {
            return None;
        }
        let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(self.gid))
            .ok()
            .flatten()?;
        let daemon = nix::unistd::geteuid().as_raw();
        // The system service's user reads it as the daemon, also when root
        // runs the check (`sudo tokend --check` of the shipped layout,
        // root:tokend 0640, whose group is that user's primary group).
        let service = crate::trusted_path::service_user_uid().unwrap_or(daemon);
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let mut members = group.mem.clone();
        for name in primary_members(&passwd, self.gid, &[self.uid, daemon, service, 0]) {
            if !members.contains(&name) {
                members.push(name);
            }
        }
        (!members.is_empty()).then(|| {
            format!(
                "the members of its group `{}` ({})",
                group.name,
                members.join(", ")
            )
        })
    }
}

/// For `tokend --check` run as root: why the daemon of the config at
/// `config` could not read the file at `path` (described by `access`),
/// when it runs as another user (see
/// [`daemon_user_for_check`](crate::trusted_path::daemon_user_for_check)):
/// root reads every file, so the check passed a file the service then
/// failed to start on. Judged by the mode bits, as the other checks.
pub(super) fn unreadable_by_daemon(
    path: &Path,
    access: FileAccess,
    config: &Path,
    env: &Environment,
) -> Option<String> {
    let user = crate::trusted_path::daemon_user_for_check(config, &env.etc)?;
    let uid = user.uid.as_raw();
    let groups = std::ffi::CString::new(user.name.as_str())
        .ok()
        .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
        .unwrap_or_else(|| vec![user.gid]);
    let groups: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
    let system_service = uid == crate::trusted_path::service_user_uid().unwrap_or(u32::MAX);
    let whose = if system_service {
        format!("the system service runs as `{}`", user.name)
    } else {
        format!("the daemon of this config runs as `{}`", user.name)
    };
    // The system unit's sandbox hides these whatever the modes say.
    if system_service && let Some(setting) = hidden_by_the_system_unit(path) {
        return Some(format!(
            "{} cannot be read by its daemon: {whose}, under the unit's {setting}; put it under /etc/tokend/",
            path.display()
        ));
    }
    if let Some((dir, dir_access)) = unsearchable_directory(path, uid, &groups) {
        return Some(format!(
            "{} cannot be read by its daemon: {whose}, and the directory {} (owner uid {}, group {}, mode {:04o}) does not let it in (root, checking, goes in anyway)",
            path.display(),
            dir.display(),
            dir_access.uid,
            dir_access.gid,
            dir_access.mode & 0o7777,
        ));
    }
    if permits(access, uid, &groups, READ) {
        return None;
    }
    // The system service's config stays root's, readable by the daemon's
    // group (README); a user's own config, and a secret file, are given to
    // the daemon's user (a user's primary group may be shared: `users`).
    let fix = if path == config && system_service {
        format!(
            "`chown root:{} {}` and `chmod 0640` it",
            group_name(user.gid),
            path.display()
        )
    } else {
        format!("`chown {}` it", user.name)
    };
    Some(format!(
        "{} cannot be read by its daemon: {whose}, and the file is owner uid {}, group {}, mode {:04o} (root, checking, reads it anyway): {fix}",
        path.display(),
        access.uid,
        access.gid,
        access.mode & 0o7777,
    ))
}

/// The sandbox setting of the shipped system unit that hides `path` from
/// the service: `ProtectHome=yes` (home directories, root's, users'
/// runtime directories) and `PrivateTmp=yes` (a /tmp of its own).
fn hidden_by_the_system_unit(path: &Path) -> Option<&'static str> {
    let path = std::path::absolute(path).ok()?;
    if ["/home", "/root", "/run/user"]
        .iter()
        .any(|dir| path.starts_with(dir))
    {
        Some("ProtectHome=yes, which hides /home, /root and /run/user")
    } else if ["/tmp", "/var/tmp"].iter().any(|dir| path.starts_with(dir)) {
        Some("PrivateTmp=yes, which gives it a /tmp and /var/tmp of its own")
    } else {
        None
    }
}

/// The first directory on the way to `path` that a user (`uid`, in
/// `groups`) may not search, by its mode bits, with its owner and mode.
fn unsearchable_directory(path: &Path, uid: u32, groups: &[u32]) -> Option<(PathBuf, FileAccess)> {
    let path = std::path::absolute(path).ok()?;
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    ancestors.into_iter().find_map(|dir| {
        let access = FileAccess::of(&std::fs::metadata(dir).ok()?);
        (!permits(access, uid, groups, SEARCH)).then(|| (dir.to_owned(), access))
    })
}

/// The name of group `gid`, or its number when it has none.
fn group_name(gid: nix::unistd::Gid) -> String {
    nix::unistd::Group::from_gid(gid)
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |group| group.name)
}

/// The others' read bit; shifted for the group's and the owner's class.
const READ: u32 = 0o004;
/// The others' search (execute) bit, for a directory.
const SEARCH: u32 = 0o001;

/// Whether the mode bits of `access` give a user (`uid`, in `groups`)
/// `right` (given as the others' bit): the owner's class when it is the
/// owner, else the group's when in the group, else the others'.
fn permits(access: FileAccess, uid: u32, groups: &[u32], right: u32) -> bool {
    let class_bits = if access.uid == uid {
        right << 6
    } else if groups.contains(&access.gid) {
        right << 3
    } else {
        right
    };
    access.mode & class_bits != 0
}

/// The names of the users in `passwd` (the text of `/etc/passwd`) whose
/// primary group is `gid`, but for the uids in `except`. They read what
/// their group may read though the group lists no one.
fn primary_members(passwd: &str, gid: u32, except: &[u32]) -> Vec<String> {
    passwd
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid: u32 = fields.nth(1)?.parse().ok()?;
            let primary: u32 = fields.next()?.parse().ok()?;
            (primary == gid && !except.contains(&uid)).then(|| name.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::primary_members;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
# a comment
tokend:x:990:990::/var/lib/tokend:/usr/sbin/nologin
alice:x:1000:990::/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:/bin/bash
broken line
";

    /// Users whose primary group it is are its members, but for the owner,
    /// root and the daemon; malformed lines are skipped.
    #[test]
    fn primary_members_are_read_from_passwd() {
        assert_eq!(primary_members(PASSWD, 990, &[990, 0]), ["alice"]);
        assert_eq!(
            primary_members(PASSWD, 990, &[990, 0, 1000]),
            [] as [&str; 0]
        );
        assert_eq!(primary_members(PASSWD, 0, &[0]), [] as [&str; 0]);
        assert_eq!(primary_members(PASSWD, 1001, &[0]), ["bob"]);
    }
}
