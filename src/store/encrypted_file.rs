//! Sessions in encrypted files under the state directory
//! (`store = "encrypted-file"`): the store for the system service, which has
//! no Secret Service.
//!
//! # Why this store, and why this name
//!
//! A system service has no login keyring, and kernel keyrings do not survive
//! a reboot (see [`super::secret_service`]). What a system service does have
//! is systemd: a private state directory (`StateDirectory=`) that survives
//! reboots, and credentials (`LoadCredentialEncrypted=`) that systemd keeps
//! encrypted at rest with the machine's TPM2 and/or host key and decrypts
//! into a private, memory-backed directory when the service starts. So the
//! records live on disk encrypted, and the key that opens them does not lie
//! next to them in the clear. The name says both halves: files, encrypted.
//!
//! # Setting it up
//!
//! Make a 32-byte random key and give it to the unit as an encrypted
//! credential (the key then exists in the clear only in the service's
//! credential directory, in memory, while it runs):
//!
//! ```text
//! # as root, once
//! install -d -m 0700 /etc/credstore.encrypted
//! head -c 32 /dev/urandom \
//!   | systemd-creds encrypt --name=tokend-store-key - /etc/credstore.encrypted/tokend-store-key
//! ```
//!
//! ```ini
//! # tokend.service (system instance)
//! [Service]
//! LoadCredentialEncrypted=tokend-store-key:/etc/credstore.encrypted/tokend-store-key
//! StateDirectory=tokend
//! StateDirectoryMode=0700
//! ```
//!
//! ```toml
//! # /etc/tokend/config.toml
//! [daemon]
//! store = "encrypted-file"
//! # store_key_credential = "tokend-store-key"   # the default
//! ```
//!
//! Without systemd credentials, a key file works too:
//! `(umask 077; head -c 32 /dev/urandom > /etc/tokend/store.key)` and
//! `store_key_file = "/etc/tokend/store.key"`. It must be exactly 32 bytes
//! and readable by its owner only; `tokend --check` says so, with the
//! position of the key in the config, when it is not. A key file on the same
//! disk as the state directory protects the records only as well as that
//! file's permissions do: prefer the credential.
//!
//! The directory is `$STATE_DIRECTORY` (set by `StateDirectory=`), else
//! `/var/lib/tokend` for root and `$XDG_STATE_HOME/tokend` for a user,
//! unless `state_directory` says otherwise. Records are in its `sessions/`
//! subdirectory, one file per provider, `NAME.session`.
//!
//! Losing the key loses the sessions (every provider needs a new login),
//! nothing else. A new key makes the old records unreadable with a clear
//! "written with another key" error until each provider logs in again.
//!
//! # Writes are atomic and durable
//!
//! A record is written to a file of its own (mode 0600), flushed with
//! `fsync`, swapped with the provider's file in one step, and the
//! directory is flushed so the swap itself survives a power cut: a crash at
//! any point leaves the old record or the new one, never a mix or nothing.
//! The old record's file stays behind as the spare the next save writes
//! over in place, which spares that save an inode's creation and a journal
//! commit (see the `spare` module). A temporary file left by a crash is
//! removed when the daemon next starts.
//!
//! Where there is no spare yet (the first refresh after a login),
//! creating the file is a fifth of a save's time on ext4 (an inode to
//! allocate) and needs nothing of the record, so for a refresh the broker
//! has it made while the provider answers ([`Store::prepare_save`]): a
//! caller waiting for that refresh waits only for the write, the `fsync`s
//! and the swap. A preparation no save uses (the refresh failed)
//! removes its file when dropped. The format and its
//! tamper protection are in [`super::sealed`].

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::key::{KeyId, StoreKey};
use super::sealed::{self, OpenError};
use super::{LoadResult, PreparedSave, Store, StoreError, StoredSession, until_store_wide};

mod changes;
mod files;
mod spare;

pub use files::TempFile;
use files::{
    cannot_change, not_a_file, read_record_file, refuses_change, sync_dir, with_what_is_full,
};

