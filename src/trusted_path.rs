//! Whether another local user could swap what a path leads to.
//!
//! A file is only as safe as the directories above it: whoever may rename
//! an entry of one of them can put a directory of their own in its place
//! (a fake socket that collects the tokens clients send it, a program the
//! daemon runs, a config pointing providers at their server). The rule is
//! OpenSSH's `StrictModes`: every directory from the path's up to `/` is
//! owned by root or by the one trusted user, and no one else may write to
//! it — unless it has the sticky bit (`/tmp`, mode 1777), with which others
//! cannot rename or remove entries they do not own. As in Debian's
//! OpenSSH, a directory or file writable by its owner's own group (the
//! user private group Debian and Ubuntu give every user, under whose umask
//! of 002 a `mkdir` makes mode 0775) counts as writable by its owner alone:
//! no one else is in that group.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// The system user the packaged system service runs as
/// (`dist/systemd/tokend.service`, `User=`).
pub const SERVICE_USER: &str = "tokend";

/// Who besides root may own what tokend trusts by path (or serve its
/// socket, for a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owners {
    /// The one user trusted besides root.
    uid: u32,
    /// [`SERVICE_USER`] too: for a check run beside the daemon, by a user
    /// who need not be the daemon's (root checking the system service's
    /// config, whose directories systemd gives to `tokend`), and for a
    /// client, which may talk to the system service.
    service_user: bool,
}

impl Owners {
    /// Root and this process's effective uid: what the daemon checks of
    /// its own paths.
    #[must_use]
    pub fn daemon() -> Self {
        Self::of_uid(rustix::process::geteuid().as_raw())
    }

    /// Root and `uid`.
    #[must_use]
    pub fn of_uid(uid: u32) -> Self {
        Self {
            uid,
            service_user: false,
        }
    }

    /// Root, this process's effective uid and [`SERVICE_USER`]: for
    /// `tokend --check` (which does not know the uid the daemon will run
    /// as) and for a client deciding whom its socket may belong to.
    #[must_use]
    pub fn beside_the_daemon() -> Self {
        Self {
            service_user: true,
            ..Self::daemon()
        }
    }

    /// For `tokend --check` of the config at `config`, owned by
    /// `config_owner`: [`beside_the_daemon`](Self::beside_the_daemon),
    /// except that root checking a config in another user's home directory
    /// (`/home/alice/.config/tokend/config.toml`, alice's, her home read
    /// from `etc/passwd`) trusts that user as the daemon's: it checks what her own daemon will read. Judged as
    /// root's, her config, socket directory and hook would all be refused
    /// as another user's, though her daemon accepts them. A config of hers
    /// anywhere else (`/etc/tokend/`) is still refused: the system
    /// service's or root's daemon would refuse it.
    #[must_use]
    pub fn for_check(config: &Path, config_owner: Option<u32>, etc: &Path) -> Self {
        let checker = Self::beside_the_daemon();
        match config_owner {
            Some(owner) if checker.uid == 0 && owner != 0 && in_home_of(config, owner, etc) => {
                Self {
                    uid: owner,
                    ..checker
                }
            }
            _ => checker,
        }
    }

    /// Whether `owner` is trusted. The service user's name is looked up
    /// only for a uid that is neither root nor the trusted one, so the
    /// usual call costs no lookup.
    #[must_use]
    pub fn trusts(&self, owner: u32) -> bool {
        owner == 0 || owner == self.uid || (self.service_user && service_user_uid() == Some(owner))
    }
}

/// For `tokend --check` run as root: the user whose daemon reads the files
/// the config at `config` names, when that is not root: the owner of a
/// config in the owner's home directory (her own daemon), else the system
/// service's user `tokend`, when the machine has one (the shipped unit runs
/// as it, on `/etc/tokend/config.toml`). `None` when the checker is not
/// root, or neither applies (root's own daemon reads them).
#[must_use]
pub(crate) fn daemon_user_for_check(config: &Path, etc: &Path) -> Option<nix::unistd::User> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let owner = std::fs::metadata(config).ok().map(|meta| {
        use std::os::unix::fs::MetadataExt as _;
        meta.uid()
    });
    let uid = match owner {
        Some(owner) if owner != 0 && in_home_of(config, owner, etc) => owner,
        _ => service_user_uid()?,
    };
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
}

/// For `tokend --check` and `--prune` run as root: the owner of a config
/// in the owner's own home directory, whose own daemon reads it (and
/// whose defaults, not root's, apply to it). `None` when the checker is
/// not root or the config is not such a file.
#[must_use]
pub fn home_owner_for_check(config: &Path, etc: &Path) -> Option<nix::unistd::User> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let owner = std::fs::metadata(config).ok().map(|meta| {
        use std::os::unix::fs::MetadataExt as _;
        meta.uid()
    })?;
    if owner == 0 || !in_home_of(config, owner, etc) {
        return None;
    }
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner))
        .ok()
        .flatten()
}

