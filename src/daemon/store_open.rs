//! Opening the store the config names: as it is (`tokend --prune`, tests)
//! or as the daemon uses it, with the logout journal beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::info;

use super::slow_start::watch_start_step;
use super::store_lock::{lock_daemon_store, store_lock_target};
use crate::config::{Config, Environment, StoreKind};
use crate::store::{
    EncryptedFileStore, HeldLock, LockError, LockGate, LockTarget, LogoutJournal, MemoryStore,
    SecretServiceStore, Store,
};

/// The daemon's store, locked: the lock is taken before the store is
/// opened (which clears what a crash left there) and long before a session
/// is read from it. The broker lists the store as it starts, and says then
/// if it cannot be used; sessions live in memory until it can. Each step
/// names what it waits for when it does not come back
/// ([`watch_start_step`]).
///
/// # Errors
/// Another daemon holds the store ([`LockError::Held`]).
pub(super) fn lock_and_open_store(
    config: &Config,
    env: &Environment,
) -> Result<Arc<dyn Store>, LockError> {
    let held = HeldLock::default();
    let not_taken = match store_lock_target(config, env) {
        Some(target) => {
            let what = format!("the store's lock at {}", target.path.display());
            watch_start_step(&what, || lock_daemon_store(config, env, &held))?
        }
        None => lock_daemon_store(config, env, &held)?,
    };
    let journal = journal_directory(config, env);
    Ok(match &journal {
        Some(directory) => {
            let what = format!("the state directory {}", directory.display());
            watch_start_step(&what, || {
                open_daemon_store(config, journal.as_deref(), not_taken.clone(), &held)
            })
        }
        None => open_daemon_store(config, None, not_taken, &held),
    })
}

/// The store the config asks for. Opening touches nothing: a store that
/// cannot be used yet says so on first use (the daemon probes it at start).
#[must_use]
pub fn open_store(config: &Config) -> Arc<dyn Store> {
    match (config.daemon.store, &config.daemon.encrypted_file) {
        (StoreKind::Memory, _) => Arc::new(MemoryStore::new()),
        (StoreKind::SecretService, _) => Arc::new(SecretServiceStore::new()),
        (StoreKind::EncryptedFile, Some(file)) => Arc::new(EncryptedFileStore::new(
            &file.state_directory,
            file.key.clone(),
        )),
        (StoreKind::EncryptedFile, None) => {
            // The config loader never builds this; keep running rather than panic.
            tracing::error!("store = \"encrypted-file\" without a key; sessions stay in memory");
            Arc::new(MemoryStore::new())
        }
    }
}

/// The daemon's store: [`open_store`], plus what only the daemon does with
/// it: say which key the encrypted file store uses and clear what a crash
/// left there, and remember logouts the store has not carried out in a
/// [`LogoutJournal`] in `journal_directory` ([`journal_directory`]). A
/// store whose lock was `not_taken` is used only once it is (a
/// [`LockGate`]), and nothing a crash left in it is cleared before then.
/// The encrypted file store writes only into the state directory the lock
/// was taken in, as `held` records it (see [`crate::store::held_lock`]).
fn open_daemon_store(
    config: &Config,
    journal_directory: Option<&Path>,
    not_taken: Option<LockTarget>,
    held: &HeldLock,
) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = match &config.daemon.encrypted_file {
        Some(file) => {
            let store = EncryptedFileStore::new(&file.state_directory, file.key.clone())
                .locked_by(held.clone());
            info!(
                directory = %store.directory().display(),
                key = %file.key_path.display(),
                key_id = %store.key_id(),
                "sessions are kept in encrypted files"
            );
            if not_taken.is_none() {
                let removed = store.remove_stale_temp_files();
                if removed > 0 {
                    info!("removed {removed} temporary file(s) left by an interrupted write");
                }
            }
            Arc::new(store)
        }
        None => open_store(config),
    };
    // The journal inside the gate: its notes are writes in the store's
    // directory too, which a daemon without the lock must not make (a note
    // of its logout would delete another daemon's live record at that
    // one's next start).
    let store: Arc<dyn Store> = match journal_directory {
        Some(directory) if config.daemon.store == StoreKind::SecretService => {
            Arc::new(LogoutJournal::open_for_secret_service(store, directory))
        }
        Some(directory) => Arc::new(LogoutJournal::open(store, directory)),
        None => store,
    };
    match not_taken {
        Some(target) => Arc::new(LockGate::new(store, target, held.clone())),
        None => store,
    }
}

/// Where the daemon keeps its [`LogoutJournal`]: the encrypted file store's
/// state directory, or the user's for the Secret Service; none for the
/// memory store, which forgets its sessions at the stop anyway.
fn journal_directory(config: &Config, env: &Environment) -> Option<PathBuf> {
    match &config.daemon.encrypted_file {
        Some(file) => Some(file.state_directory.clone()),
        None if config.daemon.store == StoreKind::SecretService => env.default_state_directory(),
        None => None,
    }
}
