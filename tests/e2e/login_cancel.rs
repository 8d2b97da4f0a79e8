//! `tokenctl login NAME --cancel`: the login that waits for approval is
//! cancelled, and nothing else. The Ctrl-C hint pointed at `tokenctl
//! logout`, which cancels it too, but also ends the session: a person who
//! started a second login on a working session and followed the hint lost
//! that session and its stored refresh token.

use crate::support;

use support::daemon::{Daemon, LoginRun, login, stderr, stdout, token};
use support::provider::Provider;

fn state(daemon: &Daemon) -> serde_json::Value {
    let out = daemon.tokenctl(&["--json", "status", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status[0]["state"].clone()
}

#[test]
fn cancelling_a_login_leaves_the_working_session() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let before = token(&daemon, "demo", &[]);
    // A second login, which the person then thinks better of: the
    // session stays active meanwhile (its waiting login shown beside it).
    let run = LoginRun::start(&daemon.socket, "demo");
    assert_eq!(state(&daemon), "active");

    let out = daemon.tokenctl(&["login", "demo", "--cancel"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Cancelled the login of demo; its session is as it was.\n"
    );
    // The waiting tokenctl is told; the session is the one it was.
    let (done, err, code) = run.finish();
    assert_eq!(done["ok"], false, "{done}");
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{err}");
    assert!(err.contains("was cancelled (asked to cancel it)"), "{err}");
    assert_eq!(state(&daemon), "active");
    assert_eq!(token(&daemon, "demo", &[]), before);

    // Nothing waits now: said, not an error; and in JSON.
    let out = daemon.tokenctl(&["login", "demo", "--cancel"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "No login of demo was waiting.\n");
    let out = daemon.tokenctl(&["--json", "login", "demo", "--cancel"]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"ok": true, "provider": "demo", "cancelled": false})
    );
    // A provider it does not know is named, as for every verb.
    let out = daemon.tokenctl(&["login", "nope", "--cancel"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

/// A login cancelled on purpose is no failure to show: `status` of a
/// logged-out provider keeps no last error for it, where a login the
/// provider denied leaves its reason there.
#[test]
fn a_cancelled_login_is_not_the_last_error() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let last_error = || {
        let out = daemon.tokenctl(&["--json", "status", "demo"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        status[0]["last_error"].clone()
    };
    let run = LoginRun::start(&daemon.socket, "demo");
    let out = daemon.tokenctl(&["login", "demo", "--cancel"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (done, err, _) = run.finish();
    assert_eq!(done["ok"], false, "{done}");
    assert!(err.contains("was cancelled"), "{err}");
    assert_eq!(last_error(), serde_json::Value::Null);
    // The login asked for over the socket carries its event.
    assert!(
        daemon
            .log()
            .lines()
            .any(|line| line.contains("login requested")
                && line.contains("event=\"login_requested\"")),
        "{}",
        daemon.log()
    );

    let run = LoginRun::start(&daemon.socket, "demo");
    provider.deny(&run.user_code()).unwrap();
    let (done, _, code) = run.finish();
    assert_eq!(done["ok"], false, "{done}");
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED);
    let after_denial = last_error();
    assert!(
        after_denial.as_str().is_some_and(|e| e.contains("denied")),
        "{after_denial}"
    );
}

/// A logout says what there was to forget: a provider never logged in, or
/// one with only a login waiting, is not said to have lost tokens.
#[test]
fn a_logout_says_what_it_forgot() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let out = daemon.tokenctl(&["logout", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Logged out of demo: it was not logged in (no tokens in tokend); its store holds no record of it now.\n"
    );

    let run = LoginRun::start(&daemon.socket, "demo");
    assert_eq!(state(&daemon), "login_pending");
    let out = daemon.tokenctl(&["--json", "logout", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"ok": true, "provider": "demo", "had_tokens": false, "cancelled_login": true})
    );
    let (done, _, code) = run.finish();
    assert_eq!(done["ok"], false, "{done}");
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED);

    let run = LoginRun::start(&daemon.socket, "demo");
    assert_eq!(state(&daemon), "login_pending");
    let out = daemon.tokenctl(&["logout", "demo"]);
    assert_eq!(
        stdout(&out),
        "Logged out of demo: the device login that waited is cancelled; it had no tokens.\n"
    );
    run.finish();
}

/// Logins started and cancelled in a loop (a manager's script gone wrong)
/// ask the provider for a new code at most 6 times a minute: the 7th start
/// is refused, exit 6 ("later"), saying when the next may start, and sends
/// nothing. The loop made about 900 device-code requests a second, which
/// a provider that limits its clients' rate answers by locking the client
/// id out, for every user. A login that waits is still joined at once.
#[test]
fn logins_started_in_a_loop_are_paced() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let device_requests = || {
        provider
            .requests()
            .iter()
            .filter(|r| r.endpoint == tokend_emulator::Endpoint::DeviceAuthorization)
            .count()
    };
    for _ in 0..6 {
        let run = LoginRun::start(&daemon.socket, "demo");
        // Joined, not a new code.
        let joined = LoginRun::start(&daemon.socket, "demo");
        assert_eq!(joined.user_code(), run.user_code());
        let out = daemon.tokenctl(&["login", "demo", "--cancel"]);
        assert!(out.status.success(), "{}", stderr(&out));
        run.finish();
        joined.finish();
    }
    assert_eq!(device_requests(), 6);
    let out = daemon.tokenctl(&["login", "demo", "--no-wait"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("6 logins were started in the last minute; the next may start in")
            && err.contains("tokend paces them"),
        "{err}"
    );
    assert_eq!(device_requests(), 6);
    // The socket says it with its code for "later".
    let out = daemon.tokenctl(&["--json", "login", "demo", "--no-wait"]);
    let text = stdout(&out);
    assert!(text.contains("\"provider_unavailable\""), "{text}");
}