/// Whether `path` lies in the home directory of `uid` (that home not
/// being `/`): the name service's for the machine's `/etc`, else the one
/// `etc/passwd` gives. A relative `path` is taken from the working
/// directory.
fn in_home_of(path: &Path, uid: u32, etc: &Path) -> bool {
    let Ok(path) = std::path::absolute(path) else {
        return false;
    };
    let inside =
        |home: &Path| home.is_absolute() && home.parent().is_some() && path.starts_with(home);
    // The machine's own users through the name service (systemd-homed,
    // SSSD, LDAP users are in no /etc/passwd); a test's `etc` by its file.
    if etc == Path::new("/etc") {
        return nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .is_some_and(|user| inside(&user.dir));
    }
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap_or_default();
    passwd.lines().any(|line| {
        // name:password:uid:gid:gecos:home:shell
        let fields: Vec<&str> = line.split(':').collect();
        fields.get(2).and_then(|u| u.parse::<u32>().ok()) == Some(uid)
            && inside(Path::new(fields.get(5).copied().unwrap_or("")))
    })
}

/// The uid of [`SERVICE_USER`], when the system has that user.
pub(crate) fn service_user_uid() -> Option<u32> {
    nix::unistd::User::from_name(SERVICE_USER)
        .ok()
        .flatten()
        .map(|user| user.uid.as_raw())
}

/// A file, or a directory above a path, that another user could change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} (owner uid {owner}, mode {mode:04o}) {why}; another user could change it or replace what lies below it: make it root's or this user's (chown), and writable by its owner alone (chmod go-w), or use another path",
    path.display()
)]
pub struct UntrustedPath {
    /// The file or directory.
    pub path: PathBuf,
    /// Its owner.
    pub owner: u32,
    /// Its permission bits.
    pub mode: u32,
    /// What is wrong with it, in words.
    pub why: &'static str,
}

/// Checks every existing directory from `dir` up to `/` (of `dir` as
/// given and of the directory it resolves to, symbolic links followed):
/// each owned by root or `trusted`, and not writable by group or others
/// unless sticky. Directories that do not exist yet are skipped (they will
/// be made by the trusted user). An empty `dir` is the working directory.
///
/// # Errors
/// The first directory, from the top, that breaks the rule.
pub fn check_ancestors(dir: &Path, trusted: Owners) -> Result<(), UntrustedPath> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let resolved = std::fs::canonicalize(dir).ok();
    for path in [Some(dir), resolved.as_deref()].into_iter().flatten() {
        let mut chain: Vec<&Path> = path.ancestors().collect();
        chain.reverse();
        for ancestor in chain {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            if !meta.is_dir() {
                continue;
            }
            check_one(ancestor, meta.uid(), meta.gid(), meta.mode(), trusted)?;
        }
    }
    Ok(())
}

