//! Writes that fail, the sessions directory's or one record's: nothing is
//! lost (the tokens are served from memory), `status` and the login say
//! so, and the save is done once the store takes it, with the tokens
//! already had.

use super::*;
use crate::support::flows::assert_a_crash_keeps_the_current_refresh_token;
use crate::support::provider::fast;
use tokend_emulator::Rfc8628Options;

#[test]
fn a_failed_write_loses_nothing_shows_in_status_and_is_retried() {
    let provider = Provider::start(Rfc8628Options {
        access_token_lifetime: Duration::from_secs(3),
        ..fast()
    });
    let store = FileStore::new();
    let mut daemon = start(&provider, &store);
    login(&daemon, "demo", approve(&provider));

    // The sessions directory becomes unusable (a file where it was): as
    // root, permission bits would not stop the daemon.
    store.break_records();
    let failed = daemon.wait_for_log(1, &["event=\"refresh_saved\"", "ok=false"]);
    let status_now = status(&daemon, "demo");
    let error = status_now["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("not a directory"), "{status_now}");
    assert_eq!(status_now["state"], "active");
    // Tokens keep coming from memory, refresh after refresh.
    daemon.wait_for_log(failed.len() + 1, &["event=\"refresh_saved\"", "ok=false"]);
    token(&daemon, "demo", &["--min-valid", "0"]);

    // The directory comes back; the next save writes the newest token.
    let saved = ["event=\"refresh_saved\"", "ok=true"];
    let saved_before = daemon.wait_for_log(0, &saved).len();
    store.mend_records();
    daemon.wait_for_log(saved_before + 1, &saved);
    assert!(status(&daemon, "demo")["last_error"].is_null());

    // A crash now: the stored refresh token is the current one.
    assert_a_crash_keeps_the_current_refresh_token(&mut daemon, &provider, "demo");
}

/// A login whose tokens the store cannot take is not "Logged in" and exit
/// 0: the person is told it is not saved and why, exit 9, as a logout
/// whose record could not be deleted is (a stop before the store works
/// loses it). Once the store works, it is saved.
#[test]
fn a_login_the_store_cannot_take_says_so() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let daemon = start(&provider, &store);
    store.break_records();
    let run = support::login_run::LoginRun::start(&daemon.socket, "demo");
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 9, "{done} {err}");
    assert_eq!(done["ok"], true, "{done}");
    assert!(
        done["unsaved"]
            .as_str()
            .unwrap()
            .contains("not a directory"),
        "{done}"
    );
    assert!(
        err.contains("logged in to demo, but the session could not be saved"),
        "{err}"
    );
    token(&daemon, "demo", &["--min-valid", "0"]);
    store.mend_records();
    // The status probes the store at once and shows it saved.
    let mut saved = serde_json::Value::Null;
    for _ in 0..100 {
        saved = status(&daemon, "demo")["saved"].clone();
        if saved == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(saved, true, "{}", daemon.log());
}

#[test]
fn a_record_that_cannot_be_saved_is_retried_without_refreshing_again() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let mut daemon = start(&provider, &store);
    login(&daemon, "demo", approve(&provider));

    // This record alone cannot be replaced (a directory where it was; as
    // root, permission bits would not stop the daemon); the store works.
    std::fs::remove_file(store.record("demo")).unwrap();
    std::fs::create_dir(store.record("demo")).unwrap();
    std::fs::write(store.record("demo").join("in-the-way"), b"x").unwrap();
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    let refreshed = token(&daemon, "demo", &["--min-valid", "3700"]);
    daemon.wait_for_log(1, &["event=\"refresh_saved\"", "ok=false"]);
    assert_eq!(status(&daemon, "demo")["saved"], false);
    assert_eq!(provider.refresh_count(), 1);

    // The record's place is free again: the save is retried by itself,
    // with the tokens already had, not with another refresh.
    std::fs::remove_dir_all(store.record("demo")).unwrap();
    daemon.wait_for_log_within(Duration::from_secs(120), 1, &["event=\"store_recovered\""]);
    let saved = status(&daemon, "demo");
    assert_eq!(saved["saved"], true, "{saved}");
    assert!(saved["last_error"].is_null(), "{saved}");
    assert_eq!(provider.refresh_count(), 1, "{}", daemon.log());
    assert_eq!(token(&daemon, "demo", &["--min-valid", "3700"]), refreshed);

    // A crash now: the record holds the current refresh token (the
    // emulator flags the use of a rotated one).
    daemon.kill();
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "3700"]), refreshed);
    provider.set_access_token_lifetime(Duration::from_secs(14_400));
    token(&daemon, "demo", &["--min-valid", "7300"]);
    assert_eq!(provider.refresh_count(), 2);
    provider.assert_no_violations();
}

