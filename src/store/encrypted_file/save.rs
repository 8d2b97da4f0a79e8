//! A save's own steps: the temporary file a save into a new file writes
//! (made ahead for a refresh, see [`crate::store::Store::prepare_save`]),
//! the record padded so the spare keeps its length, sealing, and the write
//! and swap over the spare or through a new file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::files::{self, TempFile, not_a_file, refuses_change, sync_dir, with_what_is_full};
use super::{EncryptedFileStore, STORE, TEMP_SUFFIX, failed, spare};
use super::{FROZEN_DIRECTORY, unusable_as_it_is};
use crate::store::{StoreError, StoredSession, sealed};

/// What a record's plaintext is padded to a multiple of (see
/// [`padded_record`]).
const RECORD_PADDING: usize = 256;

/// Makes temporary file names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl EncryptedFileStore {
    /// Creates a new temporary file for `provider`'s next record (mode
    /// 0600, created exclusively) and opens the directory to flush after
    /// the rename: the part of a save that does not depend on the record.
    pub(super) fn create_temp(&self, provider: &str) -> io::Result<TempFile> {
        let path = self.directory.join(format!(
            ".{provider}.{}.{}{TEMP_SUFFIX}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let temp = TempFile {
            file,
            path,
            provider: provider.to_owned(),
            directory: self.directory.clone(),
        };
        // The creation mode is filtered by the umask; set it outright (on
        // failure, dropping `temp` removes the file).
        temp.file
            .set_permissions(fs::Permissions::from_mode(0o600))?;
        Ok(temp)
    }

    /// Seals `session` as `provider`'s record and writes it as `path` (the
    /// record's file, from [`Self::file_of`]): over the spare when there
    /// is one, else through `temp` (made beforehand) or a new file, which
    /// becomes the spare; then swapped into the record's place (see
    /// [`spare`]) and the directory flushed.
    pub(super) fn seal_and_commit(
        &self,
        provider: &str,
        path: &Path,
        session: &StoredSession,
        temp: Option<TempFile>,
    ) -> Result<(), StoreError> {
        // Nothing is made in a directory that cannot take it back: a
        // temporary file there could never be removed.
        if files::immutable_or_append_only(&self.directory) {
            return Err(unusable_as_it_is(&self.directory, FROZEN_DIRECTORY));
        }
        let sealed = sealed::seal(&self.key, provider, &padded_record(session)).map_err(failed)?;
        let spare = spare::path_of(&self.directory, provider);
        let opened = spare::open(&spare);
        let had_spare = opened.is_some();
        let written = match (opened, temp) {
            (Some((file, length)), _) => {
                spare::write(&file, length, &sealed).map(|()| spare.clone())
            }
            (None, temp) => temp
                .map_or_else(|| self.create_temp(provider), Ok)
                .and_then(|temp| temp.write_as_spare(&spare, &sealed)),
        };
        // Until the directory is flushed, a power cut may undo the swap:
        // that is a failure too, so the broker keeps trying to save.
        let committed = written.and_then(|source| {
            let swapped = spare::swap_in(&source, path);
            if source != spare || swapped.is_err() {
                // Not kept: the old record a swap left in a temporary file
                // (the spare's name was taken by something tokend could
                // not remove), or this record half written or not swapped
                // in (the next save makes a new file).
                let _ = fs::remove_file(&source);
            }
            swapped.and_then(|()| sync_dir(&self.directory))
        });
        if committed.is_ok() && !had_spare {
            self.make_spare(provider, &spare, sealed.len());
        }
        // An ended session's record holds no token; the record it replaced,
        // now the spare, does. Not the save's failure (the record is
        // stored): said, and tried again when the record is next read.
        if committed.is_ok() && session.ended.is_some() {
            self.clear_spare(provider, &spare);
        }
        committed.map_err(|e| {
            match e.kind() {
                // A directory where the record goes: this record's trouble,
                // not the store's (see `not_a_file`).
                io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => {
                    StoreError::Corrupt {
                        store: STORE,
                        provider: provider.to_owned(),
                        reason: not_a_file(path),
                    }
                }
                _ if refuses_change(&e) => self.refused_change(provider, path, &e),
                // Said without the record's name (the provider's): a
                // store-wide reason is shown to every caller that may see
                // any provider.
                _ => failed(format!(
                    "cannot write a record in {}: {}",
                    self.directory.display(),
                    with_what_is_full(&self.directory, &e)
                )),
            }
        })
    }
}

impl EncryptedFileStore {
    /// Makes `provider`'s spare at `spare`, `length` bytes of zeros, when
    /// a save left none: its record was the first (a login's), so nothing
    /// was swapped out. Every later save then writes in place, needing no
    /// new file: a disk that fills up after a login stops none of them
    /// (on btrfs, once the directory's files copy on write no more: see
    /// [`files::no_copy_on_write`]).
    /// Without it the first refresh's save needed a new file, and on a
    /// full disk the rotated refresh token stayed in memory only, lost at
    /// a stop or a crash (the restart presented the retired one). Zeros,
    /// not a copy of the record: the spare's contents matter to nobody
    /// until a save has written and swapped it in. Not flushed either: the
    /// file system reserves its blocks as it is written, and a spare a
    /// crash cut short or lost is made anew (a save then sets its length,
    /// or makes a new file). Best effort: without a spare, the next save
    /// makes a new file, as before.
    fn make_spare(&self, provider: &str, spare: &Path, length: usize) {
        if fs::symlink_metadata(spare).is_ok() {
            return;
        }
        let made = self.create_temp(provider).and_then(|mut temp| {
            temp.file.write_all(&vec![0; length])?;
            Ok(temp.rename_to_spare(spare))
        });
        match made {
            Ok(at) if at == spare => {}
            // The spare's name was taken meanwhile: not kept.
            Ok(at) => {
                let _ = fs::remove_file(at);
            }
            Err(e) => tracing::debug!("no spare made for {provider}'s record: {e}"),
        }
    }
}

/// `session`'s bytes, padded with spaces (which JSON reads past) to a
/// multiple of [`RECORD_PADDING`] bytes, so that the next record of a
/// session is nearly always as long and its save writes the spare in place
/// without changing its length (see [`spare`]); tokens change length
/// between refreshes by a few bytes at most. Older versions read padded
/// records as they read their own.
pub(super) fn padded_record(session: &StoredSession) -> zeroize::Zeroizing<Vec<u8>> {
    let mut bytes = session.to_bytes();
    let padded = bytes.len().next_multiple_of(RECORD_PADDING);
    if bytes.capacity() < padded {
        // Growing the buffer in place would leave the tokens in the
        // smaller copy it frees: copy into one of the right size instead
        // (the old one is zeroed as it drops).
        let mut larger = zeroize::Zeroizing::new(Vec::with_capacity(padded));
        larger.extend_from_slice(&bytes);
        bytes = larger;
    }
    bytes.resize(padded, b' ');
    bytes
}
