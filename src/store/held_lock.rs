//! The state directory a daemon locked, told apart from whatever its path
//! names later.
//!
//! # Why
//!
//! The lock (see [`super::lock`]) is taken once, at the start, on the file
//! then at `STATE/tokend.lock`. A path can come to name another directory
//! while the daemon runs: the state directory's file system lazily
//! unmounted (the path then names the directory beneath the mount point),
//! another mounted over it, the directory removed (`rm -rf`) or moved
//! away. The encrypted file store used to make what was missing again
//! and write there: records in a directory no lock guards, and no lock in
//! it, so a second daemon started on the same config, both refreshed with
//! the same refresh tokens, and the provider revoked the logins; or, once
//! the file system was back, the restart read its older records and
//! presented rotated-away refresh tokens.
//!
//! So the lock's taker records the state directory and the lock file it
//! locked by device and inode ([`LockedPlace`], in a [`HeldLock`] shared
//! with the store), and the store compares them with what the paths name
//! before each call: a difference is an outage naming the directory, which
//! ends when the directory is back (mounted again, moved back) or at a
//! restart, which locks the directory there then. A lock file removed or
//! replaced in the directory locked is locked again (made if missing): a
//! second daemon would start on the store otherwise; one that another
//! daemon took meanwhile is the outage.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::warn;

use super::{LockError, LockTarget, StoreLock};

/// A file system object as the kernel tells it apart from every other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// Its file system's device.
    dev: u64,
    /// Its inode on that device.
    ino: u64,
}

impl FileId {
    /// The object `meta` describes.
    fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device {}:{} inode {}",
            rustix::fs::major(self.dev),
            rustix::fs::minor(self.dev),
            self.ino
        )
    }
}

/// The state directory and lock file a daemon locked, as they were when
/// it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedPlace {
    /// The state directory (the lock file's directory).
    directory: FileId,
    /// The lock file.
    lock_file: FileId,
}

/// How the paths of a [`LockedPlace`] differ from it now.
#[derive(Debug)]
pub enum PlaceChange {
    /// Nothing is at the state directory's path.
    DirectoryGone,
    /// Another directory (or another kind of object) is at its path.
    DirectoryReplaced {
        /// The one locked.
        locked: FileId,
        /// The one there now.
        now: FileId,
    },
    /// The lock file was removed, or another file put in its place.
    LockFileGone,
    /// The lock file was gone, and the lock cannot be taken again:
    /// another daemon took it meanwhile, say.
    NotLockedAgain(LockError),
    /// What the paths name could not be looked at.
    Unknown(io::Error),
}

impl LockedPlace {
    /// The place of `held`, the lock file just locked at `lock_path`.
    ///
    /// # Errors
    /// The file or its directory cannot be looked at.
    pub(super) fn of_lock(held: &File, lock_path: &Path) -> io::Result<Self> {
        let directory = lock_path.parent().unwrap_or(Path::new("."));
        Ok(Self {
            directory: FileId::of(&fs::metadata(directory)?),
            lock_file: FileId::of(&held.metadata()?),
        })
    }

    /// Whether `directory` and `lock_file` still name the objects locked.
    /// The directory's path is followed through symbolic links (systemd's
    /// `DynamicUser=` makes `/var/lib/NAME` a link to `private/NAME`); the
    /// lock file's last component is not.
    ///
    /// # Errors
    /// What differs.
    pub fn check(&self, directory: &Path, lock_file: &Path) -> Result<(), PlaceChange> {
        let now = match fs::metadata(directory) {
            Ok(meta) => FileId::of(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PlaceChange::DirectoryGone);
            }
            Err(e) => return Err(PlaceChange::Unknown(e)),
        };
        if now != self.directory {
            return Err(PlaceChange::DirectoryReplaced {
                locked: self.directory,
                now,
            });
        }
        match fs::symlink_metadata(lock_file) {
            Ok(meta) if FileId::of(&meta) == self.lock_file => Ok(()),
            Ok(_) => Err(PlaceChange::LockFileGone),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(PlaceChange::LockFileGone),
            Err(e) => Err(PlaceChange::Unknown(e)),
        }
    }
}

/// Where the daemon's store lock was taken, once it has been: shared by
/// whoever takes the lock (at the start, or a [`super::LockGate`] later)
/// and the store that checks its directory against it. Empty (nothing to
/// check) until then, and for a store no daemon locked (`tokend --prune`,
/// tests).
#[derive(Debug, Clone, Default)]
pub struct HeldLock(Arc<Mutex<Option<LockedPlace>>>);

impl HeldLock {
    /// Records where `lock` was taken (the latest lock stands).
    pub fn record(&self, lock: &StoreLock) {
        if let Some(place) = lock.place() {
            *self.locked() = Some(place);
        }
    }

    /// Where the lock was taken, once it has been.
    #[must_use]
    pub fn place(&self) -> Option<LockedPlace> {
        *self.locked()
    }

    /// Whether `target`'s directory and lock file are still the ones
    /// locked (see [`LockedPlace::check`]); `Ok` when no lock was taken.
    /// A lock file removed or replaced in the directory locked is locked
    /// again (made, if it is gone, as at the start): without it a second
    /// daemon would start on the store. One at a time: a second `flock`
    /// of this process's would find the first's and fail.
    ///
    /// # Errors
    /// What differs, or why the lock cannot be taken again.
    pub fn check(&self, target: &LockTarget) -> Result<(), PlaceChange> {
        let mut locked = self.locked();
        let Some(place) = *locked else {
            return Ok(());
        };
        let directory = target.path.parent().unwrap_or(Path::new("."));
        match place.check(directory, &target.path) {
            Err(PlaceChange::LockFileGone) => {}
            checked => return checked,
        }
        let lock = StoreLock::acquire(target).map_err(PlaceChange::NotLockedAgain)?;
        *locked = lock.place();
        lock.hold_until_exit();
        warn!(
            lock = %target.path.display(),
            "the store's lock file was removed or replaced while tokend ran: locked again, so \
             that no second tokend starts on this store"
        );
        Ok(())
    }

    fn locked(&self) -> MutexGuard<'_, Option<LockedPlace>> {
        // A place is set whole: a panic cannot leave half of one.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The locked directory, replaced at its path (moved away, another in
    /// its place) and put back; its lock file removed is locked again.
    #[test]
    fn a_replaced_directory_is_told_apart_and_a_lock_file_locked_again() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        let target = LockTarget::file_store(&state);
        let held = HeldLock::default();
        assert!(held.check(&target).is_ok(), "nothing locked yet");
        let lock = StoreLock::acquire(&target).unwrap();
        held.record(&lock);
        assert!(held.check(&target).is_ok());

        let away = root.path().join("away");
        fs::rename(&state, &away).unwrap();
        assert!(matches!(
            held.check(&target),
            Err(PlaceChange::DirectoryGone)
        ));
        assert!(!state.exists(), "not made again");
        fs::create_dir(&state).unwrap();
        fs::write(&target.path, b"").unwrap();
        assert!(matches!(
            held.check(&target),
            Err(PlaceChange::DirectoryReplaced { .. })
        ));
        fs::remove_dir_all(&state).unwrap();
        fs::rename(&away, &state).unwrap();
        assert!(held.check(&target).is_ok(), "back");

        fs::remove_file(&target.path).unwrap();
        assert!(held.check(&target).is_ok(), "locked again");
        assert!(target.path.exists());
        let second = StoreLock::acquire(&target).expect_err("a second daemon");
        assert!(matches!(second, LockError::Held { .. }), "{second}");
        drop(lock);
    }
}
