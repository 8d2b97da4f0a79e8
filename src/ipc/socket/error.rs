//! Why the socket could not be set up: [`SocketError`].

use std::io;
use std::path::{Path, PathBuf};

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another daemon answers on the socket.
    #[error("another tokend is already listening on {}", .0.display())]
    InUse(PathBuf),
    /// The directory is writable by others, so the socket could be
    /// replaced (a sticky bit does not help: anyone could bind the path
    /// while no socket is there).
    #[error("{} (owner uid {owner}, mode {mode:04o}) is writable by other users; the socket must live in a directory only its owner may write to, sticky or not (such as mode 0700, 0710, 0750 or 0755): chmod go-w it, or set `socket` to a path in such a directory", path.display())]
    UnsafeDirectory {
        /// The socket's directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// A directory above the socket's could be changed by another user.
    #[error("the socket's path is not safe: {0}")]
    UntrustedAncestor(crate::trusted_path::UntrustedPath),
    /// Something other than a socket is at the socket's path: tokend
    /// replaces only a stale socket of its own kind, never a file.
    #[error("{} exists and is not a socket; tokend does not remove it: set `socket` to another path, or remove it", .0.display())]
    NotASocket(PathBuf),
    /// `socket_group` names a group the daemon may not give a file: its
    /// user is not in it, or a system-call filter forbids changing a
    /// file's group (both shipped units' do). A start again fails the same
    /// way.
    #[error("cannot give {} the group {group} (`socket_group`): {reason}; make the socket's directory set-group-ID with that group, so that the socket is born with it (a line `d DIR 2710 USER GROUP -` in /etc/tmpfiles.d/; see \"The Unix socket\" in the README), or, outside the shipped units, add the daemon's user to the group", path.display())]
    GroupNotGiven {
        /// The file whose group was to be set.
        path: PathBuf,
        /// The group, by name where the name service knows it.
        group: String,
        /// Why not, as far as can be told.
        reason: &'static str,
    },
    /// A system call failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

pub(super) fn io_error<'p>(
    what: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> SocketError + 'p {
    move |source| SocketError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl SocketError {
    /// Whether only a person can cure it (the socket's path is unsafe, or
    /// something else is at it, or the daemon may not make its directory or
    /// socket there: an `XDG_RUNTIME_DIR` left by `su`, a read-only file
    /// system): a start again fails the same way, so the daemon exits with
    /// the config's status (2), which the units do not restart, rather
    /// than 1, which they restart until their start limit.
    #[must_use]
    pub fn needs_a_person(&self) -> bool {
        match self {
            Self::UnsafeDirectory { .. }
            | Self::UntrustedAncestor(_)
            | Self::NotASocket(_)
            | Self::GroupNotGiven { .. } => true,
            Self::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ),
            Self::InUse(_) => false,
        }
    }
}
