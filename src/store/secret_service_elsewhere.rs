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
//! own connection, which only searches. When none of tokend's items is
//! locked, everything goes through keyring's store as before. When one is,
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

/// Whether the last listing found any of tokend's items locked.
#[derive(Debug, Default)]
pub(super) struct LockedElsewhere(AtomicBool);

impl LockedElsewhere {
    /// Notes what a listing found.
    pub fn set(&self, found: bool) {
        self.0.store(found, Ordering::Relaxed);
    }

    /// Whether reads and saves must look for locked items first.
    pub fn found(&self) -> bool {
        self.0.load(Ordering::Relaxed)
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

/// The attributes of the item at `path` (the Secret Service shows them for
/// a locked item too: they are what a search matches).
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
    let keyrings: BTreeSet<&str> = locked.iter().map(keyring_of).collect();
    let keyrings: Vec<String> = keyrings.iter().map(|name| format!("`{name}`")).collect();
    format!(
        "an item of it is in the locked keyring {}, other than the default, which tokend does \
         not ask to unlock: unlock that keyring (and keep one item of the provider), or delete \
         the item there (Seahorse)",
        keyrings.join(", ")
    )
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
