//! A store whose lock could not be taken at start: unusable until it can.
//!
//! The daemon takes its store's lock before it reads a session (see
//! [`super::lock`]). When the lock cannot be taken for a reason other than
//! another daemon holding it (the state directory belongs to another user,
//! or cannot be made yet), the store itself is unusable for the same
//! reason, and the daemon waits out the outage. But the outage may end (an
//! administrator fixes the directory's owner) while the lock was never
//! taken: the daemon then read and refreshed its sessions without it, and a
//! second daemon on the same store took the lock and did the same: with a
//! provider that rotates refresh tokens, the login of both ends.
//!
//! So the store is wrapped in a [`LockGate`]: every call first tries the
//! lock until it is taken, and fails as the store being unavailable, with
//! the lock's reason, until then. Once taken it is held until the process
//! exits, as the daemon's lock always is.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::info;

use super::{
    ChangeFeed, HeldLock, LoadResult, LockTarget, PreparedSave, Store, StoreError, StoreLock,
    StoredSession,
};

/// A [`Store`] used only once its lock is taken (see the module doc).
#[derive(Debug)]
pub struct LockGate {
    store: Arc<dyn Store>,
    target: LockTarget,
    /// Told where the lock was taken, for the store to check its
    /// directory against (see [`super::held_lock`]).
    held: HeldLock,
    taken: AtomicBool,
    /// One attempt at a time: two calls must not both take it and log it.
    trying: Mutex<()>,
}

impl LockGate {
    /// `store`, used only once the lock of `target` is taken, which is
    /// then recorded in `held`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, target: LockTarget, held: HeldLock) -> Self {
        Self {
            store,
            target,
            held,
            taken: AtomicBool::new(false),
            trying: Mutex::new(()),
        }
    }

    /// Takes the lock if it is not taken yet.
    fn pass(&self) -> Result<(), StoreError> {
        if self.taken.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self
            .trying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.taken.load(Ordering::Acquire) {
            return Ok(());
        }
        match StoreLock::acquire(&self.target) {
            Ok(lock) => {
                self.held.record(&lock);
                lock.hold_until_exit();
                self.taken.store(true, Ordering::Release);
                info!(
                    lock = %self.target.path.display(),
                    "took the store's lock: this daemon alone uses the store"
                );
                Ok(())
            }
            Err(e) => Err(StoreError::Unavailable {
                store: self.store.name(),
                reason: e.to_string(),
            }),
        }
    }
}

impl Store for LockGate {
    fn name(&self) -> &'static str {
        self.store.name()
    }

    fn load(&self, provider: &str) -> LoadResult {
        self.pass()?;
        self.store.load(provider)
    }

    fn load_batch(&self, providers: &[String]) -> Vec<LoadResult> {
        match self.pass() {
            Ok(()) => self.store.load_batch(providers),
            Err(e) => providers.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.pass()?;
        self.store.save(provider, session)
    }

    fn prepares_saves(&self) -> bool {
        self.store.prepares_saves()
    }

    fn prepare_save(&self, provider: &str) -> PreparedSave {
        // Nothing is made in a store this daemon does not hold.
        if self.taken.load(Ordering::Acquire) {
            self.store.prepare_save(provider)
        } else {
            PreparedSave::default()
        }
    }

    fn save_prepared(
        &self,
        provider: &str,
        session: &StoredSession,
        prepared: PreparedSave,
    ) -> Result<(), StoreError> {
        self.pass()?;
        self.store.save_prepared(provider, session, prepared)
    }

    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.pass()?;
        self.store.delete(provider)
    }

    fn forgets_at_stop(&self) -> bool {
        self.store.forgets_at_stop()
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.pass()?;
        self.store.check_writable()
    }

    fn tries_writes_while_down(&self) -> bool {
        self.taken.load(Ordering::Acquire) && self.store.tries_writes_while_down()
    }

    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.pass()?;
        self.store.list()
    }

    fn change_feed(&self) -> Option<ChangeFeed> {
        self.store.change_feed()
    }

    fn note_skipped_delete(&self, provider: &str) {
        // A note is a write beside the store: only with the lock.
        if self.pass().is_ok() {
            self.store.note_skipped_delete(provider);
        }
    }

    fn remembers_logout(&self, provider: &str) -> bool {
        self.store.remembers_logout(provider)
    }

    fn take_lost_records(&self) -> bool {
        self.store.take_lost_records()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LogoutJournal, MemoryStore, logout_journal::FILE_NAME};

    /// A daemon that never got the lock (another holds it) writes nothing
    /// beside the store either: the note of a logout it made would delete
    /// the other daemon's live record at that one's next start.
    #[test]
    fn without_the_lock_nothing_is_written_beside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let target = LockTarget::file_store(dir.path());
        let other = StoreLock::acquire(&target).expect("the other daemon's lock");
        let journal = LogoutJournal::open(Arc::new(MemoryStore::new()), dir.path());
        let gate = LockGate::new(Arc::new(journal), target, HeldLock::default());
        let refused = gate.delete("demo").unwrap_err();
        assert!(refused.is_store_wide(), "{refused}");
        assert!(refused.to_string().contains("another tokend"), "{refused}");
        gate.note_skipped_delete("demo");
        assert!(!gate.remembers_logout("demo"));
        assert!(!dir.path().join(FILE_NAME).exists(), "a note was written");
        drop(other);
        // Free once the other is gone. Another test of this process may
        // fork while the other lock is open: until that child execs, its
        // copy of the descriptor (close-on-exec) holds the lock too (see
        // `lock_tests`). That window is bounded; still refused after 10 s
        // is the failure.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match gate.delete("demo") {
                Ok(()) => break,
                Err(e)
                    if e.to_string().contains("another tokend")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("usable once the other is gone: {e}"),
            }
        }
    }
}
