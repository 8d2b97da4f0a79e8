//! One daemon per store: a second `tokend` on a store another one uses
//! refuses to start, before it reads a session, naming the store and the
//! first daemon's pid. Two daemons on one store
//! would refresh with the same refresh token, and a provider that rotates
//! them revokes the login of both.

use crate::support;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, stderr, token};
use support::file_store::FileStore;
use support::keyring::TestKeyring;
use support::provider::Provider;

/// How long a refused daemon may take to exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(15);

fn approve(provider: &Provider) -> impl FnOnce(&str) + '_ {
    |code| {
        provider.approve(code).unwrap();
    }
}

/// Runs a second `tokend` with `first`'s config but its own socket (in
/// `dir`), and `env`; returns its exit status and its log. A daemon still
/// running after [`REFUSAL_TIMEOUT`] was not refused: it is killed and the
/// test fails.
fn second_daemon(first: &Daemon, dir: &Path, env: &[(String, String)]) -> (ExitStatus, String) {
    let config = dir.join("config.toml");
    let text = std::fs::read_to_string(&first.config).unwrap().replace(
        &first.socket.display().to_string(),
        &dir.join("other.sock").display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    let log_path = dir.join("second.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "tokend=debug,info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("RUNTIME_DIRECTORY", dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn a second tokend");
    let status = support::process::wait_at_most(&mut child, REFUSAL_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "a second tokend on the same store was still running after {REFUSAL_TIMEOUT:?}; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    });
    (status, std::fs::read_to_string(&log_path).unwrap())
}

/// The refusal a second daemon must give.
fn refusal(first: &Daemon, store: &str) -> String {
    format!(
        "another tokend (pid {}) uses this store ({store}): stop it first",
        first.pid()
    )
}

#[test]
fn a_second_daemon_on_an_encrypted_file_store_refuses_to_start() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let first = Daemon::start_with(&provider.config("demo"), store.options());
    let access = login(&first, "demo", approve(&provider));
    let refreshes = provider.refresh_count();
    let expected = refusal(&first, &store.state_dir().display().to_string());

    // Another socket: nothing but the lock stops it.
    let dir = tempfile::tempdir().unwrap();
    let (status, log) = second_daemon(&first, dir.path(), &store.options().env);
    assert!(!status.success(), "{log}");
    assert!(log.contains(&expected), "{log}");
    assert!(!log.contains("broker started"), "{log}");

    // The same socket: refused by the lock too, before the store is read
    // (before, it read the sessions and said "broker started" first).
    let out = first.tokend(&[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(!stderr(&out).contains("broker started"), "{}", stderr(&out));

    // The first goes on, and the provider saw no refresh.
    assert_eq!(token(&first, "demo", &["--min-valid", "0"]), access);
    assert_eq!(provider.refresh_count(), refreshes);

    // Once it is gone, another one starts on the store, and restores it.
    let mut first = first;
    first.stop();
    let next = Daemon::start_with(&provider.config("demo"), store.options());
    assert_eq!(token(&next, "demo", &["--min-valid", "0"]), access);
    assert_eq!(provider.refresh_count(), refreshes);
}

#[test]
fn a_second_daemon_on_the_same_secret_service_refuses_to_start() {
    let bus = PrivateBus::start();
    let Some(_keyring) = TestKeyring::start_or_skip(&bus, "one_daemon_per_store::secret_service")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    // One user's runtime directory for both, as for two daemons of one
    // user; each has a unit's runtime directory of its own (two copies of
    // the user unit), which must not give each a lock of its own.
    let runtime = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "DBUS_SESSION_BUS_ADDRESS".to_owned(),
            bus.address().to_owned(),
        ),
        (
            "XDG_RUNTIME_DIR".to_owned(),
            runtime.path().display().to_string(),
        ),
    ];
    let first = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            store: "secret-service",
            bus: "none",
            env: env.clone(),
            ..DaemonOptions::default()
        },
    );
    let access = login(&first, "demo", approve(&provider));
    let refreshes = provider.refresh_count();

    let dir = tempfile::tempdir().unwrap();
    let (status, log) = second_daemon(&first, dir.path(), &env);
    assert!(!status.success(), "{log}");
    let expected = format!(
        "another tokend (pid {}) uses this store (this user's Secret Service, locked with {})",
        first.pid(),
        runtime.path().join("tokend-secret-service.lock").display()
    );
    assert!(log.contains(&expected), "{log}");
    // systemd deletes a unit's runtime directory when the unit stops (the
    // refused unit, say, before Restart= starts it again): the lock is not
    // in it, and the daemon started again is refused again.
    let units_own = runtime.path().join("tokend");
    std::fs::create_dir_all(&units_own).unwrap();
    std::fs::remove_dir_all(&units_own).unwrap();
    let again = tempfile::tempdir().unwrap();
    let (status, log) = second_daemon(&first, again.path(), &env);
    assert!(!status.success(), "{log}");
    assert!(log.contains(&expected), "{log}");
    assert_eq!(token(&first, "demo", &["--min-valid", "0"]), access);
    assert_eq!(provider.refresh_count(), refreshes);
}

/// A daemon that could not take its store's lock at start (the state
/// directory was writable by others, so neither the lock nor the store
/// could be trusted) uses the store only once it has taken the lock.
/// Before, the outage ended when the directory was mended, the daemon read
/// and refreshed its sessions without the lock, and a second daemon took
/// the lock and did the same.
#[test]
fn a_daemon_that_could_not_lock_its_store_uses_it_only_with_the_lock() {
    use std::os::unix::fs::PermissionsExt as _;
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let mode = |bits| {
        std::fs::set_permissions(store.state_dir(), std::fs::Permissions::from_mode(bits)).unwrap();
    };
    mode(0o777);
    let first = Daemon::start_with(&provider.config("demo"), store.options());
    first.wait_for_log(1, &["cannot lock the store"]);
    mode(0o700);
    first.wait_for_log(1, &["took the store's lock"]);
    first.wait_for_log(1, &["event=\"store_available\""]);
    let access = login(&first, "demo", approve(&provider));

    let dir = tempfile::tempdir().unwrap();
    let (status, log) = second_daemon(&first, dir.path(), &store.options().env);
    assert!(!status.success(), "{log}");
    let expected = refusal(&first, &store.state_dir().display().to_string());
    assert!(log.contains(&expected), "{log}");
    assert_eq!(token(&first, "demo", &["--min-valid", "0"]), access);
}

/// The state directory removed under a running daemon (`rm -rf`), its
/// lock with it: the daemon does not make it again (it did at its next
/// save, and wrote the rotated refresh token there, so that a second
/// daemon started on the same config restored that session and both
/// refreshed it: revoked). It says the store is down, naming the
/// directory, and serves the tokens it holds; a second daemon finds no
/// session of its.
#[test]
fn a_state_directory_removed_under_a_daemon_is_not_made_again() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let first = Daemon::start_with(&provider.config("demo"), store.options());
    login(&first, "demo", approve(&provider));

    std::fs::remove_dir_all(store.state_dir()).unwrap();
    let fresh = support::daemon::refresh_now(&first, "demo");
    let down = first.wait_for_log(1, &["event=\"store_unavailable\""]);
    assert!(
        down[0].contains("was removed or replaced") && down[0].contains("nothing is there now"),
        "{down:?}"
    );
    assert!(!store.state_dir().exists(), "made again");

    let second = Daemon::start_with(&provider.config("demo"), store.options());
    let out = second.tokenctl(&["--json", "status", "demo"]);
    let all: serde_json::Value =
        serde_json::from_str(&support::daemon::stdout(&out)).expect("status JSON");
    assert_eq!(all[0]["state"], "logged_out", "{all}");
    assert_eq!(token(&first, "demo", &["--min-valid", "0"]), fresh);
    provider.assert_no_violations();
}

/// The lock file removed under a running daemon: locked again at the
/// daemon's next store call (here a refresh's save), so that a second
/// daemon is still refused (it started, and both refreshed the sessions).
#[test]
fn a_lock_file_removed_under_a_daemon_is_locked_again() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let first = Daemon::start_with(&provider.config("demo"), store.options());
    login(&first, "demo", approve(&provider));

    std::fs::remove_file(store.state_dir().join("tokend.lock")).unwrap();
    // Its token comes once its record is saved (the store first).
    support::daemon::refresh_now(&first, "demo");
    let dir = tempfile::tempdir().unwrap();
    let (status, log) = second_daemon(&first, dir.path(), &store.options().env);
    assert!(!status.success(), "{log}");
    let expected = refusal(&first, &store.state_dir().display().to_string());
    assert!(log.contains(&expected), "{log}");
    first.wait_for_log(1, &["lock file was removed or replaced", "locked again"]);
    provider.assert_no_violations();
}
