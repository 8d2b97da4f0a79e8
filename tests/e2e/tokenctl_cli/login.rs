//! `tokenctl login`: the prompt relayed, shown, and the outcome's exit code.

use super::*;

fn prompt_event(complete: Option<&str>) -> LoginEvent {
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

fn done_event(error: Option<(ErrorCode, &str)>) -> LoginEvent {
    LoginEvent::Done {
        provider: "github".into(),
        ok: error.is_none(),
        error: error.map(|(code, message)| tokend::protocol::ErrorBody {
            code,
            message: message.into(),
        }),
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
    let long = "a".repeat(300);
    for name in ["", long.as_str()] {
        let out = daemon.tokenctl(&["login", name]);
        assert_eq!(out.status.code(), Some(1), "{name:?}: {out:?}");
        assert!(
            stderr(&out).contains("provider name must be 1 to 256 bytes"),
            "{}",
            stderr(&out)
        );
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
