//! A stored session that cannot be read at start for a reason of its own
//! (a record file given to root, another program's keyring item with
//! tokend's attributes) is not "logged out": status says `unreadable` and
//! why, `tokenctl token` fails with the store's exit status and that
//! reason, not "login required — run tokenctl login" (which a script would
//! follow, replacing a good session and its working refresh token), and
//! once the cause is mended the session comes back by itself, at the
//! store's change notice: no restart, no new login. Before, it stayed
//! logged out until a restart.

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;
use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, stderr, stdout, token};
use support::file_store::{FileStore, walk};
use support::keyring::TestKeyring;
use support::other_uid::{NOBODY, can_switch_uid};
use support::provider::Provider;

/// `tokenctl`'s exit status when tokend's store cannot give the session.
const STORE_EXIT: i32 = 9;

/// The log line of a session read again and restored.
const RESTORED: &[&str] = &["event=\"restored\"", "provider=demo"];

/// The daemon's line once it watches the store for the change that mends
/// an unreadable record (the record read once more since it began).
const WATCHING: &[&str] = &["watching the store for a change to a stored session"];

/// `demo`'s status, asked with `owner`'s options (`--socket-owner` for a
/// daemon of another user).
fn status_as(daemon: &Daemon, owner: &[&str]) -> serde_json::Value {
    let out = daemon.tokenctl(&[owner, &["--json", "status", "demo"]].concat());
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
    all[0].clone()
}

fn approve(provider: &Provider) -> impl FnOnce(&str) + '_ {
    |code| {
        provider.approve(code).unwrap();
    }
}

fn status(daemon: &Daemon) -> serde_json::Value {
    status_as(daemon, &[])
}

