//! Sessions in a real Secret Service: the real `tokend` against a private
//! `dbus-daemon` and a real `gnome-keyring-daemon`, checked with
//! `secret-tool`. Restarts, the item's attributes, no token outside the
//! keyring, a locked keyring and a missing Secret Service (clear errors, the
//! daemon carries on from memory, and recovers without a restart), logout
//! and `--prune`.

use crate::support;

use std::process::{Output, Stdio};
use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, stderr, stdout, token};
use support::file_store::assert_no_secret_in_files;
use support::flows::assert_a_crash_keeps_the_current_refresh_token;
use support::keyring::TestKeyring;
use support::provider::{Provider, fast};
use tokend_emulator::Rfc8628Options;

fn options(bus: &PrivateBus) -> DaemonOptions {
    DaemonOptions::with_keyring_on(bus)
}

fn status(daemon: &Daemon, name: &str) -> serde_json::Value {
    let out = daemon.tokenctl(&["--json", "status", name]);
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
    all[0].clone()
}

fn secret_tool(bus: &PrivateBus, args: &[&str]) -> Output {
    bus.command("secret-tool")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run secret-tool (install libsecret-tools)")
}

/// `secret-tool search --all service tokend`: item labels, and every
/// `schema = ...` and `attribute.KEY = VALUE` line (secret-tool prints the
/// attributes on stderr).
fn tokend_items(bus: &PrivateBus) -> (Vec<String>, Vec<String>) {
    let out = secret_tool(bus, &["search", "--all", "service", "tokend"]);
    let labels = stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("label = "))
        .map(str::to_owned)
        .collect();
    let attributes = stdout(&out)
        .lines()
        .chain(stderr(&out).lines())
        .filter(|l| l.starts_with("attribute.") || l.starts_with("schema = "))
        .map(str::to_owned)
        .collect();
    (labels, attributes)
}

fn approve(provider: &Provider) -> impl FnOnce(&str) + '_ {
    |code| {
        provider.approve(code).unwrap();
    }
}

#[test]
fn sessions_survive_a_restart_and_no_token_is_outside_the_keyring() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "sessions_survive_a_restart") else {
        return;
    };
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start_with(&provider.config("demo"), options(&bus));
    let first = login(&daemon, "demo", approve(&provider));

    let (labels, attributes) = tokend_items(&bus);
    assert_eq!(labels, ["tokend: demo refresh token"]);
    for expected in [
        "attribute.service = tokend",
        "attribute.username = demo",
        "attribute.tokend-provider = demo",
        "schema = org.tokend.Session",
    ] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected} missing: {attributes:?}"
        );
    }

    // A clean exit, too: the keyring connection is closed without a panic.
    assert!(daemon.stop().success(), "{}", daemon.log());
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);
    assert_eq!(provider.refresh_count(), 0);
    assert_eq!(provider.device_codes().len(), 1, "no second login");
    // A refresh after the restart presents the stored refresh token.
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    let second = token(&daemon, "demo", &["--min-valid", "3700"]);
    provider.assert_no_violations();

    let mut secrets = provider.secrets_sent();
    secrets.extend([first, second]);
    assert!(secrets.len() >= 3);
    // The daemon's directory (config, socket, log) and gnome-keyring's
    // (its keyring file is encrypted) hold no token in the clear.
    assert_no_secret_in_files(&[daemon.dir.path(), keyring.root()], &secrets);
    let log = daemon.log();
    assert!(secrets.iter().all(|s| !log.contains(s.as_str())));
}

