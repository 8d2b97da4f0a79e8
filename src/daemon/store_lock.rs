//! The daemon's hold on its store, the store's lock (see
//! [`crate::store::lock`]), taken before anything is read from the store;
//! and `tokend --prune`, which needs none (it refreshes nothing, so it
//! cannot spend a refresh token under a daemon).

use std::sync::Arc;

use tracing::{debug, warn};

use super::open_store;
use crate::config::{Config, Environment, StoreKind};
use crate::store::{EncryptedFileStore, HeldLock, LockError, LockTarget, StoreError, StoreLock};

/// The file that stands for the configured store (see
/// [`crate::store::lock`]): `None` for the memory store, which nothing
/// shares, and for a Secret Service with no runtime directory to lock in.
#[must_use]
pub fn store_lock_target(config: &Config, env: &Environment) -> Option<LockTarget> {
    match (config.daemon.store, &config.daemon.encrypted_file) {
        (StoreKind::EncryptedFile, Some(file)) => {
            Some(LockTarget::file_store(&file.state_directory))
        }
        (StoreKind::SecretService, _) => env
            .secret_service_lock_path()
            .map(|path| LockTarget::secret_service(&path)),
        (StoreKind::Memory | StoreKind::EncryptedFile, _) => None,
    }
}

/// Takes the store's lock for the daemon's life, before anything is read
/// from the store: a second daemon reading the same sessions would refresh
/// with the same refresh tokens, and a provider that rotates them revokes
/// the login of both.
///
/// Returns the lock's target when it could not be taken yet: the store
/// must then be used only through a [`LockGate`](crate::store::LockGate),
/// which takes it first. A lock taken is recorded in `held`, for the store
/// to check that its state directory is still the one locked (see
/// [`crate::store::held_lock`]).
///
/// # Errors
/// Another daemon holds the store ([`LockError::Held`]). A lock that
/// cannot be taken for any other reason is a warning, not an error: the
/// store is then unusable too (the same checks), which the daemon reports
/// as an outage and waits out, as it always has; the gate keeps it
/// unusable until the lock is taken.
pub(super) fn lock_daemon_store(
    config: &Config,
    env: &Environment,
    held: &HeldLock,
) -> Result<Option<LockTarget>, LockError> {
    let Some(target) = store_lock_target(config, env) else {
        if config.daemon.store == StoreKind::SecretService {
            warn!(
                "no runtime directory ($XDG_RUNTIME_DIR or $RUNTIME_DIRECTORY) to lock the \
                 Secret Service in: a second tokend of this user would not be stopped"
            );
        }
        return Ok(None);
    };
    match StoreLock::acquire(&target) {
        Ok(lock) => {
            debug!(lock = %target.path.display(), "this daemon alone uses the store");
            held.record(&lock);
            lock.hold_until_exit();
            Ok(None)
        }
        Err(e @ LockError::Held { .. }) => Err(e),
        Err(e @ LockError::Unusable { .. }) => {
            warn!("{e}; the store is not used until its lock can be taken");
            Ok(Some(target))
        }
    }
}

/// What `tokend --prune` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The store's name, for messages.
    pub store: &'static str,
    /// Providers whose stored session was removed.
    pub removed: Vec<String>,
    /// Providers whose stored session was kept (still configured).
    pub kept: Vec<String>,
    /// The directory of the encrypted-file store (its `state_directory`),
    /// which the messages name: a typo'd one holds nothing.
    pub directory: Option<std::path::PathBuf>,
}

/// `tokend --prune`: removes the stored sessions of providers that are no
/// longer in the config. A provider removed from the config keeps its
/// stored session until then (or until `tokenctl logout` while it was
/// configured), so taking a provider out for a while costs no new login.
///
/// It may run beside the daemon: it only lists and deletes records. A
/// daemon that still has the provider would save its session again at the
/// next refresh, so the daemon is reloaded first.
///
/// # Errors
/// The store could not list or delete; sessions removed before the
/// failure stay removed.
pub async fn prune(config: &Config) -> Result<Pruned, StoreError> {
    let store = match &config.daemon.encrypted_file {
        // Beside the service, and maybe without its key (see
        // `Environment::checking`): list and delete only.
        Some(file) => Arc::new(EncryptedFileStore::for_maintenance(
            &file.state_directory,
            file.key.clone(),
        )),
        None => open_store(config),
    };
    let lister = Arc::clone(&store);
    let timeout = config.daemon.store_timeout;
    let stored = crate::broker::store_call(timeout, move || lister.list()).await?;
    let (kept, stale): (Vec<String>, Vec<String>) = stored
        .into_iter()
        .partition(|name| config.provider(name).is_some());
    let mut removed = Vec::new();
    for name in stale {
        let deleter = Arc::clone(&store);
        let provider = name.clone();
        crate::broker::store_call(timeout, move || deleter.delete(&provider)).await?;
        removed.push(name);
    }
    Ok(Pruned {
        store: store.name(),
        removed,
        kept,
        directory: config
            .daemon
            .encrypted_file
            .as_ref()
            .map(|file| file.state_directory.clone()),
    })
}