/// The name of this store in messages.
pub const STORE: &str = "encrypted file store";

/// The subdirectory of the state directory that holds the records.
pub const SESSIONS_DIR: &str = "sessions";

/// The suffix of a record file.
pub const SUFFIX: &str = ".session";

/// The suffix of a temporary file (hidden, so `ls` shows records only).
const TEMP_SUFFIX: &str = ".tmp";

/// What a record's plaintext is padded to a multiple of (see
/// [`padded_record`]).
const RECORD_PADDING: usize = 256;

/// Makes temporary file names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Encrypted session records, one file per provider.
#[derive(Debug)]
pub struct EncryptedFileStore {
    directory: PathBuf,
    key: StoreKey,
    /// Opened for `tokend --prune` ([`Self::for_maintenance`]), not for a
    /// daemon.
    maintenance: bool,
    /// The directories above the store's were found safe (see
    /// [`crate::trusted_path`]); checked until they are, then not again.
    ancestors_trusted: std::sync::atomic::AtomicBool,
}

impl EncryptedFileStore {
    /// A store in `state_directory/sessions`, sealing with `key`. Nothing
    /// is touched yet: each operation creates the directory (0700) if it is
    /// missing, so a state directory that appears late is still used.
    #[must_use]
    pub fn new(state_directory: &Path, key: StoreKey) -> Self {
        Self {
            directory: state_directory.join(SESSIONS_DIR),
            key,
            maintenance: false,
            ancestors_trusted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The store as `tokend --prune` opens it, to list and delete records
    /// beside (or instead of) the daemon: it never creates the directory
    /// (one made by root would lock the service out of its own store) nor
    /// changes its mode, and root may use a directory of the service's
    /// user. Reading and writing records needs the key, which this store
    /// may not have: `key` may be a stand-in.
    #[must_use]
    pub fn for_maintenance(state_directory: &Path, key: StoreKey) -> Self {
        Self {
            maintenance: true,
            ..Self::new(state_directory, key)
        }
    }

    /// The directory that holds the records.
    #[must_use]
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Every name in the records' directory, temporary files included,
    /// sorted (for tests that check what is left there).
    #[cfg(test)]
    pub(crate) fn file_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.directory)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// The public name of the key in use (logged at start, stored in files).
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key.id()
    }

