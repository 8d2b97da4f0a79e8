//! A reload that waits for a replaced session's refresh (it must finish
//! before the new session takes the tokens over) publishes the providers
//! it adds only then; a request for such a provider meanwhile waits for
//! the reload instead of being told the provider is not configured.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, login, spawn_tokenctl, stderr, stdout};
use support::provider::Provider;
use tokend_emulator::{Endpoint, Fault};

#[test]
fn a_provider_a_reload_adds_is_known_while_the_reload_waits_for_a_refresh() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    // A refresh the provider answers only after 4 s, under way.
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    provider.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(4)), 1);
    let refreshing = spawn_tokenctl(&daemon.socket, &["token", "demo", "--min-valid", "3700"]);
    daemon.wait_for_log(1, &["refresh_sent"]);
    // demo's table changes (the reload waits for its refresh) and `new`
    // is added.
    daemon.write_config(&format!(
        "{}scopes = [\"more\"]\n{}",
        provider.config("demo"),
        provider.config("new")
    ));
    support::process::signal(daemon.pid(), rustix::process::Signal::HUP);
    daemon.wait_for_log(1, &["reload_applying"]);
    let out = daemon.tokenctl(&["--json", "login", "new", "--no-wait"]);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("user_code"), "{}", stdout(&out));
    let refreshed = refreshing.wait_with_output().unwrap();
    assert!(refreshed.status.success(), "{}", stderr(&refreshed));
}

/// A reload that rebuilds providers whose refreshes wait for their
/// endpoint's permit (the one permit held by a refresh the provider does
/// not answer) waits only for the refresh out, not for each queued one in
/// turn: those give up, unsent, and the new sessions refresh. Behind a
/// provider that hung, a reload of a hundred sessions took 11 minutes,
/// the added and rebuilt providers unusable meanwhile.
#[test]
fn a_reload_does_not_wait_for_refreshes_queued_behind_a_hung_one() {
    let provider = Provider::rfc8628();
    let names = ["one", "two", "three"];
    let config = |extra: &str| -> String {
        names
            .iter()
            .map(|name| provider.config_with(name, extra))
            .collect()
    };
    let daemon = Daemon::start_with(
        &config(""),
        support::daemon::DaemonOptions {
            daemon_keys: "max_concurrent_refreshes = 1\nhttp_timeout = 5\n".into(),
            ..support::daemon::DaemonOptions::default()
        },
    );
    for name in names {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    provider.inject(Endpoint::Token, Fault::Hang, 1);
    let clients: Vec<_> = names
        .iter()
        .map(|name| spawn_tokenctl(&daemon.socket, &["token", name, "--min-valid", "3700"]))
        .collect();
    // One refresh hangs at the provider, holding the permit; the other two
    // wait for it.
    provider.wait_for_count(1, |r| r.outcome == "fault:hang");
    daemon.wait_for_log(3, &["event=\"refresh_on_demand\""]);
    daemon.write_config(&config("scopes = [\"more\"]\n"));
    support::process::signal(daemon.pid(), rustix::process::Signal::HUP);
    daemon.wait_for_log(1, &["config reloaded"]);
    let abandoned = daemon.wait_for_log(2, &["refresh not sent: a reload retired the session"]);
    assert_eq!(abandoned.len(), 2, "{abandoned:?}");
    // The two queued ones (whichever they are) get their token from the
    // new sessions, which refresh: the abandoned refreshes' stamps are not
    // theirs (they said "ask for less" of tokens known to live an hour).
    let failed: Vec<String> = clients
        .into_iter()
        .map(|client| client.wait_with_output().unwrap())
        .filter(|out| !out.status.success())
        .map(|out| stderr(&out))
        .collect();
    assert!(failed.len() <= 1, "{failed:?}");
    // Only the hung refresh was sent by a retired session: the queued ones
    // never reached the provider.
    assert_eq!(
        provider
            .requests()
            .iter()
            .filter(|r| r.outcome == "fault:hang")
            .count(),
        1
    );
}

/// A token request waiting for its provider's refresh (queued behind a
/// hung one) when a reload removes that provider is told so, with the
/// exit status of an unknown provider (7): it was "no provider named
/// `two` is configured", which read as the caller's typo.
#[test]
fn a_request_waiting_when_a_reload_removes_its_provider_is_told_so() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &format!("{}{}", provider.config("one"), provider.config("two")),
        support::daemon::DaemonOptions {
            daemon_keys: "max_concurrent_refreshes = 1\nhttp_timeout = 5\n".into(),
            ..support::daemon::DaemonOptions::default()
        },
    );
    for name in ["one", "two"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    provider.inject(Endpoint::Token, Fault::Hang, 1);
    let mut one = spawn_tokenctl(&daemon.socket, &["token", "one", "--min-valid", "3700"]);
    provider.wait_for_count(1, |r| r.outcome == "fault:hang");
    let two = spawn_tokenctl(&daemon.socket, &["token", "two", "--min-valid", "3700"]);
    daemon.wait_for_log(2, &["event=\"refresh_on_demand\""]);
    daemon.write_config(&provider.config("one"));
    support::process::signal(daemon.pid(), rustix::process::Signal::HUP);
    let out = two.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "provider `two`: a reload removed it from the config while this request waited for it"
        ),
        "{}",
        stderr(&out)
    );
    let _ = one.kill();
    let _ = one.wait();
}
