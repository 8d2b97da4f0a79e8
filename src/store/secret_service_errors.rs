//! What a failure of keyring's Secret Service store means for tokend: a
//! [`StoreError`] whose message says what to do, and whether a new
//! connection may cure it.

use ::secret_service::Error as ServiceError;
use keyring_core::Error as KeyringError;
use zbus::DBusError as _;
use zeroize::Zeroize;

use super::{SERVICE, STORE};
use crate::store::StoreError;

/// What to do when there is no Secret Service to talk to. The way out
/// without a keyring is a store that persists (the memory store would
/// lose every session at the next restart).
pub(super) const NO_SERVICE: &str = "no Secret Service on the session bus: install/start \
     gnome-keyring or KeePassXC, or set store = \"encrypted-file\" (with a store key)";

/// What to do when the keyring is locked.
pub(super) const UNLOCK: &str = "store locked: unlock your keyring";

/// What to do when the Secret Service has no default collection.
pub(super) const NO_COLLECTION: &str = "the Secret Service has no default collection: create a \
     default keyring (for example in Seahorse), or open a database in KeePassXC and expose it to \
     the Secret Service";

/// Whether `error` came from the Secret Service or the bus for a reason a
/// new connection may cure (anything but a locked keyring).
pub(super) fn may_be_stale(error: &KeyringError) -> bool {
    match error {
        KeyringError::PlatformFailure(source) | KeyringError::NoStorageAccess(source) => source
            .downcast_ref::<ServiceError>()
            .is_some_and(|e| classify(e) != Cause::Locked),
        _ => false,
    }
}

/// What a Secret Service failure means for tokend.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Cause {
    /// No session bus could be reached.
    NoBus,
    /// The bus is there, nobody owns `org.freedesktop.secrets` on it.
    NoService,
    /// The item or collection is locked and was not unlocked.
    Locked,
    /// Anything else.
    Other,
}

/// Turns a keyring error into a [`StoreError`] whose message says what to do.
/// Never formats secret bytes: the variants that carry some are zeroed here.
pub(super) fn map_error(error: KeyringError, provider: Option<&str>) -> StoreError {
    let failed = |reason: String| StoreError::Failed {
        store: STORE,
        reason,
    };
    match error {
        KeyringError::PlatformFailure(source) | KeyringError::NoStorageAccess(source) => {
            let service_error = source.downcast_ref::<ServiceError>();
            match service_error.map_or(Cause::Other, classify) {
                Cause::NoBus => StoreError::Unavailable {
                    store: STORE,
                    reason: format!(
                        "cannot reach the session bus ({source}): run tokend in a user session \
                         (DBUS_SESSION_BUS_ADDRESS), or set store = \"encrypted-file\" (with a \
                         store key)"
                    ),
                },
                Cause::NoService => StoreError::Unavailable {
                    store: STORE,
                    reason: NO_SERVICE.to_owned(),
                },
                Cause::Locked => StoreError::Locked {
                    store: STORE,
                    reason: UNLOCK.to_owned(),
                },
                Cause::Other if matches!(service_error, Some(ServiceError::NoResult)) => {
                    StoreError::Unavailable {
                        store: STORE,
                        reason: NO_COLLECTION.to_owned(),
                    }
                }
                Cause::Other => failed(source.to_string()),
            }
        }
        KeyringError::NoEntry => failed("no such item".to_owned()),
        // One provider's items, not the store: the other records are fine
        // (so the store's health does not count it).
        KeyringError::Ambiguous(entries) => {
            let name = provider.unwrap_or("?");
            StoreError::Corrupt {
                store: STORE,
                provider: name.to_owned(),
                reason: format!(
                    "{} keyring items match it (service={SERVICE}, username={name}): delete \
                     the ones you do not want in your keyring's manager (Seahorse, KeePassXC), \
                     and tokend reads or saves the session again by itself (no restart, no \
                     login); or run `tokenctl logout {name}` to remove them all, then log in \
                     again",
                    entries.len()
                ),
            }
        }
        KeyringError::BadEncoding(mut bytes) => {
            bytes.zeroize();
            failed("the secret is not UTF-8".to_owned())
        }
        KeyringError::BadDataFormat(mut bytes, source) => {
            bytes.zeroize();
            failed(format!(
                "the secret is not in the expected format: {source}"
            ))
        }
        // Messages without secrets: parameter names, limits, descriptions.
        other => failed(other.to_string()),
    }
}

/// Sorts a secret-service error by what a person has to do about it.
pub(super) fn classify(error: &ServiceError) -> Cause {
    use ServiceError as E;
    match error {
        E::Unavailable => Cause::NoBus,
        // A dismissed prompt is what a headless keyring answers to "unlock".
        E::Locked | E::Prompt | E::PromptDisconnected => Cause::Locked,
        E::Zbus(e) => classify_zbus(e),
        E::ZbusFdo(e) => classify_name(e.name().as_str()),
        _ => Cause::Other,
    }
}

fn classify_zbus(error: &zbus::Error) -> Cause {
    match error {
        zbus::Error::InputOutput(_)
        | zbus::Error::Connection(..)
        | zbus::Error::Address(_)
        | zbus::Error::Handshake(_) => Cause::NoBus,
        zbus::Error::MethodError(name, _, _) => classify_name(name.as_str()),
        zbus::Error::FDO(e) => classify_name(e.name().as_str()),
        _ => Cause::Other,
    }
}

/// Sorts a D-Bus error by its name.
pub(super) fn classify_name(name: &str) -> Cause {
    match name {
        // The bus answers for a name nobody owns and nothing can activate.
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner" => Cause::NoService,
        "org.freedesktop.Secret.Error.IsLocked" => Cause::Locked,
        _ => Cause::Other,
    }
}

#[cfg(test)]
#[path = "secret_service_tests.rs"]
mod tests;
