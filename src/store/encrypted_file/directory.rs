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

/// Why a records directory that is immutable or append-only cannot be used.
pub(super) const FROZEN_DIRECTORY: &str =
    "it is immutable or append-only (`lsattr -d`): sessions are read, but no refresh can be saved";

impl EncryptedFileStore {
    /// Creates the directory if missing and keeps it private.
    pub(super) fn prepare(&self) -> Result<(), StoreError> {
        let dir = &self.directory;
        let uid = rustix::process::geteuid().as_raw();
        // Before anything is made there.
        self.check_ancestors(uid)?;
        let meta = match fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.maintenance => {
                return Err(unusable(dir, "it does not exist"));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| unusable(dir, &format!("cannot create it: {e}")))?;
                // The new directory entry must survive a crash like the files in it.
                if let Some(parent) = dir.parent() {
                    let _ = sync_dir(parent);
                }
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
        Ok(())
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
                "tokend's user may not write in it (chown it to that user): sessions are read, \
                 but no refresh can be saved",
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
