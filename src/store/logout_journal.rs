//! Logouts the store has not carried out yet, remembered outside it.
//!
//! A logout deletes the provider's record. When the store cannot do that
//! (a locked keyring, an unusable directory), the broker keeps the session
//! logged out in memory and deletes the record when the store works again;
//! but a daemon stopped before then used to find the record at its next
//! start and bring the logged-out session back, which a person who logged
//! out to end an account's access does not expect.
//!
//! [`LogoutJournal`] wraps the daemon's store and writes a line naming the
//! provider and the time into a small file beside the store (its state
//! directory) *before* each delete, and removes it once the delete is done.
//! A record found at a restore with such a line is deleted rather than
//! restored, but only when the record is not newer than the logout: a
//! later login's record (whose save also removes the line) is never taken
//! for the logged-out one. A logout of a record dated ahead of the clock
//! (saved before the clock was set back) is noted as of the record's
//! date. A line whose provider has no record left is dropped at the next
//! listing of the store. The file holds provider names and times, no
//! secret.
//!
//! Writing the line first costs a small file write a logout (a rare
//! request); it covers a delete that hangs and a crash in the middle as
//! well as one that fails. A line that cannot be written (no state
//! directory, a full disk) leaves the logout as it was without the
//! journal: the broker still owes the delete, and its stop says the
//! session comes back.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{info, warn};

use super::{ChangeFeed, LoadResult, PreparedSave, Store, StoreError, StoredSession};

#[path = "logout_journal_file.rs"]
mod file;
#[cfg(test)]
use file::{HEADER, parse};
use file::{temp_path, unix_now, write};

/// The journal's file name in the state directory (the encrypted file
/// store's).
pub const FILE_NAME: &str = "pending-logouts";

/// The Secret Service daemon's journal's file name. Its own: an
/// encrypted-file daemon of the same user (or root's system service) keeps
/// [`FILE_NAME`] in the same state directory, and a line of one daemon's
/// logout deleted the other daemon's session of that name at its next
/// start (and each rewrote the file without the other's lines).
pub const SECRET_SERVICE_FILE_NAME: &str = "pending-logouts-secret-service";

/// A [`Store`] whose deletes are remembered in a file until done (see the
/// module doc).
#[derive(Debug)]
pub struct LogoutJournal {
    store: Arc<dyn Store>,
    path: PathBuf,
    /// Provider → when its logout was asked (Unix seconds): the file's
    /// content, kept in memory so that a restore of 10,000 sessions reads
    /// no file when nothing is pending.
    pending: Mutex<BTreeMap<String, i64>>,
    /// Provider → the `obtained_at` of its record as last saved or read,
    /// for records dated after the clock's now only (saved before the
    /// clock was set back: a machine whose clock ran ahead). A logout of
    /// one is noted as of that date, not of now: noted as of now, the
    /// record looked newer than the logout, was taken for a later login's,
    /// and came back at the next start.
    dated_ahead: Mutex<BTreeMap<String, i64>>,
    /// Why the journal's file could not be read at the start, while it
    /// still cannot be (see [`Self::readable`]).
    unread: Mutex<Option<String>>,
    /// Whether a temporary file left by a crash was looked for.
    temp_checked: std::sync::atomic::AtomicBool,
    /// Whether a write makes a missing directory: the Secret Service's
    /// may not exist yet; the file store's was made with its lock, and made
    /// again it would hold none (see [`super::held_lock`]).
    makes_directory: bool,
}

impl LogoutJournal {
    /// Wraps `store`, with the journal at `directory`/[`FILE_NAME`]; reads
    /// what an earlier run left there. A journal that is there and cannot
    /// be read is logged, and holds the store until it can be read (see
    /// `readable`).
    #[must_use]
    pub fn open(store: Arc<dyn Store>, directory: &Path) -> Self {
        Self::open_named(store, directory, FILE_NAME, false)
    }

