//! tokend's items in a locked keyring other than the default.
//!
//! keyring's store searches every collection, and when a match is in a
//! locked one it asks the Secret Service to unlock that collection and
//! waits for the answer, holding the lock every call on its connection
//! takes (see `secret_service_unlock.rs`). The look before each call
//! checks the default collection only. A copy of tokend's items in another
//! keyring left locked (an old `login.keyring` restored beside the new
//! one, a second `KeePassXC` database) then held the whole store: with a
//! prompter every call waited `store_timeout`, without one the store was
//! "locked: unlock your keyring" while the default was unlocked, and every
//! session waited, not only the one with the copy.
//!
//! So the listing (at a restore, at a recovery) searches first on tokend's
//! own connection, which only searches. When none of tokend's items is in
//! a locked collection, everything goes through keyring's store as
//! before. An item the search calls locked in a collection that is not
//! (`KeePassXC` locks items per client until the person allows access,
//! and tokend's own connection is never allowed) is left to keyring's
//! store, which asks for that access as it always did. When one is in a
//! locked collection,
//! the listing reads the items' names itself, and each read or save of a
//! provider first asks for that provider's items: one with a locked item
//! gets an error of its own naming the keyring, and keyring's store is not
//! called for it; the others carry on. Asked at each listing rather than
//! at each call: a refresh then costs no extra round trip, and an item
//! locked away only later is the rare case.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

use super::{SECRETS, SERVICE, SERVICE_ATTRIBUTE, SERVICE_INTERFACE, SERVICE_PATH};

/// The Secret Service's items' interface.
const ITEM_INTERFACE: &str = "org.freedesktop.Secret.Item";

/// Whether the last listing found any of tokend's items locked, and
/// whether it could name them all.
#[derive(Debug, Default)]
pub(super) struct LockedElsewhere {
    found: AtomicBool,
    unnamed: AtomicBool,
}

impl LockedElsewhere {
    /// Notes what a listing found: items in a locked keyring, and some of
    /// them without a name it could read.
    pub fn set(&self, found: bool, unnamed: bool) {
        self.found.store(found, Ordering::Relaxed);
        self.unnamed.store(unnamed, Ordering::Relaxed);
    }

    /// Whether reads and saves must look for locked items first.
    pub fn found(&self) -> bool {
        self.found.load(Ordering::Relaxed)
    }

    /// Whether the last listing left items it could not name.
    pub fn unnamed(&self) -> bool {
        self.unnamed.load(Ordering::Relaxed)
    }
}

/// The items matching `attributes`: unlocked, then locked. Searching
/// never unlocks anything.
pub(super) fn search(
    connection: &Connection,
    attributes: &HashMap<&str, &str>,
) -> zbus::Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>)> {
    let reply = connection.call_method(
        Some(SECRETS),
        SERVICE_PATH,
        Some(SERVICE_INTERFACE),
        "SearchItems",
        &(attributes,),
    )?;
    reply.body().deserialize()
}

/// The paths of all of tokend's items: unlocked, then locked.
pub(super) fn all_items(
    connection: &Connection,
) -> zbus::Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>)> {
    search(connection, &HashMap::from([(SERVICE_ATTRIBUTE, SERVICE)]))
}

/// Of the `locked` items a search found, those whose collection is
/// locked (see the module doc: `KeePassXC` calls items of an unlocked
/// database locked for a client it has not allowed). A collection whose
/// state cannot be read is taken as locked (see below).
pub(super) fn in_locked_collections(
    connection: &Connection,
    locked: Vec<OwnedObjectPath>,
) -> Vec<OwnedObjectPath> {
    // A collection whose state cannot be read is taken as locked: a
    // keyring file copied in while gnome-keyring runs lists its items as
    // locked and answers nothing about itself, and keyring's store would
    // ask to unlock it and fail the whole store. KeePassXC's collections
    // answer.
    whose_collection_is_locked(locked, |collection| {
        collection_locked(connection, collection).unwrap_or(true)
    })
}

/// Of the items at `paths`, those whose collection (the path without its
/// last element) `is_locked` says is locked; each collection asked once.
fn whose_collection_is_locked(
    paths: Vec<OwnedObjectPath>,
    mut is_locked: impl FnMut(&str) -> bool,
) -> Vec<OwnedObjectPath> {
    let mut collections: HashMap<String, bool> = HashMap::new();
    paths
        .into_iter()
        .filter(|item| {
            let Some((collection, _)) = item.as_str().rsplit_once('/') else {
                return true;
            };
            *collections
                .entry(collection.to_owned())
                .or_insert_with(|| is_locked(collection))
        })
        .collect()
}

