//! The socket's directory and the directories above it.
//!
//! A socket whose mode lets its group connect (`socket_mode = "0660"`) is
//! of use to that group only if its members can reach it: every directory
//! on the way must let them search it (`x`). A directory tokend creates
//! for the socket is therefore 0710 with the socket's group when the
//! config grants a group (its members reach the socket but cannot list
//! what else is there), and 0700 otherwise. A directory that exists
//! already is not tokend's to change: [`group_reach_warning`] names each
//! one that shuts the group out, such as a user's `$XDG_RUNTIME_DIR`
//! (`/run/user/UID`, 0700).

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{SocketError, io_error};

/// Mode of a directory tokend creates for a socket only its owner may use.
const PRIVATE_DIRECTORY: u32 = 0o700;

/// Mode of a directory tokend creates for a socket its group may use:
/// search, no listing.
const GROUP_DIRECTORY: u32 = 0o710;

/// Whether a socket of permission bits `mode` lets its group connect:
/// connect(2) needs write permission on the socket.
fn grants_group(mode: u32) -> bool {
    mode & 0o020 != 0
}

/// Creates `dir` and its missing parents for a socket of permission bits
/// `mode`: each [`PRIVATE_DIRECTORY`], or, when the mode lets the group
/// connect, [`GROUP_DIRECTORY`] with group `group` (when `None`, the
/// group it is created with, which the socket gets too).
///
/// # Errors
/// A directory could not be created, or given its group or mode.
pub(super) fn create(dir: &Path, mode: u32, group: Option<u32>) -> Result<(), SocketError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    for d in missing.into_iter().rev() {
        // Created private; opened to the group only once it has that group.
        match std::fs::DirBuilder::new().mode(PRIVATE_DIRECTORY).create(d) {
            Ok(()) => {}
            // Made by another process meanwhile: not ours to change (the
            // caller checks who owns the socket's directory).
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error("cannot create", d)(e)),
        }
        if grants_group(mode) {
            if let Some(gid) = group {
                set_group(d, gid)?;
            }
            // Set, not asked of mkdir: the daemon's umask (077) would take
            // the group's bit away.
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(GROUP_DIRECTORY))
                .map_err(io_error("cannot set the mode of", d))?;
        }
    }
    Ok(())
}

/// Whether this process may give a file group `gid` (chown(2): its own
/// group or one of its supplementary groups; root any).
fn may_give_group(gid: u32) -> bool {
    rustix::process::geteuid().is_root()
        || rustix::process::getegid().as_raw() == gid
        || rustix::process::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

/// When `mode` lets the socket's group connect and `group`
/// (`socket_group`) is one this process is not in, and the socket would
/// not be born with it (the nearest existing directory on the way is not
/// set-group-ID with it): the start would fail to give the socket that
/// group. For `tokend --check` run by the daemon's user; root may give any
/// group, so root's check says nothing.
#[must_use]
pub fn group_not_given_warning(socket: &Path, mode: u32, group: Option<u32>) -> Option<String> {
    let gid = group.filter(|_| grants_group(mode))?;
    if may_give_group(gid) {
        return None;
    }
    let existing = socket.ancestors().skip(1).find(|d| d.is_dir())?;
    let meta = std::fs::metadata(existing).ok()?;
    if meta.mode() & 0o2000 != 0 && meta.gid() == gid {
        return None;
    }
    Some(format!(
        "socket_group {}: this user is not in that group, and {} is not set-group-ID with it, so the socket cannot be given the group and the start would fail; make that directory set-group-ID with the group (see \"The Unix socket\" in the README), or add this user to it",
        group_name(gid),
        existing.display()
    ))
}

/// Gives `path` group `gid`, unless it has it already: the system unit's
/// seccomp filter forbids chown, and there what tokend makes already has
/// the service's group.
pub(super) fn set_group(path: &Path, gid: u32) -> Result<(), SocketError> {
    let current = std::fs::metadata(path)
        .map_err(io_error("cannot inspect", path))?
        .gid();
    if gid != current {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid))).map_err(|e| {
            if e == rustix::io::Errno::PERM {
                // EPERM: not a member (chown(2)); a seccomp filter's
                // refusal says the same, errno EPERM too.
                SocketError::GroupNotGiven {
                    path: path.to_owned(),
                    group: group_name(gid),
                    reason: if may_give_group(gid) {
                        "this process may not change a file's group (a system-call filter, such as the shipped units' SystemCallFilter=, forbids it)"
                    } else {
                        "the daemon's user is not in that group"
                    },
                }
            } else {
                io_error("cannot set the group of", path)(e.into())
            }
        })?;
    }
    Ok(())
}

/// A directory on the way to the socket that the socket's group may not
/// search.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Barrier {
    /// The directory.
    path: PathBuf,
    /// Its permission bits.
    mode: u32,
    /// Its group.
    gid: u32,
}