    /// As [`Self::open`], with the Secret Service's journal,
    /// [`SECRET_SERVICE_FILE_NAME`]. Until 2026-12-06 it was [`FILE_NAME`]
    /// too: one left there is taken over, unless an encrypted file store
    /// keeps its records in this directory (whose journal it would be).
    #[must_use]
    pub fn open_for_secret_service(store: Arc<dyn Store>, directory: &Path) -> Self {
        let own = directory.join(SECRET_SERVICE_FILE_NAME);
        let older = directory.join(FILE_NAME);
        if !own.exists()
            && older.is_file()
            && !directory.join(super::encrypted_file::SESSIONS_DIR).exists()
        {
            match fs::rename(&older, &own) {
                Ok(()) => info!(
                    "the logout journal {} is now {}",
                    older.display(),
                    own.display()
                ),
                Err(e) => warn!(
                    "cannot rename {} to {}: {e}; logouts it names are not carried out",
                    older.display(),
                    own.display()
                ),
            }
        }
        Self::open_named(store, directory, SECRET_SERVICE_FILE_NAME, true)
    }

    fn open_named(
        store: Arc<dyn Store>,
        directory: &Path,
        file_name: &str,
        makes_directory: bool,
    ) -> Self {
        let path = directory.join(file_name);
        let mut unread = None;
        let pending = match file::read(&path) {
            Ok(pending) => pending,
            Err(e) => {
                warn!(
                    "cannot read the logout journal {}: {e}; the store is not used until it \
                     can be read (a logout it names must not come back)",
                    path.display()
                );
                unread = Some(e.to_string());
                BTreeMap::new()
            }
        };
        if !pending.is_empty() {
            let names: Vec<&str> = pending.keys().map(String::as_str).collect();
            info!(
                journal = %path.display(),
                "logouts not yet carried out by the store: {}",
                names.join(", ")
            );
        }
        Self {
            store,
            path,
            pending: Mutex::new(pending),
            dated_ahead: Mutex::new(BTreeMap::new()),
            unread: Mutex::new(unread),
            temp_checked: std::sync::atomic::AtomicBool::new(false),
            makes_directory,
        }
    }

    /// Whether the journal could be read: at the start it could not (an
    /// I/O error: a bad disk block, a symbolic link loop; a line that is
    /// not text is only skipped), so the logouts it names are
    /// not known, and a record it names restored would bring a
    /// logged-out session back (for good, once a refresh made the record
    /// newer than the logout). Until it reads, every store call fails as
    /// the store's outage, with the journal named; the store's retry loop
    /// tries again.
    fn readable(&self) -> Result<(), StoreError> {
        let mut unread = self.unread.lock().unwrap_or_else(PoisonError::into_inner);
        if unread.is_none() {
            return Ok(());
        }
        let read = match file::read(&self.path) {
            Ok(pending) => pending,
            Err(e) => {
                return Err(StoreError::Unavailable {
                    store: self.store.name(),
                    reason: format!(
                        "cannot read the logout journal {}: {e}; no session is read until it \
                         can be (a logout it names must not come back): mend or remove the file",
                        self.path.display()
                    ),
                });
            }
        };
        info!(
            journal = %self.path.display(),
            "the logout journal can be read now; logouts not yet carried out by the store: {}",
            if read.is_empty() { "none".to_owned() } else { read.keys().cloned().collect::<Vec<_>>().join(", ") }
        );
        *self.pending() = read;
        *unread = None;
        Ok(())
    }

    /// Where the journal is kept.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn pending(&self) -> MutexGuard<'_, BTreeMap<String, i64>> {
        // Every critical section is a map change and a file write that
        // leaves the map as the file: a panic cannot leave them apart.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that `provider`'s record is to be deleted (asked at `at`).
    fn note(&self, provider: &str, at: i64) -> io::Result<()> {
        let mut pending = self.pending();
        let previous = pending.insert(provider.to_owned(), at);
        let written = write(&self.path, &pending, self.makes_directory);
        if written.is_err() {
            // The map says what the file says.
            match previous {
                Some(at) => pending.insert(provider.to_owned(), at),
                None => pending.remove(provider),
            };
        }
        written
    }

