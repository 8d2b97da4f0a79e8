//! The encrypted-file store's keys: defaults from systemd's credential
//! and state directory, and problems at their position.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::*;

/// Writes a store key of `len` bytes with `mode` into the fixture.
fn key_file(f: &Fixture, name: &str, len: usize, mode: u32) -> PathBuf {
    let path = f.path(name);
    std::fs::write(&path, vec![0x5a; len]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn encrypted_file_store_defaults_to_the_systemd_credential_and_state_directory() {
    let f = Fixture::new();
    let creds = f.path("creds");
    std::fs::create_dir(&creds).unwrap();
    key_file(&f, "creds/tokend-store-key", 32, 0o400);
    let mut env = f.env.clone();
    env.credentials_directory = Some(creds.clone());
    env.state_directory = Some(PathBuf::from("/var/lib/tokend:/var/lib/other"));
    let path = f.write(
        "config.toml",
        &format!("[daemon]\nstore = \"encrypted-file\"\n{GITHUB}"),
    );
    let config = load(&path, &env).unwrap();
    assert_eq!(config.daemon.store, StoreKind::EncryptedFile);
    let file = config.daemon.encrypted_file.unwrap();
    assert_eq!(file.state_directory, Path::new("/var/lib/tokend"));
    assert_eq!(file.key_path, creds.join("tokend-store-key"));

    // A user's daemon, outside systemd: XDG state home and a key file.
    key_file(&f, "store.key", 32, 0o600);
    let mut env = f.env.clone();
    env.xdg_state_home = Some(PathBuf::from("/home/alice/.local/state"));
    let path = f.write(
        "config.toml",
        &format!("[daemon]\nstore = \"encrypted-file\"\nstore_key_file = \"store.key\"\n{GITHUB}"),
    );
    let file = load(&path, &env).unwrap().daemon.encrypted_file.unwrap();
    assert_eq!(
        file.state_directory,
        Path::new("/home/alice/.local/state/tokend")
    );
    assert_eq!(file.key_path, f.path("store.key"));
    // Other stores carry no encrypted-file settings.
    assert!(f.load(GITHUB).unwrap().daemon.encrypted_file.is_none());
}

#[test]
fn encrypted_file_store_keys_are_checked_at_their_position() {
    let f = Fixture::new();
    key_file(&f, "short.key", 16, 0o600);
    key_file(&f, "loose.key", 32, 0o644);
    key_file(&f, "good.key", 32, 0o600);
    // The fixture has no HOME: neither a directory nor a key can be found.
    let errors = f.errors(&format!("[daemon]\nstore = \"encrypted-file\"\n{GITHUB}"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("config.toml:2:9: no state directory")
            && errors[0].contains("set `state_directory`"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("config.toml:2:9: the encrypted file store needs its key")
            && errors[1].contains("LoadCredentialEncrypted=tokend-store-key:")
            && errors[1].contains("`store_key_file`"),
        "{errors:?}"
    );
    for (file, line, expected) in [
        ("short.key", 3, "exactly 32 bytes, not 16"),
        ("loose.key", 3, "readable or writable by others (mode 0644)"),
        ("missing.key", 3, "No such file"),
    ] {
        let errors = f.errors(&format!(
            "[daemon]\nstore = \"encrypted-file\"\nstore_key_file = \"{file}\"\nstate_directory = \"/srv/tokend\"\n{GITHUB}"
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("config.toml:{line}:18: cannot use "))
                && errors[0].contains("as the store key")
                && errors[0].contains(expected),
            "{errors:?}"
        );
    }
    let errors = f.errors(&format!(
        "[daemon]\nstore = \"encrypted-file\"\nstore_key_file = \"good.key\"\nstore_key_credential = \"k\"\nstate_directory = \"relative\"\n{GITHUB}"
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("config.toml:4:1: set only one of"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("config.toml:5:19:") && errors[1].contains("absolute"),
        "{errors:?}"
    );

    // The keys are ignored, with a warning, by the other stores.
    let config = f
        .load(&format!(
            "[daemon]\nstore = \"memory\"\nstore_key_file = \"good.key\"\n{GITHUB}"
        ))
        .unwrap();
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0]
            .message
            .contains("only with store = \"encrypted-file\""),
        "{:?}",
        config.warnings
    );
}

/// The Secret Service is a user's keyring on the session bus: a daemon on
/// the system bus has none, and would wait for it forever. Said at the
/// `store` key, or at `[daemon]` when the store is the default.
#[test]
fn a_secret_service_store_on_the_system_bus_is_warned_of() {
    let f = Fixture::new();
    let config = f
        .load(&format!(
            "[daemon]\nbus = \"system\"\nstore = \"secret-service\"\n{GITHUB}"
        ))
        .unwrap();
    let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(":3:9: warning: store = \"secret-service\" is a user's keyring on the user's session bus, which a daemon on the system bus (bus = \"system\") does not have: set store = \"encrypted-file\""),
        "{warnings:?}"
    );
    let (_, warnings) = f.load_with_warnings(&format!("[daemon]\nbus = \"system\"\n{GITHUB}"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("store = \"secret-service\" (the default) is a user's keyring"),
        "{warnings:?}"
    );
    // Root's default bus is the system bus.
    let mut env = f.env.clone();
    env.uid = 0;
    let path = f.write(
        "config.toml",
        &format!("[daemon]\nsocket = \"/run/t/t.sock\"\n{GITHUB}"),
    );
    let config = load(&path, &env).unwrap();
    let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    let said = "(bus = \"system\", the system service's default)";
    assert!(warnings.iter().any(|w| w.contains(said)), "{warnings:?}");
    // So is the system service's, which runs as user `tokend`, who has no
    // session bus: a preset copied over /etc/tokend/config.toml without a
    // [daemon] table put that daemon on a session bus it could not reach.
    let mut env = f.env.clone();
    env.service_user = true;
    let config = load(&path, &env).unwrap();
    assert_eq!(config.daemon.bus, crate::config::BusKind::System);
    let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    assert!(warnings.iter().any(|w| w.contains(said)), "{warnings:?}");
    // On the session bus, or with a store of its own: nothing to say.
    for daemon in ["bus = \"session\"", "bus = \"system\"\nstore = \"memory\""] {
        let (_, warnings) = f.load_with_warnings(&format!("[daemon]\n{daemon}\n{GITHUB}"));
        assert!(warnings.is_empty(), "{daemon}: {warnings:?}");
    }
}

#[test]
fn a_reload_changing_the_store_names_the_store_alone() {
    let f = Fixture::new();
    key_file(&f, "store.key", 32, 0o600);
    key_file(&f, "other.key", 32, 0o600);
    let mut env = f.env.clone();
    env.xdg_state_home = Some(PathBuf::from("/home/alice/.local/state"));
    let load_with = |daemon: &str| {
        let path = f.write("config.toml", &format!("[daemon]\n{daemon}\n{GITHUB}"));
        load(&path, &env).unwrap().daemon
    };
    let memory = load_with("store = \"memory\"");
    let file = load_with("store = \"encrypted-file\"\nstore_key_file = \"store.key\"");
    let other_key = load_with("store = \"encrypted-file\"\nstore_key_file = \"other.key\"");
    assert_eq!(memory.changed_keys(&file), ["store"]);
    assert_eq!(file.changed_keys(&memory), ["store"]);
    assert_eq!(
        file.changed_keys(&other_key),
        ["state_directory/store_key_file/store_key_credential"]
    );
    assert!(file.changed_keys(&file.clone()).is_empty());
}
