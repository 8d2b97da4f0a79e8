//! Answers that make no sense, through the real `tokend` and `tokenctl`:
//! an HTML error page, a token answer without `access_token`, a 10 MB
//! body, a body that never ends, a redirect loop, a provider that drips or
//! hangs. Each ends in a clear error naming the provider and the problem,
//! within the HTTP timeout and the answer size cap; and nothing stored is
//! replaced by a bad answer: the session keeps serving its token and later
//! refreshes with the refresh token it had. The exception is a negative or
//! absurd `expires_in` beside a new refresh token: those tokens are kept
//! (the provider has retired the old refresh token), with the problem
//! logged.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, DaemonOptions, LoginRun, stderr, stdout, token};
use support::flows::NAME;
use support::provider::{Provider, fast, json_answer};
use tokend_emulator::{Endpoint, Fault, RecordedRequest};

/// Exit code of `tokenctl` when the provider is unavailable.
const EXIT_UNAVAILABLE: i32 = 6;

/// A short HTTP timeout, so a stalling provider costs the test little.
const DAEMON_KEYS: &str = "http_timeout = 2\n";

fn daemon(provider: &Provider) -> Daemon {
    Daemon::start_with(
        &provider.config(NAME),
        DaemonOptions {
            daemon_keys: DAEMON_KEYS.into(),
            ..DaemonOptions::default()
        },
    )
}