    fn warn_not_noted(&self, provider: &str, e: &io::Error) {
        warn!(
            provider = %provider,
            "cannot note the logout in {}: {e}; a restart before the store works brings \
             the session back",
            self.path.display()
        );
    }

    /// Forgets `provider`'s line, if any: its record is deleted, or a newer
    /// one saved.
    fn forget(&self, provider: &str) {
        let mut pending = self.pending();
        let Some(at) = pending.remove(provider) else {
            return;
        };
        if let Err(e) = write(&self.path, &pending, self.makes_directory) {
            // Harmless but for a file that says too much: a line older than
            // the record it meets is dropped at the next start.
            pending.insert(provider.to_owned(), at);
            warn!(
                provider = %provider,
                "cannot update {}: {e}; the line stays until the next start",
                self.path.display()
            );
        }
    }

    /// Drops the lines of providers the store has no record of (a listing
    /// at start, or the retry loop's): their logout has nothing left to
    /// do (a crash came between the delete and the line's removal, or
    /// `tokend --prune` removed the record), and a restore would never read
    /// them. A record saved since the listing removed its line itself.
    fn keep_only(&self, listed: &[String]) {
        let mut pending = self.pending();
        if pending.is_empty() {
            return;
        }
        let before = pending.clone();
        pending.retain(|provider, _| listed.contains(provider));
        if pending.len() == before.len() {
            return;
        }
        if let Err(e) = write(&self.path, &pending, self.makes_directory) {
            *pending = before;
            warn!("cannot update {}: {e}", self.path.display());
        }
    }

    /// What a restore of `provider` gets from `loaded`: a record the
    /// journal says was logged out is deleted and not restored.
    fn settle(&self, provider: &str, loaded: LoadResult) -> LoadResult {
        let Some(logged_out_at) = self.pending().get(provider).copied() else {
            return loaded;
        };
        match loaded {
            Ok(Some(record)) if record.obtained_at <= logged_out_at => {
                match self.store.delete(provider) {
                    Ok(()) => {
                        self.forget(provider);
                        info!(
                            provider = %provider,
                            event = "logout_completed",
                            "deleted the stored session of a logout the store could not carry out before"
                        );
                    }
                    Err(e) => warn!(
                        provider = %provider,
                        "the stored session of an earlier logout is not restored, but could not \
                         be deleted yet: {e}"
                    ),
                }
                Ok(None)
            }
            // A later login's record (saved before the line was removed),
            // or none left: the line has nothing more to do.
            Ok(_) => {
                self.forget(provider);
                loaded
            }
            Err(_) => loaded,
        }
    }

    /// A save's result, after forgetting `provider`'s line if it worked.
    fn saved(
        &self,
        provider: &str,
        session: &StoredSession,
        result: Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if result.is_ok() {
            self.forget(provider);
            self.note_date(provider, session.obtained_at, unix_now());
        }
        result
    }

    /// Keeps `obtained_at` of `provider`'s record when it is ahead of
    /// `now` (see `dated_ahead`).
    fn note_date(&self, provider: &str, obtained_at: i64, now: i64) {
        let mut dated = self
            .dated_ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if obtained_at > now {
            dated.insert(provider.to_owned(), obtained_at);
        } else if !dated.is_empty() {
            dated.remove(provider);
        }
    }

    /// When a logout of `provider` asked now counts as asked: now, or the
    /// date of its record when that is ahead of now.
    fn logout_time(&self, provider: &str) -> i64 {
        let dated = self
            .dated_ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        dated
            .get(provider)
            .map_or_else(unix_now, |&at| at.max(unix_now()))
    }

    /// `loaded` as read, its date kept when ahead of `now`.
    fn read(&self, provider: &str, loaded: LoadResult, now: i64) -> LoadResult {
        if let Ok(Some(record)) = &loaded {
            self.note_date(provider, record.obtained_at, now);
        }
        loaded
    }
}

