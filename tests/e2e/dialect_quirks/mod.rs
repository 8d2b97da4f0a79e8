//! The standard dialect against real providers' deviations
//! (`shared/dialects.md` §0), each reproduced by a quirk mode of the RFC
//! 8628 emulator: GitHub (form-encoded answers, errors with HTTP 200,
//! `slow_down` with a new `interval`, `bad_refresh_token`), Google
//! (`verification_url`, pending as 428, 403s), Microsoft (`message`,
//! `authorization_declined`, `bad_verification_code`), Auth0
//! (`expired_token` once, then `invalid_grant`) and Azure AD v1 (numbers
//! as strings); then durations with a fraction and answers that
//! start with a byte order mark, which servers of any make send.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, LoginRun, stderr};
use support::flows::{self, EXIT_LOGIN_FAILED, EXIT_LOGIN_REQUIRED, NAME};
use support::provider::{Provider, fast};
use tokend_emulator::{Endpoint, FormAnswers, RecordedRequest, Rfc8628Options, Rfc8628Quirks};

mod any_server;

fn with(quirks: Rfc8628Quirks) -> Rfc8628Options {
    Rfc8628Options {
        quirks,
        access_token_lifetime: Duration::from_secs(4),
        ..fast()
    }
}

/// `tokenctl --json status` of the one provider.
fn status(daemon: &Daemon) -> serde_json::Value {
    let out = daemon.tokenctl(&["--json", "status", NAME]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    status[0].clone()
}

// ---- GitHub --------------------------------------------------------------

#[test]
fn github_errors_with_200_and_refresh_with_rotation() {
    let provider = Provider::start(with(Rfc8628Quirks::github()));
    let daemon = Daemon::start(&provider.config(NAME));
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.wait_for_count(1, RecordedRequest::is_poll);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    let pending = provider
        .requests()
        .into_iter()
        .find(RecordedRequest::is_poll)
        .unwrap();
    assert_eq!(
        (pending.status, pending.outcome.as_str()),
        (Some(200), "pending")
    );
    // tokend asks for JSON, which GitHub then sends.
    assert_eq!(pending.header("accept"), Some("application/json"));
    provider.wait_for_count(2, |r| r.is_refresh() && r.outcome == "refreshed");
    provider.assert_no_violations();
}

/// GitHub grants `scope=repo,read:org`: the scopes are two, as `status`
/// and the D-Bus `Scopes` property list them.
#[test]
fn github_comma_separated_scopes_are_two() {
    let provider = Provider::start(with(Rfc8628Quirks::github()));
    let config = provider.config_with(NAME, "scopes = [\"repo\", \"read:org\"]");
    let (daemon, _) = flows::logged_in(&provider, &config);
    let out = daemon.tokenctl(&["--json", "status", NAME]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status[0]["scopes"], serde_json::json!(["repo", "read:org"]));
}

#[test]
fn github_form_encoded_answers_are_read() {
    let provider = Provider::start(with(Rfc8628Quirks {
        form_answers: FormAnswers::Always,
        ..Rfc8628Quirks::github()
    }));
    flows::login_then_refresh_with_rotation(&provider, &provider.config(NAME), "refresh_token");
    let device = provider
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::DeviceAuthorization)
        .unwrap();
    assert_eq!(device.status, Some(200));
}

#[test]
fn github_slow_down_with_a_new_interval() {
    let provider = Provider::start(with(Rfc8628Quirks::github()));
    flows::slow_down(&provider, &provider.config(NAME), Duration::from_secs(1));
}

#[test]
fn github_denial_with_200() {
    let provider = Provider::start(with(Rfc8628Quirks::github()));
    flows::denial(&provider, &provider.config(NAME));
}

#[test]
fn github_bad_refresh_token_means_login_required() {
    let provider = Provider::start(Rfc8628Options {
        quirks: Rfc8628Quirks::github(),
        ..fast()
    });
    let (daemon, _) = flows::logged_in(&provider, &provider.config(NAME));
    provider.revoke_all();
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_LOGIN_REQUIRED),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("bad_refresh_token"),
        "{}",
        stderr(&out)
    );
    let refresh = provider
        .requests()
        .into_iter()
        .find(RecordedRequest::is_refresh)
        .unwrap();
    assert_eq!(refresh.status, Some(200));
    provider.assert_no_violations();
}

// ---- Google --------------------------------------------------------------

#[test]
fn google_verification_url_and_428_pending() {
    let provider = Provider::start(with(Rfc8628Quirks::google()));
    let daemon = Daemon::start(&provider.config(NAME));
    let run = LoginRun::start(&daemon.socket, NAME);
    assert_eq!(
        run.prompt["verification_uri"],
        provider.verification_uri().as_str()
    );
    provider.wait_for_count(1, RecordedRequest::is_poll);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    assert!(provider.requests().iter().any(|r| r.status == Some(428)));
    provider.wait_for_count(1, |r| r.is_refresh() && r.outcome == "refreshed");
    provider.assert_no_violations();
}

