//! The `[daemon]` table: the socket's place, mode and group, the
//! runtime directories a user's or a unit's daemon and its clients look
//! in, `log_level`, `on_event` and `store_timeout`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::*;

#[test]
fn daemon_keys() {
    let f = Fixture::new();
    let config = f
        .load(&format!(
            "[daemon]\nsocket = \"/run/x/t.sock\"\nsocket_mode = \"0660\"\nsocket_group = \"root\"\nbus = \"none\"\nstore = \"memory\"\nhttp_timeout = 5\nstore_timeout = 10\nmax_concurrent_refreshes = 2\n{GITHUB}"
        ))
        .unwrap();
    assert_eq!(config.daemon.socket, Path::new("/run/x/t.sock"));
    assert_eq!(config.daemon.socket_mode, 0o660);
    assert_eq!(config.daemon.socket_group, Some(0));
    assert_eq!(config.daemon.bus, BusKind::None);
    assert_eq!(config.daemon.store, StoreKind::Memory);
    assert_eq!(
        config.daemon.http_timeout,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(
        config.daemon.store_timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(config.daemon.max_concurrent_refreshes, 2);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    // A group with no write permission on the socket cannot connect.
    let config = f
        .load(&format!("[daemon]\nsocket_group = \"root\"\n{GITHUB}"))
        .unwrap();
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(
        config.warnings[0].to_string().contains(
            ":2:16: warning: `socket_group` has no effect: `socket_mode` 0600 does not let the group write"
        ),
        "{}",
        config.warnings[0]
    );
    // A group that may read but not write cannot connect either: said
    // once, by `socket_mode`, with or without `socket_group`.
    for daemon in [
        "socket_mode = \"0640\"",
        "socket_mode = \"0640\"\nsocket_group = \"root\"",
    ] {
        let config = f.load(&format!("[daemon]\n{daemon}\n{GITHUB}")).unwrap();
        assert_eq!(config.warnings.len(), 1, "{daemon}: {:?}", config.warnings);
        assert!(
            config.warnings[0].to_string().contains(
                ":2:15: warning: `socket_mode` 0640 gives the group no write permission on the socket"
            ),
            "{}",
            config.warnings[0]
        );
    }
    // A mode written as a decimal TOML integer is one error that says so.
    let errors = f.errors(&format!("[daemon]\nsocket_mode = 660\n{GITHUB}"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`socket_mode` 660 is a decimal number in TOML, not an octal mode: write \"0660\" or 0o660"),
        "{errors:?}"
    );
    let config = f
        .load(&format!("[daemon]\nsocket_mode = 0o660\n{GITHUB}"))
        .unwrap();
    assert_eq!(config.daemon.socket_mode, 0o660);
    let errors = f.errors(&format!(
        "[daemon]\nsocket_mode = \"0666\"\nsocket = \"relative.sock\"\n{GITHUB}"
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("others no write"), "{errors:?}");
    assert!(errors[1].contains("absolute path"), "{errors:?}");
}

/// Where the daemon locks a Secret Service store: a file in the user's
/// runtime directory itself, whatever unit it runs in (a unit's own
/// directory differs per unit and goes when the unit stops), else in the
/// first of `$RUNTIME_DIRECTORY`'s (a system unit's); with neither, none
/// (the daemon then warns and takes no lock).
#[test]
fn the_secret_service_is_locked_in_the_users_runtime_directory() {
    let env = |runtime: Option<&str>, xdg: Option<&str>| Environment {
        uid: 1000,
        runtime_directory: runtime.map(PathBuf::from),
        xdg_runtime_dir: xdg.map(PathBuf::from),
        ..Environment::default()
    };
    // Two units of one user, each with a runtime directory of its own:
    // one lock, in neither.
    for unit_directory in [
        "/run/user/1000/tokend",
        "/run/user/1000/tokend-work:/run/other",
    ] {
        assert_eq!(
            env(Some(unit_directory), Some("/run/user/1000")).secret_service_lock_path(),
            Some(PathBuf::from("/run/user/1000/tokend-secret-service.lock"))
        );
    }
    assert_eq!(
        env(None, Some("/run/user/1000")).secret_service_lock_path(),
        Some(PathBuf::from("/run/user/1000/tokend-secret-service.lock"))
    );
    assert_eq!(
        env(Some("/run/tokend:/run/other"), None).secret_service_lock_path(),
        Some(PathBuf::from("/run/tokend/secret-service.lock"))
    );
    assert_eq!(env(None, None).secret_service_lock_path(), None);
}

/// `$RUNTIME_DIRECTORY` names the daemon's socket directory only when it
/// is the daemon's: a client (`tokenctl` in a unit with a runtime
/// directory of its own) looks where the daemon's units put the socket.
#[test]
fn a_client_does_not_look_in_its_own_units_runtime_directory() {
    let user = Environment {
        uid: 1000,
        xdg_runtime_dir: Some(PathBuf::from("/run/user/1000")),
        runtime_directory: Some(PathBuf::from("/run/user/1000/some-other-unit")),
        ..Environment::default()
    };
    assert_eq!(
        user.default_socket_path().unwrap(),
        Path::new("/run/user/1000/some-other-unit/tokend.sock"),
        "the daemon's own"
    );
    assert_eq!(
        user.client_socket_path().unwrap(),
        Path::new("/run/user/1000/tokend/tokend.sock")
    );
    let root = Environment {
        uid: 0,
        runtime_directory: Some(PathBuf::from("/run/other")),
        ..Environment::default()
    };
    assert_eq!(
        root.client_socket_path().unwrap(),
        Path::new("/run/tokend/tokend.sock")
    );
}

#[test]
fn missing_runtime_dir_needs_an_explicit_socket() {
    let mut f = Fixture::new();
    f.env.xdg_runtime_dir = None;
    let errors = f.errors(GITHUB);
    assert!(
        errors[0].contains("XDG_RUNTIME_DIR is not set"),
        "{errors:?}"
    );
    f.env.runtime_directory = Some(PathBuf::from("/run/user/1000/tokend"));
    let config = f.load(GITHUB).unwrap();
    assert_eq!(
        config.daemon.socket,
        Path::new("/run/user/1000/tokend/tokend.sock")
    );
}

/// A `log_level` that is not a level or `target=level` directives is an
/// error: read as directives, `verbose` names a target and silences the rest.
#[test]
fn log_level_must_be_levels() {
    let f = Fixture::new();
    for good in [
        "info",
        "DEBUG",
        "warn,tokend=trace",
        "off",
        " info , zbus=warn ",
    ] {
        let config = f
            .load(&format!("[daemon]\nlog_level = \"{good}\"\n{GITHUB}"))
            .unwrap();
        assert_eq!(config.daemon.log_level.as_deref(), Some(good));
    }
    for bad in [
        "verbose",
        "warning",
        "=,=",
        "info,tokend",
        "tokend=loud",
        "",
    ] {
        let errors = f.errors(&format!("[daemon]\nlog_level = \"{bad}\"\n{GITHUB}"));
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert!(
            errors[0].contains(
                ":2:13: `log_level` must be a level (off, error, warn, info, debug, trace)"
            ),
            "{bad}: {errors:?}"
        );
    }
}

/// An `on_event` program that is missing or not executable is a warning
/// (it may be installed later), so a typo shows at `--check`.
#[test]
fn an_on_event_program_that_cannot_run_is_warned_of() {
    let f = Fixture::new();
    let config = f
        .load(&format!(
            "[daemon]\non_event = [\"/bin/sh\", \"-c\", \"true\"]\n{GITHUB}"
        ))
        .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let config = f
        .load(&format!(
            "[daemon]\non_event = [\"/usr/local/bin/no-such-hook\"]\n{GITHUB}"
        ))
        .unwrap();
    assert_eq!(config.warnings.len(), 1);
    let warning = config.warnings[0].to_string();
    assert!(
        warning.contains("warning: `on_event`: cannot use `/usr/local/bin/no-such-hook` (No such file or directory"),
        "{warning}"
    );
    let not_executable = f.path("hook.txt");
    std::fs::write(&not_executable, "").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = f
        .load(&format!(
            "[daemon]\non_event = [\"{}\"]\n{GITHUB}",
            not_executable.display()
        ))
        .unwrap();
    assert!(
        config.warnings[0]
            .to_string()
            .contains("is not an executable file"),
        "{:?}",
        config.warnings
    );
    // Executable, but without `#!`: a shell runs it, the kernel does not
    // (it passed `--check`, then failed at every event).
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&not_executable, "echo \"$EVENT\" >> log\n").unwrap();
    let config = f
        .load(&format!(
            "[daemon]\non_event = [\"{}\"]\n{GITHUB}",
            not_executable.display()
        ))
        .unwrap();
    assert!(
        config.warnings[0]
            .to_string()
            .contains("starts with neither `#!` nor an ELF header"),
        "{:?}",
        config.warnings
    );
}

/// `store_timeout` waits 30 s when unset, and refuses what a start reading
/// the keyring could not live with (under 5 s) or what clients would not
/// wait for (over 120 s), naming the key and the range.
#[test]
fn store_timeout_defaults_to_30_s_and_is_bounded() {
    let f = Fixture::new();
    let config = f.load(GITHUB).unwrap();
    assert_eq!(
        config.daemon.store_timeout,
        std::time::Duration::from_secs(30)
    );
    for value in ["4", "121", "\"30\""] {
        let errors = f.errors(&format!("[daemon]\nstore_timeout = {value}\n{GITHUB}"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("config.toml:2:17: `store_timeout` must be"),
            "{errors:?}"
        );
    }
}

/// An `http_timeout` tokenctl's default wait does not outlast is warned
/// of: a request waiting for a refresh that long got exit 1 from
/// tokenctl, not the provider's exit 6 scripts retry on.
#[test]
fn an_http_timeout_tokenctl_gives_up_before_is_warned_of() {
    let f = Fixture::new();
    let config = f
        .load(&format!("[daemon]\nhttp_timeout = 59\n{GITHUB}"))
        .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let config = f
        .load(&format!("[daemon]\nhttp_timeout = 60\n{GITHUB}"))
        .unwrap();
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    let warning = config.warnings[0].to_string();
    assert!(
        warning.contains(
            "`http_timeout` of 60 s: a `tokenctl token` waiting for a refresh gives up first"
        ),
        "{warning}"
    );
}
