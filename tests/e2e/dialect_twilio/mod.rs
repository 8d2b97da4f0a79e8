//! `dialect = "twilio"` end to end: the real `tokend` and `tokenctl`
//! against the strict Twilio emulator (HTTP Basic with the account on every
//! request, PascalCase forms, repeated `Scopes`/`Audiences`, 201 answers,
//! absolute expiries in ISO 8601, with or without an offset, or RFC 2822,
//! nullable fields, both error styles, Twilio's with or without OAuth words
//! in its messages).

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, LoginRun, stderr, stdout, token};
use support::flows::{self, EXIT_LOGIN_FAILED, NAME};
use support::provider::Provider;
use tokend_emulator::{
    AuthSeen, Endpoint, RecordedRequest, TwilioDateFormat, TwilioErrorStyle, TwilioOptions,
};

mod opaque_errors;

const AUTH_TOKEN: &str = "tokend-test-auth-token";

fn short_lived(date_format: TwilioDateFormat, error_style: TwilioErrorStyle) -> TwilioOptions {
    TwilioOptions {
        access_token_lifetime: Duration::from_secs(4),
        date_format,
        error_style,
        ..fast_twilio()
    }
}

fn login_and_refresh(options: TwilioOptions, extra: &str) -> (Provider, Daemon) {
    let provider = Provider::start(options);
    let daemon = flows::login_then_refresh_with_rotation(
        &provider,
        &twilio_config(&provider, NAME, extra),
        "RefreshToken",
    );
    (provider, daemon)
}

#[test]
fn iso_expiries_rfc_errors_and_the_wire_format() {
    let (provider, daemon) = login_and_refresh(
        short_lived(TwilioDateFormat::Iso8601, TwilioErrorStyle::OAuth),
        "audiences = [\"https://api.example\", \"https://other.example\"]",
    );
    for request in provider.requests() {
        if request.endpoint == Endpoint::Approval {
            continue;
        }
        // The account on every request, as HTTP Basic.
        assert_eq!(request.auth, AuthSeen::Basic, "{request}");
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/x-www-form-urlencoded"),
            "{request}"
        );
        assert_eq!(
            request.field("ClientSid"),
            Some("OQtokendtest"),
            "{request}"
        );
    }
    let device = provider.device_codes();
    assert_eq!(device[0].scope.as_deref(), Some("offline_access profile"));
    let audiences: Vec<_> = device[0]
        .params
        .iter()
        .filter(|(n, _)| n == "Audiences")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(audiences, ["https://api.example", "https://other.example"]);
    assert!(provider.requests().iter().any(|r| r.status == Some(201)));
    // The token's expiry came from access_token_expires_at: a few seconds.
    assert_expiry_within_5_s(&daemon);
    flows::assert_log_has_no_secrets(&daemon, &provider, &[AUTH_TOKEN]);
}

/// Twilio says when a refresh token expires as a date-time
/// (`refresh_token_expires_at`): tokend reads it, so the status says when
/// a new login is needed and the log warns within the warning time.
#[test]
fn the_refresh_token_expiry_is_read_from_its_date_time() {
    let two_days = Duration::from_secs(2 * 24 * 3600);
    // Refreshes (of 3 s access tokens) keep the refresh token and its
    // expiry: the first shows that only a login helps.
    let provider = Provider::start(TwilioOptions {
        refresh_token_lifetime: Some(two_days),
        access_token_lifetime: Duration::from_secs(3),
        rotate_refresh_tokens: false,
        ..fast_twilio()
    });
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (daemon, _) = flows::logged_in(&provider, &twilio_config(&provider, NAME, ""));
    daemon.wait_for_log(1, &["event=\"refresh_token_expiring\""]);
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tokenctl(&["--json", "status", NAME]))).unwrap();
    let by = status[0]["login_needed_by"]
        .as_u64()
        .expect("login_needed_by");
    let expected = before + two_days.as_secs();
    // The emulator's dates have whole seconds; the login takes a poll or two.
    assert!(
        (expected - 5..=expected + 60).contains(&by),
        "{by} vs {expected}"
    );
    provider.assert_no_violations();
}

#[test]
fn rfc2822_expiries_twilio_errors_and_null_fields() {
    let (provider, daemon) = login_and_refresh(
        TwilioOptions {
            null_fields: true,
            ..short_lived(TwilioDateFormat::Rfc2822, TwilioErrorStyle::Twilio)
        },
        "",
    );
    flows::assert_log_has_no_secrets(&daemon, &provider, &[AUTH_TOKEN]);
}