/// A logout whose record cannot be deleted, and whose note for the next
/// start cannot be written either (the state directory takes no writes:
/// a file system remounted read-only, for which a reboot is the usual
/// mend), says that a restart before the store works restores the
/// session, as it does. (It said the record "is deleted when the store
/// works again": someone who logged out to cut access got the session
/// back, serving tokens, after the reboot.)
#[test]
fn a_logout_neither_deleted_nor_noted_says_a_restart_restores_it() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let mut daemon = start(&provider, &store);
    login(&daemon, "demo", approve(&provider));
    store.break_records();
    // The journal's place is taken (as root, permission bits would not
    // stop the daemon): its note cannot be written.
    let journal = store.state_dir().join("pending-logouts");
    let _ = std::fs::remove_file(&journal);
    std::fs::create_dir(&journal).unwrap();
    std::fs::write(journal.join("in-the-way"), b"x").unwrap();
    let out = daemon.tokenctl(&["logout", "demo"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "nor could the logout be noted for the next start: a restart before the store \
             works again restores the session"
        ),
        "{}",
        stderr(&out)
    );
    // As it says.
    assert!(daemon.stop().success());
    store.mend_records();
    std::fs::remove_dir_all(&journal).unwrap();
    daemon.restart();
    assert_eq!(status(&daemon, "demo")["state"], "active");
}

/// A records' directory of tokend's own user whose mode no longer lets
/// its owner write (`chmod 500`, a restore that kept modes): the outage
/// says to give the owner write permission. It said "chown it to that
/// user", which changes nothing: the directory is that user's already.
#[test]
fn a_directory_its_owner_may_not_write_is_to_be_given_write_permission() {
    use std::os::unix::fs::PermissionsExt as _;
    use support::other_uid::{NOBODY, can_switch_uid};
    if !can_switch_uid() {
        support::skip::say(format_args!(
            "SKIPPED a_directory_its_owner_may_not_write_is_to_be_given_write_permission: needs \
             root to run tokend as nobody"
        ));
        return;
    }
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let config = provider.config("demo");
    let seeded = store.seed(&provider, &config, |_| Duration::from_secs(4 * 3600));
    // Everything the daemon's user's, as systemd makes it for `User=`;
    // the test's directory above is root's.
    std::fs::set_permissions(store.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let credentials = store.key_path().parent().unwrap().to_owned();
    let nobody = Some(rustix::fs::Uid::from_raw(NOBODY));
    let group = Some(rustix::fs::Gid::from_raw(NOBODY));
    for path in support::file_store::walk(&store.state_dir())
        .into_iter()
        .chain([
            store.state_dir(),
            store.sessions_dir(),
            credentials,
            store.key_path(),
        ])
    {
        rustix::fs::chown(&path, nobody, group).unwrap();
    }
    std::fs::set_permissions(store.sessions_dir(), std::fs::Permissions::from_mode(0o500)).unwrap();
    let options = support::daemon::DaemonOptions {
        uid: Some(NOBODY),
        ..store.options()
    };
    let daemon = Daemon::start_with(&config, options);
    let down = daemon.wait_for_log(1, &["event=\"store_unavailable\""]);
    assert!(
        down[0].contains(&format!(
            "does not let its owner write: chmod u+w {}",
            store.sessions_dir().display()
        )) && !down[0].contains("chown"),
        "{down:?}"
    );
    // Its sessions are read and served meanwhile.
    let owner = ["--socket-owner", "nobody", "--min-valid", "0"];
    assert_eq!(token(&daemon, "demo", &owner), seeded[0].access_token);
}
