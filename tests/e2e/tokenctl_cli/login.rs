//! `tokenctl login`: the prompt relayed, shown, and the outcome's exit code.

use super::*;

pub(super) fn prompt_event(complete: Option<&str>) -> LoginEvent {
    LoginEvent::Prompt {
        provider: "github".into(),
        prompt: LoginPrompt {
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://example.test/device".into(),
            verification_uri_complete: complete.map(Into::into),
            expires_in: 900,
            message: None,
        },
    }
}

pub(super) fn done_event(error: Option<(ErrorCode, &str)>) -> LoginEvent {
    LoginEvent::Done {
        provider: "github".into(),
        ok: error.is_none(),
        error: error.map(|(code, message)| tokend::protocol::ErrorBody {
            code,
            message: message.into(),
        }),
        unsaved: None,
    }
}

#[test]
fn login_json_relays_prompt_then_done() {
    let prompt = json(&prompt_event(Some(
        "https://example.test/device?code=WDJB-MJHT",
    )));
    let done = json(&done_event(None));
    let daemon = CannedDaemon::answering(vec![prompt.clone(), done.clone()]);
    let output = run_with_socket(&daemon.socket(), &["--json", "login", "github"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(text(&output.stdout), format!("{prompt}\n{done}\n"));
    assert!(
        prompt.starts_with(r#"{"event":"prompt","provider":"github","user_code":"WDJB-MJHT","#)
    );
    assert_eq!(
        daemon.requests(),
        [Request::Login {
            provider: "github".into()
        }]
    );
}

#[test]
fn login_shows_code_and_link_and_succeeds() {
    let daemon = CannedDaemon::answering(vec![
        json(&prompt_event(Some(
            "https://example.test/device?code=WDJB-MJHT",
        ))),
        json(&done_event(None)),
    ]);
    let output = run_with_socket(&daemon.socket(), &["login", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("WDJB-MJHT"), "{stdout}");
    assert!(stdout.contains("https://example.test/device\n"), "{stdout}");
    assert!(
        stdout.contains("https://example.test/device?code=WDJB-MJHT"),
        "{stdout}"
    );
    assert!(stdout.contains("Waiting for approval"), "{stdout}");
    assert!(stdout.ends_with("Logged in to github.\n"), "{stdout}");
    // Not a terminal: no QR code, no redraws, no escapes.
    assert!(!stdout.contains('█') && !stdout.contains('\r') && !stdout.contains('\x1b'));
}

#[test]
fn denied_login_is_exit_8() {
    let reason =
        "provider `github`: the login was denied — run `tokenctl login github` to try again";
    let daemon = CannedDaemon::answering(vec![
        json(&prompt_event(None)),
        json(&done_event(Some((ErrorCode::LoginFailed, reason)))),
    ]);
    let output = run_with_socket(&daemon.socket(), &["login", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(8), "{output:?}");
    assert!(text(&output.stdout).contains("WDJB-MJHT"));
    assert_eq!(text(&output.stderr), format!("tokenctl: {reason}\n"));
}

#[test]
fn login_of_an_unknown_provider_is_exit_7() {
    let daemon = CannedDaemon::answering(vec![json(&done_event(Some((
        ErrorCode::UnknownProvider,
        "no provider `github` in the config",
    ))))]);
    let output = run_with_socket(&daemon.socket(), &["login", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(7), "{output:?}");
}

#[test]
fn login_no_wait_returns_after_the_prompt() {
    // The done line would fail the login: --no-wait must not wait for it.
    let daemon = CannedDaemon::answering(vec![
        json(&prompt_event(None)),
        json(&done_event(Some((ErrorCode::LoginFailed, "expired")))),
    ]);
    let output = run_with_socket(&daemon.socket(), &["login", "--no-wait", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("WDJB-MJHT") && stdout.contains("tokenctl status github"));
}

/// A login the daemon refuses before trying it (an empty or too long
/// provider name: `bad_request`) exits 1 as the other verbs do, not 8
/// ("login denied, expired or failed"); the real daemon's answer, in
/// text and in JSON. A login that fails at the provider stays 8.
#[test]
fn a_refused_login_request_is_not_a_failed_login() {
    use crate::support::daemon::{Daemon, stderr, stdout};
    use crate::support::provider::Provider;

    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let long = "a".repeat(65);
    for (name, said) in [
        ("", "the provider name is empty"),
        (
            long.as_str(),
            "provider names are at most 64 bytes (ASCII letters, digits, '-' and '_'), got 65 bytes",
        ),
    ] {
        let out = daemon.tokenctl(&["login", name]);
        assert_eq!(out.status.code(), Some(1), "{name:?}: {out:?}");
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
        let out = daemon.tokenctl(&["--json", "login", name]);
        assert_eq!(out.status.code(), Some(1), "{name:?}: {out:?}");
        let done: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(done["event"], "done");
        assert_eq!(done["error"]["code"], "bad_request");
    }
}

#[test]
fn a_login_the_provider_refuses_is_exit_8() {
    let daemon = CannedDaemon::answering(vec![json(&done_event(Some((
        ErrorCode::ProviderError,
        "provider `github` refused the client id",
    ))))]);
    let output = run_with_socket(&daemon.socket(), &["login", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(8), "{output:?}");
}

/// The last line `tokenctl --json login` printed, as JSON.
fn last_json_line(output: &Output) -> serde_json::Value {
    let stdout = text(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

/// Holds a `done` line written by tokenctl to the contract's shape: `ok`
/// false and an error object with `code` and `message`.
fn assert_done(done: &serde_json::Value, provider: &str, code: &str) {
    assert_eq!(done["event"], "done", "{done}");
    assert_eq!(done["provider"], provider, "{done}");
    assert_eq!(done["ok"], false, "{done}");
    assert_eq!(done["error"]["code"], code, "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{done}"
    );
}

/// With `--json` the last line is a `done` event even when the daemon
/// never sends one: it was killed mid-login (the code shown, the person
/// approving). The exit status stays 3, tokend not reachable, and the
/// code is `shutting_down`, which means the same. stderr says, as for an
/// orderly stop, that the login ended with tokend (the hint printed
/// before said it goes on there), not that tokend never answered.
#[test]
fn a_daemon_killed_mid_login_still_ends_the_json_with_done() {
    use crate::support::daemon::{Daemon, LoginRun};
    use crate::support::provider::Provider;

    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    let run = LoginRun::start(&daemon.socket, "demo");
    assert_eq!(run.prompt["event"], "prompt", "{}", run.prompt);
    daemon.kill();
    let (done, stderr, code) = run.finish();
    assert_done(&done, "demo", "shutting_down");
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        stderr,
        "tokenctl: tokend closed the connection during the login (did it stop or crash?): the \
         login ended with it; run `tokenctl login demo` again once tokend is back\n"
    );
}

/// The same when tokenctl's `--timeout` passes before the prompt (exit 1),
/// when the daemon refuses the request line as too large (its error line
/// becomes the `done` line's error, exit 1), and when no daemon listens
/// (exit 3).
#[test]
fn a_login_tokenctl_ends_itself_still_ends_the_json_with_done() {
    let silent = CannedDaemon::start(|_| Vec::new());
    let output = run_with_socket(
        &silent.socket(),
        &["--timeout", "1", "--json", "login", "github"],
    );
    silent.requests();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(text(&output.stdout).lines().count(), 1, "{output:?}");
    assert_done(&last_json_line(&output), "github", "internal");
    // The message does not blame tokend alone: it may wait on a provider;
    // and the login goes on there, which a second `login` joins.
    assert!(
        text(&output.stderr).contains("did not show a login code within 1 s")
            && text(&output.stderr).contains("slow provider")
            && text(&output.stderr).contains("the login goes on in tokend")
            && text(&output.stderr).contains("`--timeout` waits longer"),
        "{output:?}"
    );

    let too_large = CannedDaemon::answering(vec![error_line(
        ErrorCode::RequestTooLarge,
        "request line longer than 16384 bytes (or cut short)",
    )]);
    let output = run_with_socket(&too_large.socket(), &["--json", "login", "github"]);
    too_large.requests();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let done = last_json_line(&output);
    assert_done(&done, "github", "request_too_large");
    assert_eq!(
        done["error"]["message"],
        "request line longer than 16384 bytes (or cut short)"
    );

    let dir = tempfile::tempdir().unwrap();
    let output = run_with_socket(
        &dir.path().join("tokend.sock"),
        &["--json", "login", "github"],
    );
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_done(&last_json_line(&output), "github", "shutting_down");
}

/// The real daemon's answer to a request line longer than it reads.
#[test]
fn a_login_request_too_large_for_the_daemon_ends_with_done() {
    use crate::support::daemon::Daemon;
    use crate::support::provider::Provider;

    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let name = "a".repeat(tokend::protocol::MAX_REQUEST_LINE + 1);
    let output = daemon.tokenctl(&["--json", "login", &name]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_done(&last_json_line(&output), &name, "request_too_large");
}