impl Store for LogoutJournal {
    fn name(&self) -> &'static str {
        self.store.name()
    }

    fn tries_writes_while_down(&self) -> bool {
        self.store.tries_writes_while_down()
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.store.check_writable()
    }

    fn load(&self, provider: &str) -> LoadResult {
        self.readable()?;
        let loaded = self.store.load(provider);
        let settled = self.settle(provider, loaded);
        self.read(provider, settled, unix_now())
    }

    fn load_batch(&self, providers: &[String]) -> Vec<LoadResult> {
        if let Err(e) = self.readable() {
            return vec![Err(e); providers.len()];
        }
        let loaded = self.store.load_batch(providers);
        let pending = !self.pending().is_empty();
        // One reading of the clock for the batch (a start reads 10,000
        // records in batches).
        let now = unix_now();
        providers
            .iter()
            .zip(loaded)
            .map(|(provider, loaded)| {
                let settled = if pending {
                    self.settle(provider, loaded)
                } else {
                    loaded
                };
                self.read(provider, settled, now)
            })
            .collect()
    }

    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.readable()?;
        let result = self.store.save(provider, session);
        self.saved(provider, session, result)
    }

    fn prepares_saves(&self) -> bool {
        self.store.prepares_saves()
    }

    fn prepare_save(&self, provider: &str) -> PreparedSave {
        self.store.prepare_save(provider)
    }

    fn save_prepared(
        &self,
        provider: &str,
        session: &StoredSession,
        prepared: PreparedSave,
    ) -> Result<(), StoreError> {
        self.readable()?;
        let result = self.store.save_prepared(provider, session, prepared);
        self.saved(provider, session, result)
    }

    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        // Not even noted: written from an empty map, the file would lose
        // the lines it could not be read for.
        self.readable()?;
        let noted = self.note(provider, self.logout_time(provider));
        let result = self.store.delete(provider);
        match (&result, noted) {
            (Ok(()), _) => self.forget(provider),
            (Err(_), Err(e)) => self.warn_not_noted(provider, &e),
            (Err(_), Ok(())) => {}
        }
        result
    }

    fn note_skipped_delete(&self, provider: &str) {
        if self.readable().is_err() {
            self.warn_not_noted(
                provider,
                &io::Error::other("the journal could not be read at the start"),
            );
            return;
        }
        if let Err(e) = self.note(provider, self.logout_time(provider)) {
            self.warn_not_noted(provider, &e);
        }
    }

    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.readable()?;
        let listed = self.store.list()?;
        // A temporary file a crash left while the journal was written:
        // removed here, where the store is listed (inside the lock gate:
        // a daemon without the store's lock must not touch another's).
        if !self
            .temp_checked
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            let _ = fs::remove_file(temp_path(&self.path));
        }
        // A provider the listing could not name may still have a record:
        // its logout's line stays (dropped, the logout came back once the
        // keyring that held the record was unlocked).
        if self.store.listed_all() {
            self.keep_only(&listed);
        }
        Ok(listed)
    }

    fn change_feed(&self) -> Option<ChangeFeed> {
        self.store.change_feed()
    }

    fn take_lost_records(&self) -> bool {
        self.store.take_lost_records()
    }

    fn remembers_logout(&self, provider: &str) -> bool {
        // Asked on the event loop, at the stop. The map is locked while
        // its file is written, and a write into a state directory that
        // hangs (a frozen file system, a hung mount) would hold the whole
        // daemon, the stop's grace and its last warnings with it: a map
        // that is busy is taken as not knowing, and the stop says so.
        match self.pending.try_lock() {
            Ok(pending) => pending.contains_key(provider),
            Err(std::sync::TryLockError::Poisoned(pending)) => {
                pending.into_inner().contains_key(provider)
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }
}

#[cfg(test)]
#[path = "logout_journal_tests.rs"]
mod tests;
