//! A provider's `Retry-After` and device logins: asked at the device
//! authorization endpoint, it holds the next requests for a code; asked of
//! a refresh, it holds the polls of a login of the same client; asked of a
//! poll, the refreshes. And a bare 429 on a poll slows the polls for good.

use super::*;

/// Two accounts of one app (one `client_id`) at one issuer, `acct0`
/// logged in (its token lives 10 minutes: `--min-valid 1200` refreshes
/// it) and `acct1` not.
fn one_logged_in_one_not() -> (Provider, FileStore, Daemon) {
    let provider = Provider::start(fast());
    let store = FileStore::new();
    store.seed(&provider, &provider.config("acct0"), |_| {
        Duration::from_secs(600)
    });
    let config = provider.config("acct0") + &provider.config("acct1");
    let mut options = store.options();
    options.daemon_keys = "http_timeout = 2\n".into();
    let daemon = Daemon::start_with(&config, options);
    (provider, store, daemon)
}

/// The moment the emulator answered its first `Retry-After` fault.
fn first_retry_after(provider: &Provider) -> std::time::Instant {
    provider
        .wait_for_first(|r| r.outcome == "fault:retry_after")
        .at
}

/// A 503 with `Retry-After: 600` to a request for a code: the next logins,
/// of that account or another of the same app, are refused at once with
/// what is left of the wait (exit 6), and none reaches the provider. They
/// do not use up the 6 starts a minute, as nothing was sent.
#[test]
fn a_wait_asked_for_codes_holds_the_next_requests_for_one() {
    let provider = Provider::start(fast());
    let config = provider.config("acct0") + &provider.config("acct1");
    let daemon = Daemon::start(&config);
    provider.inject(
        Endpoint::DeviceAuthorization,
        Fault::RetryAfter {
            status: 503,
            retry_after: "600".into(),
        },
        1,
    );
    for attempt in 0..8 {
        let name = if attempt % 2 == 0 { "acct0" } else { "acct1" };
        let out = daemon.tokenctl(&["login", name, "--no-wait"]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_UNAVAILABLE),
            "login {attempt} of {name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("(HTTP 503)") && stderr(&out).contains("asks to be retried in "),
            "login {attempt} of {name}: {}",
            stderr(&out)
        );
    }
    let asked = provider
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::DeviceAuthorization)
        .count();
    assert_eq!(asked, 1, "codes asked for while the provider asked to wait");
}

/// A refresh of `acct0` told `Retry-After: 8`: a login of `acct1` started
/// meanwhile (same app, same token endpoint) sends no poll before the wait
/// is over (at its 1 s interval it would have polled several times), and
/// says why its polls wait; then it polls and succeeds.
#[test]
fn a_wait_asked_of_a_refresh_holds_the_polls_of_a_login() {
    let (provider, _store, daemon) = one_logged_in_one_not();
    provider.inject(
        Endpoint::Token,
        Fault::RetryAfter {
            status: 429,
            retry_after: "8".into(),
        },
        1,
    );
    let out = daemon.tokenctl(&["token", "acct0", "--min-valid", "1200"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    let limited_at = first_retry_after(&provider);
    let mut run = support::daemon::LoginRun::start(&daemon.socket, "acct1");
    let polling = run.next_event();
    assert_eq!(polling["event"], "polling", "{polling}");
    let trouble = polling["trouble"].as_str().unwrap_or_default();
    assert!(
        trouble.starts_with("not polled yet: ") && trouble.contains("(HTTP 429)"),
        "{polling}"
    );
    let first_poll = provider.wait_for_first(tokend_emulator::RecordedRequest::is_poll);
    assert!(
        first_poll.at.duration_since(limited_at) >= Duration::from_secs(8),
        "polled {:?} after a refresh was told to wait 8 s",
        first_poll.at.duration_since(limited_at)
    );
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    provider.assert_no_violations();
}

/// A poll of `acct1`'s login told `Retry-After: 600`: `acct0`'s refresh
/// (same app, same token endpoint) is not sent, and fails as the poll did
/// with what is left of the wait, while its token keeps serving.
#[test]
fn a_wait_asked_of_a_poll_holds_the_refreshes() {
    let (provider, _store, daemon) = one_logged_in_one_not();
    let run = support::daemon::LoginRun::start(&daemon.socket, "acct1");
    provider.wait_for_count(1, tokend_emulator::RecordedRequest::is_poll);
    provider.inject(
        Endpoint::Token,
        Fault::RetryAfter {
            status: 503,
            retry_after: "600".into(),
        },
        1,
    );
    first_retry_after(&provider);
    let out = daemon.tokenctl(&["token", "acct0", "--min-valid", "1200"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("(HTTP 503)") && stderr(&out).contains("asks to be retried in "),
        "{}",
        stderr(&out)
    );
    let refreshes = provider
        .requests()
        .iter()
        .filter(|r| r.is_refresh())
        .count();
    assert_eq!(refreshes, 0, "a refresh sent while a poll was told to wait");
    let served = daemon.tokenctl(&["token", "acct0"]);
    assert!(served.status.success(), "{}", stderr(&served));
    drop(run);
}

/// A bare 429 on a poll (no OAuth `slow_down`, no `Retry-After`): the
/// polls go 5 s slower for good, as after `slow_down` (they backed off 2,
/// 4, 8 s and then polled at the old 1 s again, into the limit).
#[test]
fn a_bare_429_on_a_poll_slows_the_polls_for_good() {
    let provider = Provider::start(fast());
    let daemon = Daemon::start(&provider.config("demo"));
    let run = support::daemon::LoginRun::start(&daemon.socket, "demo");
    provider.wait_for_count(1, tokend_emulator::RecordedRequest::is_poll);
    provider.inject(Endpoint::Token, Fault::Status(429), 1);
    let limited_at = provider
        .wait_for_first(|r| r.outcome.starts_with("fault:"))
        .at;
    let after = provider.wait_for_count(3, move |r| r.is_poll() && r.at > limited_at);
    let mut at = limited_at;
    for poll in after.iter().filter(|r| r.is_poll() && r.at > limited_at) {
        let gap = poll.at.duration_since(at);
        assert!(
            gap >= Duration::from_secs(6),
            "a poll {gap:?} after the one before, past a 429 (interval 1 s)"
        );
        at = poll.at;
    }
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    provider.assert_no_violations();
}
