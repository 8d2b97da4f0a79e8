//! One daemon per store: an exclusive `flock` on a file that stands for
//! the store, held for the daemon's life.
//!
//! # Why
//!
//! Providers that rotate refresh tokens revoke the whole login when an old
//! one is presented again. Two daemons reading the same stored session
//! both refresh with the same refresh token, and the second refresh kills
//! the login for both: every session of the store ends in
//! `login_required`, for good. So a daemon takes this lock before it reads
//! a single session, and a second one refuses to start, naming the first.
//!
//! # Why `flock`
//!
//! The kernel releases the lock when the last descriptor of the open file
//! goes, at exit or at a crash (`SIGKILL`, OOM): there is never a stale
//! lock to detect, and so no pid check that a reused pid could fool. The
//! pid written into the file serves only the message.
//!
//! # Where
//!
//! - `store = "encrypted-file"`: [`FILE_STORE_LOCK`] in the state
//!   directory, beside `sessions/`.
//! - `store = "secret-service"`: the user's keyring has no file of its own,
//!   so [`USER_SECRET_SERVICE_LOCK`] in the user's runtime directory
//!   (`$XDG_RUNTIME_DIR`), which is per user as the keyring is, else
//!   [`SECRET_SERVICE_LOCK`] in `$RUNTIME_DIRECTORY` (see
//!   [`Environment::secret_service_lock_path`](crate::config::Environment::secret_service_lock_path)).
//! - `store = "memory"`: nothing is shared, nothing to lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use super::held_lock::LockedPlace;

/// The lock file's name in the encrypted file store's state directory.
pub const FILE_STORE_LOCK: &str = "tokend.lock";

/// The lock file's name in a unit's runtime directory, for the Secret
/// Service, when there is no user runtime directory.
pub const SECRET_SERVICE_LOCK: &str = "secret-service.lock";

/// The lock file's name in the user's runtime directory, for the Secret
/// Service.
pub const USER_SECRET_SERVICE_LOCK: &str = "tokend-secret-service.lock";

/// Which file stands for a store, and how to name that store in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockTarget {
    /// The lock file.
    pub path: PathBuf,
    /// The store, as a person would look for it ("/var/lib/tokend").
    pub store: String,
    /// What the person can change to run a second daemon anyway.
    pub other_place: &'static str,
}

impl LockTarget {
    /// The lock of the encrypted file store in `state_directory`.
    #[must_use]
    pub fn file_store(state_directory: &Path) -> Self {
        Self {
            path: state_directory.join(FILE_STORE_LOCK),
            store: state_directory.display().to_string(),
            other_place: "give this one another state_directory",
        }
    }

    /// The lock of this user's Secret Service, the file at `path` (see
    /// [`Environment::secret_service_lock_path`](crate::config::Environment::secret_service_lock_path)).
    #[must_use]
    pub fn secret_service(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            store: format!("this user's Secret Service, locked with {}", path.display()),
            other_place: "give this one a store of its own (store = \"encrypted-file\" with another state_directory)",
        }
    }
}

/// Why the store could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: the store is in use.
    #[error(
        "another tokend ({}) uses this store ({}): stop it first, or {}",
        holder.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}")),
        target.store,
        target.other_place
    )]
    Held {
        /// The store's lock.
        target: LockTarget,
        /// The pid the holder wrote, if it could be read.
        holder: Option<u32>,
    },
    /// The lock file could not be made or opened, or its directory is one
    /// another user could change (see [`crate::trusted_path`]).
    #[error("cannot lock the store ({}) with {}: {reason}", target.store, target.path.display())]
    Unusable {
        /// The store's lock.
        target: LockTarget,
        /// What went wrong, in words.
        reason: String,
    },
}

/// An exclusive lock on a store, released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct StoreLock {
    /// Kept open: closing the last descriptor releases the lock.
    _file: File,
    /// The lock file and its directory as they were when locked (see
    /// [`super::held_lock`]); `None` when they could not be looked at.
    place: Option<LockedPlace>,
}

