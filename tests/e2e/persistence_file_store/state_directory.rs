//! The state directory under a running daemon: replaced (another file
//! system mounted over it, or the one there unmounted), or its records'
//! directory removed. The daemon writes its records only into the state
//! directory it locked at its start: it made the directories again where
//! they were missing and wrote there, with no lock in them and status
//! saying `saved`, and the sessions were lost at the next restart
//! (reproduced twice by the filesystem-fault audit).

use super::*;
use crate::support::daemon::refresh_now;
use crate::support::file_store::walk;

const UNAVAILABLE: &[&str] = &["event=\"store_unavailable\""];
const AVAILABLE: &[&str] = &["event=\"store_available\""];

/// The retry loop probes after its own backoff (15 to 30 s at first).
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Asks for `name`'s status (which has the daemon probe a store that is
/// down) until `saved` says it is saved, for at most [`RECOVERY_TIMEOUT`].
fn wait_until_saved(daemon: &Daemon, name: &str) {
    let deadline = std::time::Instant::now() + RECOVERY_TIMEOUT;
    while status(daemon, name)["saved"] != true {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} not saved within {RECOVERY_TIMEOUT:?}; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Another directory at the state directory's path, as a file system
/// mounted over it leaves one: a refresh's tokens are not written there
/// (an outage naming the directory, status `saved: false`); with the
/// directory back (mounted again) they are saved where they belong, and
/// a restart presents the newest refresh token.
#[test]
fn a_state_directory_replaced_under_the_daemon_is_an_outage_until_it_is_back() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let mut daemon = start(&provider, &store);
    login(&daemon, "demo", approve(&provider));

    let away = store.root().join("state.away");
    std::fs::rename(store.state_dir(), &away).unwrap();
    std::fs::create_dir(store.state_dir()).unwrap();
    let fresh = refresh_now(&daemon, "demo");
    let down = daemon.wait_for_log(1, UNAVAILABLE);
    assert!(
        down[0].contains(&format!(
            "the state directory {} was removed or replaced",
            store.state_dir().display()
        )) && down[0].contains("another directory is there now"),
        "{down:?}"
    );
    assert_eq!(status(&daemon, "demo")["saved"], false);
    assert!(walk(&store.state_dir()).is_empty(), "written into another");

    // Back where it was: the rotated refresh token is saved there.
    std::fs::remove_dir(store.state_dir()).unwrap();
    std::fs::rename(&away, store.state_dir()).unwrap();
    wait_until_saved(&daemon, "demo");
    daemon.wait_for_log(1, AVAILABLE);
    daemon.stop();
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), fresh);
    provider.assert_no_violations();
}

/// The state directory's file system lazily unmounted under the daemon
/// (`umount -l`): its path names the directory beneath the mount point,
/// where nothing is written (it made `sessions/` there, without the lock,
/// and said `saved: true`).
#[test]
fn a_state_directory_unmounted_under_the_daemon_is_not_written_beneath() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let Some(disk) = crate::support::tmpfs::Tmpfs::over_or_skip(
        &store.state_dir(),
        "1m",
        "a_state_directory_unmounted_under_the_daemon_is_not_written_beneath",
    ) else {
        return;
    };
    let daemon = start(&provider, &store);
    login(&daemon, "demo", approve(&provider));
    disk.unmount_lazily();
    refresh_now(&daemon, "demo");
    let down = daemon.wait_for_log(1, UNAVAILABLE);
    assert!(down[0].contains("was removed or replaced"), "{down:?}");
    assert_eq!(status(&daemon, "demo")["saved"], false);
    assert!(walk(&store.state_dir()).is_empty(), "written beneath");
    assert!(!store.sessions_dir().exists(), "written beneath");
}

/// The records' directory removed (`rm -rf STATE/sessions`): made again
/// in the state directory the daemon locked, and every session it holds
/// saved into it, not only the one whose refresh found it gone; a restart
/// restores them all. The others were lost (status said `saved`) and came
/// back logged out.
#[test]
fn records_removed_under_the_daemon_are_all_saved_again() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let both = format!("{}{}", provider.config("alpha"), provider.config("beta"));
    let mut daemon = Daemon::start_with(&both, store.options());
    login(&daemon, "alpha", approve(&provider));
    let beta = login(&daemon, "beta", approve(&provider));

    std::fs::remove_dir_all(store.sessions_dir()).unwrap();
    let alpha = refresh_now(&daemon, "alpha");
    let down = daemon.wait_for_log(1, UNAVAILABLE);
    assert!(down[0].contains("was removed while tokend ran"), "{down:?}");
    daemon.wait_for_log_within(RECOVERY_TIMEOUT, 1, AVAILABLE);
    assert_eq!(store.files(), ["alpha.session", "beta.session"]);

    daemon.stop();
    daemon.restart();
    assert_eq!(token(&daemon, "alpha", &["--min-valid", "0"]), alpha);
    assert_eq!(token(&daemon, "beta", &["--min-valid", "0"]), beta);
    provider.assert_no_violations();
}