    /// The file that holds `provider`'s record.
    ///
    /// # Errors
    /// `provider` is not a name a provider can have (so it could not be a
    /// safe file name either).
    pub fn file_of(&self, provider: &str) -> Result<PathBuf, StoreError> {
        let valid = !provider.is_empty()
            && provider.len() <= 128
            && provider
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(failed(format!("`{provider}` is not a provider name")));
        }
        Ok(self.directory.join(format!("{provider}{SUFFIX}")))
    }

    /// Removes temporary files a crash left behind; returns how many. Only
    /// the daemon calls this: a `tokend --prune` running beside it must not
    /// remove a file the daemon is writing. A file whose name carries the
    /// pid of another process that is alive stays too: the store's lock
    /// (see [`super::lock`]) keeps a second daemon away, but one that could
    /// not be made is a warning, not a refusal, and a daemon started then
    /// must not pull a save from under the first.
    #[must_use = "the count says whether a crash interrupted a write"]
    pub fn remove_stale_temp_files(&self) -> usize {
        files::remove_stale_temp_files(&self.directory)
    }

    /// Reads `provider`'s record from `path`, its file, once the directory
    /// has been checked.
    fn load_from(
        &self,
        directory: Option<&File>,
        provider: &str,
        path: &Path,
    ) -> Result<Option<StoredSession>, StoreError> {
        let Some(bytes) = read_record_file(directory, path, provider)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            store: STORE,
            provider: provider.to_owned(),
            reason: super::unusable_record_advice(
                &format!("{} {reason}", path.display()),
                provider,
            ),
        };
        let plaintext = sealed::open(&self.key, provider, &bytes).map_err(|e| match e {
            OpenError::WrongKey(found) => StoreError::WrongKey {
                store: STORE,
                provider: provider.to_owned(),
                found: found.to_string(),
                expected: self.key.id().to_string(),
            },
            OpenError::Corrupt(reason) => corrupt(reason),
        })?;
        StoredSession::from_bytes(&plaintext)
            .map(Some)
            .map_err(corrupt)
    }

    /// Creates the directory if missing and keeps it private.
    fn prepare(&self) -> Result<(), StoreError> {
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
        use std::sync::atomic::Ordering;
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

    /// Creates a new temporary file for `provider`'s next record (mode
    /// 0600, created exclusively) and opens the directory to flush after
    /// the rename: the part of a save that does not depend on the record.
    fn create_temp(&self, provider: &str) -> io::Result<TempFile> {
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

    /// The kernel refused to change `provider`'s record at `path` (`e`,
    /// see [`refuses_change`]): the directory's doing when the directory
    /// itself is immutable or append-only (the store's, said as an outage
    /// naming it), else the record file's own.
    fn refused_change(&self, provider: &str, path: &Path, e: &io::Error) -> StoreError {
        if let Err(problem) = self.check_writable() {
            return problem;
        }
        StoreError::Unchangeable {
            store: STORE,
            provider: provider.to_owned(),
            reason: cannot_change(path, e),
        }
    }

    /// Seals `session` as `provider`'s record and writes it as `path` (the
    /// record's file, from [`Self::file_of`]): over the spare when there
    /// is one, else through `temp` (made beforehand) or a new file, which
    /// becomes the spare; then swapped into the record's place (see
    /// [`spare`]) and the directory flushed.
    fn seal_and_commit(
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
        let written = match (spare::open(&spare), temp) {
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

/// Why a records directory that is immutable or append-only cannot be used.
const FROZEN_DIRECTORY: &str =
    "it is immutable or append-only (`lsattr -d`): sessions are read, but no refresh can be saved";

/// `session`'s bytes, padded with spaces (which JSON reads past) to a
/// multiple of [`RECORD_PADDING`] bytes, so that the next record of a
/// session is nearly always as long and its save writes the spare in place
/// without changing its length (see [`spare`]); tokens change length
/// between refreshes by a few bytes at most. Older versions read padded
/// records as they read their own.
fn padded_record(session: &StoredSession) -> zeroize::Zeroizing<Vec<u8>> {
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

impl Store for EncryptedFileStore {
    fn name(&self) -> &'static str {
        STORE
    }

    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        let path = self.file_of(provider)?;
        self.prepare()?;
        self.load_from(None, provider, &path)
    }

    fn load_batch(&self, providers: &[String]) -> Vec<LoadResult> {
        // The directory is checked once for the batch, which is read at
        // once, not once a record: the check walks the directory's path
        // (a `statx`); without it reading 10,000 records takes a sixth
        // less time (62-71 ms against 75-88 ms on one thread, measured).
        if let Err(e) = self.prepare() {
            return vec![Err(e); providers.len()];
        }
        let directory = files::open_directory(&self.directory);
        until_store_wide(
            providers.len(),
            providers.iter().map(|provider| {
                let path = self.file_of(provider)?;
                self.load_from(directory.as_ref(), provider, &path)
            }),
        )
    }

    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        let path = self.file_of(provider)?;
        self.prepare()?;
        self.seal_and_commit(provider, &path, session, None)
    }

    fn prepares_saves(&self) -> bool {
        true
    }

    fn prepare_save(&self, provider: &str) -> PreparedSave {
        if self.file_of(provider).is_err()
            || self.prepare().is_err()
            || files::immutable_or_append_only(&self.directory)
        {
            // The save says what is wrong.
            return PreparedSave::default();
        }
        // A save that finds the record's spare writes over it: there
        // is nothing to make beforehand (a spare removed meanwhile only
        // leaves that save to make a file itself).
        if spare::path_of(&self.directory, provider).exists() {
            return PreparedSave::default();
        }
        PreparedSave {
            temp: self.create_temp(provider).ok(),
        }
    }

    fn save_prepared(
        &self,
        provider: &str,
        session: &StoredSession,
        prepared: PreparedSave,
    ) -> Result<(), StoreError> {
        match prepared.temp {
            Some(temp) if temp.provider == provider && temp.directory == self.directory => {
                // The directory is checked again (a few µs): one replaced
                // since the preparation fails the save as it would without one.
                let path = self.file_of(provider)?;
                self.prepare()?;
                self.seal_and_commit(provider, &path, session, Some(temp))
            }
            _ => self.save(provider, session),
        }
    }

    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        let path = self.file_of(provider)?;
        if self.maintenance && !self.directory.exists() {
            return Ok(());
        }
        self.prepare()?;
        // The spare holds an earlier record: it goes with the record,
        // first, so that a failure leaves the record (and the logout's
        // note) for the delete's retry.
        if let Err(e) = spare::remove(&self.directory, provider) {
            let spare = spare::path_of(&self.directory, provider);
            return Err(match e.kind() {
                io::ErrorKind::IsADirectory => StoreError::Corrupt {
                    store: STORE,
                    provider: provider.to_owned(),
                    reason: not_a_file(&spare),
                },
                _ if refuses_change(&e) => self.refused_change(provider, &spare, &e),
                _ => failed(format!(
                    "cannot remove a record's spare in {}: {e}",
                    self.directory.display()
                )),
            });
        }
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.directory)
                .map_err(|e| failed(format!("cannot flush {}: {e}", self.directory.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // This record's own trouble, not the store's (see `not_a_file`).
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => Err(StoreError::Corrupt {
                store: STORE,
                provider: provider.to_owned(),
                reason: not_a_file(&path),
            }),
            Err(e) if refuses_change(&e) => Err(self.refused_change(provider, &path, &e)),
            Err(e) => Err(failed(format!(
                "cannot remove a record in {}: {e}",
                self.directory.display()
            ))),
        }
    }

    fn change_feed(&self) -> Option<super::ChangeFeed> {
        changes::feed(&self.directory)
    }

    fn tries_deletes_while_down(&self) -> bool {
        true
    }

    fn check_writable(&self) -> Result<(), StoreError> {
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

    fn list(&self) -> Result<Vec<String>, StoreError> {
        if self.maintenance && !self.directory.exists() {
            return Ok(Vec::new());
        }
        self.prepare()?;
        let entries =
            fs::read_dir(&self.directory).map_err(|e| unusable(&self.directory, &e.to_string()))?;
        // An entry the directory cannot give (an I/O error) fails the
        // listing rather than leave a record out: the restore would skip
        // its session, and the logout journal would drop a pending logout
        // of it, which a later start would then bring back.
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| failed(format!("cannot list {}: {e}", self.directory.display())))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // A spare without its record (left by a version that did not
            // know spares, or a delete cut short) still holds a sealed
            // refresh token: listed, so that `--prune` and a logout's
            // retry remove it; its load finds no record.
            if let Some(provider) = name
                .strip_suffix(SUFFIX)
                .or_else(|| spare::provider_of(&name))
                && self.file_of(provider).is_ok()
            {
                names.push(provider.to_owned());
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

fn failed(reason: String) -> StoreError {
    StoreError::Failed {
        store: STORE,
        reason,
    }
}

/// As [`unusable`], for a directory that is where it should be and whose
/// own state is the trouble (`why` says what to do): another
/// `state_directory` would leave its records behind.
fn unusable_as_it_is(dir: &Path, why: &str) -> StoreError {
    StoreError::Unavailable {
        store: STORE,
        reason: format!("the directory {} cannot be used: {why}", dir.display()),
    }
}

fn unusable(dir: &Path, why: &str) -> StoreError {
    StoreError::Unavailable {
        store: STORE,
        reason: format!(
            "the directory {} cannot be used: {why} (set `state_directory` in [daemon], or \
             StateDirectory=tokend in the unit)",
            dir.display()
        ),
    }
}

#[cfg(test)]
#[path = "encrypted_file_tests.rs"]
mod tests;
