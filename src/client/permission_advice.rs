//! What to say when the socket may not be used (a connect refused with
//! "Permission denied"): the place on the way that shuts this user out,
//! as its mode says, and what would let the user in.
//!
//! Connecting needs search permission on every directory of the path and
//! write permission on the socket, each granted by the one class of the
//! mode that applies (owner, else group, else other users). A group is
//! named as the way in only where its bits grant what other users' lack
//! and this user is not in it: the shipped unit's runtime directory (0755
//! root) and socket (0600) were said to be "for group `root`", as any
//! group bits counted, the directory first.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// One place on the way to the socket, with what its mode says.
#[derive(Debug, Clone)]
struct Place {
    path: PathBuf,
    /// The permission bits.
    mode: u32,
    uid: u32,
    gid: u32,
    /// A directory to pass through (search); else the socket (write).
    directory: bool,
}

impl Place {
    /// The bit each class needs here: search (x) on a directory, write
    /// (w) on the socket, as other users' bit (shift for group, owner).
    fn needs(&self) -> u32 {
        if self.directory { 0o1 } else { 0o2 }
    }

    fn what(&self) -> &'static str {
        if self.directory {
            "pass through it"
        } else {
            "connect"
        }
    }
}

/// How a place shuts this process out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shut {
    /// Its group may, other users may not, and this process is not in
    /// the group: joining it is the way in.
    ByGroup,
    /// The class this process is in (other users, its group, its owner)
    /// may not; no group would let it in.
    ByMode,
}

/// The first place (from the root down, the socket last) whose mode shuts
/// out a process of `uid` in the groups `in_group` says, and how; `None`
/// when every mode lets it in (an ACL or a security module refused it).
/// Root is judged as anyone: it was refused, so it lacks the capability
/// that passes every mode (a unit's `CapabilityBoundingSet=`, a user
/// namespace), and modes bind it as they bind others.
fn first_shut(
    places: &[Place],
    uid: u32,
    in_group: impl Fn(u32) -> bool,
) -> Option<(&Place, Shut)> {
    places.iter().find_map(|place| {
        let need = place.needs();
        let (owner, group, other) = (place.mode >> 6, place.mode >> 3, place.mode);
        let (applies, outsider) = if uid == place.uid {
            (owner, false)
        } else if in_group(place.gid) {
            (group, false)
        } else {
            (other, true)
        };
        if applies & need != 0 {
            return None;
        }
        let shut = if outsider && group & need != 0 {
            Shut::ByGroup
        } else {
            Shut::ByMode
        };
        Some((place, shut))
    })
}

/// The directories of `path` from the root down, then the socket, each
/// that can be looked at (those under one that shuts this user out
/// cannot, and need not be).
fn places_on_the_way(path: &Path) -> Vec<Place> {
    let mut places: Vec<Place> = path
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .filter_map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some(Place {
                path: p.to_owned(),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                directory: p != path,
            })
        })
        .collect();
    places.reverse();
    places
}

/// Whether this process is in group `gid` (its own groups, not the group
/// database's: one joined since the login session began is not).
fn in_process(gid: u32) -> bool {
    nix::unistd::getegid().as_raw() == gid
        || nix::unistd::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// What to do about a socket this process may not use: the place on the
/// way that shuts it out, and the group to join when that is the way in.
/// A user added to that group after the login session began (`usermod
/// -aG`, the README's step) is in the group database but not in this
/// process: a new login is what is needed, not a change of the daemon's
/// config.
pub(super) fn permission_advice(path: &Path) -> String {
    let places = places_on_the_way(path);
    let uid = nix::unistd::getuid().as_raw();
    let shut = first_shut(&places, uid, in_process);
    if let Some((place, Shut::ByGroup)) = shut {
        return group_advice(place, &user_name(uid));
    }
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    if let Some(advice) = runtime_dir_of_another(path, runtime_dir.as_deref(), uid) {
        return advice;
    }
    if let Some((place, Shut::ByMode)) = shut {
        return mode_advice(place, uid, in_process(place.gid));
    }
    "this user may not use that socket; the daemon's config decides who may".into()
}

/// A place whose group may, when other users may not: join the group (or
/// log in again, for a user who joined it since).
fn group_advice(place: &Place, user: &str) -> String {
    let group = nix::unistd::Group::from_gid(place.gid.into())
        .ok()
        .flatten();
    let name = group
        .as_ref()
        .map_or_else(|| place.gid.to_string(), |g| g.name.clone());
    let listed = group
        .as_ref()
        .is_some_and(|g| g.mem.iter().any(|m| m == user));
    let (path, mode) = (place.path.display(), place.mode);
    if listed {
        format!(
            "{path} is for group `{name}` (mode {mode:04o}), which this user joined after this \
             login session began: log in again (or run `newgrp {name}`)"
        )
    } else {
        format!(
            "{path} is for group `{name}` (mode {mode:04o}), and this user is not in it: add the \
             user to it (then log in again), or the daemon's config decides who may"
        )
    }
}

/// A place whose mode lets in no class this process is in: who it does
/// let in, and what decides that.
fn mode_advice(place: &Place, uid: u32, in_group: bool) -> String {
    let what = place.what();
    let owner_may = (place.mode >> 6) & place.needs() != 0;
    let who = if uid == place.uid {
        format!("not even its owner, this user, may {what}")
    } else if in_group {
        format!("its group, which this user is in, may not {what}")
    } else if owner_may {
        format!("only its owner may {what}")
    } else {
        format!("no one but root may {what}")
    };
    let decides = if place.directory {
        "the socket must be in a directory its users can reach (`tokend --check` names each \
         directory on the way that shuts the socket's group out)"
    } else {
        "the daemon's config decides who may (`socket_mode` and `socket_group` in [daemon])"
    };
    format!(
        "{} is mode {:04o}, owner `{}`, group `{}`: {who}; {decides}",
        place.path.display(),
        place.mode,
        user_name(place.uid),
        group_name(place.gid)
    )
}

/// When `path` is under `runtime_dir` (`XDG_RUNTIME_DIR`) and that
/// directory is another user's than `uid`'s: what to do. A variable left
/// by `su` sent tokenctl to the other user's socket, and the refusal read
/// as the daemon's config at fault.
fn runtime_dir_of_another(path: &Path, runtime_dir: Option<&Path>, uid: u32) -> Option<String> {
    let runtime_dir = runtime_dir.filter(|dir| path.starts_with(dir))?;
    let owner = std::fs::metadata(runtime_dir).ok()?.uid();
    (owner != uid).then(|| {
        format!(
            "XDG_RUNTIME_DIR ({}) is uid {owner}'s, not this user's (uid {uid}; left by `su`?): \
             unset it, or set it to /run/user/{uid}",
            runtime_dir.display()
        )
    })
}

#[cfg(test)]
mod tests;