/// Expiries without an offset (`2026-12-04T16:25:33.414021`, as Python's
/// `datetime.utcnow().isoformat()` writes them) are UTC: the token's expiry
/// is known and its refresh planned (the old reading refused them and kept
/// the tokens of unknown expiry, never refreshed in the background).
#[test]
fn offset_less_expiries_are_utc_and_refreshes_are_planned() {
    let (provider, daemon) = login_and_refresh(
        short_lived(TwilioDateFormat::Iso8601NoOffset, TwilioErrorStyle::OAuth),
        "",
    );
    let token_answer = provider
        .requests()
        .into_iter()
        .find(|r| r.outcome == "granted")
        .expect("a granted poll");
    assert_eq!(token_answer.status, Some(201), "{token_answer}");
    assert_expiry_within_5_s(&daemon);
    assert!(
        !daemon.log().contains("expiry taken as unknown"),
        "{}",
        daemon.log()
    );
}

#[test]
fn twilio_style_pending_keeps_polling() {
    let provider = Provider::start(TwilioOptions {
        error_style: TwilioErrorStyle::Twilio,
        ..fast_twilio()
    });
    let daemon = Daemon::start(&twilio_config(&provider, NAME, ""));
    let run = LoginRun::start(&daemon.socket, NAME);
    let polls = provider.wait_for_count(2, RecordedRequest::is_poll);
    assert!(
        polls
            .iter()
            .filter(|r| r.is_poll())
            .all(|r| r.outcome == "pending"),
        "{polls:#?}"
    );
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    provider.assert_no_violations();
}

#[test]
fn denial() {
    let provider = Provider::start(TwilioOptions {
        error_style: TwilioErrorStyle::Twilio,
        ..fast_twilio()
    });
    flows::denial(&provider, &twilio_config(&provider, NAME, ""));
}

#[test]
fn device_code_expiry() {
    let provider = Provider::start(fast_twilio());
    flows::device_code_expiry(&provider, &twilio_config(&provider, NAME, ""));
}

#[test]
fn slow_down() {
    let provider = Provider::start(fast_twilio());
    flows::slow_down(
        &provider,
        &twilio_config(&provider, NAME, ""),
        Duration::from_secs(1),
    );
}

#[test]
fn a_wrong_auth_token_is_named_but_never_shown() {
    let provider = Provider::start(fast_twilio());
    let wrong = "WRONG-AUTH-TOKEN-1234";
    let daemon = Daemon::start(&twilio_config(&provider, NAME, "").replace(AUTH_TOKEN, wrong));
    let out = daemon.tokenctl(&["login", NAME]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("provider `demo`") && err.contains("Twilio error 20003: Authenticate"),
        "{err}"
    );
    assert!(!err.contains(wrong), "{err}");
    assert!(
        !daemon.log().contains(wrong),
        "the auth token is in the log"
    );
    let status = stdout(&daemon.tokenctl(&["--json", "status", NAME]));
    assert!(!status.contains(wrong), "{status}");
    assert_eq!(
        provider.violations().len(),
        1,
        "{:?}",
        provider.violations()
    );
}

#[test]
fn a_client_secret_goes_in_the_body_as_client_secret() {
    let provider = Provider::start(TwilioOptions {
        client_secret: Some("app-secret".into()),
        ..fast_twilio()
    });
    let (daemon, _) = flows::logged_in(
        &provider,
        &twilio_config(&provider, NAME, "client_secret = \"app-secret\""),
    );
    let poll = provider
        .requests()
        .into_iter()
        .find(RecordedRequest::is_poll)
        .expect("a poll");
    assert_eq!(poll.field("ClientSecret"), Some("app-secret"));
    provider.assert_no_violations();
    flows::assert_log_has_no_secrets(&daemon, &provider, &[AUTH_TOKEN, "app-secret"]);
    // Without it the emulator refuses, and the login says so.
    let provider = Provider::start(TwilioOptions {
        client_secret: Some("app-secret".into()),
        ..fast_twilio()
    });
    let daemon = Daemon::start(&twilio_config(&provider, NAME, ""));
    let (done, err, code) = LoginRun::start(&daemon.socket, NAME).finish();
    assert_eq!(code, EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(err.contains("invalid_client"), "{err}");
}

/// Checks that the session's token expires within 5 s, as the emulator's
/// short-lived tokens say in their absolute expiry (status reads it).
fn assert_expiry_within_5_s(daemon: &Daemon) {
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tokenctl(&["--json", "status", NAME]))).unwrap();
    let expires_at = status[0]["expires_at"].as_u64().expect("an expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires_at <= now + 5, "{expires_at} vs {now}");
}

/// Twilio with a 1 s poll interval whose error bodies carry no OAuth
/// word (the meaning is in the status alone).
pub(crate) fn opaque_twilio() -> TwilioOptions {
    TwilioOptions {
        error_style: TwilioErrorStyle::TwilioOpaque,
        ..fast_twilio()
    }
}

