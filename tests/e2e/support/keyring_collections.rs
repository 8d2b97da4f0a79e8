//! Keyrings (collections) beside the default one in the [`TestKeyring`]:
//! made, renamed, made the default, locked and unlocked by path, as a
//! person does in Seahorse.

use std::collections::HashMap;

use zbus::zvariant::{OwnedObjectPath, Value};

use super::{GNOME_INTERFACE, PASSWORD, SECRETS, SERVICE_INTERFACE, SERVICE_PATH, TestKeyring};

/// The `login` keyring gnome-keyring makes, the default until another is
/// made the default; its path stays when it is renamed.
pub const LOGIN: &str = "/org/freedesktop/secrets/collection/login";

const COLLECTION_INTERFACE: &str = "org.freedesktop.Secret.Collection";

impl TestKeyring {
    /// Creates an unlocked keyring labelled `label`, with [`PASSWORD`];
    /// returns its path.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    #[must_use]
    pub fn create_keyring(&self, label: &str) -> String {
        let connection = self.connect();
        let session = super::plain_session(&connection);
        let password = (
            session,
            Vec::<u8>::new(),
            PASSWORD.as_bytes().to_vec(),
            "text/plain",
        );
        let properties = HashMap::from([(
            "org.freedesktop.Secret.Collection.Label",
            Value::from(label),
        )]);
        let reply = connection
            .call_method(
                Some(SECRETS),
                SERVICE_PATH,
                Some(GNOME_INTERFACE),
                "CreateWithMasterPassword",
                &(properties, password),
            )
            .expect("CreateWithMasterPassword");
        let collection: OwnedObjectPath = reply.body().deserialize().expect("the collection");
        collection.as_str().to_owned()
    }

    /// Makes the keyring at `collection` the default (Seahorse's "Set as
    /// default"): new items go there.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn make_default(&self, collection: &str) {
        let path = OwnedObjectPath::try_from(collection).expect("a collection path");
        self.connect()
            .call_method(
                Some(SECRETS),
                SERVICE_PATH,
                Some(SERVICE_INTERFACE),
                "SetAlias",
                &("default", path),
            )
            .expect("SetAlias default");
    }

    /// Renames the keyring at `collection` (its path stays).
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn set_keyring_label(&self, collection: &str, label: &str) {
        let connection = self.connect();
        let proxy =
            zbus::blocking::Proxy::new(&connection, SECRETS, collection, COLLECTION_INTERFACE)
                .expect("collection proxy");
        proxy.set_property("Label", label).expect("set the Label");
    }

    /// Locks the keyring at `collection`, as Seahorse's lock button does.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn lock_keyring(&self, collection: &str) {
        let path = OwnedObjectPath::try_from(collection).expect("a collection path");
        let locked = super::lock(&self.connect(), path);
        assert_eq!(locked.len(), 1, "gnome-keyring locked {locked:?}");
        assert!(self.is_keyring_locked(collection));
    }

    /// Unlocks the keyring at `collection` with [`PASSWORD`] through
    /// gnome-keyring's own interface (no prompt), as a person typing the
    /// password in Seahorse rather than in tokend's prompt.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn unlock_keyring(&self, collection: &str) {
        let connection = self.connect();
        let session = super::plain_session(&connection);
        let path = OwnedObjectPath::try_from(collection).expect("a collection path");
        let secret = (
            session,
            Vec::<u8>::new(),
            PASSWORD.as_bytes().to_vec(),
            "text/plain",
        );
        connection
            .call_method(
                Some(SECRETS),
                SERVICE_PATH,
                Some(GNOME_INTERFACE),
                "UnlockWithMasterPassword",
                &(path, secret),
            )
            .expect("UnlockWithMasterPassword");
        assert!(!self.is_keyring_locked(collection));
    }

    /// Whether the keyring at `collection` is locked.
    ///
    /// # Panics
    /// When the property cannot be read.
    #[must_use]
    pub fn is_keyring_locked(&self, collection: &str) -> bool {
        let connection = self.connect();
        let proxy =
            zbus::blocking::Proxy::new(&connection, SECRETS, collection, COLLECTION_INTERFACE)
                .expect("collection proxy");
        proxy.get_property("Locked").expect("the Locked property")
    }
}
