//! Unit tests of the Secret Service store's error mapping (and its `Debug`).

use std::sync::Arc;

use super::*;
use crate::store::secret_service::SecretServiceStore;

fn platform(error: ServiceError) -> KeyringError {
    KeyringError::PlatformFailure(Box::new(error))
}

#[test]
fn missing_service_and_bus_are_unavailable() {
    let no_service = platform(ServiceError::ZbusFdo(zbus::fdo::Error::ServiceUnknown(
        "org.freedesktop.secrets".into(),
    )));
    let error = map_error(no_service, None);
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("gnome-keyring or KeePassXC"));
    assert!(error.to_string().contains("store = \"encrypted-file\""));

    let no_bus = platform(ServiceError::Zbus(zbus::Error::InputOutput(Arc::new(
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    ))));
    let error = map_error(no_bus, None);
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("session bus"));
    let refused = platform(ServiceError::Zbus(zbus::Error::Connection(
        Arc::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
        "unix:path=/nonexistent".parse().unwrap(),
    )));
    let error = map_error(refused, None);
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    let error = map_error(platform(ServiceError::Unavailable), None);
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
}

#[test]
fn locked_and_dismissed_prompts_are_locked() {
    for cause in [
        ServiceError::Locked,
        ServiceError::Prompt,
        ServiceError::PromptDisconnected,
    ] {
        let error = map_error(KeyringError::NoStorageAccess(Box::new(cause)), Some("gh"));
        assert!(matches!(error, StoreError::Locked { .. }), "{error:?}");
        assert!(error.to_string().contains("unlock your keyring"), "{error}");
    }
}

#[test]
fn other_failures_say_what_happened_without_secrets() {
    let error = map_error(KeyringError::BadEncoding(b"rt-secret".to_vec()), Some("gh"));
    assert!(matches!(error, StoreError::Failed { .. }));
    assert!(!format!("{error} {error:?}").contains("rt-secret"));

    let error = map_error(platform(ServiceError::NoResult), Some("gh"));
    assert!(
        error.to_string().contains("no default collection"),
        "{error}"
    );

    // Duplicate items are that provider's problem, not the whole store's.
    let error = map_error(KeyringError::Ambiguous(Vec::new()), Some("gh"));
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("tokenctl logout gh"), "{error}");
}

#[test]
fn names_are_classified() {
    assert_eq!(
        classify_name("org.freedesktop.DBus.Error.ServiceUnknown"),
        Cause::NoService
    );
    assert_eq!(
        classify_name("org.freedesktop.Secret.Error.IsLocked"),
        Cause::Locked
    );
    assert_eq!(
        classify_name("org.freedesktop.Secret.Error.NoSuchObject"),
        Cause::Other
    );
}

#[test]
fn debug_shows_no_more_than_the_connection_state() {
    let store = SecretServiceStore::new();
    assert_eq!(
        format!("{store:?}"),
        "SecretServiceStore { connected: false }"
    );
    assert_eq!(SecretServiceStore::label("gh"), "tokend: gh refresh token");
}