/// Whether the collection at `path` is locked.
fn collection_locked(connection: &Connection, path: &str) -> zbus::Result<bool> {
    let reply = connection.call_method(
        Some(SECRETS),
        path,
        Some("org.freedesktop.DBus.Properties"),
        "Get",
        &("org.freedesktop.Secret.Collection", "Locked"),
    )?;
    let value: zbus::zvariant::OwnedValue = reply.body().deserialize()?;
    bool::try_from(value).map_err(zbus::Error::from)
}

/// The attributes of the item at `path` (gnome-keyring shows them for an
/// item of a collection locked while it runs; for one it loaded locked
/// from disk, only hashes of them, which name no provider).
pub(super) fn attributes_of(
    connection: &Connection,
    path: &OwnedObjectPath,
) -> zbus::Result<HashMap<String, String>> {
    let reply = connection.call_method(
        Some(SECRETS),
        path,
        Some("org.freedesktop.DBus.Properties"),
        "Get",
        &(ITEM_INTERFACE, "Attributes"),
    )?;
    let value: zbus::zvariant::OwnedValue = reply.body().deserialize()?;
    HashMap::try_from(value).map_err(zbus::Error::from)
}

/// What a provider whose items include `locked` is told: which keyrings,
/// and the ways out.
pub(super) fn locked_items_reason(locked: &[OwnedObjectPath]) -> String {
    format!(
        "an item of it is in the locked keyring {}, other than the default, which tokend does \
         not ask to unlock: unlock that keyring (and keep one item of the provider), or delete \
         the item there (Seahorse), then restart tokend",
        keyrings_of(locked)
    )
}

/// The keyrings (collections) of the items at `paths`, each once, quoted:
/// "`backup`, `old`".
pub(super) fn keyrings_of(paths: &[OwnedObjectPath]) -> String {
    let keyrings: BTreeSet<&str> = paths.iter().map(keyring_of).collect();
    let keyrings: Vec<String> = keyrings.iter().map(|name| format!("`{name}`")).collect();
    keyrings.join(", ")
}

/// The collection part of an item's path
/// (`/org/freedesktop/secrets/collection/NAME/ITEM`), or the whole path.
fn keyring_of(path: &OwnedObjectPath) -> &str {
    path.as_str()
        .strip_prefix("/org/freedesktop/secrets/collection/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `KeePassXC` calls the items of an unlocked database locked for a
    /// client it has not allowed: they are not in a locked keyring (left
    /// to keyring's store, which asks for access), while an item of a
    /// locked collection is; each collection is asked about once.
    #[test]
    fn only_items_of_a_locked_collection_are_locked_elsewhere() {
        let paths: Vec<OwnedObjectPath> = [
            "/org/freedesktop/secrets/collection/Passwords/a1",
            "/org/freedesktop/secrets/collection/Passwords/b2",
            "/org/freedesktop/secrets/collection/old/1",
        ]
        .iter()
        .map(|p| OwnedObjectPath::try_from(*p).unwrap())
        .collect();
        let mut asked = Vec::new();
        let elsewhere = whose_collection_is_locked(paths, |collection| {
            asked.push(collection.to_owned());
            collection.ends_with("/old")
        });
        assert_eq!(elsewhere.len(), 1);
        assert_eq!(
            elsewhere[0].as_str(),
            "/org/freedesktop/secrets/collection/old/1"
        );
        assert_eq!(asked.len(), 2, "{asked:?}");
    }

    #[test]
    fn the_reason_names_each_keyring_once() {
        let paths: Vec<OwnedObjectPath> = [
            "/org/freedesktop/secrets/collection/old/1",
            "/org/freedesktop/secrets/collection/old/2",
            "/org/freedesktop/secrets/collection/backup/7",
        ]
        .iter()
        .map(|p| OwnedObjectPath::try_from(*p).unwrap())
        .collect();
        let reason = locked_items_reason(&paths);
        assert!(
            reason.contains("keyring `backup`, `old`, other"),
            "{reason}"
        );
    }
}