#[test]
fn google_denial_and_slow_down_are_403() {
    let provider = Provider::start(with(Rfc8628Quirks::google()));
    flows::denial(&provider, &provider.config(NAME));
    assert!(provider.requests().iter().any(|r| r.status == Some(403)));
    let provider = Provider::start(with(Rfc8628Quirks::google()));
    flows::slow_down(&provider, &provider.config(NAME), Duration::from_secs(1));
}

#[test]
fn pending_as_403() {
    let provider = Provider::start(with(Rfc8628Quirks {
        pending_status: Some(403),
        ..Rfc8628Quirks::default()
    }));
    let daemon = Daemon::start(&provider.config(NAME));
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.wait_for_count(1, RecordedRequest::is_poll);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    let first = provider
        .requests()
        .into_iter()
        .find(RecordedRequest::is_poll)
        .unwrap();
    assert_eq!(
        (first.status, first.outcome.as_str()),
        (Some(403), "pending")
    );
    provider.assert_no_violations();
}

#[test]
fn pending_as_a_bare_403() {
    // "Some servers signal pending with 403", with nothing but the status.
    let provider = Provider::start(with(Rfc8628Quirks {
        pending_status: Some(403),
        bare_pending: true,
        ..Rfc8628Quirks::default()
    }));
    let daemon = Daemon::start(&provider.config(NAME));
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.wait_for_count(2, RecordedRequest::is_poll);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    let pending: Vec<_> = provider
        .requests()
        .into_iter()
        .filter(RecordedRequest::is_poll)
        .filter(|r| r.outcome == "pending")
        .collect();
    assert!(pending.len() >= 2, "{pending:?}");
    assert!(pending.iter().all(|r| r.status == Some(403)));
    provider.assert_no_violations();
}

// ---- Microsoft -----------------------------------------------------------

#[test]
fn microsoft_message_and_refresh() {
    let provider = Provider::start(with(Rfc8628Quirks::microsoft()));
    let (_daemon, prompt) = flows::logged_in(&provider, &provider.config(NAME));
    let message = prompt["message"]
        .as_str()
        .expect("the message is passed on");
    assert!(
        message.starts_with("To sign in, use a web browser to open the page"),
        "{message}"
    );
    provider.wait_for_count(1, |r| r.is_refresh() && r.outcome == "refreshed");
    provider.assert_no_violations();
}

/// A token for the app's own API (`api://…`): Entra refuses a refresh
/// without `scope` (AADSTS90009), so the refresh names the scopes
/// (`refresh_scopes`; the default at Microsoft's hosts, which the emulator
/// on 127.0.0.1 is not).
#[test]
fn microsoft_own_api_refresh_names_its_scopes() {
    let provider = Provider::start(with(Rfc8628Quirks {
        refresh_needs_scope: true,
        ..Rfc8628Quirks::microsoft()
    }));
    let config = provider.config_with(
        NAME,
        "scopes = [\"offline_access\", \"api://app/access_as_user\"]\nrefresh_scopes = [\"offline_access\", \"api://app/access_as_user\"]",
    );
    let (_daemon, _) = flows::logged_in(&provider, &config);
    let refreshed = provider.wait_for_count(1, |r| r.is_refresh() && r.outcome == "refreshed");
    let scope = refreshed[0]
        .fields
        .iter()
        .find(|(name, _)| name == "scope")
        .map(|(_, value)| value.as_str());
    assert_eq!(scope, Some("offline_access api://app/access_as_user"));
    provider.assert_no_violations();
}

#[test]
fn microsoft_authorization_declined_is_a_denial() {
    let provider = Provider::start(with(Rfc8628Quirks::microsoft()));
    flows::denial(&provider, &provider.config(NAME));
    assert!(
        provider
            .requests()
            .iter()
            .any(|r| r.outcome == "authorization_declined")
    );
}

#[test]
fn microsoft_device_code_expiry() {
    let provider = Provider::start(with(Rfc8628Quirks::microsoft()));
    flows::device_code_expiry(&provider, &provider.config(NAME));
}

#[test]
fn microsoft_bad_verification_code_ends_the_login() {
    let provider = Provider::start(with(Rfc8628Quirks::microsoft()));
    // The emulator never forgets a code it issued, so its answer to an
    // unknown one comes as a fault, with Microsoft's own wording.
    provider.inject(
        Endpoint::Token,
        tokend_emulator::Fault::Body {
            status: 400,
            content_type: Some("application/json".into()),
            body: r#"{"error":"bad_verification_code","error_description":"AADSTS70019: Verification code expired."}"#.into(),
        },
        1,
    );
    let daemon = Daemon::start(&provider.config(NAME));
    let (done, err, code) = LoginRun::start(&daemon.socket, NAME).finish();
    assert_eq!(code, EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("bad_verification_code") && err.contains("AADSTS70019"),
        "{err}"
    );
}