/// Checks a file another user must not be able to change (a program the
/// daemon runs, its config): owned by root or `trusted`, writable by no
/// one else (sticky means nothing for a file), and every directory above
/// it as [`check_ancestors`] wants them.
///
/// # Errors
/// The directory or the file that breaks the rule.
pub fn check_file(path: &Path, trusted: Owners) -> Result<(), UntrustedPath> {
    if let Some(dir) = path.parent() {
        check_ancestors(dir, trusted)?;
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    check_one(path, meta.uid(), meta.gid(), meta.mode() & !0o1000, trusted)
}

/// The rule for one directory `dir` owned by `owner` and group `gid`,
/// with `mode`.
fn check_one(
    dir: &Path,
    owner: u32,
    gid: u32,
    mode: u32,
    trusted: Owners,
) -> Result<(), UntrustedPath> {
    let untrusted = |why| UntrustedPath {
        path: dir.to_owned(),
        owner,
        mode: mode & 0o7777,
        why,
    };
    if !trusted.trusts(owner) {
        return Err(untrusted("belongs to another user"));
    }
    let sticky = mode & 0o1000 != 0;
    if others_may_write(owner, gid, mode) && !sticky {
        return Err(untrusted(if mode & 0o002 != 0 {
            "is writable by every user"
        } else {
            "is writable by its group"
        }));
    }
    Ok(())
}

/// Whether a path of `owner`, group `gid` and permission bits `mode` may
/// be written by someone else: its group or every user may write it,
/// unless the group is `owner`'s private group: of the user's name, the
/// user's primary group and no other user's, with no other member listed.
#[must_use]
pub fn others_may_write(owner: u32, gid: u32, mode: u32) -> bool {
    match mode & 0o022 {
        0 => false,
        0o020 => !is_private_group(owner, gid),
        _ => true,
    }
}

/// Whether `gid` is the user private group of `owner`: the group of the
/// user's own name that is the user's primary group, lists no other
/// member, and is no other user's primary group in `/etc/passwd`. Only a
/// group-writable path asks (name-service lookups).
fn is_private_group(owner: u32, gid: u32) -> bool {
    use nix::unistd::{Gid, Group, Uid, User};
    // Root's group is no user private group: system processes run in it
    // under other uids.
    if owner == 0 || gid == 0 {
        return false;
    }
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(owner)) else {
        return false;
    };
    let Ok(Some(group)) = Group::from_gid(Gid::from_raw(gid)) else {
        return false;
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let shared_as_primary = passwd.lines().any(|line| {
        // name:password:uid:gid:...
        let fields: Vec<&str> = line.split(':').collect();
        fields.get(2).and_then(|u| u.parse::<u32>().ok()) != Some(owner)
            && fields.get(3).and_then(|g| g.parse::<u32>().ok()) == Some(gid)
    });
    user.gid.as_raw() == gid
        && group.name == user.name
        && group.mem.iter().all(|member| *member == user.name)
        && !shared_as_primary
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A group no user has as a private group: these cases are about
    /// owners and modes.
    const NOGROUP: u32 = 65534;

    const ME: Owners = Owners {
        uid: 1000,
        service_user: false,
    };

    #[test]
    fn the_rule_for_one_directory() {
        let dir = Path::new("/x");
        assert!(check_one(dir, 0, NOGROUP, 0o755, ME).is_ok());
        assert!(check_one(dir, 1000, NOGROUP, 0o700, ME).is_ok());
        // /tmp: world-writable but sticky, root's.
        assert!(check_one(dir, 0, NOGROUP, 0o1777, ME).is_ok());
        let e = check_one(dir, 1001, NOGROUP, 0o755, ME).unwrap_err();
        assert_eq!(e.why, "belongs to another user");
        let e = check_one(dir, 0, NOGROUP, 0o777, ME).unwrap_err();
        assert_eq!(e.why, "is writable by every user");
        let e = check_one(dir, 1000, NOGROUP, 0o775, ME).unwrap_err();
        assert_eq!(e.why, "is writable by its group");
        // Sticky does not make another user's directory trusted.
        assert!(check_one(dir, 1001, NOGROUP, 0o1777, ME).is_err());
        // A check beside the daemon trusts the service user too, when
        // there is one, but never a user who is neither.
        assert!(check_one(dir, 54321, NOGROUP, 0o755, Owners::beside_the_daemon()).is_err());
        if let Some(service) = service_user_uid() {
            assert!(check_one(dir, service, NOGROUP, 0o755, Owners::beside_the_daemon()).is_ok());
            assert!(check_one(dir, service, NOGROUP, 0o755, Owners::of_uid(1000)).is_err());
        }
        assert!(
            e.to_string()
                .starts_with("/x (owner uid 1000, mode 0775) is writable by its group;")
        );
    }

    /// A directory anyone may write to, anywhere above, is named; a
    /// missing tail is skipped; a symbolic link is judged by both sides.
    #[test]
    fn every_ancestor_is_checked() {
        let me = Owners::daemon();
        let top = tempfile::tempdir().unwrap();
        let open = top.path().join("open");
        let deep = open.join("a").join("b");
        std::fs::create_dir_all(&deep).unwrap();
        assert!(check_ancestors(&deep.join("not-yet"), me).is_ok());
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_ancestors(&deep.join("not-yet"), me).unwrap_err();
        assert_eq!(e.path, open);
        // Sticky: fine.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(check_ancestors(&deep, me).is_ok());
        // A link from a safe place into the open directory.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let safe = tempfile::tempdir().unwrap();
        let link = safe.path().join("link");
        std::os::unix::fs::symlink(&deep, &link).unwrap();
        assert_eq!(check_ancestors(&link, me).unwrap_err().path, open);
        // Another user's directory, sticky or not (needs root to chown).
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let nobody = rustix::fs::Uid::from_raw(65534);
        rustix::fs::chown(&open, Some(nobody), None).unwrap();
        for mode in [0o755, 0o1777] {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = check_ancestors(&deep, me).unwrap_err();
            assert_eq!(
                (e.path.as_path(), e.why),
                (open.as_path(), "belongs to another user")
            );
            assert_eq!((e.owner, e.mode), (65534, mode));
        }
    }
}

#[cfg(test)]
mod file_tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A program others may write is refused, sticky bit or not; so is
    /// one in a directory others may write.
    #[test]
    fn a_file_others_can_write_is_refused() {
        let me = Owners::daemon();
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("hook");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_file(&program, me).is_ok());
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(check_file(&program, me).unwrap_err().path, program);
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(check_file(&program, me).unwrap_err().path, dir.path());
    }
}
