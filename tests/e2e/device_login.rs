//! Device login end to end: the real `tokend` and `tokenctl` against an
//! RFC 8628 provider emulator over HTTP on 127.0.0.1.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, LoginRun, login, stderr, stdout, token};
use support::provider::Provider;
use tokend_emulator::{Endpoint, Fault, RecordedRequest, Rfc8628Options};

#[test]
fn login_then_token_gives_a_token_the_provider_accepts() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config_with("demo", "scopes = [\"read\", \"write\"]"));
    let run = LoginRun::start(&daemon.socket, "demo");
    let prompt = &run.prompt;
    assert_eq!(prompt["event"], "prompt");
    assert_eq!(prompt["provider"], "demo");
    assert_eq!(
        prompt["verification_uri"],
        provider.verification_uri().as_str()
    );
    assert!(
        prompt["verification_uri_complete"]
            .as_str()
            .unwrap()
            .contains(&run.user_code())
    );
    assert!(prompt["expires_in"].as_u64().unwrap() > 500);
    provider.approve(&run.user_code()).unwrap();
    let (done, _, code) = run.finish();
    assert_eq!(code, 0);
    assert_eq!(done["event"], "done");
    assert_eq!(done["ok"], true);

    let access = token(&daemon, "demo", &[]);
    assert!(
        provider.is_valid_access_token(&access),
        "the provider does not accept the token"
    );
    // The device request carried the scopes, space-separated.
    let device = provider.device_codes();
    assert_eq!(device[0].scope.as_deref(), Some("read write"));
    // A second request is served from memory: no new token request.
    let token_requests = provider
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::Token)
        .count();
    assert_eq!(token(&daemon, "demo", &[]), access);
    assert_eq!(
        provider
            .requests()
            .iter()
            .filter(|r| r.endpoint == Endpoint::Token)
            .count(),
        token_requests
    );
    provider.assert_no_violations();

    let status = daemon.tokenctl(&["--json", "status", "demo"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status[0]["state"], "active");
    assert_eq!(status[0]["scopes"], serde_json::json!(["read", "write"]));
    assert!(status[0]["expires_at"].as_i64().unwrap() > 0);
}

#[test]
fn denial_ends_the_login_with_a_reason() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let run = LoginRun::start(&daemon.socket, "demo");
    provider.deny(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 8, "{err}");
    assert_eq!(done["ok"], false);
    assert_eq!(done["error"]["code"], "login_failed");
    assert!(err.contains("denied"), "{err}");
    let out = daemon.tokenctl(&["token", "demo"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    provider.assert_no_violations();
}

/// The device code's lifetime passes at the provider (its clock is moved,
/// not waited for): the next poll is answered `expired_token`, and the
/// daemon ends the login with that reason and stops polling.
#[test]
fn an_unapproved_code_expires() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let run = LoginRun::start(&daemon.socket, "demo");
    provider.wait_for_count(1, RecordedRequest::is_poll);
    let lifetime = Rfc8628Options::default().device_code_lifetime;
    provider.advance(lifetime);
    let (done, err, code) = run.finish();
    assert_eq!(code, 8, "{err}");
    assert_eq!(done["error"]["code"], "login_failed");
    assert!(err.contains("expired"), "{err}");
    // It polled while the code lived, and not after the provider's answer
    // (polling on would be a violation).
    let polls = provider.polls();
    let last = polls.last().unwrap();
    assert_eq!(last.outcome, "expired_token", "{polls:#?}");
    assert!(
        polls[..polls.len() - 1]
            .iter()
            .all(|p| p.outcome == "pending"),
        "{polls:#?}"
    );
    provider.assert_no_violations();
}