// ---- Auth0 ---------------------------------------------------------------

/// Auth0 answers an expired device code `expired_token` once, then
/// `invalid_grant` ("Invalid or expired device code."). The login ends at
/// the first answer, as expired (exit 8, "expired before it was
/// approved", in `status` too), and polls no more: a poll after it would
/// meet the `invalid_grant` and read as a refused code.
#[test]
fn auth0_expired_token_once_ends_the_login_as_expired() {
    let provider = Provider::start(with(Rfc8628Quirks::auth0()));
    let daemon = Daemon::start(&provider.config(NAME));
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.wait_for_count(1, RecordedRequest::is_poll);
    provider.expire_device_codes();
    let (done, err, code) = run.finish();
    assert_eq!(code, EXIT_LOGIN_FAILED, "{done} {err}");
    assert_eq!(done["error"]["code"], "login_failed", "{done}");
    assert!(
        err.contains("expired before it was approved") && !err.contains("invalid_grant"),
        "{err}"
    );
    let polls = provider.polls();
    assert_eq!(polls.last().unwrap().outcome, "expired_token", "{polls:#?}");
    assert!(
        polls.iter().all(|p| p.outcome != "invalid_grant"),
        "{polls:#?}"
    );
    let last_error = status(&daemon)["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        last_error.contains("expired before it was approved"),
        "{last_error}"
    );
    provider.assert_no_violations();
}

// ---- Azure AD v1 ---------------------------------------------------------

/// A policy that now asks for MFA: Entra answers the refresh with
/// `interaction_required` (AADSTS50076). A new login is what it takes,
/// said loudly, not a refusal retried for ever.
#[test]
fn microsoft_interaction_required_on_refresh_means_login_required() {
    let provider = Provider::start(Rfc8628Options {
        quirks: Rfc8628Quirks::microsoft(),
        ..fast()
    });
    let (daemon, _) = flows::logged_in(&provider, &provider.config(NAME));
    provider.inject(
        Endpoint::Token,
        tokend_emulator::Fault::Body {
            status: 400,
            content_type: Some("application/json; charset=utf-8".into()),
            body: bytes::Bytes::from_static(
                br#"{"error":"interaction_required","error_description":"AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication to access the resource.","error_codes":[50076],"suberror":"basic_action"}"#,
            ),
        },
        1,
    );
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_LOGIN_REQUIRED),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(
            "the provider wants the person to sign in again (interaction_required): AADSTS50076"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(status(&daemon)["state"], "login_required");
}

#[test]
fn azure_ad_v1_string_numbers() {
    let provider = Provider::start(with(Rfc8628Quirks::azure_ad_v1()));
    let (daemon, prompt) = flows::logged_in(&provider, &provider.config(NAME));
    assert!(prompt["expires_in"].as_u64().unwrap() > 500, "{prompt}");
    provider.wait_for_count(1, |r| r.is_refresh() && r.outcome == "refreshed");
    let status: serde_json::Value = serde_json::from_str(&support::daemon::stdout(
        &daemon.tokenctl(&["--json", "status", NAME]),
    ))
    .unwrap();
    assert!(status[0]["expires_at"].as_i64().is_some(), "{status}");
    provider.assert_no_violations();
}

// ---- Twilio --------------------------------------------------------------

/// Twilio: the poll that carries the approval is answered too late (its
/// answer lost to `http_timeout`), and the next is told "Invalid device
/// code" (the code is spent). The login ends there, saying what happened;
/// it was read as pending, and the login waited out the code's whole life
/// to say "expired before it was approved".
#[test]
fn a_twilio_device_code_spent_by_a_lost_answer_ends_the_login() {
    use crate::dialect_twilio::{opaque_twilio, twilio_config};
    let provider = Provider::start(tokend_emulator::TwilioOptions {
        device_code_lifetime: Duration::from_secs(120),
        ..opaque_twilio()
    });
    let daemon = Daemon::start_with(
        &twilio_config(&provider, NAME, ""),
        support::daemon::DaemonOptions {
            daemon_keys: "http_timeout = 2\n".into(),
            ..support::daemon::DaemonOptions::default()
        },
    );
    let run = LoginRun::start(&daemon.socket, NAME);
    let code = run.user_code();
    provider.inject(
        Endpoint::Token,
        tokend_emulator::Fault::Delay(Duration::from_secs(4)),
        1,
    );
    provider.approve(&code).unwrap();
    let (done, err, status) = run.finish();
    assert_eq!(status, EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("refused to issue tokens for the device code")
            && err.contains("Invalid device code"),
        "{err}"
    );
}
