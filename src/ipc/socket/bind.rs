//! Setting the socket up and taking it down: where it may live (checked
//! for `tokend --check` too), binding it with its mode and group, and
//! removing it at the stop only if it is still ours.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tokio::net::UnixListener;
use tracing::warn;

use super::directory;
use super::error::{SocketError, io_error};

/// Binds the socket at `path` with permission bits `mode` (and group
/// `group`), creating its directory when missing: 0700, or 0710 with the
/// socket's group when `mode` lets the group connect (see
/// [`group_reach_warning`](super::group_reach_warning) for the directories above it).
///
/// A stale socket file left by a crash is replaced; a live one (another
/// daemon answers) is an error.
///
/// # Errors
/// See [`SocketError`].
pub fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<UnixListener, SocketError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.exists() {
        directory::create(dir, mode, group)?;
    }
    check_path(path, crate::trusted_path::Owners::daemon())?;
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io_error("cannot remove the stale socket", path))?;
    }
    let listener = UnixListener::bind(path).map_err(io_error("cannot bind", path))?;
    if let Some(gid) = group {
        directory::set_group(path, gid)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_error("cannot set the mode of", path))?;
    Ok(listener)
}

/// What [`bind`] refuses of a socket path, checked without binding (also
/// for `tokend --check`): a directory others may write to; a directory
/// from the socket's up to `/` that is owned by someone `owners` does not
/// trust, or that others may write to without the sticky bit (see
/// [`crate::trusted_path`]); something other than a socket at the path. A
/// missing directory is no problem: it is created.
///
/// # Errors
/// [`SocketError::UnsafeDirectory`], [`SocketError::UntrustedAncestor`],
/// [`SocketError::NotASocket`], or [`SocketError::Io`] when the directory
/// cannot be inspected.
pub fn check_path(path: &Path, owners: crate::trusted_path::Owners) -> Result<(), SocketError> {
    use std::os::unix::fs::FileTypeExt as _;
    let dir = path.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(dir) {
        Ok(meta) if crate::trusted_path::others_may_write(meta.uid(), meta.gid(), meta.mode()) => {
            return Err(SocketError::UnsafeDirectory {
                path: dir.to_owned(),
                owner: meta.uid(),
                mode: meta.mode() & 0o7777,
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("cannot inspect", dir)(e)),
    }
    // The directory's owner and the directories above, too: whoever may
    // rename one of them can put a directory of their own, with a socket
    // of their own, in its place.
    crate::trusted_path::check_ancestors(dir, owners).map_err(SocketError::UntrustedAncestor)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => Err(SocketError::NotASocket(path.to_owned())),
        _ => Ok(()),
    }
}

/// Removes the socket at `path` when the daemon stops, if it is still the
/// one `bound` (its device and inode, read after [`bind`]): a file put
/// there since, or another daemon's socket, is left alone.
pub fn remove_bound(path: &Path, bound: Option<(u64, u64)>) {
    let now = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    if now.is_none() || now != bound {
        return;
    }
    if let Err(e) = std::fs::remove_file(path) {
        warn!("could not remove {}: {e}", path.display());
    }
}

/// The device and inode of the socket at `path`, for [`remove_bound`].
#[must_use]
pub fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}