#[test]
fn slow_down_adds_five_seconds_to_every_later_poll() {
    let provider = Provider::rfc8628();
    provider.slow_down_next_polls(1);
    let daemon = Daemon::start(&provider.config("demo"));
    let run = LoginRun::start(&daemon.socket, "demo");
    // Let it poll three times (slow_down, then pending twice), then approve.
    provider.wait_for_count(3, tokend_emulator::RecordedRequest::is_poll);
    provider.approve(&run.user_code()).unwrap();
    let (_, err, code) = run.finish();
    assert_eq!(code, 0, "{err}");
    let polls: Vec<_> = provider
        .requests()
        .into_iter()
        .filter(tokend_emulator::RecordedRequest::is_poll)
        .collect();
    assert_eq!(polls[0].outcome, "slow_down");
    for pair in polls.windows(2).skip(1) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_secs(6),
            "poll {} came {gap:?} after the previous one",
            pair[1].index
        );
    }
    provider.assert_no_violations();
}

#[test]
fn concurrent_logins_share_one_device_code() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let first = LoginRun::start(&daemon.socket, "demo");
    let second = LoginRun::start(&daemon.socket, "demo");
    assert_eq!(first.user_code(), second.user_code());
    assert_eq!(provider.device_codes().len(), 1);
    provider.approve(&first.user_code()).unwrap();
    assert_eq!(first.finish().2, 0);
    assert_eq!(second.finish().2, 0);
}

#[test]
fn polling_survives_provider_errors_with_backoff() {
    let provider = Provider::rfc8628();
    provider.inject(Endpoint::Token, Fault::Status(503), 2);
    let daemon = Daemon::start(&provider.config("demo"));
    let run = LoginRun::start(&daemon.socket, "demo");
    provider.wait_for_count(3, |r| r.endpoint == Endpoint::Token);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    let polls: Vec<_> = provider
        .requests()
        .into_iter()
        .filter(tokend_emulator::RecordedRequest::is_poll)
        .collect();
    // After the second failure the wait doubled at least once.
    let gap = polls[2].at - polls[1].at;
    assert!(
        gap >= Duration::from_secs(2),
        "no backoff after errors: {gap:?}"
    );
    provider.assert_no_violations();
}

#[test]
fn login_errors_before_a_prompt_are_reported() {
    let port = support::provider::closed_port();
    let daemon = Daemon::start(&format!(
        "[providers.down]\ndevice_authorization_endpoint = \"http://127.0.0.1:{port}/device\"\ntoken_endpoint = \"http://127.0.0.1:{port}/token\"\nclient_id = \"x\"\n",
    ));
    let out = daemon.tokenctl(&["login", "down"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("could not reach http://127.0.0.1:{port}/device")),
        "{}",
        stderr(&out)
    );
    let out = daemon.tokenctl(&["login", "nope"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no provider named `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logout_forgets_the_session() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let out = daemon.tokenctl(&["logout", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Logged out of demo: its tokens are gone from tokend and its store.\n"
    );
    let out = daemon.tokenctl(&["token", "demo"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("run `tokenctl login demo`"),
        "{}",
        stderr(&out)
    );
}

/// What a provider sends for a person to open passes the transport rule and
/// hides nothing: a bidirectional override, a control character or plain
/// http to a host that is not loopback ends the login with the reason, and
/// no prompt is shown.
#[test]
fn deceptive_or_cleartext_verification_urls_are_refused() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    for (uri, complete, expected) in [
        (
            "https://example.com/\u{202E}ecived".to_owned(),
            None,
            "U+202E",
        ),
        (
            "https://example.com/device".to_owned(),
            Some("https://example.com/device?code=\u{1b}[2J".to_owned()),
            "U+001B",
        ),
        (
            "http://example.com/device".to_owned(),
            None,
            "plain http:// to a host that is not loopback",
        ),
    ] {
        let body = serde_json::json!({
            "device_code": "dc",
            "user_code": "ABCD-EFGH",
            "verification_uri": uri,
            "verification_uri_complete": complete,
            "expires_in": 600,
            "interval": 1,
        });
        provider.inject(
            Endpoint::DeviceAuthorization,
            Fault::Body {
                status: 200,
                content_type: Some("application/json".into()),
                body: body.to_string().into(),
            },
            1,
        );
        let out = daemon.tokenctl(&["--json", "login", "demo"]);
        assert!(!out.status.success());
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!text.contains("\"event\":\"prompt\""), "{text}");
        assert!(!text.contains("ABCD-EFGH"), "no code shown: {text}");
        assert!(
            text.contains("refused the provider's `verification_uri"),
            "{text}"
        );
        assert!(text.contains(expected), "{expected}: {text}");
        assert!(
            !text.contains('\u{202E}') && !text.contains('\u{1b}'),
            "{text}"
        );
    }
}