/// Twilio with a 1 s poll interval.
fn fast_twilio() -> TwilioOptions {
    TwilioOptions {
        interval: Duration::from_secs(1),
        ..TwilioOptions::default()
    }
}

/// The table for a Twilio emulator with default account and app, plus `extra`.
pub(crate) fn twilio_config(provider: &Provider, name: &str, extra: &str) -> String {
    let defaults = TwilioOptions::default();
    provider.base_config(
        name,
        "twilio",
        &format!(
            "client_id = \"{}\"\naccount_sid = \"{}\"\nauth_token = \"{}\"\nscopes = [\"offline_access\", \"profile\"]\n{extra}",
            defaults.client_sid, defaults.account_sid, defaults.auth_token
        ),
    )
}

#[test]
fn a_refresh_answer_whose_expiry_has_passed_keeps_the_rotated_tokens() {
    // Twilio rotates refresh tokens: refusing an answer whose absolute
    // expiry has passed (a provider's clock behind, a slow answer) would
    // lose the session, as the old refresh token is gone.
    let provider = Provider::start(fast_twilio());
    let daemon = Daemon::start(&twilio_config(&provider, NAME, ""));
    support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    provider.inject(
        Endpoint::Token,
        tokend_emulator::Fault::Body {
            status: 201,
            content_type: Some("application/json".into()),
            body: bytes::Bytes::from_static(
                br#"{"access_token":"at_past","refresh_token":"rt_past","id_token":null,"access_token_expires_at":"2020-01-01T00:00:00Z","refresh_token_expires_at":null}"#,
            ),
        },
        1,
    );
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "86400"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "at_past\n");
    let warned = daemon.wait_for_log(1, &["expiry taken as unknown"]);
    assert!(warned[0].contains("access_token_expires_at"), "{warned:?}");
    assert!(!warned[0].contains("rt_past"), "{warned:?}");
    // Of unknown life, the token is taken as it is by a default request.
    // (One of some life would have it refreshed, on demand: with a
    // refresh token this emulator never issued.)
    assert_eq!(token(&daemon, NAME, &[]), "at_past");
}

/// Every field of Twilio's device answer may be null: with no
/// `verification_uri` but a `verification_uri_complete` (and none in the
/// config), the person is shown the complete one rather than a failure.
#[test]
fn a_null_verification_uri_shows_the_complete_one() {
    let provider = Provider::start(fast_twilio());
    let daemon = Daemon::start(&twilio_config(&provider, NAME, ""));
    provider.inject(
        Endpoint::DeviceAuthorization,
        tokend_emulator::Fault::Body {
            status: 201,
            content_type: Some("application/json".into()),
            body: bytes::Bytes::from_static(
                br#"{"device_code":"dc_1","user_code":"ABCD-EFGH","verification_uri":null,"verification_uri_complete":"https://www.twilio.com/device?code=ABCD-EFGH","expires_in":600,"interval":1}"#,
            ),
        },
        1,
    );
    let out = daemon.tokenctl(&["--json", "login", NAME, "--no-wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let prompt: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().expect("a prompt line")).unwrap();
    assert_eq!(prompt["event"], "prompt", "{prompt}");
    assert_eq!(
        prompt["verification_uri"], "https://www.twilio.com/device?code=ABCD-EFGH",
        "{prompt}"
    );
}

/// Every poll answered 400 with a Twilio error whose message has no known
/// meaning ("Invalid GrantType": the request's own fault): polled on, as
/// Twilio's pending may be worded so, but told as the polls' trouble, and
/// the login that then expires names it (it said only "expired before it
/// was approved", as if nobody had approved it).
#[test]
fn a_twilio_error_of_no_known_meaning_at_every_poll_is_named() {
    let provider = Provider::start(TwilioOptions {
        device_code_lifetime: Duration::from_secs(4),
        ..fast_twilio()
    });
    provider.inject(
        Endpoint::Token,
        tokend_emulator::Fault::Body {
            status: 400,
            content_type: Some("application/json".into()),
            body: bytes::Bytes::from_static(
                br#"{"code":20001,"message":"Invalid GrantType","more_info":"https://www.twilio.com/docs/errors/20001","status":400}"#,
            ),
        },
        100,
    );
    let daemon = Daemon::start(&twilio_config(&provider, NAME, ""));
    let mut run = LoginRun::start(&daemon.socket, NAME);
    let polling = run.next_event();
    assert_eq!(polling["event"], "polling", "{polling}");
    let trouble = polling["trouble"].as_str().expect("a reason");
    assert!(trouble.contains("Invalid GrantType"), "{trouble}");
    let (done, err, code) = run.finish();
    assert_eq!(code, EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("expired before it was approved (the last poll failed:")
            && err.contains("Twilio error 20001: Invalid GrantType"),
        "{err}"
    );
}