#[test]
fn a_locked_keyring_at_start_is_a_clear_error_and_unlocking_restores() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "a_locked_keyring_at_start") else {
        return;
    };
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start_with(&provider.config("demo"), options(&bus));
    let first = login(&daemon, "demo", approve(&provider));
    daemon.stop();

    keyring.lock_default_collection();
    daemon.restart();
    let locked = status(&daemon, "demo");
    assert_eq!(locked["state"], "logged_out", "{locked}");
    // The store's problem is said once, for the store, not as the session's.
    assert!(locked["last_error"].is_null(), "{locked}");
    let out = daemon.tokenctl(&["status", "demo"]);
    assert!(
        stdout(&out).contains("\nstore: unavailable since ")
            && stdout(&out).contains("unlock your keyring (retrying)"),
        "{}",
        stdout(&out)
    );
    assert!(daemon.log().contains("store locked: unlock your keyring"));
    // A caller is told why, not sent to log in again.
    let out = daemon.tokenctl(&["token", "demo", "--min-valid", "0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unlock your keyring"),
        "{}",
        stderr(&out)
    );

    // Unlocked later: the store's retry loop restores the session, no
    // restart, as soon as the Secret Service announces the unlock.
    keyring.unlock_default_collection();
    daemon.wait_for_log(1, &["event=\"restored\""]);
    let back = daemon.wait_for_log(1, &["event=\"store_available\""]);
    assert_eq!(back.len(), 1);
    assert!(back[0].contains("noticed=\"store_change\""), "{back:?}");
    assert_eq!(status(&daemon, "demo")["state"], "active");
    let saved = status(&daemon, "demo");
    assert!(saved["last_error"].is_null(), "{saved}");
    assert_eq!(saved["saved"], true, "{saved}");
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);

    // And a token request right after an unlock restores it at once.
    daemon.stop();
    keyring.lock_default_collection();
    daemon.restart();
    keyring.unlock_default_collection();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);
    assert_eq!(provider.refresh_count(), 0);
    assert_eq!(provider.device_codes().len(), 1);
}

#[test]
fn a_keyring_locked_mid_run_loses_no_session() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "a_keyring_locked_mid_run") else {
        return;
    };
    let provider = Provider::start(Rfc8628Options {
        access_token_lifetime: Duration::from_secs(3),
        ..fast()
    });
    let mut daemon = Daemon::start_with(&provider.config("demo"), options(&bus));
    login(&daemon, "demo", approve(&provider));

    keyring.lock_default_collection();
    let failed = ["event=\"refresh_saved\"", "ok=false"];
    let count = daemon.wait_for_log(1, &failed).len();
    let locked = status(&daemon, "demo");
    assert_eq!(locked["state"], "active", "{locked}");
    assert!(
        locked["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unlock your keyring")),
        "{locked}"
    );
    // Status says the session is not saved, and why.
    assert_eq!(locked["saved"], false, "{locked}");
    let text = daemon.tokenctl(&["status", "demo"]);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("not saved: the newest refresh token is only in memory"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    // Refreshes go on, and tokens are served from memory.
    daemon.wait_for_log(count + 1, &failed);
    token(&daemon, "demo", &["--min-valid", "0"]);

    let saved = ["event=\"refresh_saved\"", "ok=true"];
    let saved_before = daemon.wait_for_log(0, &saved).len();
    keyring.unlock_default_collection();
    daemon.wait_for_log(saved_before + 1, &saved);
    let saved = status(&daemon, "demo");
    assert!(saved["last_error"].is_null(), "{saved}");
    assert_eq!(saved["saved"], true, "{saved}");

    // A crash now: the keyring holds the current refresh token.
    assert_a_crash_keeps_the_current_refresh_token(&mut daemon, &provider, "demo");
}

/// A logout while the keyring is locked cannot delete the item; a stop
/// before the unlock used to bring the session back at the next start. The
/// logout is noted in the daemon's state directory, and the next start,
/// once the keyring is unlocked, deletes the item instead of restoring it.
#[test]
fn a_logout_while_locked_stays_done_across_a_restart() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "a_logout_while_locked_stays_done") else {
        return;
    };
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start_with(&provider.config("demo"), options(&bus));
    login(&daemon, "demo", approve(&provider));
    keyring.lock_default_collection();
    let out = daemon.tokenctl(&["logout", "demo"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("logged out in tokend, but its record could not be deleted"),
        "{}",
        stderr(&out)
    );
    daemon.stop();
    daemon.wait_for_log(1, &["event=\"logout_pending_at_stop\"", "provider=demo"]);
    let journal = daemon
        .dir
        .path()
        .join("state/pending-logouts-secret-service");
    assert!(
        journal.exists(),
        "the logout is noted in the state directory"
    );
    assert_no_secret_in_files(&[daemon.dir.path()], &provider.secrets_sent());

    keyring.unlock_default_collection();
    assert_eq!(tokend_items(&bus).0.len(), 1, "the item is still there");
    daemon.restart();
    daemon.wait_for_log(1, &["event=\"logout_completed\"", "provider=demo"]);
    assert!(tokend_items(&bus).0.is_empty(), "the item was not deleted");
    assert_eq!(status(&daemon, "demo")["state"], "logged_out");
    assert!(!journal.exists(), "nothing left pending");
}

