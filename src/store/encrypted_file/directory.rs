//! The records directory itself: made where missing, kept private and
//! tokend's own, its ancestors checked so no one else can swap it, and
//! whether it takes writes at all; and the errors that say how to mend it.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::files::{self, sync_dir};
use super::{EncryptedFileStore, STORE};
use crate::store::StoreError;
use crate::store::held_lock::{HeldLock, PlaceChange};
use crate::store::lock::LockTarget;

/// Why a records directory that is immutable or append-only cannot be used.
pub(super) const FROZEN_DIRECTORY: &str =
    "it is immutable or append-only (`lsattr -d`): sessions are read, but no refresh can be saved";

impl EncryptedFileStore {
    /// This store as a daemon's, whose lock on the store is (or will be)
    /// recorded in `held`: it never makes its state directory (the lock
    /// made it at the start), and writes only while that directory and
    /// its lock file are the ones locked (see [`crate::store::held_lock`]).
    #[must_use]
    pub fn locked_by(mut self, held: HeldLock) -> Self {
        self.held = Some(held);
        self
    }

    /// The state directory, which holds the records' directory and the
    /// lock.
    fn state_directory(&self) -> &Path {
        self.directory.parent().unwrap_or(Path::new("."))
    }

    /// Creates the directory if missing and keeps it private.
    pub(super) fn prepare(&self) -> Result<(), StoreError> {
        let dir = &self.directory;
        let uid = rustix::process::geteuid().as_raw();
        // Before anything is made there.
        self.check_ancestors(uid)?;
        self.check_locked_place()?;
        let meta = match fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.maintenance => {
                return Err(unusable(dir, "it does not exist"));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.make_records_directory()?;
                fs::symlink_metadata(dir).map_err(|e| unusable(dir, &e.to_string()))?
            }
            Err(e) => return Err(unusable(dir, &e.to_string())),
        };
        if meta.file_type().is_symlink() {
            // Not followed: whoever may change the link could point the
            // store at an older copy of the records (one a logout deleted).
            let target = fs::read_link(dir)
                .map(|target| format!(" to {}", target.display()))
                .unwrap_or_default();
            return Err(unusable_as_it_is(
                dir,
                &format!(
                    "it is a symbolic link{target}, which tokend does not follow for its records: \
                     move the directory itself there, or set `state_directory` in [daemon] to \
                     the directory that holds it"
                ),
            ));
        }
        if !meta.is_dir() {
            return Err(unusable(dir, "it is not a directory"));
        }
        if meta.uid() != uid && !(self.maintenance && uid == 0) {
            // Restored from a backup, or copied from another machine or
            // user: its records are good, so the way out keeps them
            // (another `state_directory` would leave them behind).
            return Err(StoreError::Unavailable {
                store: STORE,
                reason: format!(
                    "the directory {} cannot be used: it belongs to uid {}, not to tokend's uid \
                     {uid}; give it and its records to tokend's user: chown -R {uid} {}",
                    dir.display(),
                    meta.uid(),
                    dir.display()
                ),
            });
        }
        if meta.mode() & 0o077 != 0 && !self.maintenance {
            // The files are sealed anyway; a private directory also hides
            // which providers have sessions, and keeps others from planting files.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| unusable(dir, &format!("cannot make it private (0700): {e}")))?;
        }
        let first_sight = !self.records_seen.swap(true, Ordering::Relaxed);
        if first_sight && !self.maintenance {
            // Once a run (the directory made, or found at the start): new
            // files in it then need no new space to be written over.
            files::no_copy_on_write(dir);
        }
        Ok(())
    }

    /// Makes the missing records' directory. In a daemon's store only the
    /// directory itself, inside the state directory just found to be the
    /// one locked: made with its parents, a state directory removed or
    /// unmounted under the daemon came back without its lock. One that was
    /// there before is made again too, but its records went with it: the
    /// call fails as the store's (an outage), and the broker, told by
    /// [`crate::store::Store::take_lost_records`], saves every session it
    /// holds into the new one.
    fn make_records_directory(&self) -> Result<(), StoreError> {
        let dir = &self.directory;
        // Before it is made: another call that finds it made meanwhile
        // says it was seen, which says nothing of this one's finding.
        let was_seen = self.records_seen.load(Ordering::Relaxed);
        let mut made = DirBuilder::new().mode(0o700).create(dir);
        if let Some(parent) = dir.parent().filter(|_| self.held.is_none()) {
            // Not a daemon's: the state directory too (tests, a seed).
            if made
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
            {
                made = DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .and_then(|()| DirBuilder::new().mode(0o700).create(dir));
            }
        }
        match made {
            Ok(()) => {}
            // Made by another call meanwhile, which says what it found.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(unusable(dir, &format!("cannot create it: {e}"))),
        }
        // The new directory entry must survive a crash like the files in it.
        if let Some(parent) = dir.parent() {
            let _ = sync_dir(parent);
        }
        if !was_seen {
            return Ok(());
        }
        self.records_lost.store(true, Ordering::Relaxed);
        Err(StoreError::Failed {
            store: STORE,
            reason: format!(
                "the records' directory {} was removed while tokend ran, with the records in \
                 it: made again, and every session tokend holds is saved into it again",
                dir.display()
            ),
        })
    }

    /// Whether the state directory and its lock file are still the ones a
    /// daemon's lock was taken in (see [`crate::store::held_lock`]):
    /// records written anywhere else are in a directory no lock guards
    /// (a second daemon starts there), or one a mount hides.
    fn check_locked_place(&self) -> Result<(), StoreError> {
        let Some(held) = &self.held else {
            return Ok(());
        };
        let state = self.state_directory();
        let target = LockTarget::file_store(state);
        let what = match held.check(&target) {
            Ok(()) => return Ok(()),
            Err(PlaceChange::DirectoryGone) => "nothing is there now".to_owned(),
            Err(PlaceChange::DirectoryReplaced { locked, now }) => {
                format!("another directory is there now ({now}; tokend locked {locked})")
            }
            Err(PlaceChange::NotLockedAgain(e)) => {
                return Err(lock_lost(&target, &e.to_string()));
            }
            // Locked again by the check when it can be.
            Err(PlaceChange::LockFileGone) => return Err(lock_lost(&target, "it is gone")),
            Err(PlaceChange::Unknown(e)) => {
                return Err(StoreError::Unavailable {
                    store: STORE,
                    reason: format!(
                        "cannot tell whether the state directory {} is still the one tokend \
                         locked at its start: {e}",
                        state.display()
                    ),
                });
            }
        };
        Err(StoreError::Unavailable {
            store: STORE,
            reason: format!(
                "the state directory {} was removed or replaced while tokend ran (another file \
                 system mounted or unmounted over it?): {what}; tokend writes its records only \
                 into the one it locked at its start: put that one back (mount it again, move it \
                 back), or restart tokend to take the one there now (sessions whose newest tokens \
                 were not saved then need a new login)",
                state.display()
            ),
        })
    }

    /// Whether another user could rename the store's directory away (and
    /// put back an old one, with a record a logout deleted): every
    /// directory above it must be root's or tokend's, and writable by no
    /// one else unless sticky. Checked until found safe, then not again.
    fn check_ancestors(&self, uid: u32) -> Result<(), StoreError> {
        if self.maintenance || self.ancestors_trusted.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(parent) = self.directory.parent() {
            crate::trusted_path::check_ancestors(parent, crate::trusted_path::Owners::of_uid(uid))
                .map_err(|untrusted| unusable(&self.directory, &untrusted.to_string()))?;
        }
        self.ancestors_trusted.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the directory takes writes at all ([`crate::store::Store::check_writable`]).
    pub(super) fn writable(&self) -> Result<(), StoreError> {
        if self.maintenance {
            return Ok(());
        }
        // Only what says the directory takes no writes at all; anything
        // else (not made yet, say) is left to the writes themselves.
        match rustix::fs::access(&self.directory, rustix::fs::Access::WRITE_OK) {
            Err(rustix::io::Errno::ROFS) => Err(unusable_as_it_is(
                &self.directory,
                "it is on a read-only file system (remounted so after disk errors? see `mount` \
                 and `dmesg`): sessions are read, but no refresh can be saved",
            )),
            Err(rustix::io::Errno::ACCESS) => Err(unusable_as_it_is(
                &self.directory,
                &format!(
                    "tokend's user may not write in it ({}): sessions are read, but no refresh \
                     can be saved",
                    self.way_to_write()
                ),
            )),
            Err(rustix::io::Errno::PERM) => {
                Err(unusable_as_it_is(&self.directory, FROZEN_DIRECTORY))
            }
            // An append-only directory passes `access`, and refuses every
            // rename and removal: its attributes say so.
            Ok(()) if files::immutable_or_append_only(&self.directory) => {
                Err(unusable_as_it_is(&self.directory, FROZEN_DIRECTORY))
            }
            _ => Ok(()),
        }
    }
}