/// Logs in, then makes the next refresh meet `fault`: the forced refresh
/// fails with a message holding `problem`; the session still serves its
/// token; the retry presents the same refresh token and succeeds.
pub(crate) fn a_bad_refresh_answer_changes_nothing(
    fault: impl FnOnce(&Provider) -> Fault,
    problem: &str,
) {
    let provider = Provider::start(fast());
    let daemon = daemon(&provider);
    let first = support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    // Good answers from now on carry tokens that satisfy the forced refresh.
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    provider.inject(Endpoint::Token, fault(&provider), 1);

    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("provider `demo` is unavailable") && err.contains(problem),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // Nothing was replaced: the current token is still served.
    assert_eq!(token(&daemon, NAME, &[]), first);

    // The background retry refreshes with the refresh token it had.
    let requests = provider.wait_for_count(1, |r| r.is_refresh() && r.outcome == "refreshed");
    let refreshes: Vec<&RecordedRequest> = requests.iter().filter(|r| r.is_refresh()).collect();
    assert_eq!(refreshes.len(), 2, "{refreshes:#?}");
    assert_eq!(
        refreshes[0].field("refresh_token"),
        refreshes[1].field("refresh_token")
    );
    let second = token(&daemon, NAME, &["--min-valid", "3700"]);
    assert_ne!(first, second);
    assert!(provider.is_valid_access_token(&second));
    provider.assert_no_violations();

    let log = daemon.log();
    assert!(
        log.lines()
            .any(|l| l.contains("refresh failed") && l.contains("demo") && l.contains(problem)),
        "{log}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tokenctl(&["--json", "status", NAME]))).unwrap();
    assert!(status[0]["last_error"].is_null(), "{status}");
}

#[test]
fn an_html_error_page() {
    a_bad_refresh_answer_changes_nothing(
        |_| Fault::Html(200),
        "expected a token answer, got an HTML page",
    );
}

#[test]
fn an_html_error_page_with_an_error_status() {
    a_bad_refresh_answer_changes_nothing(|_| Fault::Html(502), "(HTTP 502): an HTML page");
}

#[test]
fn a_token_answer_without_an_access_token() {
    a_bad_refresh_answer_changes_nothing(
        |_| {
            // No refresh token either (one beside it is kept: see
            // `garbled_answers`).
            json_answer(r#"{"token_type":"Bearer","expires_in":3600}"#)
        },
        "no `access_token` in the token answer",
    );
}

/// A refresh answer whose `expires_in` cannot be believed (negative,
/// absurd) but which carries a new refresh token is kept, its access
/// token taken as of unknown expiry, and the problem logged: a rotating
/// provider has retired the old refresh token by the time it answers, so
/// refusing the answer lost the session (its retry presented the retired
/// token and was refused).
fn a_bad_expiry_keeps_the_new_tokens(expires_in: &str, problem: &str) {
    let provider = Provider::start(fast());
    let daemon = daemon(&provider);
    support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    provider.inject(
        Endpoint::Token,
        json_answer(&format!(
            r#"{{"access_token":"at_odd_expiry","token_type":"Bearer","expires_in":{expires_in},"refresh_token":"rt_odd_expiry"}}"#
        )),
        1,
    );
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "at_odd_expiry\n");
    let warned = daemon.wait_for_log(1, &["expiry taken as unknown"]);
    assert!(warned[0].contains(problem), "{warned:?}");
    assert!(!warned[0].contains("rt_odd_expiry"), "{warned:?}");
}

#[test]
fn a_negative_expires_in() {
    a_bad_expiry_keeps_the_new_tokens(
        "-3600",
        "`expires_in` is not a number of seconds (at least 0): -3600",
    );
}

#[test]
fn an_absurd_expires_in() {
    a_bad_expiry_keeps_the_new_tokens(
        "315360000000",
        "`expires_in` of 315360000000 s is beyond the believable maximum",
    );
}

#[test]
fn a_ten_megabyte_body() {
    a_bad_refresh_answer_changes_nothing(
        |_| Fault::Huge(10 * 1024 * 1024),
        "answer larger than 256 KiB",
    );
}

#[test]
fn a_body_that_never_ends() {
    a_bad_refresh_answer_changes_nothing(|_| Fault::Endless, "answer larger than 256 KiB");
}

#[test]
fn a_redirect_loop_is_not_followed() {
    // The token endpoint redirects to itself, forever if followed.
    a_bad_refresh_answer_changes_nothing(
        |provider| Fault::Redirect(provider.token_endpoint().to_string()),
        "unexpected redirect (HTTP 307)",
    );
}

#[test]
fn a_dripping_answer_is_cut_at_the_timeout() {
    a_bad_refresh_answer_changes_nothing(
        |_| Fault::Drip(Duration::from_millis(200)),
        "no complete answer within 2 s",
    );
}

#[test]
fn a_redirect_at_the_device_endpoint_stops_the_login_after_one_request() {
    let provider = Provider::start(fast());
    provider.inject(
        Endpoint::DeviceAuthorization,
        Fault::Redirect(provider.device_authorization_endpoint().to_string()),
        1,
    );
    let daemon = daemon(&provider);
    let out = daemon.tokenctl(&["login", NAME]);
    let err = stderr(&out);
    // A failed login (8), as a redirected poll: not "unavailable, retry
    // later" (6), which a script retrying on 6 would do for ever.
    assert_eq!(
        out.status.code(),
        Some(support::flows::EXIT_LOGIN_FAILED),
        "{err}"
    );
    assert!(
        err.contains("provider `demo`") && err.contains("unexpected redirect (HTTP 307)"),
        "{err}"
    );
    assert_eq!(provider.requests().len(), 1, "the redirect was followed");
}

/// Google's device endpoint over its quota: 403 with
/// `{"error_code": "rate_limit_exceeded"}` and no `error`. A wait (6,
/// "retry later"), named, not a refused login (8, "Forbidden").
#[test]
fn googles_quota_answer_at_the_device_endpoint_is_unavailable() {
    let provider = Provider::start(fast());
    provider.inject(
        Endpoint::DeviceAuthorization,
        Fault::Body {
            status: 403,
            content_type: Some("application/json; charset=utf-8".into()),
            body: r#"{"error_code": "rate_limit_exceeded"}"#.into(),
        },
        1,
    );
    let daemon = daemon(&provider);
    let out = daemon.tokenctl(&["login", NAME]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EXIT_UNAVAILABLE), "{err}");
    assert!(err.contains("rate_limit_exceeded"), "{err}");
}

