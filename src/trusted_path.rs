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

#[cfg(test)]
mod tests;
mod walk;

pub use walk::LinkHop;

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
    "{} (owner uid {owner}, mode {mode:04o}) {why}{}; another user could change it or replace what lies below it: make it root's or this user's (chown), and writable by its owner alone (chmod go-w), or use another path",
    path.display(),
    reached_through(via)
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
    /// The symbolic links followed to reach it, in order (none when it
    /// lies on the path as written): named, since `path` is then not the
    /// one configured.
    pub via: Vec<LinkHop>,
}

/// ", reached through the symbolic link L -> T" for each link of `via`.
fn reached_through(via: &[LinkHop]) -> String {
    if via.is_empty() {
        return String::new();
    }
    let links: Vec<String> = via
        .iter()
        .map(|hop| format!("{} -> {}", hop.link.display(), hop.target.display()))
        .collect();
    format!(
        ", reached through the symbolic link{} {}",
        if links.len() == 1 { "" } else { "s" },
        links.join(", then ")
    )
}

/// Checks every existing directory a lookup of `dir` passes through, from
/// `/` down to `dir` itself: those above it as written and, past each
/// symbolic link on the way, those above the link's target (see
/// `walk.rs`); each owned by root or `trusted`, and not
/// writable by group or others unless sticky; and each link owned by
/// them too. Directories that do not exist yet are skipped (they will be
/// made by the trusted user). An empty `dir` is the working directory.
///
/// # Errors
/// The first directory (or link), from the top, that breaks the rule.
pub fn check_ancestors(dir: &Path, trusted: Owners) -> Result<(), UntrustedPath> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let resolved = walk::walk(dir, trusted)?;
    // The walk checked the directories it looked names up in: `dir`
    // itself, when it is one, is left.
    if let Ok(meta) = std::fs::metadata(&resolved.path)
        && meta.is_dir()
    {
        check_one(&resolved.path, meta.uid(), meta.gid(), meta.mode(), trusted).map_err(|e| {
            UntrustedPath {
                via: resolved.hops,
                ..e
            }
        })?;
    }
    Ok(())
}

/// Checks a file another user must not be able to change (a program the
/// daemon runs, its config): owned by root or `trusted`, writable by no
/// one else (sticky means nothing for a file), and every directory a
/// lookup of it passes through as [`check_ancestors`] wants them: with
/// the path a symbolic link, the directories above its target too (a
/// config linked to a file in a directory anyone may write is anyone's).
///
/// # Errors
/// The directory, link or file that breaks the rule.
pub fn check_file(path: &Path, trusted: Owners) -> Result<(), UntrustedPath> {
    let resolved = walk::walk(path, trusted)?;
    if !resolved.complete {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(&resolved.path) else {
        return Ok(());
    };
    // Named as configured unless a link led elsewhere.
    let shown = if resolved.hops.is_empty() {
        path
    } else {
        &resolved.path
    };
    check_one(
        shown,
        meta.uid(),
        meta.gid(),
        meta.mode() & !0o1000,
        trusted,
    )
    .map_err(|e| UntrustedPath {
        via: resolved.hops,
        ..e
    })
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
        via: Vec::new(),
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
