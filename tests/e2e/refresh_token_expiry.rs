//! A refresh token that expires (the provider says when, as GitHub does
//! with `refresh_token_expires_in`): status shows when a new login is
//! needed, and the daemon warns once when that is within the warning time
//! and refreshing does not move it; an expiry that each refresh slides
//! (Keycloak's idle timeout) is refreshed ahead of, and not warned about.

use crate::support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, stdout};
use support::provider::Provider;
use tokend_emulator::{Rfc8628Options, Rfc8628Quirks};

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The provider object's `LoginNeededBy` property, read with busctl.
fn login_needed_by_on_the_bus(bus: &PrivateBus, name: &str) -> i64 {
    let out = bus
        .command("busctl")
        .arg(format!("--address={}", bus.address()))
        .args([
            "get-property",
            "org.tokend.Broker1",
            &format!("/org/tokend/Broker1/providers/{name}"),
            "org.tokend.Provider1",
            "LoginNeededBy",
        ])
        .output()
        .expect("run busctl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("x ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text} {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn status_shows_when_a_login_is_needed_and_the_daemon_warns_once() {
    let two_days = Duration::from_secs(2 * 24 * 3600);
    // A refresh token kept by refreshes: its expiry stays where it is,
    // which the first refresh (of 3 s access tokens) shows.
    let provider = Provider::start(Rfc8628Options {
        interval: Duration::from_secs(1),
        access_token_lifetime: Duration::from_secs(3),
        refresh_token_lifetime: Some(two_days),
        rotate_refresh_tokens: false,
        ..Rfc8628Options::default()
    });
    // The quiet provider is another emulator, whose refresh tokens do not
    // expire; warnings come within 7 days (the default) of the expiry.
    let other = Provider::rfc8628();
    let bus = PrivateBus::start();
    let daemon = Daemon::start_with(
        &format!("{}{}", provider.config("short"), other.config("quiet")),
        DaemonOptions::on_session_bus(&bus),
    );
    let before = unix_now();
    login(&daemon, "short", |code| {
        provider.approve(code).unwrap();
    });
    // Two days is within the warning time: one warning, at the first
    // refresh.
    let warned = daemon.wait_for_log(1, &["provider=short", "event=\"refresh_token_expiring\""]);
    assert!(warned[0].contains("tokenctl login short"), "{warned:?}");

    let out = daemon.tokenctl(&["--json", "status", "short"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let by = status[0]["login_needed_by"]
        .as_i64()
        .expect("login_needed_by");
    let expected = before + i64::try_from(two_days.as_secs()).unwrap();
    assert!(
        (expected - 5..=expected + 60).contains(&by),
        "{by} vs {expected}"
    );
    let text = stdout(&daemon.tokenctl(&["status"]));
    assert!(text.contains("login needed by"), "{text}");
    // D-Bus says the same (a desktop client's "log in again by").
    assert_eq!(login_needed_by_on_the_bus(&bus, "short"), by);
    // A provider that says nothing about its refresh tokens shows nothing.
    assert!(status[0]["name"] == "short");
    login(&daemon, "quiet", |code| {
        other.approve(code).unwrap();
    });
    let quiet = stdout(&daemon.tokenctl(&["--json", "status", "quiet"]));
    let quiet: serde_json::Value = serde_json::from_str(&quiet).unwrap();
    assert_eq!(quiet[0]["state"], "active", "{quiet}");
    assert!(
        quiet[0]
            .get("login_needed_by")
            .is_some_and(serde_json::Value::is_null),
        "present, and null: {quiet}"
    );
    assert_eq!(login_needed_by_on_the_bus(&bus, "quiet"), 0);

    // Said once, not at every refresh, wake-up or status.
    let refreshes = provider.refresh_count();
    provider.wait_for_count(refreshes + 2, |r| {
        r.is_refresh() && r.outcome == "refreshed"
    });
    let all = daemon.wait_for_log(1, &["event=\"refresh_token_expiring\""]);
    assert_eq!(all.len(), 1, "{all:?}");
}

#[test]
fn a_refresh_token_that_expires_before_the_access_token_is_refreshed_in_time() {
    refreshed_before_the_refresh_token_dies(Rfc8628Quirks::default());
}

/// The same with the lifetime named as Keycloak names it
/// (`refresh_expires_in`: a realm's SSO session idle time shorter than
/// its access tokens' lifetime).
#[test]
fn keycloaks_refresh_expires_in_is_refreshed_in_time_too() {
    refreshed_before_the_refresh_token_dies(Rfc8628Quirks {
        refresh_expires_in: true,
        ..Rfc8628Quirks::default()
    });
}

fn refreshed_before_the_refresh_token_dies(quirks: Rfc8628Quirks) {
    // Access tokens of an hour, refresh tokens of 8 s, rotated: without a
    // refresh before the refresh token's expiry, the session would end at
    // the first refresh an hour later (the emulator refuses an expired
    // refresh token with invalid_grant).
    let provider = Provider::start(Rfc8628Options {
        interval: Duration::from_secs(1),
        access_token_lifetime: Duration::from_secs(3600),
        refresh_token_lifetime: Some(Duration::from_secs(8)),
        quirks,
        ..Rfc8628Options::default()
    });
    let daemon = Daemon::start(&provider.config("idle"));
    login(&daemon, "idle", |code| {
        provider.approve(code).unwrap();
    });
    // Three refreshes in a row, each with the refresh token before it died.
    provider.wait_for_count(3, |r| r.is_refresh() && r.outcome == "refreshed");
    provider.assert_no_violations();
    let out = daemon.tokenctl(&["--json", "status", "idle"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status[0]["state"], "active", "{status}");
    assert!(
        !provider
            .requests()
            .iter()
            .any(|r| r.is_refresh() && r.outcome != "refreshed"),
        "{:?}",
        provider.requests()
    );
    // Each refresh slid the expiry: no login is needed, and nothing said
    // one was (it came at every refresh, with a hook run and a desktop
    // notification each time).
    assert!(
        !daemon.log().contains("refresh_token_expiring"),
        "{}",
        daemon.log()
    );
}