/// A device answer whose pages fail the URL rule (Oracle's documented
/// answer names the tenant's page over plain `http://`): the config's
/// `verification_uri` is shown instead, the complete URL left out; without
/// one, the login ends naming that setting. Before, the config's page was
/// used only when the provider sent none, and nothing got past the refusal.
#[test]
fn a_refused_verification_page_gives_way_to_the_configured_one() {
    const ANSWER: &str = r#"{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"http://idcs-1.identity.example/ui/v1/device","verification_uri_complete":"http://idcs-1.identity.example/ui/v1/device?user_code=ABCD-EFGH","expires_in":300,"interval":1}"#;
    const CONFIGURED: &str = "https://idcs-1.identity.example/ui/v1/device";
    let provider = Provider::start(fast());
    provider.inject(Endpoint::DeviceAuthorization, json_answer(ANSWER), 1);
    let configured = Daemon::start_with(
        &provider.config_with(NAME, &format!("verification_uri = \"{CONFIGURED}\"")),
        DaemonOptions::default(),
    );
    let run = LoginRun::start(&configured.socket, NAME);
    assert_eq!(run.prompt["verification_uri"], CONFIGURED, "{}", run.prompt);
    assert!(
        run.prompt["verification_uri_complete"].is_null(),
        "{}",
        run.prompt
    );
    drop(run);

    let provider = Provider::start(fast());
    provider.inject(Endpoint::DeviceAuthorization, json_answer(ANSWER), 1);
    let daemon = daemon(&provider);
    let out = daemon.tokenctl(&["login", NAME]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(support::flows::EXIT_LOGIN_FAILED),
        "{err}"
    );
    assert!(
        err.contains("refused the provider's `verification_uri")
            && err.contains("set `verification_uri` in the provider's config"),
        "{err}"
    );
}