/// When `mode` lets the socket's group connect, a warning that names the
/// directories on the way to `socket` whose members may not search, and
/// what to do; `None` when they can reach it (or no group is granted).
///
/// The group is `group` (`socket_group`), else the socket's own (or, while
/// there is no socket, the process's). Directories that do not exist yet
/// are skipped: tokend creates them searchable by the group.
#[must_use]
pub fn group_reach_warning(socket: &Path, mode: u32, group: Option<u32>) -> Option<String> {
    if !grants_group(mode) {
        return None;
    }
    let gid = group.unwrap_or_else(|| {
        std::fs::metadata(socket)
            .map_or_else(|_| rustix::process::getegid().as_raw(), |meta| meta.gid())
    });
    let barriers = barriers(socket, gid);
    if barriers.is_empty() {
        return None;
    }
    let listed = barriers
        .iter()
        .map(|b| {
            format!(
                "{} (mode {:04o}, group {})",
                b.path.display(),
                b.mode,
                group_name(b.gid)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (verb, pronoun) = if barriers.len() == 1 {
        ("does", "it")
    } else {
        ("do", "them")
    };
    Some(format!(
        "socket_mode {mode:04o} lets group {} connect to {}, but its members cannot reach it: {listed} {verb} not let them search {pronoun}; \
         set `socket` in [daemon] to a path in a directory they can search (see \"The Unix socket\" in the README), \
         or let the group search {pronoun} (chmod g+x with that group, or an ACL)",
        group_name(gid),
        socket.display(),
    ))
}

/// The existing directories on the way to `socket` (through symbolic links
/// too: the kernel needs search on both sides) that members of group `gid`
/// may not search, from the root down.
fn barriers(socket: &Path, gid: u32) -> Vec<Barrier> {
    let Some(dir) = socket.parent() else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = dir.ancestors().map(Path::to_path_buf).collect();
    if let Ok(real) = std::fs::canonicalize(dir) {
        dirs.extend(real.ancestors().map(Path::to_path_buf));
    }
    dirs.retain(|d| !d.as_os_str().is_empty());
    dirs.sort_by_key(|d| d.components().count());
    dirs.dedup();
    dirs.into_iter()
        .filter_map(|path| {
            let meta = std::fs::metadata(&path).ok()?;
            let acl = access_acl(&path);
            (!group_may_search(meta.mode(), meta.gid(), acl.as_deref(), gid)).then(|| Barrier {
                mode: meta.mode() & 0o7777,
                gid: meta.gid(),
                path,
            })
        })
        .collect()
}

/// A group as messages name it: `` `name` ``, or its id when the name
/// service does not know it.
fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(group)) => format!("`{}`", group.name),
        _ => format!("{gid}"),
    }
}

/// The directory's POSIX access ACL as the kernel stores it, if it has one.
fn access_acl(path: &Path) -> Option<Vec<u8>> {
    const NAME: &str = "system.posix_acl_access";
    let len = rustix::fs::getxattr_query(path, NAME).ok()?;
    let mut value = vec![0; len];
    let read = rustix::fs::getxattr(path, NAME, &mut value[..]).ok()?;
    value.truncate(read);
    Some(value)
}

/// Whether a member of group `gid` (who does not own the directory) may
/// search a directory of permission bits `mode` and group `dir_gid`, with
/// its access ACL `acl` (the `system.posix_acl_access` attribute) if any,
/// by the kernel's rules: the group entries that match (the owning group's
/// when it is `gid`, a named entry for `gid`) decide when there are any,
/// as masked by the ACL's mask; the bits for others decide otherwise. An
/// ACL that cannot be read is judged by the mode bits alone.
fn group_may_search(mode: u32, dir_gid: u32, acl: Option<&[u8]>, gid: u32) -> bool {
    const SEARCH: u16 = 0o1;
    if let Some(entries) = acl.and_then(acl_entries) {
        let mask = entries
            .iter()
            .find(|e| e.tag == ACL_MASK)
            .map_or(0o7, |e| e.perm);
        let matching: Vec<&AclEntry> = entries
            .iter()
            .filter(|e| {
                (e.tag == ACL_GROUP_OBJ && dir_gid == gid) || (e.tag == ACL_GROUP && e.id == gid)
            })
            .collect();
        if matching.is_empty() {
            return entries
                .iter()
                .any(|e| e.tag == ACL_OTHER && e.perm & SEARCH != 0);
        }
        return matching
            .iter()
            .find(|e| e.perm & SEARCH != 0)
            .is_some_and(|_| mask & SEARCH != 0);
    }
    if dir_gid == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Tags of the ACL entries that concern a group member (linux/posix_acl.h).
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// The version of the attribute's format (linux/posix_acl_xattr.h).
const ACL_XATTR_VERSION: u32 = 2;

/// One entry of an ACL attribute.
#[derive(Debug, Clone, Copy)]
struct AclEntry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// The entries of an ACL attribute: a little-endian `u32` version, then
/// entries of `u16` tag, `u16` permissions and `u32` id. `None` for
/// anything else.
fn acl_entries(bytes: &[u8]) -> Option<Vec<AclEntry>> {
    let (version, rest) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != ACL_XATTR_VERSION || rest.len() % 8 != 0 {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|entry| AclEntry {
                tag: u16::from_le_bytes([entry[0], entry[1]]),
                perm: u16::from_le_bytes([entry[2], entry[3]]),
                id: u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests;
