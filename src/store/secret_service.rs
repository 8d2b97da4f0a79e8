//! Sessions in the Secret Service (gnome-keyring, KDE Wallet, `KeePassXC`)
//! through keyring v4: `keyring-core` with its zbus-based Secret Service store.
//!
//! # Why the Secret Service is the default for a user
//!
//! It is the one place a Linux desktop already keeps secrets: it persists
//! across reboots, encrypts at rest with a key derived from the login
//! password, is unlocked by PAM at login and locked again at logout, and the
//! person can see, search and delete tokend's items in Seahorse or `KeePassXC`
//! ("tokend: github refresh token"). It needs a session bus and a running
//! keyring daemon, which a user service has and a system service does not.
//!
//! keyring's other Linux store, the kernel keyutils store
//! (`linux-keyutils-keyring-store`), keeps secrets in kernel keyrings: no
//! daemon, no D-Bus, kernel-enforced per-user access, and the secret never
//! touches a disk. That is also why it cannot be the default: kernel keys are
//! gone at reboot, and the session/persistent keyrings it can use are dropped
//! when the user's last session ends or after days of disuse (the persistent
//! keyring expires, three days by default), all within a small per-user quota
//! (`/proc/sys/kernel/keys/maxbytes`). A refresh token kept only there means a
//! new device login after every reboot. It would be good as a *cache*: the
//! last access token kept across `systemctl restart` or a crash so a restart
//! costs no refresh, for a system service as well as a user one, next to a
//! persistent store that holds the refresh token.
//!
//! # Items
//!
//! One item per provider, created in the default collection (and used in
//! whichever collection holds it). keyring's store owns the
//! `service` and `username` attributes and finds items by them: `service` is
//! `tokend`, `username` is the provider name. The label is
//! "tokend: NAME refresh token". After a save, tokend also sets
//! `tokend-provider = NAME` and `xdg:schema = org.tokend.Session` so people and
//! libsecret tools see what the item is; those are descriptive only (keyring
//! cannot set them in the creating call; tokend writes them through a client
//! of its own, since keyring's update writes back every attribute, which
//! KeePassXC refuses), so a crash between the two calls
//! leaves a complete, findable item. Checking them costs D-Bus round trips,
//! so each is checked once per item and process: after that a save (a
//! refresh) is the `SetSecret` alone. The listing at a restore reads every
//! item's attributes already, so an item it sees described is not looked
//! at again, not even at its first save. An item deleted outside tokend and
//! created again by the next save gets them back at the next start. The
//! secret is
//! [`StoredSession::to_bytes`], content type `application/octet-stream`.
//!
//! # Which bus
//!
//! The session bus of the process environment: `DBUS_SESSION_BUS_ADDRESS`,
//! else `$XDG_RUNTIME_DIR/bus`, else `/run/user/UID/bus` (zbus's rule), which
//! is what systemd gives a user service. keyring's store cannot be given an
//! address (`new_with_configuration` rejects every key, and it connects with
//! `SecretService::connect`), so tests run the store in a child process whose
//! environment names their private bus; see `tests/e2e/store_secret_service.rs`.
//!
//! # Blocking
//!
//! Every call blocks on D-Bus (zbus's blocking API drives its own tokio
//! runtime), so call it from `tokio::task::spawn_blocking`, never from an
//! async task (starting a runtime inside one panics). A locked collection
//! holding the provider's item (whichever it is), or the locked default
//! collection a new item would go to, makes a call return
//! [`StoreError::Locked`] at once, after asking the Secret Service to show
//! its unlock prompt (at most every 5 minutes): keyring's store would wait
//! for the answer holding the lock all its calls share (see
//! `secret_service_unlock.rs` and `secret_service_held.rs`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use ::secret_service::Error as ServiceError;
use keyring_core::api::CredentialStoreApi;
use keyring_core::{Entry, Error as KeyringError};
use zbus_secret_service_keyring_store::Store as KeyringStore;
use zeroize::Zeroizing;

use super::{ChangeFeed, LoadResult, Store, StoreError, StoredSession, until_store_wide};

#[path = "secret_service_changes.rs"]
mod changes;
#[path = "secret_service_delete.rs"]
mod delete;
#[path = "secret_service_elsewhere.rs"]
mod elsewhere;
#[path = "secret_service_errors.rs"]
mod errors;
#[path = "secret_service_held.rs"]
mod held;
#[path = "secret_service_items.rs"]
mod items;
#[path = "secret_service_unlock.rs"]
mod unlock;

