//! Success answers a provider spoiled after doing its part (rotating the
//! refresh token sent), through the real `tokend` and an emulator that
//! rotates refresh tokens and treats the reuse of a retired one as theft
//! (the whole login revoked), as Auth0, Okta and Microsoft do.
//!
//! - An answer without its access token, beside the new refresh token:
//!   the refresh token is kept, and the retry presents it. Refusing the
//!   whole answer lost the session: the retry presented the retired token.
//! - An answer that cannot be read at all (bytes after the JSON): nothing
//!   in it can be kept, and when the retry is then refused, the refusal
//!   says that the answer before it was a success that could not be used,
//!   rather than blaming the provider alone.

use crate::support;

use support::daemon::{Daemon, DaemonOptions, stderr, stdout, token};
use support::flows::NAME;
use support::provider::{Provider, fast};
use tokend_emulator::{Endpoint, Fault, Garble};

/// Exit code of `tokenctl` when the provider is unavailable.
const EXIT_UNAVAILABLE: i32 = 6;

/// Logs in to a rotating emulator, then makes the next refresh's answer
/// garbled as `garble` says, and asks for a token that needs a refresh:
/// the daemon, the provider, the first access token and the refresh
/// token the login brought (the garbled answer's refresh sent it, and the
/// provider retired it).
fn garbled_refresh(garble: Garble) -> (Provider, Daemon, String, String) {
    let provider = Provider::start(fast());
    let daemon = Daemon::start_with(&provider.config(NAME), DaemonOptions::default());
    let first = support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    provider.set_access_token_lifetime(std::time::Duration::from_secs(7200));
    provider.inject(Endpoint::Token, Fault::Garbled(garble), 1);
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    let login_refresh_token = provider
        .requests()
        .iter()
        .find(|r| r.is_refresh() && r.outcome.contains("fault:garbled"))
        .and_then(|r| r.field("refresh_token").map(str::to_owned))
        .expect("the garbled refresh");
    (provider, daemon, first, login_refresh_token)
}

#[test]
fn a_rotated_refresh_token_beside_no_access_token_is_kept() {
    let (provider, daemon, first, login_refresh_token) =
        garbled_refresh(Garble::WithoutAccessToken);
    let kept = daemon.wait_for_log(1, &["event=\"refresh_token_kept\""]);
    assert!(kept[0].contains("kept and stored"), "{kept:?}");
    // The session still serves the token it had.
    assert_eq!(token(&daemon, NAME, &[]), first);
    // The retry presents the refresh token the garbled answer carried, not
    // the retired one, and the provider takes it.
    let requests = provider.wait_for_count(1, |r| r.is_refresh() && r.outcome == "refreshed");
    let retry = requests
        .iter()
        .find(|r| r.is_refresh() && r.outcome == "refreshed")
        .unwrap();
    assert_ne!(
        retry.field("refresh_token"),
        Some(login_refresh_token.as_str()),
        "the retry sent the retired refresh token"
    );
    let second = token(&daemon, NAME, &["--min-valid", "3700"]);
    assert!(provider.is_valid_access_token(&second), "{second}");
    provider.assert_no_violations();
    // No token of any kind in the log.
    let log = daemon.log();
    for secret in provider.issued_tokens() {
        assert!(!log.contains(&secret), "a token in the log");
    }
}

#[test]
fn a_refusal_after_an_unreadable_success_says_what_was_lost() {
    let (provider, daemon, _first, _login_refresh_token) = garbled_refresh(Garble::TrailingBytes);
    // The retry can only present the retired token, which the provider
    // takes as a replay: the login is revoked.
    let ended = daemon.wait_for_log(1, &["session ended by the provider"]);
    assert!(
        ended[0].contains("answered with success but the answer could not be used"),
        "{ended:?}"
    );
    let status = stdout(&daemon.tokenctl(&["--json", "status", NAME]));
    assert!(
        status.contains("answered with success but the answer could not be used"),
        "{status}"
    );
    assert!(!provider.violations().is_empty(), "the replay was not seen");
}

/// The approved login's answer has a refresh token but no access token:
/// the provider spent the code on it, so polling on was told
/// `invalid_grant` and the person had to start again. One refresh with
/// that refresh token finishes the login.
#[test]
fn a_login_answered_without_its_access_token_is_finished_by_a_refresh() {
    let provider = Provider::start(fast());
    // Pending polls pass unspoiled: the approved one loses its access token.
    provider.inject(
        Endpoint::Token,
        Fault::Garbled(Garble::WithoutAccessToken),
        1,
    );
    let daemon = Daemon::start_with(&provider.config(NAME), DaemonOptions::default());
    let first = support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    assert!(provider.is_valid_access_token(&first), "{first}");
    let requests = provider.requests();
    let garbled = requests
        .iter()
        .position(|r| r.is_poll() && r.outcome.contains("fault:garbled"))
        .expect("the approved poll, garbled");
    // The refresh presented the refresh token of the garbled answer (the
    // provider takes no other: it would be a replay).
    let refresh = &requests[garbled + 1];
    assert!(
        refresh.is_refresh() && refresh.outcome == "refreshed",
        "{refresh:?}"
    );
    daemon.wait_for_log(1, &["event=\"login_refresh\""]);
    provider.assert_no_violations();
    let log = daemon.log();
    for secret in provider.issued_tokens() {
        assert!(!log.contains(&secret), "a token in the log");
    }
}

/// When that refresh fails too, the login fails naming both answers.
#[test]
fn a_login_whose_finishing_refresh_fails_says_so() {
    let provider = Provider::start(fast());
    provider.inject(
        Endpoint::Token,
        Fault::Garbled(Garble::WithoutAccessToken),
        2,
    );
    let daemon = Daemon::start_with(&provider.config(NAME), DaemonOptions::default());
    let run = support::daemon::LoginRun::start(&daemon.socket, NAME);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("the login was approved, but the provider's answer could not be used (")
            && err.contains("and the refresh with the refresh token in it failed:"),
        "{err}"
    );
}
