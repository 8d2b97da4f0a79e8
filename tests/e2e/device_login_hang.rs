//! A provider that stops answering polls as the device code dies: the
//! login's end does not wait on it. `tokenctl login` waits a minute past
//! the code's expiry for tokend's verdict; a poll sent just before the
//! expiry was waited for up to `http_timeout` (which may be minutes), so
//! the person was told only that tokenctl did not know how the login ended.
//! And a poll answered too late (its tokens lost, the code spent on them):
//! the login's end names it.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, DaemonOptions, LoginRun};
use support::provider::Provider;
use tokend_emulator::{Endpoint, Fault, Rfc8628Options};

#[test]
fn a_poll_with_no_answer_ends_the_login_soon_after_the_code_expires() {
    let provider = Provider::start(Rfc8628Options {
        device_code_lifetime: Duration::from_secs(3),
        ..support::provider::fast()
    });
    // Every poll hangs, and tokend would wait two minutes for each.
    provider.inject(Endpoint::Token, Fault::Hang, 100);
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            daemon_keys: "http_timeout = 120\n".into(),
            ..DaemonOptions::default()
        },
    );
    let (done, err, code) = LoginRun::start(&daemon.socket, "demo").finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    // tokend's verdict, not tokenctl's "did not learn how it ended".
    assert_eq!(done["error"]["code"], "login_failed", "{done}");
    assert!(
        err.contains("expired before it was approved (the last poll had no answer 15 s after the code expired)"),
        "{err}"
    );
}

/// A login whose first request, for the code, the provider has not
/// answered yet is pending all the same: `tokenctl login` said the login
/// goes on in tokend, and `status` said there was none (`logged_out`), so
/// did `status --check` ("needs a login").
#[test]
fn a_login_asking_for_its_code_is_pending() {
    let provider = Provider::start(support::provider::fast());
    provider.inject(Endpoint::DeviceAuthorization, Fault::Hang, 1);
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            daemon_keys: "http_timeout = 60\n".into(),
            ..DaemonOptions::default()
        },
    );
    let out = daemon.tokenctl(&["--timeout", "2", "login", "demo"]);
    assert!(!out.status.success());
    provider.wait_for_count(1, |r| r.endpoint == Endpoint::DeviceAuthorization);
    let status: serde_json::Value = serde_json::from_str(&support::daemon::stdout(
        &daemon.tokenctl(&["--json", "status", "demo"]),
    ))
    .unwrap();
    assert_eq!(status[0]["state"], "login_pending", "{status}");
    assert!(status[0]["login"].is_null(), "{status}");
    let check = daemon.tokenctl(&["status", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(
        support::daemon::stdout(&check).trim(),
        "demo: a login is pending: it asks the provider for its code, or waits for approval by \
         someone who manages the provider"
    );
    assert!(
        daemon
            .tokenctl(&["login", "demo", "--cancel"])
            .status
            .success()
    );
}

/// An approved login whose poll the provider answered with tokens too
/// late (after `http_timeout`): the provider has spent the device code on
/// them, and the next poll is refused (`invalid_grant`). The login's end
/// names the poll that got no answer in time as the likely cause; it
/// blamed the provider's refusal alone, which reads as though the person
/// had done something wrong.
#[test]
fn a_refused_code_after_a_poll_with_no_answer_names_that_poll() {
    let provider = Provider::start(support::provider::fast());
    provider.inject(
        Endpoint::Token,
        // Far past the 2 s timeout, so that a stalled daemon still gives up
        // first (the code is spent when the poll arrives).
        Fault::LateSuccess(Duration::from_secs(10)),
        1,
    );
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            daemon_keys: "http_timeout = 2\n".into(),
            ..DaemonOptions::default()
        },
    );
    let run = LoginRun::start(&daemon.socket, "demo");
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        provider
            .requests()
            .iter()
            .any(|r| r.is_poll() && r.outcome.contains("fault:late_success")),
        "the approved poll was answered late"
    );
    assert!(
        err.contains("a poll got no answer in time (sent the request to")
            && err.contains("no complete answer within 2 s")
            && err.contains("the provider may have spent the device code on tokens lost with that answer; after it, the login failed"),
        "{err}"
    );
}