use errors::{NO_COLLECTION, NO_SERVICE, UNLOCK, map_error, may_be_stale};
use unlock::{LockState, UnlockGate};

/// The `service` attribute of every tokend item.
pub const SERVICE: &str = "tokend";

/// The descriptive attribute naming the provider of an item.
pub const PROVIDER_ATTRIBUTE: &str = "tokend-provider";

/// The libsecret schema name set on tokend's items (`xdg:schema`).
pub const SCHEMA: &str = "org.tokend.Session";

/// The name of this store in messages.
const STORE: &str = "Secret Service";

/// keyring's store keeps the entry user name in this attribute...
const USERNAME_ATTRIBUTE: &str = "username";

/// ...and the service name in this one.
const SERVICE_ATTRIBUTE: &str = "service";

/// libsecret's attribute for the schema name.
const SCHEMA_ATTRIBUTE: &str = "xdg:schema";

/// The Secret Service's bus name, object and interface, for the calls and
/// signals tokend's own client uses (`secret_service_unlock.rs`,
/// `secret_service_changes.rs`).
const SECRETS: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_INTERFACE: &str = "org.freedesktop.Secret.Service";

/// Refresh tokens in the Secret Service of the user's session bus.
pub struct SecretServiceStore {
    /// keyring's store: one D-Bus connection and one Secret Service session.
    /// Opened on first use and replaced when a call fails on it for a reason
    /// a new one may cure, so the store recovers when the keyring daemon
    /// starts late or restarts (its sessions die with it). A std Mutex: it is
    /// held only to clone or replace the `Arc`, never across a D-Bus call.
    backend: Mutex<Option<Arc<KeyringStore>>>,
    /// Providers whose item this process has seen carrying the descriptive
    /// attributes (see "Items" above), so saves after the first skip the check.
    described: Mutex<HashSet<String>>,
    /// Looks whether the keyring is locked before each call (see
    /// `secret_service_unlock.rs`: keyring's store would wait for the unlock
    /// prompt), and tokend's own client, which looks (`secret_service_held.rs`).
    unlock: UnlockGate,
    /// The delete confirmations asked for (see `secret_service_delete.rs`:
    /// keyring's delete would wait for the person's answer).
    delete_prompts: delete::DeletePrompts,
    /// Whether the last listing found items of tokend in a locked keyring
    /// that it could not name (see `secret_service_elsewhere.rs`).
    locked_elsewhere: elsewhere::LockedElsewhere,
}

impl Default for SecretServiceStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SecretServiceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretServiceStore")
            .field("connected", &self.slot().is_some())
            .finish()
    }
}

impl Drop for SecretServiceStore {
    fn drop(&mut self) {
        // zbus's blocking proxies block on an executor when they are dropped,
        // which panics on a thread that drives tokio tasks (the daemon's last
        // reference goes at the end of its async `run`, `--prune`'s in
        // `block_on`). Such a thread hands the connection to a plain one.
        let backend = self
            .backend
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let client = self.unlock.take_client();
        if (backend.is_some() || client.is_some()) && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::spawn(move || drop((backend, client))).join();
        }
    }
}

impl SecretServiceStore {
    /// A store on the session bus of this process's environment
    /// (`DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`).
    ///
    /// Nothing is contacted yet: the first operation connects, an operation
    /// that finds no Secret Service tries again on the next call, and one
    /// whose connection went stale retries once on a new one. So a daemon
    /// that starts before the keyring, or outlives a keyring restart, still
    /// finds it.
    #[must_use]
    pub fn new() -> Self {
        Self {
            backend: Mutex::new(None),
            described: Mutex::new(HashSet::new()),
            unlock: UnlockGate::default(),
            delete_prompts: delete::DeletePrompts::default(),
            locked_elsewhere: elsewhere::LockedElsewhere::default(),
        }
    }

    /// Like [`Self::new`], but connects now, so a missing bus or Secret
    /// Service is reported at start-up.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] without a bus or a Secret Service on it.
    pub fn connect() -> Result<Self, StoreError> {
        let store = Self::new();
        store.backend()?;
        Ok(store)
    }