/// Says how the session shows while its record cannot be read: status
/// `unreadable` with `reason` in its last error (and in `--check`), and a
/// token request refused with the store's exit status and that reason.
fn assert_unreadable(daemon: &Daemon, owner: &[&str], reason: &str) {
    let shown = status_as(daemon, owner);
    assert_eq!(shown["state"], "unreadable", "{shown}");
    let error = shown["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(reason), "{shown}");
    let check = daemon.tokenctl(&[owner, &["status", "--check", "demo"]].concat());
    assert!(
        stdout(&check).contains("demo: its stored session cannot be read")
            && !stdout(&check).contains("needs a login"),
        "{}",
        stdout(&check)
    );
    let out = daemon.tokenctl(&[owner, &["token", "demo", "--min-valid", "0"]].concat());
    assert_eq!(out.status.code(), Some(STORE_EXIT), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains(reason), "{said}");
    assert!(
        !said.contains("login required") && !said.contains("tokenctl login"),
        "{said}"
    );
}

fn chown(path: &std::path::Path, uid: u32) {
    let id = Some(rustix::fs::Uid::from_raw(uid));
    let gid = Some(rustix::fs::Gid::from_raw(uid));
    rustix::fs::chown(path, id, gid)
        .unwrap_or_else(|e| panic!("chown {uid} {}: {e}", path.display()));
}

/// The encrypted file store of a daemon run as `nobody`: its record file
/// given to root (a restore from a backup as root) cannot be read;
/// given back, the daemon sees the change (inotify) and reads it again.
#[test]
fn a_record_file_given_back_to_tokends_user_brings_the_session_back() {
    if !can_switch_uid() {
        support::skip::say(format_args!(
            "SKIPPED a_record_file_given_back_to_tokends_user_brings_the_session_back: needs \
             root to run tokend as nobody and give its record to root"
        ));
        return;
    }
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let config = provider.config("demo");
    let seeded = store.seed(&provider, &config, |_| Duration::from_secs(4 * 3600));
    // The state directory, its records and the key are the daemon's
    // user's, as systemd makes them for `User=tokend`; the test's
    // directory above is root's. The record itself is given to root.
    std::fs::set_permissions(store.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let credentials = store.key_path().parent().unwrap().to_owned();
    for path in walk(&store.state_dir())
        .into_iter()
        .chain([store.state_dir(), store.sessions_dir(), credentials])
        .chain([store.key_path()])
    {
        chown(&path, NOBODY);
    }
    chown(&store.record("demo"), 0);
    let options = DaemonOptions {
        uid: Some(NOBODY),
        ..store.options()
    };
    let daemon = Daemon::start_with(&config, options);
    let owner = ["--socket-owner", "nobody"];
    assert_unreadable(&daemon, &owner, "Permission denied");
    let pid = daemon.pid();
    let before = daemon.log().matches("event=\"restored\"").count();

    daemon.wait_for_log(1, WATCHING);
    chown(&store.record("demo"), NOBODY);
    daemon.wait_for_log(before + 1, RESTORED);
    assert_eq!(daemon.pid(), pid, "no restart");
    let back = status_as(&daemon, &owner);
    assert_eq!(back["state"], "active", "{back}");
    assert!(back["last_error"].is_null(), "{back}");
    let args = [&owner[..], &["--min-valid", "0"]].concat();
    assert_eq!(token(&daemon, "demo", &args), seeded[0].access_token);
    assert_eq!(provider.refresh_count(), 0);
}

/// The Secret Service: another program's item with tokend's attributes
/// (`service=tokend username=demo`) makes two items match the record;
/// deleted, the keyring's signal has the daemon read it again.
#[test]
fn another_programs_keyring_item_deleted_brings_the_session_back() {
    let bus = PrivateBus::start();
    let Some(_keyring) = TestKeyring::start_or_skip(
        &bus,
        "another_programs_keyring_item_deleted_brings_the_session_back",
    ) else {
        return;
    };
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions::with_keyring_on(&bus),
    );
    let first = login(&daemon, "demo", approve(&provider));
    daemon.stop();

    // Its extra attribute keeps gnome-keyring from replacing tokend's item.
    let foreign = [
        "service",
        "tokend",
        "username",
        "demo",
        "origin",
        "other-app",
    ];
    let mut store = bus
        .command("secret-tool")
        .args(["store", "--label=other app"])
        .args(foreign)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run secret-tool (install libsecret-tools)");
    {
        use std::io::Write as _;
        let mut stdin = store.stdin.take().expect("piped stdin");
        stdin.write_all(b"not tokend's").unwrap();
    }
    assert!(store.wait().unwrap().success());
    daemon.restart();
    assert_unreadable(&daemon, &[], "2 keyring items match it");
    let pid = daemon.pid();
    let before = daemon.log().matches("event=\"restored\"").count();

    daemon.wait_for_log(1, WATCHING);
    let cleared = bus
        .command("secret-tool")
        .arg("clear")
        .args(foreign)
        .status()
        .expect("run secret-tool");
    assert!(cleared.success());
    daemon.wait_for_log(before + 1, RESTORED);
    assert_eq!(daemon.pid(), pid, "no restart");
    let back = status(&daemon);
    assert_eq!(back["state"], "active", "{back}");
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);
    assert_eq!(provider.device_codes().len(), 1, "no second login");
    assert_eq!(provider.refresh_count(), 0);
}

/// A person may decide to log in anew over a record that cannot be read
/// (here a damaged one): the login works, and its record replaces the
/// damaged one. A logout of such a session deletes its record.
#[test]
fn a_login_over_an_unreadable_record_replaces_it_and_a_logout_deletes_it() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let mut daemon = Daemon::start_with(&provider.config("demo"), store.options());
    login(&daemon, "demo", approve(&provider));
    daemon.stop();
    let record = store.record("demo");
    std::fs::write(&record, b"damaged").unwrap();
    daemon.restart();
    assert_unreadable(&daemon, &[], "tokenctl logout demo");

    let second = login(&daemon, "demo", approve(&provider));
    assert_eq!(status(&daemon)["state"], "active");
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), second);
    let saved = store.load("demo").expect("the login's record");
    assert!(saved.refresh_token.is_some());

    daemon.stop();
    std::fs::write(&record, b"damaged").unwrap();
    daemon.restart();
    assert_eq!(status(&daemon)["state"], "unreadable");
    let out = daemon.tokenctl(&["--json", "logout", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"had_tokens\":true"),
        "{}",
        stdout(&out)
    );
    assert_eq!(store.files(), Vec::<String>::new());
    assert_eq!(status(&daemon)["state"], "logged_out");
}
