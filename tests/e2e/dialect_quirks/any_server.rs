//! Deviations that servers of any make send: durations with a fraction
//! of a second, answers that start with a byte order mark, and token
//! answers without `expires_in` (RFC 6749 only recommends it); a device
//! answer without it, which RFC 8628 requires.

use super::*;
use tokend_emulator::ByteOrderMarks;

// ---- Fractional seconds and byte order marks ------------------------------

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.unwrap().as_secs()).unwrap()
}

/// Durations with a fraction, as servers computing them in floating point
/// send them: a 1.5 s interval (polled at 2 s, never faster: the emulator
/// flags a poll under 1.5 s), a 599.9 s device code and a 3599.5 s access
/// token (taken as 3599 s). The login succeeds, and the session's expiry
/// is known, so its refresh is planned. (tokend refused the interval, and
/// took the expiry as unknown.)
#[test]
fn fractional_interval_and_lifetimes() {
    let provider = Provider::start(Rfc8628Options {
        interval: Duration::from_millis(1500),
        device_code_lifetime: Duration::from_millis(599_900),
        access_token_lifetime: Duration::from_millis(3_599_500),
        quirks: Rfc8628Quirks {
            fractional_seconds: true,
            ..Rfc8628Quirks::default()
        },
        ..fast()
    });
    let before = unix_now();
    let (daemon, prompt) = flows::logged_in(&provider, &provider.config(NAME));
    let after = unix_now();
    let code_life = prompt["expires_in"].as_u64().expect("a device code life");
    assert!((500..=599).contains(&code_life), "{prompt}");
    let status = status(&daemon);
    assert_eq!(status["state"], "active", "{status}");
    let expires_at = status["expires_at"].as_i64().expect("a known expiry");
    assert!(
        (before + 3599..=after + 3599).contains(&expires_at),
        "{before} {after} {status}"
    );
    let next_refresh = status["next_refresh"].as_i64().expect("a planned refresh");
    assert!(next_refresh < expires_at, "{status}");
    provider.assert_no_violations();
}