/// Environment proxies are used for the network, never for loopback: with
/// a proxy that answers nothing, a provider on 127.0.0.1 is still reached.
#[test]
fn loopback_never_goes_through_a_proxy() {
    let provider = Provider::rfc8628();
    let dead_proxy = format!("http://127.0.0.1:{}", support::provider::closed_port());
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        support::daemon::DaemonOptions {
            env: ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"]
                .iter()
                .map(|v| ((*v).to_owned(), dead_proxy.clone()))
                .collect(),
            ..support::daemon::DaemonOptions::default()
        },
    );
    let token = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    assert!(provider.is_valid_access_token(&token));
}

/// A proxy tokend cannot speak to (SOCKS, as `ssh -D` or Tor offer) is
/// named in a warning, without its value (which may hold a password), and
/// left out; before, it was used as an HTTP proxy and every request failed
/// with "unsupported scheme".
#[test]
fn a_socks_proxy_is_named_and_left_out() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        support::daemon::DaemonOptions {
            env: vec![(
                "ALL_PROXY".to_owned(),
                "socks5h://user:pw-secret@127.0.0.1:1080".to_owned(),
            )],
            ..support::daemon::DaemonOptions::default()
        },
    );
    let warned = daemon.wait_for_log(1, &["ALL_PROXY is not used"]);
    // Once: only https is ever proxied (plain http goes to loopback).
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("socks5h://"), "{warned:?}");
    assert!(!daemon.log().contains("pw-secret"), "{}", daemon.log());
}

/// A server that never says `expired_token` (it keeps answering
/// "pending"): tokend stops polling once the code's `expires_in` has
/// passed, on its own clock, and says the login expired (RFC 8628 §3.2).
#[test]
fn polling_stops_at_the_codes_own_deadline() {
    let provider = Provider::start(tokend_emulator::Rfc8628Options {
        device_code_lifetime: Duration::from_secs(3),
        ..support::provider::fast()
    });
    provider.set_silent_expiry(true);
    let daemon = Daemon::start(&provider.config("demo"));
    let (done, err, code) = LoginRun::start(&daemon.socket, "demo").finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(err.contains("expired before it was approved"), "{err}");
    // It polled while the code lived, and not once after.
    assert!(
        provider.requests().iter().any(RecordedRequest::is_poll),
        "no poll at all"
    );
    provider.assert_no_violations();
}

/// Polls that fail while the person approves (the provider down) are told
/// as they happen, not only when the code dies: `--json` gets a `polling`
/// line with the reason, another with `trouble` null once polls are
/// answered again, and the login still succeeds.
#[test]
fn failing_polls_are_told_as_they_happen() {
    // A code that dies in 30 s: were the trouble never told, the `done`
    // line would come next, soon, instead of a wait for ever.
    let provider = Provider::start(Rfc8628Options {
        device_code_lifetime: Duration::from_secs(30),
        ..support::provider::fast()
    });
    let daemon = Daemon::start(&provider.config("demo"));
    let mut run = LoginRun::start(&daemon.socket, "demo");
    let code = run.user_code();
    provider.set_unavailable(true);
    let failing = run.next_event();
    assert_eq!(failing["event"], "polling", "{failing}");
    assert_eq!(failing["provider"], "demo", "{failing}");
    let trouble = failing["trouble"].as_str().expect("a reason");
    assert!(trouble.contains("HTTP 503"), "{trouble}");
    // `status` says so too, to whoever follows the login there.
    let out = daemon.tokenctl(&["status", "demo"]);
    let status = stdout(&out);
    assert!(
        status.contains("polling for the login's approval fails") && status.contains("HTTP 503"),
        "{status}"
    );
    provider.set_unavailable(false);
    let answered = run.next_event();
    assert_eq!(answered["event"], "polling", "{answered}");
    assert!(answered["trouble"].is_null(), "{answered}");
    provider.approve(&code).unwrap();
    let (done, err, status) = run.finish();
    assert_eq!(status, 0, "{done} {err}");
    assert_eq!(done["ok"], true, "{done}");
}

