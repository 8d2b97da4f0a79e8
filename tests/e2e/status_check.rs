//! `tokenctl status --check`, the health check for monitoring and
//! `ExecCondition=`: one line per problem and exit 1, or nothing and exit 0.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, login, stderr, stdout};
use support::provider::Provider;
use tokend_emulator::Rfc8628Options;

#[test]
fn check_names_each_problem_and_fails_until_all_are_gone() {
    let provider = Provider::start(Rfc8628Options {
        interval: Duration::from_secs(1),
        access_token_lifetime: Duration::from_secs(4),
        ..Rfc8628Options::default()
    });
    let daemon = Daemon::start(&format!(
        "{}{}",
        provider.config("alpha"),
        provider.config("beta")
    ));
    login(&daemon, "alpha", |code| {
        provider.approve(code).unwrap();
    });
    // beta never logged in: one problem, exit 1.
    let out = daemon.tokenctl(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "beta: needs a login (logged_out)\n");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // The same as one JSON object, for monitors that read JSON.
    let out = daemon.tokenctl(&["--json", "status", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"ok": false, "problems": [
            {"provider": "beta", "problem": "beta: needs a login (logged_out)"}
        ]})
    );
    // Only the named provider is checked.
    let out = daemon.tokenctl(&["status", "--check", "alpha"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).is_empty());
    let out = daemon.tokenctl(&["--json", "status", "--check", "alpha"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "{\"ok\":true,\"problems\":[]}\n");

    login(&daemon, "beta", |code| {
        provider.approve(code).unwrap();
    });
    let out = daemon.tokenctl(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    // The provider goes down: the next background refresh fails, and the
    // check says so for each provider.
    provider.set_unavailable(true);
    for name in ["alpha", "beta"] {
        daemon.wait_for_log(
            1,
            &[&format!("provider={name}"), "event=\"refresh_failed\""],
        );
    }
    let out = daemon.tokenctl(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = stdout(&out);
    for name in ["alpha", "beta"] {
        assert!(
            lines
                .lines()
                .any(|l| l.starts_with(&format!("{name}: ")) && l.contains("fail")),
            "{lines}"
        );
    }
}

/// A monitor reading `--json` gets its one object when tokend cannot be
/// reached too: `ok` false, the reason as a problem of the daemon, and
/// exit status 3.
#[test]
fn the_json_check_says_so_when_tokend_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tokend.sock");
    let out = support::daemon::tokenctl(&socket, &["--json", "status", "--check"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(report["ok"], false, "{report}");
    let problem = &report["problems"][0];
    assert!(problem["provider"].is_null(), "{report}");
    assert!(
        problem["problem"]
            .as_str()
            .is_some_and(|p| p.contains(&socket.display().to_string())),
        "{report}"
    );
}

/// The one JSON object also comes when the daemon answers the check with
/// an error (here a provider it does not have), with that error as the
/// problem and the error's exit status.
#[test]
fn the_json_check_says_so_when_the_daemon_answers_an_error() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let out = daemon.tokenctl(&["--json", "status", "--check", "nosuch"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(report["ok"], false, "{report}");
    let problem = &report["problems"][0];
    assert!(problem["provider"].is_null(), "{report}");
    assert!(
        problem["problem"]
            .as_str()
            .is_some_and(|p| p.contains("nosuch")),
        "{report}"
    );
}

/// A login started again on an active session (new scopes, habit) leaves
/// its tokens serving: the session stays `active`, in `status --check`
/// too, with the waiting login shown beside it. It was `login_pending`
/// everywhere for the code's whole life, and `--check` failed.
#[test]
fn a_login_again_on_an_active_session_is_not_a_problem() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let run = support::daemon::LoginRun::start(&daemon.socket, "demo");
    let check = daemon.tokenctl(&["status", "--check"]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tokenctl(&["--json", "status", "demo"]))).unwrap();
    let demo = &status[0];
    assert_eq!(demo["state"], "active", "{status}");
    assert_eq!(demo["login"]["user_code"], run.user_code(), "{status}");
    drop(run);
}