#[test]
fn a_missing_secret_service_is_a_clear_error_and_a_late_one_is_used() {
    let bus = PrivateBus::start();
    if !TestKeyring::is_installed() {
        let _ = TestKeyring::start_or_skip(&bus, "a_missing_secret_service");
        return;
    }
    let provider = Provider::start(Rfc8628Options {
        access_token_lifetime: Duration::from_secs(3),
        ..fast()
    });
    // A bus with no Secret Service on it.
    let mut daemon = Daemon::start_with(&provider.config("demo"), options(&bus));
    assert!(
        daemon
            .log()
            .contains("no Secret Service on the session bus"),
        "{}",
        daemon.log()
    );
    // The daemon works from memory: login, tokens, refreshes. The login
    // says it is not saved (exit 9).
    let run = crate::support::login_run::LoginRun::start(&daemon.socket, "demo");
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 9, "{done} {err}");
    assert!(
        done["unsaved"]
            .as_str()
            .is_some_and(|why| why.contains("no Secret Service on the session bus")),
        "{done}"
    );
    let unsaved = status(&daemon, "demo");
    assert!(
        unsaved["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Secret Service is unavailable")),
        "{unsaved}"
    );
    daemon.wait_for_log(1, &["event=\"refresh_saved\"", "ok=false"]);
    token(&daemon, "demo", &["--min-valid", "0"]);

    // The keyring starts later: the next save reaches it.
    let _keyring = TestKeyring::start(&bus);
    daemon.wait_for_log(1, &["event=\"refresh_saved\"", "ok=true"]);
    assert_eq!(tokend_items(&bus).0, ["tokend: demo refresh token"]);
    // One outage, said once each way, however many saves failed in it;
    // its end noticed when the keyring daemon took its name on the bus
    // (the retry loop's own probe is up to a minute away by now).
    let back = daemon.wait_for_log(1, &["event=\"store_available\""]);
    assert!(back[0].contains("noticed=\"store_change\""), "{back:?}");
    for event in ["event=\"store_unavailable\"", "event=\"store_available\""] {
        assert_eq!(daemon.wait_for_log(1, &[event]).len(), 1, "{event}");
    }
    assert_a_crash_keeps_the_current_refresh_token(&mut daemon, &provider, "demo");
}

#[test]
fn logout_deletes_the_item_and_prune_removes_unconfigured_providers() {
    let bus = PrivateBus::start();
    let Some(_keyring) = TestKeyring::start_or_skip(&bus, "logout_deletes_the_item") else {
        return;
    };
    let provider = Provider::rfc8628();
    let both = format!("{}{}", provider.config("alpha"), provider.config("beta"));
    let mut daemon = Daemon::start_with(&both, options(&bus));
    login(&daemon, "alpha", approve(&provider));
    login(&daemon, "beta", approve(&provider));
    let mut labels = tokend_items(&bus).0;
    labels.sort();
    assert_eq!(
        labels,
        ["tokend: alpha refresh token", "tokend: beta refresh token"]
    );
    let out = daemon.tokenctl(&["logout", "alpha"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tokend_items(&bus).0, ["tokend: beta refresh token"]);
    assert!(
        secret_tool(&bus, &["lookup", "service", "tokend", "username", "alpha"])
            .stdout
            .is_empty()
    );
    login(&daemon, "alpha", approve(&provider));

    // alpha leaves the config: its item stays until pruned.
    daemon.stop();
    daemon.write_config(&provider.config("beta"));
    daemon.restart();
    assert_eq!(tokend_items(&bus).0.len(), 2);
    let out = daemon.tokend(&["--prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "removed the stored session of `alpha` (not in the config) from the Secret Service\n"
    );
    assert_eq!(tokend_items(&bus).0, ["tokend: beta refresh token"]);
    token(&daemon, "beta", &["--min-valid", "0"]);
}