/// Garbage is a passing failure (exit 6); the provider's own answer
/// without a field RFC 8628 requires is a failed login (exit 8), which a
/// new login meets again.
#[test]
fn garbage_from_the_device_endpoint_ends_the_login_clearly() {
    for (fault, problem, status) in [
        (Fault::Html(200), "got an HTML page", EXIT_UNAVAILABLE),
        (
            Fault::Huge(10 * 1024 * 1024),
            "answer larger than 256 KiB",
            EXIT_UNAVAILABLE,
        ),
        (
            Fault::Hang,
            "no complete answer within 2 s",
            EXIT_UNAVAILABLE,
        ),
        (
            json_answer(r#"{"user_code":"ABCD","expires_in":600}"#),
            "no `device_code`",
            support::flows::EXIT_LOGIN_FAILED,
        ),
    ] {
        let provider = Provider::start(fast());
        provider.inject(Endpoint::DeviceAuthorization, fault, 1);
        let daemon = daemon(&provider);
        let out = daemon.tokenctl(&["login", NAME]);
        assert_eq!(out.status.code(), Some(status), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("provider `demo`") && err.contains(problem),
            "{err}"
        );
    }
}

#[test]
fn a_garbage_poll_answer_is_retried_and_the_login_goes_on() {
    let provider = Provider::start(fast());
    provider.inject(
        Endpoint::Token,
        json_answer(r#"{"token_type":"Bearer","expires_in":-1}"#),
        1,
    );
    let daemon = daemon(&provider);
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.wait_for_count(1, |r| r.is_poll() && r.outcome == "fault:body");
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    assert!(
        daemon.log().contains("polling failed, will retry"),
        "{}",
        daemon.log()
    );
    provider.assert_no_violations();
}

/// A provider whose every poll answer is a success that cannot be used (a
/// grant with `expires_in` 0) until the code dies: the login fails, and
/// names that answer rather than suggesting nobody approved it.
#[test]
fn a_login_whose_polls_fail_says_why_when_the_code_dies() {
    let provider = Provider::start(tokend_emulator::Rfc8628Options {
        device_code_lifetime: Duration::from_secs(3),
        ..fast()
    });
    provider.inject(
        Endpoint::Token,
        json_answer(r#"{"access_token":"x","token_type":"Bearer","expires_in":0}"#),
        100,
    );
    let daemon = daemon(&provider);
    let (done, err, code) = LoginRun::start(&daemon.socket, NAME).finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("a poll was answered with success, but the answer could not be used (")
            && err.contains("`expires_in` is under a second")
            && err.contains("after it, the login expired before it was approved"),
        "{err}"
    );
}

/// A success answer to a poll that cannot be used, after which the
/// provider answers otherwise (a real one has spent the code on that
/// answer and says `invalid_grant`; here the person denies): the login's
/// error names the unusable answer, not only what came after it (which
/// alone reads as though the person had done something wrong).
///
/// A success answer cut off mid-body (the connection reset) is such an
/// answer too: it read "could not reach", and the login's end did not
/// name it; so is one that cannot be read (JSON with bytes after it).
#[test]
fn an_unusable_success_answer_is_named_however_the_login_ends() {
    let dead_on_arrival = (
        json_answer(r#"{"access_token":"x","token_type":"Bearer","expires_in":0}"#),
        "`expires_in` is under a second",
    );
    let cut_off = (
        Fault::ResetMidBody,
        "answered HTTP 200, but the answer was cut off",
    );
    // The provider's own words that cannot be read (not a portal's page):
    // it read as a passing failure, and the login's end blamed the
    // provider's refusal alone.
    let unreadable = (
        json_answer(
            r#"{"access_token":"x","token_type":"Bearer","expires_in":3600}<!-- proxy -->"#,
        ),
        "trailing characters",
    );
    for (fault, said) in [dead_on_arrival, cut_off, unreadable] {
        let provider = Provider::start(fast());
        let label = fault.label();
        provider.inject(Endpoint::Token, fault, 1);
        let daemon = daemon(&provider);
        let run = LoginRun::start(&daemon.socket, NAME);
        provider.wait_for_count(1, |r| r.is_poll() && r.outcome == label);
        provider.deny(&run.user_code()).unwrap();
        let (done, err, code) = run.finish();
        assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
        assert!(
            err.contains("a poll was answered with success, but the answer could not be used (")
                && err.contains(said)
                && err.contains("after it, the login was denied"),
            "{err}"
        );
    }
}

/// A token endpoint that redirects polls (a wrong URL in the config) ends
/// the login at its first poll: polling on would meet the same redirect
/// until the code died, the person approving in vain.
#[test]
fn a_redirected_poll_ends_the_login_at_once() {
    let provider = Provider::start(tokend_emulator::Rfc8628Options {
        device_code_lifetime: Duration::from_secs(5),
        ..fast()
    });
    provider.inject(
        Endpoint::Token,
        Fault::Redirect("http://127.0.0.1:9/elsewhere".into()),
        100,
    );
    let daemon = daemon(&provider);
    let (done, err, code) = LoginRun::start(&daemon.socket, NAME).finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("unexpected redirect (HTTP 307)") && !err.contains("expired"),
        "{err}"
    );
    let polls = provider.requests().iter().filter(|r| r.is_poll()).count();
    assert_eq!(polls, 1, "the login polled on after the redirect");
}

/// Every poll refused by a firewall's 403 page (a 403 that carries no
/// OAuth error, which the rfc8628 dialect polls on as some servers'
/// "pending"): the polling is told as trouble naming the 403, and the
/// login that then expires says what the polls were answered (it said
/// only "expired before it was approved", as if nobody had approved it).
#[test]
fn a_403_page_at_every_poll_is_named() {
    let provider = Provider::start(tokend_emulator::Rfc8628Options {
        device_code_lifetime: Duration::from_secs(4),
        ..fast()
    });
    provider.inject(Endpoint::Token, Fault::Html(403), 100);
    let daemon = daemon(&provider);
    let mut run = LoginRun::start(&daemon.socket, NAME);
    let polling = run.next_event();
    assert_eq!(polling["event"], "polling", "{polling}");
    let trouble = polling["trouble"].as_str().expect("a reason");
    assert!(trouble.contains("403"), "{trouble}");
    let (done, err, code) = run.finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("expired before it was approved (the last poll failed:")
            && err.contains("403"),
        "{err}"
    );
}

/// Every request asks for its answer uncompressed: without
/// `Accept-Encoding` a server may pick any coding (RFC 9110), and a
/// refresh answer tokend cannot read would lose the rotated refresh token
/// it carries.
#[test]
fn every_request_asks_for_an_uncompressed_answer() {
    let provider = Provider::start(fast());
    let daemon = daemon(&provider);
    support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    support::daemon::refresh_now(&daemon, NAME);
    let requests = provider.requests();
    assert!(requests.len() >= 3, "{requests:?}");
    for request in &requests {
        assert!(
            request
                .headers
                .iter()
                .any(|(name, value)| name == "accept-encoding" && value == "identity"),
            "{request:?}"
        );
    }
}
