//! The store's looks at items beyond keyring's store: which were seen
//! described (see "Items" in the store's module doc), setting the
//! descriptive attributes, the name of a listed item, and tokend's items
//! in a locked keyring (`secret_service_elsewhere.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::PoisonError;

use ::secret_service::Error as ServiceError;

use super::{
    PROVIDER_ATTRIBUTE, SCHEMA, SCHEMA_ATTRIBUTE, SERVICE, SERVICE_ATTRIBUTE, SecretServiceStore,
    USERNAME_ATTRIBUTE, elsewhere,
};

impl SecretServiceStore {
    /// Whether any of tokend's items is in a locked collection (then a
    /// restore's batch looks at each provider's items before its read);
    /// `true` when that cannot be told.
    pub(super) fn any_locked_away(&self) -> bool {
        let Some(client) = self.unlock.client() else {
            return true;
        };
        match elsewhere::all_items(client.connection()) {
            Ok((_, locked)) if locked.is_empty() => false,
            Ok((_, locked)) => {
                !elsewhere::in_locked_collections(client.connection(), locked).is_empty()
            }
            Err(_) => true,
        }
    }

    /// The provider of a listed item with `attributes`. An item seen
    /// described is noted (the listing reads every item's attributes
    /// anyway): its first save after the restore is then the `SetSecret`
    /// alone.
    pub(super) fn listed_name(&self, mut attributes: HashMap<String, String>) -> Option<String> {
        let name = attributes.remove(USERNAME_ATTRIBUTE)?;
        if attributes.get(PROVIDER_ATTRIBUTE) == Some(&name)
            && attributes.get(SCHEMA_ATTRIBUTE).map(String::as_str) == Some(SCHEMA)
        {
            self.set_described(&name, true);
        }
        Some(name)
    }

    pub(super) fn described(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A set of names: no panic can leave it half-changed.
        self.described
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `provider`'s item was seen described by this process.
    pub(super) fn is_described(&self, provider: &str) -> bool {
        self.described().contains(provider)
    }

    pub(super) fn set_described(&self, provider: &str, described: bool) {
        if described {
            self.described().insert(provider.to_owned());
        } else {
            self.described().remove(provider);
        }
    }

    /// Sets the descriptive attributes on `provider`'s item if they are
    /// missing, through tokend's own client: keyring's update writes back
    /// every attribute the item has, which KeePassXC refuses for its own
    /// read-only ones (`Uuid`, `Path`). tokend's four are written, no more:
    /// a Secret Service that replaces the set (gnome-keyring) keeps the two
    /// keyring finds the item by, one that merges (KeePassXC) keeps its own.
    pub(super) fn describe(&self, provider: &str) -> Result<(), ServiceError> {
        let client = self.unlock.client().ok_or(ServiceError::Unavailable)?;
        let mut wanted =
            HashMap::from([(SERVICE_ATTRIBUTE, SERVICE), (USERNAME_ATTRIBUTE, provider)]);
        let found = client.service().search_items(wanted.clone())?;
        wanted.extend([(PROVIDER_ATTRIBUTE, provider), (SCHEMA_ATTRIBUTE, SCHEMA)]);
        for item in &found.unlocked {
            let attributes = item.get_attributes()?;
            let described = attributes.get(PROVIDER_ATTRIBUTE).map(String::as_str)
                == Some(provider)
                && attributes.get(SCHEMA_ATTRIBUTE).map(String::as_str) == Some(SCHEMA);
            if !described {
                item.set_attributes(wanted.clone())?;
            }
        }
        Ok(())
    }

    /// The providers of tokend's items, `unlocked` and in a locked
    /// keyring (`locked`), read on tokend's own connection: keyring's
    /// search would ask to unlock that keyring and wait. Items whose
    /// names a locked keyring does not show are counted in a warning; the
    /// second value says there were some.
    pub(super) fn names_around_locked(
        &self,
        connection: &zbus::blocking::Connection,
        unlocked: &[zbus::zvariant::OwnedObjectPath],
        locked: &[zbus::zvariant::OwnedObjectPath],
    ) -> (Vec<String>, bool) {
        let mut names = Vec::new();
        let mut unnamed = 0;
        for path in unlocked.iter().chain(locked) {
            match elsewhere::attributes_of(connection, path)
                .ok()
                .and_then(|attributes| self.listed_name(attributes))
            {
                Some(name) => names.push(name),
                None => unnamed += 1,
            }
        }
        if unnamed > 0 {
            tracing::warn!(
                "{unnamed} item(s) of tokend are in the locked keyring {}, which shows no names \
                 while locked: a session stored only there shows logged out until that keyring \
                 is unlocked and tokend restarted (or its items deleted there)",
                elsewhere::keyrings_of(connection, locked)
            );
        }
        names.sort();
        names.dedup();
        (names, unnamed > 0)
    }
}
