//! Where a provider's items are, looked at before each read and save.
//!
//! keyring's store finds a provider's item in whichever collection holds
//! it, and when that collection is locked it asks for its unlock prompt
//! and waits (see `secret_service_unlock.rs`). A look at the default
//! collection alone missed an item in another collection locked after
//! tokend started (`login` kept for tokend's items, another keyring made
//! the default): the next save or read waited for the prompt, and the
//! store stayed down until a restart, however the keyring was unlocked.
//!
//! So before each read and save of a provider tokend searches for its
//! items on its own connection (one `SearchItems`, which never prompts):
//!
//! - when some can be used, keyring's store goes to them, and the default
//!   collection plays no part: the search stands in for the look at it, so
//!   a refresh's save costs no more round trips than before;
//! - when there are none, a save creates one in the default collection,
//!   which is looked at as before (for a read too: a default collection
//!   that is locked or missing must not read as "no session");
//! - when all are in locked collections, the store is locked, as with a
//!   locked default collection: the call fails at once, after asking for
//!   that collection's unlock prompt (spaced as the default's), and the
//!   Secret Service's announcement of the unlock has the retry loop save
//!   what waited;
//! - when some can be used and others are in a locked collection, those
//!   are copies in a keyring left locked: that provider's trouble
//!   (`secret_service_elsewhere.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::blocking::Connection;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};
use zbus_secret_service_keyring_store::Store as KeyringStore;

use super::errors::UNLOCK;
use super::{
    SECRETS, SERVICE, SERVICE_ATTRIBUTE, SERVICE_INTERFACE, SERVICE_PATH, STORE,
    SecretServiceStore, StoreError, USERNAME_ATTRIBUTE, elsewhere,
};

/// Where a provider's items are.
#[derive(Debug, PartialEq, Eq)]
enum Held {
    /// These can be used: unlocked, or locked in a collection that is not
    /// (`KeePassXC`'s per-client lock: keyring's store asks for access).
    Usable(Vec<OwnedObjectPath>),
    /// There are none.
    Nowhere,
    /// Some can be used; these are in a locked collection.
    AlsoLockedAway(Vec<OwnedObjectPath>),
    /// All are in locked collections: these.
    Locked(Vec<OwnedObjectPath>),
    /// Not known: the search failed.
    Unknown,
}

/// Why a read or save of a provider is not made.
#[derive(Debug)]
pub(super) enum Refused {
    /// The store's trouble: locked, unavailable.
    Store(StoreError),
    /// The provider's own: a copy of its item in a locked keyring (why).
    LockedAway(String),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl Refused {
    /// The error of a read of `provider`.
    pub fn for_read(self, provider: &str) -> StoreError {
        match self {
            Self::Store(error) => error,
            Self::LockedAway(reason) => StoreError::Corrupt {
                store: STORE,
                provider: provider.to_owned(),
                reason,
            },
        }
    }

    /// The error of a save of `provider`.
    pub fn for_write(self, provider: &str) -> StoreError {
        match self {
            Self::Store(error) => error,
            Self::LockedAway(reason) => StoreError::Unchangeable {
                store: STORE,
                provider: provider.to_owned(),
                reason,
            },
        }
    }
}

impl SecretServiceStore {
    /// keyring's store, connected (now: `true`), once `provider`'s items
    /// are seen where keyring's store can use them without a prompt (see
    /// the module doc).
    pub(super) fn connect_for(&self, provider: &str) -> Result<(Arc<KeyringStore>, bool), Refused> {
        // Connected first, as in `connect_unlocked`.
        let connected = self.backend()?;
        let Some(client) = self.unlock.client() else {
            // The Secret Service answered keyring's store a moment ago:
            // keyring's call says what is wrong now.
            return Ok(connected);
        };
        let connection = client.connection();
        match held(connection, provider) {
            Held::Usable(items) => {
                self.unlock.seen_unlocked(|prompted| {
                    items
                        .iter()
                        .any(|item| elsewhere::collection_of(item.as_str()) == prompted)
                });
            }
            Held::Nowhere | Held::Unknown => self.default_usable()?,
            Held::AlsoLockedAway(items) => {
                return Err(Refused::LockedAway(elsewhere::locked_items_reason(
                    connection, &items,
                )));
            }
            Held::Locked(items) => return Err(self.locked_keyring(connection, &items).into()),
        }
        Ok(connected)
    }

    /// The error of a provider whose `items` are all in locked
    /// collections, after asking for the first one's unlock prompt (at
    /// most once per spacing, as for the default collection): the store
    /// is locked. A keyring other than the default is named.
    fn locked_keyring(&self, connection: &Connection, items: &[OwnedObjectPath]) -> StoreError {
        let collection = items
            .first()
            .map_or("", |item| elsewhere::collection_of(item.as_str()));
        let Ok(path) = ObjectPath::try_from(collection) else {
            return locked(UNLOCK.to_owned());
        };
        self.unlock.ask_for_prompt(connection, &path);
        if default_collection(connection).is_some_and(|default| default.as_str() == collection) {
            return locked(UNLOCK.to_owned());
        }
        locked(format!(
            "{UNLOCK} {}, which holds tokend's items (it is not the default keyring)",
            elsewhere::keyring_named(connection, collection)
        ))
    }
}

fn locked(reason: String) -> StoreError {
    StoreError::Locked {
        store: STORE,
        reason,
    }
}

/// Where `provider`'s items are: one `SearchItems`, and when it finds
/// locked items, one look per collection they are in.
fn held(connection: &Connection, provider: &str) -> Held {
    let wanted = HashMap::from([(SERVICE_ATTRIBUTE, SERVICE), (USERNAME_ATTRIBUTE, provider)]);
    let (mut usable, locked) = match elsewhere::search(connection, &wanted) {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!("could not look for the keyring items of {provider}: {e}");
            return Held::Unknown;
        }
    };
    if locked.is_empty() {
        return if usable.is_empty() {
            Held::Nowhere
        } else {
            Held::Usable(usable)
        };
    }
    let away = elsewhere::in_locked_collections(connection, locked.clone());
    usable.extend(locked.into_iter().filter(|item| !away.contains(item)));
    match (usable.is_empty(), away.is_empty()) {
        (_, true) => Held::Usable(usable),
        (false, false) => Held::AlsoLockedAway(away),
        (true, false) => Held::Locked(away),
    }
}

/// The collection the `default` alias points at; `None` for none, or no
/// answer.
fn default_collection(connection: &Connection) -> Option<OwnedObjectPath> {
    let reply = connection
        .call_method(
            Some(SECRETS),
            SERVICE_PATH,
            Some(SERVICE_INTERFACE),
            "ReadAlias",
            &("default",),
        )
        .ok()?;
    let path: OwnedObjectPath = reply.body().deserialize().ok()?;
    (path.as_str() != "/").then_some(path)
}