impl EncryptedFileStore {
    /// What gives tokend's user write access to the records' directory,
    /// which it lacks: its owner's write permission when the directory is
    /// already that user's and its mode shuts its owner out (a `chmod`
    /// took it away: "chown it to that user" sent the administrator to
    /// change nothing), a look at the directories above when its mode lets
    /// its owner write, else the directory given to that user.
    fn way_to_write(&self) -> String {
        let uid = rustix::process::geteuid().as_raw();
        let dir = self.directory.display();
        match fs::metadata(&self.directory) {
            Ok(meta) if meta.uid() == uid && meta.mode() & 0o200 == 0 => format!(
                "it is that user's, and its mode {:04o} does not let its owner write: chmod u+w \
                 {dir}",
                meta.mode() & 0o7777
            ),
            // Its own mode lets it: a directory above does not let it through.
            Ok(meta) if meta.uid() == uid => {
                format!("a directory above it does not let that user through: see namei -l {dir}")
            }
            _ => format!("give it to that user: chown {uid} {dir}"),
        }
    }
}

/// The store's outage while the lock file of `target` was removed or
/// replaced and cannot be locked again (`why`).
fn lock_lost(target: &LockTarget, why: &str) -> StoreError {
    StoreError::Unavailable {
        store: STORE,
        reason: format!(
            "the lock file {} was removed or replaced while tokend ran, and cannot be locked \
             again ({why}): nothing is written until it is (stop any other tokend on {})",
            target.path.display(),
            target.store
        ),
    }
}

/// As [`unusable`], for a directory that is where it should be and whose
/// own state is the trouble (`why` says what to do): another
/// `state_directory` would leave its records behind.
pub(super) fn unusable_as_it_is(dir: &Path, why: &str) -> StoreError {
    StoreError::Unavailable {
        store: STORE,
        reason: format!("the directory {} cannot be used: {why}", dir.display()),
    }
}

pub(super) fn unusable(dir: &Path, why: &str) -> StoreError {
    StoreError::Unavailable {
        store: STORE,
        reason: format!(
            "the directory {} cannot be used: {why} (set `state_directory` in [daemon], or \
             StateDirectory=tokend in the unit)",
            dir.display()
        ),
    }
}
