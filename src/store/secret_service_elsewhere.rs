//! tokend's items in a locked keyring, looked for on tokend's own
//! connection.
//!
//! keyring's store searches every collection, and when a match is in a
//! locked one it asks the Secret Service to unlock that collection and
//! waits for the answer, holding the lock every call on its connection
//! takes (see `secret_service_unlock.rs`). So tokend searches first, on a
//! connection of its own, which only searches: before each read and save
//! of a provider (`secret_service_held.rs`), and at the listing (at a
//! restore, at a recovery). A provider whose items are all in locked
//! keyrings finds the store locked, as with a locked default collection.
//! A copy of tokend's items in another keyring left locked, beside the
//! item in use (an old `login.keyring` restored beside the new one, a
//! second `KeePassXC` database), is that provider's trouble: its read or
//! save gets an error of its own naming the keyring, keyring's store is
//! not called for it, and the others carry on (before, with a prompter
//! every call waited `store_timeout`; without one the store was "locked:
//! unlock your keyring" while the default was unlocked, and every session
//! waited, not only the one with the copy). An item the search calls
//! locked in a collection that is not (`KeePassXC` locks items per client
//! until the person allows access, and tokend's own connection is never
//! allowed) is left to keyring's store, which asks for that access as it
//! always did. When the listing finds items in a locked collection, it
//! reads their names itself. Keyrings are named by their labels, as
//! Seahorse shows them.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

use super::{SECRETS, SERVICE, SERVICE_ATTRIBUTE, SERVICE_INTERFACE, SERVICE_PATH};

/// The Secret Service's items' interface.
const ITEM_INTERFACE: &str = "org.freedesktop.Secret.Item";
/// Its collections' interface.
const COLLECTION_INTERFACE: &str = "org.freedesktop.Secret.Collection";

/// Whether the last listing found items of tokend's in a locked keyring
/// that it could not name.
#[derive(Debug, Default)]
pub(super) struct LockedElsewhere {
    unnamed: AtomicBool,
}

impl LockedElsewhere {
    /// Notes what a listing found: items in a locked keyring without a
    /// name it could read, or none.
    pub fn set(&self, unnamed: bool) {
        self.unnamed.store(unnamed, Ordering::Relaxed);
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
            let collection = collection_of(item.as_str());
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
        &(COLLECTION_INTERFACE, "Locked"),
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
pub(super) fn locked_items_reason(connection: &Connection, locked: &[OwnedObjectPath]) -> String {
    reason_naming(&keyrings_of(connection, locked))
}

fn reason_naming(keyrings: &str) -> String {
    format!(
        "an item of it is in the locked keyring {keyrings}, other than the default, which tokend \
         does not ask to unlock: unlock that keyring (and keep one item of the provider), or \
         delete the item there (Seahorse), then restart tokend"
    )
}

/// The keyrings (collections) of the items at `paths`, each once, quoted,
/// by their labels as Seahorse shows them: "`Backup`, `Old Laptop`".
pub(super) fn keyrings_of(connection: &Connection, paths: &[OwnedObjectPath]) -> String {
    name_keyrings(paths, |collection| collection_label(connection, collection))
}

/// The name of the keyring (collection) at `collection`, quoted: its label.
pub(super) fn keyring_named(connection: &Connection, collection: &str) -> String {
    format!(
        "`{}`",
        keyring_name(collection, collection_label(connection, collection))
    )
}

/// [`keyrings_of`] with the labels from `label_of` (given a collection's
/// path; `None` when it cannot be read).
fn name_keyrings(
    paths: &[OwnedObjectPath],
    mut label_of: impl FnMut(&str) -> Option<String>,
) -> String {
    let collections: BTreeSet<&str> = paths.iter().map(|p| collection_of(p.as_str())).collect();
    let names: BTreeSet<String> = collections
        .into_iter()
        .map(|collection| keyring_name(collection, label_of(collection)))
        .collect();
    let names: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    names.join(", ")
}

/// A keyring's name in a message: its `label` (control characters
/// replaced, at most [`LABEL_CHARS`] characters), else, when it has none
/// or it could not be read, the last part of its path (an escaped form of
/// the label it was created with: `Old_5fLaptop`).
fn keyring_name(collection: &str, label: Option<String>) -> String {
    match label.filter(|label| !label.trim().is_empty()) {
        Some(label) => {
            let mut name: String = label
                .chars()
                .take(LABEL_CHARS)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            if label.chars().nth(LABEL_CHARS).is_some() {
                name.push('…');
            }
            name
        }
        None => collection
            .strip_prefix("/org/freedesktop/secrets/collection/")
            .unwrap_or(collection)
            .to_owned(),
    }
}

/// The most of a keyring's label a message quotes.
const LABEL_CHARS: usize = 80;

/// The collection of the item at `path`: the path without its last element.
pub(super) fn collection_of(path: &str) -> &str {
    path.rsplit_once('/')
        .map_or(path, |(collection, _)| collection)
}

/// The label of the collection at `path` (gnome-keyring reads it even
/// while the collection is locked).
fn collection_label(connection: &Connection, path: &str) -> Option<String> {
    let reply = connection
        .call_method(
            Some(SECRETS),
            path,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(COLLECTION_INTERFACE, "Label"),
        )
        .ok()?;
    let value: zbus::zvariant::OwnedValue = reply.body().deserialize().ok()?;
    String::try_from(value).ok()
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

    /// Each keyring once, by its label as Seahorse shows it (a keyring
    /// created as "Old Laptop" has the path `Old_5fLaptop`; one renamed
    /// keeps the path it was created with), else by its path.
    #[test]
    fn the_reason_names_each_keyring_once_by_its_label() {
        let paths: Vec<OwnedObjectPath> = [
            "/org/freedesktop/secrets/collection/Old_5fLaptop/1",
            "/org/freedesktop/secrets/collection/Old_5fLaptop/2",
            "/org/freedesktop/secrets/collection/login/7",
            "/org/freedesktop/secrets/collection/backup/3",
        ]
        .iter()
        .map(|p| OwnedObjectPath::try_from(*p).unwrap())
        .collect();
        let mut asked = Vec::new();
        let keyrings = name_keyrings(&paths, |collection| {
            asked.push(collection.to_owned());
            match collection.rsplit_once('/').unwrap().1 {
                "Old_5fLaptop" => Some("Old Laptop".to_owned()),
                "login" => Some("Work\nLaptop".to_owned()),
                _ => None,
            }
        });
        assert_eq!(asked.len(), 3, "{asked:?}");
        let reason = reason_naming(&keyrings);
        assert!(
            reason.contains("keyring `Old Laptop`, `Work?Laptop`, `backup`, other"),
            "{reason}"
        );
        let long = keyring_name("/c/x", Some("l".repeat(LABEL_CHARS + 1)));
        assert_eq!(long.chars().count(), LABEL_CHARS + 1, "{long}");
        assert!(long.ends_with('…'), "{long}");
        assert_eq!(keyring_name("/c/x", Some(" ".to_owned())), "/c/x");
    }
}