    /// The label of `provider`'s item, as Seahorse and `KeePassXC` show it.
    #[must_use]
    pub fn label(provider: &str) -> String {
        format!("tokend: {provider} refresh token")
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<KeyringStore>>> {
        // The guarded value is an Option<Arc>; no panic can leave it half-set.
        self.backend.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connected keyring store, connecting first if needed, and whether
    /// this call made the connection.
    fn backend(&self) -> Result<(Arc<KeyringStore>, bool), StoreError> {
        if let Some(backend) = self.slot().as_ref() {
            return Ok((Arc::clone(backend), false));
        }
        // Connect without holding the lock: it is a few D-Bus round trips, and
        // a second thread racing here only costs a spare connection.
        let backend = KeyringStore::new().map_err(|e| map_error(e, None))?;
        *self.slot() = Some(Arc::clone(&backend));
        Ok((backend, true))
    }

    /// Drops `backend` unless another thread has replaced it already.
    fn forget(&self, backend: &Arc<KeyringStore>) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|b| Arc::ptr_eq(b, backend)) {
            *slot = None;
        }
    }

    /// keyring's store, connected (now: `true`), once the keyring's default
    /// collection is seen not locked: a locked one fails at once, before a
    /// call through keyring's store would wait for its unlock prompt (see
    /// `secret_service_unlock.rs`). Connected first: without a Secret
    /// Service that fails alone, where the look would be a second
    /// connection attempt (a probe's wake-ups doubled). A provider's read
    /// and save look at its items instead ([`Self::connect_for`]).
    fn connect_unlocked(&self) -> Result<(Arc<KeyringStore>, bool), StoreError> {
        let connected = self.backend()?;
        self.default_usable()?;
        Ok(connected)
    }

    /// Whether the default collection can be used: locked or missing, the
    /// error.
    fn default_usable(&self) -> Result<(), StoreError> {
        match self.unlock.look() {
            LockState::Locked => {
                return Err(StoreError::Locked {
                    store: STORE,
                    reason: UNLOCK.to_owned(),
                });
            }
            // Searched there, keyring's store finds nothing and says so as
            // an empty store: every session would be "login required", and
            // nothing said of the store.
            LockState::NoDefaultCollection => {
                return Err(StoreError::Unavailable {
                    store: STORE,
                    reason: NO_COLLECTION.to_owned(),
                });
            }
            LockState::Unlocked | LockState::Unknown => {}
        }
        Ok(())
    }

    /// Runs `op` on the backend `connected` gave and maps its error.
    ///
    /// A Secret Service daemon forgets its clients' sessions when it restarts
    /// (`NoSession`), and a connection dies with its bus. So when the Secret
    /// Service fails a call on a connection made earlier, the connection is
    /// dropped and `op` runs once more on a new one; every `op` here may run
    /// twice (a save writes the same bytes again). A locked keyring keeps
    /// the connection: nothing is wrong with it.
    fn on_backend<T>(
        &self,
        connected: (Arc<KeyringStore>, bool),
        provider: Option<&str>,
        op: impl Fn(&KeyringStore) -> Result<T, KeyringError>,
    ) -> Result<T, StoreError> {
        let (mut backend, mut fresh) = connected;
        loop {
            match op(&backend) {
                Err(e) if may_be_stale(&e) => {
                    self.forget(&backend);
                    if fresh {
                        return Err(map_error(e, provider));
                    }
                    tracing::debug!("reconnecting to the Secret Service after: {e}");
                    (backend, fresh) = self.backend()?;
                }
                result => return result.map_err(|e| map_error(e, provider)),
            }
        }
    }