/// A fractional `expires_in` in a provider that does not rotate refresh
/// tokens: the login's tokens are refreshed before they expire, and the
/// refresh answers (no new refresh token) are read, so the refreshes go
/// on. (tokend took the login's expiry as unknown and never refreshed; a
/// refresh answer without a refresh token was refused and retried
/// forever.)
#[test]
fn fractional_expiries_are_refreshed_without_rotation() {
    let provider = Provider::start(Rfc8628Options {
        access_token_lifetime: Duration::from_millis(4500),
        rotate_refresh_tokens: false,
        quirks: Rfc8628Quirks {
            fractional_seconds: true,
            string_numbers: true,
            ..Rfc8628Quirks::default()
        },
        ..fast()
    });
    let (daemon, _) = flows::logged_in(&provider, &provider.config(NAME));
    provider.wait_for_count(2, |r| r.is_refresh() && r.outcome == "refreshed");
    let status = status(&daemon);
    assert!(status["expires_at"].as_i64().is_some(), "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    provider.assert_no_violations();
}

/// Refresh answers that start with a UTF-8 byte order mark, from a
/// provider that rotates refresh tokens: the new refresh token is kept,
/// and the next refresh presents it (the emulator flags a replayed one,
/// and the presented ones are all different). (tokend could not read the
/// answer, retried with the retired token, and the provider revoked the
/// login.)
#[test]
fn a_byte_order_mark_before_a_rotated_refresh_token() {
    let provider = Provider::start(with(Rfc8628Quirks {
        byte_order_marks: ByteOrderMarks::Refreshes,
        ..Rfc8628Quirks::default()
    }));
    flows::login_then_refresh_with_rotation(&provider, &provider.config(NAME), "refresh_token");
}

/// Every answer with a byte order mark, JSON or form-encoded: the login
/// and the refreshes read them.
#[test]
fn a_byte_order_mark_before_every_answer() {
    for form_answers in [FormAnswers::Never, FormAnswers::Always] {
        let provider = Provider::start(with(Rfc8628Quirks {
            byte_order_marks: ByteOrderMarks::Always,
            form_answers,
            ..Rfc8628Quirks::default()
        }));
        flows::login_then_refresh_with_rotation(&provider, &provider.config(NAME), "refresh_token");
    }
}

// ---- No expires_in ----------------------------------------------------

/// Token answers without `expires_in` (RFC 6749 only recommends it): the
/// token's life is unknown, so a default request takes it as it is and no
/// refresh is planned, but a request for some of its life has it refreshed
/// first, on demand, at most once a minute from the last refresh or login.
/// A caller asking every second for a minute of it gets one refresh a
/// minute. (It was handed out to every `--min-valid` caller, dead or
/// alive, until one refused it; the first version of this rule refreshed
/// every 5 s.)
#[test]
fn a_token_without_expires_in_is_refreshed_on_demand_once_a_minute() {
    let provider = Provider::start(with(Rfc8628Quirks {
        no_token_expires_in: true,
        ..Rfc8628Quirks::default()
    }));
    let daemon = Daemon::start(&provider.config(NAME));
    support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    let logged_in = std::time::Instant::now();
    let first = support::daemon::token(&daemon, NAME, &[]);
    let status = status(&daemon);
    assert_eq!(status["expires_at"], serde_json::Value::Null, "{status}");
    assert_eq!(status["next_refresh"], serde_json::Value::Null, "{status}");
    let refreshes = || {
        provider
            .requests()
            .iter()
            .filter(|r| r.is_refresh() && r.outcome == "refreshed")
            .count()
    };
    // The token dies (4 s at the emulator) unseen; a request for a minute
    // of it, every second, brings a new one once a minute has passed.
    let renewed = loop {
        let token = support::daemon::token(&daemon, NAME, &["--min-valid", "60"]);
        if refreshes() > 0 {
            break token;
        }
        assert_eq!(token, first);
        assert!(
            logged_in.elapsed() < Duration::from_secs(90),
            "no refresh on demand\nlog:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    // Not before the minute (counted by the daemon from its login, a
    // little before the test's).
    assert!(
        logged_in.elapsed() >= Duration::from_secs(59),
        "refreshed on demand {:?} after the login",
        logged_in.elapsed()
    );
    assert_eq!(refreshes(), 1);
    assert_ne!(renewed, first);
    assert!(provider.is_valid_access_token(&renewed));
    // Asked again: the token just had, no second refresh; a default
    // request takes it as it is too.
    for want in [&["--min-valid", "60"][..], &[]] {
        assert_eq!(support::daemon::token(&daemon, NAME, want), renewed);
    }
    assert_eq!(refreshes(), 1);
    provider.assert_no_violations();
}

/// A device answer without `expires_in`, which RFC 8628 §3.2 requires (the
/// standard dialect has no lifetime to stand in for it; Twilio's, whose
/// fields are all nullable, takes 5 minutes): the login fails at once as a
/// failed login, exit 8, naming the provider and the field, and asks for no
/// second code. It ended as "unavailable", exit 6: "retry later", which
/// gets the same answer.
#[test]
fn a_device_answer_without_expires_in_fails_the_login() {
    let provider = Provider::start(fast());
    provider.inject(
        Endpoint::DeviceAuthorization,
        support::provider::json_answer(
            r#"{"device_code":"dc_1","user_code":"ABCD-EFGH","verification_uri":"https://example.com/device","interval":1}"#,
        ),
        1,
    );
    let daemon = Daemon::start(&provider.config(NAME));
    // Refused before any code is shown: the `done` line alone.
    let out = daemon.tokenctl(&["--json", "login", NAME]);
    let (done, err) = (support::daemon::stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(EXIT_LOGIN_FAILED), "{done} {err}");
    let done: serde_json::Value = serde_json::from_str(&done).expect("one done line");
    assert_eq!(done["error"]["code"], "provider_error", "{done}");
    assert!(
        err.contains(&format!("provider `{NAME}`"))
            && err.contains(
                "sent a device authorization answer with no `expires_in`, a field RFC 8628 §3.2 requires"
            ),
        "{err}"
    );
    let asked = provider
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::DeviceAuthorization)
        .count();
    assert_eq!(asked, 1);
    assert!(provider.polls().is_empty());
}
