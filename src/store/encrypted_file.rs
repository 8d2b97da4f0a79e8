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

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::key::{KeyId, StoreKey};
use super::sealed::{self, OpenError};
use super::{LoadResult, PreparedSave, Store, StoreError, StoredSession, until_store_wide};

mod changes;
mod directory;
mod files;
mod save;
mod spare;

use directory::{FROZEN_DIRECTORY, unusable, unusable_as_it_is};
pub use files::TempFile;
use files::{cannot_change, not_a_file, read_record_file, refuses_change, sync_dir};

/// The name of this store in messages.
pub const STORE: &str = "encrypted file store";

/// The subdirectory of the state directory that holds the records.
pub const SESSIONS_DIR: &str = "sessions";

/// The suffix of a record file.
pub const SUFFIX: &str = ".session";

/// The suffix of a temporary file (hidden, so `ls` shows records only).
const TEMP_SUFFIX: &str = ".tmp";

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
    /// A daemon's: where its store lock was taken. Its state directory is
    /// then never made again, and must still be the one locked (see
    /// [`super::held_lock`]).
    held: Option<super::HeldLock>,
    /// The records' directory was there (or made) at a call: missing
    /// later, it was removed, with the records in it.
    records_seen: std::sync::atomic::AtomicBool,
    /// It was made again since [`Store::take_lost_records`] last asked.
    records_lost: std::sync::atomic::AtomicBool,
}

impl EncryptedFileStore {
    /// A store in `state_directory/sessions`, sealing with `key`. Nothing
    /// is touched yet: each operation creates the directory (0700) if it is
    /// missing, so a state directory that appears late is still used (a
    /// daemon's store makes only `sessions/`: see [`Self::locked_by`]).
    #[must_use]
    pub fn new(state_directory: &Path, key: StoreKey) -> Self {
        Self {
            directory: state_directory.join(SESSIONS_DIR),
            key,
            maintenance: false,
            ancestors_trusted: std::sync::atomic::AtomicBool::new(false),
            held: None,
            records_seen: std::sync::atomic::AtomicBool::new(false),
            records_lost: std::sync::atomic::AtomicBool::new(false),
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
            self.remove_orphaned_spare(provider);
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
        let record = StoredSession::from_bytes(&plaintext).map_err(corrupt)?;
        if record.ended.is_some() && !self.maintenance {
            // A crash (or a failure) between the ended record's save and
            // the spare's clearing left the dead tokens there. Removed,
            // not written: a read runs outside the record's saves, and a
            // save writing the spare meanwhile (a login) fails its swap
            // and is tried again, where zeros written over it would be
            // swapped in as the login's record.
            if let Err(e) = spare::remove(&self.directory, provider) {
                self.warn_not_cleared(provider, &e);
            }
        }
        Ok(Some(record))
    }

    /// Clears `provider`'s spare at `path` (see [`spare::clear`]), saying
    /// when it cannot.
    fn clear_spare(&self, provider: &str, path: &Path) {
        if let Err(e) = spare::clear(path) {
            self.warn_not_cleared(provider, &e);
        }
    }

    /// Says that `provider`'s spare could not be cleared (`e`).
    fn warn_not_cleared(&self, provider: &str, e: &io::Error) {
        tracing::warn!(provider = %provider, event = "spare_not_cleared",
            "could not clear the spare of an ended session's record in {} (it holds the record before, with its dead tokens): {e}; tried again at the next start",
            self.directory.display());
    }

    /// Removes `provider`'s spare when its record is gone: a logout by an
    /// older tokend (which knew no spares), or a delete cut short, left it
    /// behind, holding an earlier record's refresh token that a provider
    /// which does not rotate them still takes, for good (only a second
    /// logout removed it). Not in maintenance: `--prune` lists such a
    /// spare and removes it as its report says.
    fn remove_orphaned_spare(&self, provider: &str) {
        if self.maintenance || !spare::path_of(&self.directory, provider).exists() {
            return;
        }
        match spare::remove(&self.directory, provider).and_then(|()| sync_dir(&self.directory)) {
            Ok(()) => tracing::info!(provider = %provider, event = "spare_removed",
                "removed the spare of a record that is gone (left by an older tokend's logout, or a delete cut short): it held an earlier refresh token"),
            Err(e) => tracing::warn!(provider = %provider, event = "spare_removed",
                "could not remove the spare of a record that is gone, in {}: {e}", self.directory.display()),
        }
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
        // A missing directory is made by the save, which says so when its
        // records were lost with it (see `make_records_directory`).
        if self.file_of(provider).is_err()
            || !self.directory.is_dir()
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

    fn take_lost_records(&self) -> bool {
        self.records_lost
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn tries_writes_while_down(&self) -> bool {
        true
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.writable()
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

#[cfg(test)]
#[path = "encrypted_file_tests.rs"]
mod tests;