    /// The record of `provider`, on the backend `connected` gave.
    fn read_record(&self, connected: (Arc<KeyringStore>, bool), provider: &str) -> LoadResult {
        let bytes = self.on_backend(connected, Some(provider), |backend| {
            match entry(backend, provider)?.get_secret() {
                Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
                Err(KeyringError::NoEntry) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        StoredSession::from_bytes(&bytes)
            .map(Some)
            .map_err(|reason| StoreError::Corrupt {
                store: STORE,
                provider: provider.to_owned(),
                reason: super::unusable_record_advice(&reason, provider),
            })
    }
}

/// The keyring entry of `provider`: found by `service` and `username`, created
/// with tokend's label.
fn entry(backend: &KeyringStore, provider: &str) -> Result<Entry, KeyringError> {
    let label = SecretServiceStore::label(provider);
    backend.build(
        SERVICE,
        provider,
        Some(&HashMap::from([("label", label.as_str())])),
    )
}

impl Store for SecretServiceStore {
    fn name(&self) -> &'static str {
        STORE
    }

    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        let connected = self
            .connect_for(provider)
            .map_err(|refused| refused.for_read(provider))?;
        self.read_record(connected, provider)
    }

    fn load_batch(&self, providers: &[String]) -> Vec<LoadResult> {
        // One look for the batch: a restore reads many records in a row.
        // Each provider's items are looked at only when a search of all
        // of tokend's finds some in a locked collection.
        let mut connected = match self.connect_unlocked() {
            Ok(connected) => Some(connected),
            Err(e) => return vec![Err(e); providers.len()],
        };
        let each = self.any_locked_away();
        until_store_wide(
            providers.len(),
            providers.iter().map(|p| {
                let backend = if each {
                    self.connect_for(p).map_err(|refused| refused.for_read(p))?
                } else if let Some(first) = connected.take() {
                    first
                } else {
                    self.backend()?
                };
                self.read_record(backend, p)
            }),
        )
    }

    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        let connected = self
            .connect_for(provider)
            .map_err(|refused| refused.for_write(provider))?;
        let bytes = session.to_bytes();
        if self.delete_prompts.waiting(provider)
            && let Some(client) = self.unlock.client()
        {
            // A logout's delete still waits for its confirmation: once the
            // item holds this session, a "yes" would delete it.
            self.delete_prompts.dismiss(client.connection(), provider);
        }
        // keyring sets the secret of the existing item (one `SetSecret` call)
        // or creates it (one `CreateItem` with replace); either is all or
        // nothing in the Secret Service, so a failure leaves the old record.
        self.on_backend(connected, Some(provider), |backend| {
            entry(backend, provider)?.set_secret(&bytes)
        })?;
        if self.is_described(provider) {
            return Ok(());
        }
        // The record is durable now: failing to describe it must not turn
        // the save into an error, or the caller would think the old one stands.
        // Tried once per item and process either way: a Secret Service
        // that refuses them refuses them at every save, and a refresh
        // should stay one `SetSecret` and leave no warning each time.
        if let Err(e) = self.describe(provider) {
            tracing::warn!(
                provider,
                "saved the session but could not set the item's descriptive attributes \
                 (not tried again until tokend restarts): {}",
                map_error(KeyringError::PlatformFailure(Box::new(e)), Some(provider))
            );
        }
        self.set_described(provider, true);
        Ok(())
    }

    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        // A later save creates a new item, which needs describing again.
        self.set_described(provider, false);
        // A locked keyring or none: said as for every call.
        self.connect_unlocked()?;
        let client = self
            .unlock
            .client()
            .ok_or_else(|| StoreError::Unavailable {
                store: STORE,
                reason: NO_SERVICE.to_owned(),
            })?;
        match self
            .delete_prompts
            .delete(client.connection(), provider, std::time::Instant::now())
        {
            Ok(delete::Deleted::Done) => Ok(()),
            Ok(delete::Deleted::AwaitingConfirmation) => Err(StoreError::Unconfirmed {
                store: STORE,
                provider: provider.to_owned(),
            }),
            Ok(delete::Deleted::LockedElsewhere(locked)) => Err(StoreError::Unchangeable {
                store: STORE,
                provider: provider.to_owned(),
                reason: elsewhere::locked_items_reason(client.connection(), &locked),
            }),
            Err(e) => Err(map_error(
                KeyringError::PlatformFailure(Box::new(ServiceError::Zbus(e))),
                Some(provider),
            )),
        }
    }

    fn list(&self) -> Result<Vec<String>, StoreError> {
        let connected = self.connect_unlocked()?;
        if let Some(client) = self.unlock.client()
            && let Ok((unlocked, locked)) = elsewhere::all_items(client.connection())
        {
            let connection = client.connection();
            let locked = elsewhere::in_locked_collections(connection, locked);
            self.locked_elsewhere.set(false);
            if !locked.is_empty() {
                // keyring's search would ask to unlock them and wait: the
                // names are read here (see `secret_service_elsewhere.rs`).
                let (names, unnamed) = self.names_around_locked(connection, &unlocked, &locked);
                self.locked_elsewhere.set(unnamed);
                return Ok(names);
            }
        }
        self.on_backend(connected, None, |backend| {
            let mut names = Vec::new();
            for entry in backend.search(&HashMap::from([(SERVICE_ATTRIBUTE, SERVICE)]))? {
                names.extend(self.listed_name(entry.get_attributes()?));
            }
            names.sort();
            names.dedup();
            Ok(names)
        })
    }

    fn listed_all(&self) -> bool {
        !self.locked_elsewhere.unnamed()
    }

    fn change_feed(&self) -> Option<ChangeFeed> {
        changes::feed()
            .map_err(|e| tracing::debug!("cannot watch the Secret Service for an unlock: {e}"))
            .ok()
    }
}