/// A person at `tokenctl login` reads that polls fail, and that the
/// provider answers again, on lines of their own above the countdown.
#[test]
fn a_person_is_told_when_polls_fail_and_recover() {
    let provider = Provider::rfc8628();
    provider.inject(Endpoint::Token, Fault::Status(502), 1);
    let daemon = Daemon::start(&provider.config("demo"));
    let child = support::daemon::spawn_tokenctl(&daemon.socket, &["login", "demo"]);
    let code = provider.wait_for_user_code();
    // The faulted poll, then one answered "pending": the recovery is told
    // before the approval can end the login.
    provider.wait_for_count(1, |r| r.is_poll() && r.outcome == "pending");
    provider.approve(&code).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text} {}", stderr(&out));
    let failing = text
        .find("tokend cannot learn from demo whether the code was approved: ")
        .unwrap_or_else(|| panic!("the failing polls were not told: {text}"));
    let failing_line = text[failing..].lines().next().unwrap();
    assert!(failing_line.contains("HTTP 502"), "{failing_line}");
    assert!(failing_line.ends_with("it keeps asking until the code expires."));
    let answered = text.find("demo answers again.").expect("the recovery");
    let done = text.find("Logged in to demo.").expect("the success");
    assert!(failing < answered && answered < done, "{text}");
}

/// Backoff after failed polls never skips the last poll the code's life
/// allows: a wait that would outlast the code is cut short, so one more
/// poll goes out before the code expires, and an approval given meanwhile
/// is not lost. (Here the third poll, 4 s after two failures, would come
/// as the 7 s code dies; it goes out 2 s before instead.)
#[test]
fn a_backed_off_poll_still_goes_out_before_the_code_expires() {
    let provider = Provider::start(Rfc8628Options {
        interval: Duration::from_secs(1),
        device_code_lifetime: Duration::from_secs(7),
        ..Rfc8628Options::default()
    });
    provider.inject(Endpoint::Token, Fault::Status(503), 2);
    let daemon = Daemon::start(&provider.config("demo"));
    let run = LoginRun::start(&daemon.socket, "demo");
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    provider.assert_no_violations();
}

/// A poll answered 503 with a `Retry-After` longer than the code's life
/// left: one more poll still goes out shortly before the code expires, and
/// the person who approved meanwhile is logged in. Before, no poll went
/// out at all, and the approved login ended "expired before it was
/// approved".
#[test]
fn a_retry_after_past_the_codes_life_still_polls_once_before_it_expires() {
    let provider = Provider::start(Rfc8628Options {
        device_code_lifetime: Duration::from_secs(12),
        ..support::provider::fast()
    });
    let daemon = Daemon::start(&provider.config("demo"));
    provider.inject(
        Endpoint::Token,
        Fault::RetryAfter {
            status: 503,
            retry_after: "120".into(),
        },
        1,
    );
    let run = LoginRun::start(&daemon.socket, "demo");
    provider.wait_for_count(1, RecordedRequest::is_poll);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    assert_eq!(provider.polls().len(), 2, "{:#?}", provider.polls());
}