impl StoreLock {
    /// The daemon's lock: the directory is checked as the store checks its
    /// own (every directory up to `/` root's or this user's, writable by no
    /// one else), made (0700) if missing, and the lock file made (0600) if
    /// missing, so nothing is created in a place another user controls.
    /// Then locked, without waiting, and this process's pid written in it.
    ///
    /// # Errors
    /// [`LockError::Held`] when another process holds it;
    /// [`LockError::Unusable`] when the directory is untrusted or the file
    /// cannot be made or locked.
    pub fn acquire(target: &LockTarget) -> Result<Self, LockError> {
        let unusable = |reason: String| LockError::Unusable {
            target: target.clone(),
            reason,
        };
        if let Some(dir) = target.path.parent() {
            crate::trusted_path::check_ancestors(dir, crate::trusted_path::Owners::daemon())
                .map_err(|e| unusable(e.to_string()))?;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| unusable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let file = match open(&target.path, true) {
            Ok(file) => {
                // The creation mode went through the umask; an older file
                // may have been made looser. Only the pid is in it, but it
                // is ours alone.
                rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o600))
                    .map_err(|e| unusable(format!("cannot make it private (0600): {e}")))?;
                file
            }
            // A lock needs no write access. On a read-only disk (or a lock
            // file this user may not write) the store is still read and
            // its sessions refreshed: without the lock a second daemon
            // would refresh them too. The file is locked as it is; only
            // the pid is not written into it.
            Err(e) if cannot_write(&e) => {
                open_read_only(&target.path).map_err(|_| unusable(e.to_string()))?
            }
            Err(e) => return Err(unusable(e.to_string())),
        };
        Self::lock(file, target)
    }

    /// Keeps the lock until the process ends. The daemon's store calls run
    /// on blocking threads that may outlive `run` (the exit waits for them
    /// only briefly), and one of them may still write: the lock must not
    /// go before they do, and the kernel releases it at the exit.
    pub fn hold_until_exit(self) {
        std::mem::forget(self);
    }

    /// The state directory and lock file this lock was taken in, by
    /// device and inode, for the store to check that its paths still name
    /// them (see [`super::held_lock`]).
    #[must_use]
    pub fn place(&self) -> Option<LockedPlace> {
        self.place
    }

    /// Locks `file`, the open lock file of `target`, and writes our pid.
    ///
    /// The lock is taken and kept through a read-only descriptor of the
    /// same file: a lock needs no write access, and a descriptor kept open
    /// for writing made `mount -o remount,ro` of the state directory's file
    /// system fail as busy while the daemon ran. The writable one is closed
    /// once the pid is written.
    fn lock(mut file: File, target: &LockTarget) -> Result<Self, LockError> {
        let held = read_only_twin(&file)
            .or_else(|_| file.try_clone())
            .map_err(|e| LockError::Unusable {
                target: target.clone(),
                reason: format!("cannot open it again to hold the lock: {e}"),
            })?;
        match rustix::fs::flock(&held, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(LockError::Held {
                    target: target.clone(),
                    holder: read_pid(&mut file),
                });
            }
            Err(e) => {
                return Err(LockError::Unusable {
                    target: target.clone(),
                    reason: format!("flock: {e}"),
                });
            }
        }
        // For the message of the next one to try; the lock holds without it.
        let pid = format!("{}\n", std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()));
        if let Err(e) = written {
            tracing::debug!(
                "could not write the pid into {}: {e}",
                target.path.display()
            );
        }
        let place = LockedPlace::of_lock(&held, &target.path)
            .inspect_err(|e| {
                tracing::debug!("cannot look at {} once locked: {e}", target.path.display());
            })
            .ok();
        Ok(Self { _file: held, place })
    }
}

/// The file open as `file` is, opened again read-only (through
/// `/proc/self/fd`, so that it is the same file whatever its path now
/// names).
fn read_only_twin(file: &File) -> io::Result<File> {
    use std::os::fd::AsRawFd as _;
    OpenOptions::new()
        .read(true)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Opens the lock file for reading and writing, never through a symbolic
/// link (one planted there could make us truncate any file of ours), and
/// only if it is a regular file.
fn open(path: &Path, create: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o600)
        .custom_flags(libc_flags())
        .open(path)?;
    regular(file, path)
}

/// `file`, opened at `path`, if it is a regular file.
fn regular(file: File, path: &Path) -> io::Result<File> {
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// Whether opening for writing failed for want of write access (a
/// read-only file system, an immutable file, a mode that shuts us out).
fn cannot_write(error: &io::Error) -> bool {
    [
        rustix::io::Errno::ROFS,
        rustix::io::Errno::ACCESS,
        rustix::io::Errno::PERM,
    ]
    .iter()
    .any(|errno| error.raw_os_error() == Some(errno.raw_os_error()))
}

/// Opens an existing lock file for reading only (as [`open`] does
/// otherwise: no symbolic link, a regular file).
fn open_read_only(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)?;
    regular(file, path)
}

/// `O_NOFOLLOW | O_NONBLOCK`: no symbolic link, and no wait on a FIFO.
fn libc_flags() -> i32 {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    // The flags are small positive bits; the cast cannot lose any.
    flags.bits().cast_signed()
}

/// The pid the lock's holder wrote, if it is there yet.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
