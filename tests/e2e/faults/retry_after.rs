//! A provider's `Retry-After` (seconds or an HTTP-date), on a refresh or
//! on a poll: waited out, by every session of the token endpoint, with no
//! request bringing the next try sooner.

use super::*;

/// A provider answering a refresh 429 or 503 with `Retry-After` (seconds,
/// or an HTTP-date) is left alone that long: the next refresh is planned no
/// sooner (the backoff alone would retry within 5 s), the error says what
/// the provider asked, no request brings a refresh sooner, and the session
/// keeps serving its token.
#[test]
fn a_retry_after_is_waited_out() {
    for (http_status, wait) in [(429, 600), (503, 900)] {
        let (provider, _store, session, daemon) = one_session();
        let asked = SystemTime::now();
        let retry_after = if http_status == 429 {
            wait.to_string()
        } else {
            tokend_emulator::http_date(asked + Duration::from_secs(wait))
        };
        let out = refresh_meeting(
            &provider,
            &daemon,
            Fault::RetryAfter {
                status: http_status,
                retry_after,
            },
        );
        assert_eq!(
            out.status.code(),
            Some(EXIT_UNAVAILABLE),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("it asks to be retried in "),
            "{}",
            stderr(&out)
        );
        let state = status(&daemon, "demo");
        let asked_secs = asked.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let next = state["next_refresh"].as_u64().expect("a planned refresh");
        // An HTTP-date has whole seconds: a second's slack.
        assert!(
            next + 1 >= asked_secs + wait,
            "HTTP {http_status}: the next refresh at {next}, asked to wait until {}",
            asked_secs + wait
        );
        // A request that would refresh gets the failure, not a refresh.
        let again = daemon.tokenctl(&["token", "demo", "--min-valid", "3700"]);
        assert_eq!(again.status.code(), Some(EXIT_UNAVAILABLE));
        assert_eq!(token(&daemon, "demo", &[]), session.access_token);
        let refreshes = provider
            .requests()
            .iter()
            .filter(|r| r.is_refresh())
            .count();
        assert_eq!(refreshes, 1, "HTTP {http_status}: refreshed again too soon");
    }
}

/// A `Retry-After` binds every session of the token endpoint, not only
/// the one told: with eight accounts at one issuer (a shared Keycloak, a
/// resume's storm), the first refresh is told to wait 600 s, and the
/// others' refreshes are not sent (each was, and was told again); each
/// fails as the first did and plans its retry past the wait, while its
/// token keeps serving.
#[test]
fn a_retry_after_binds_every_session_of_the_endpoint() {
    let provider = Provider::start(fast());
    let names: Vec<String> = (0..8).map(|i| format!("acct{i}")).collect();
    let config: String = names.iter().map(|name| provider.config(name)).collect();
    let (_store, sessions, daemon) = seeded(&provider, &config, Duration::from_secs(3600));
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    provider.inject(
        Endpoint::Token,
        Fault::RetryAfter {
            status: 429,
            retry_after: "600".into(),
        },
        names.len(),
    );
    let asked = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for name in &names {
        let out = daemon.tokenctl(&["token", name, "--min-valid", "3700"]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_UNAVAILABLE),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("(HTTP 429)")
                && stderr(&out).contains("it asks to be retried in "),
            "{name}: {}",
            stderr(&out)
        );
        let next = status(&daemon, name)["next_refresh"]
            .as_u64()
            .expect("a planned refresh");
        assert!(
            next >= asked + 590,
            "{name}: the next refresh at {next}, asked at {asked}"
        );
    }
    let refreshes = provider
        .requests()
        .iter()
        .filter(|r| r.is_refresh())
        .count();
    assert_eq!(
        refreshes, 1,
        "refreshes sent while the endpoint asked to wait"
    );
    for (name, session) in names.iter().zip(&sessions) {
        assert_eq!(token(&daemon, name, &[]), session.access_token);
    }
}

/// A poll answered 429 with `Retry-After: 4` (interval 1 s): the next poll
/// comes no sooner than the provider asked (the backoff alone would poll
/// again after 2 s), and the login goes on to succeed.
#[test]
fn a_poll_answered_with_retry_after_waits_it_out() {
    let provider = Provider::start(fast());
    provider.inject(
        Endpoint::Token,
        Fault::RetryAfter {
            status: 429,
            retry_after: "4".into(),
        },
        1,
    );
    let daemon = Daemon::start(&provider.config("demo"));
    let run = support::daemon::LoginRun::start(&daemon.socket, "demo");
    let limited_at = provider
        .wait_for_first(|r| r.outcome == "fault:retry_after")
        .at;
    let next = provider.wait_for_first(|r| r.is_poll() && r.at > limited_at);
    assert!(
        next.at.duration_since(limited_at) >= Duration::from_secs(4),
        "polled again {:?} after a Retry-After of 4 s",
        next.at.duration_since(limited_at)
    );
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    provider.assert_no_violations();
}
