//! Twilio's error bodies whose messages name no OAuth error, read by their
//! status and words: while polling, a 400 is pending, a 429 a slow down,
//! and "rejected" or "expired" ends the login; on a refresh, a 400 ends
//! the session and a 401 (the account's credentials) keeps it.

use super::*;
use crate::support::flows::EXIT_LOGIN_REQUIRED;

/// Twilio's error bodies whose messages name no OAuth error ("Authorization
/// request is awaiting user approval"): a 400 while polling is pending.
#[test]
fn opaque_pending_keeps_polling() {
    let provider = Provider::start(opaque_twilio());
    let daemon = Daemon::start(&twilio_config(&provider, NAME, ""));
    let run = LoginRun::start(&daemon.socket, NAME);
    let polls = provider.wait_for_count(3, RecordedRequest::is_poll);
    assert!(
        polls
            .iter()
            .filter(|r| r.is_poll())
            .all(|r| r.outcome == "pending" && r.status == Some(400)),
        "{polls:#?}"
    );
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}\nlog:\n{}", daemon.log());
    token(&daemon, NAME, &["--min-valid", "0"]);
    provider.assert_no_violations();
}

/// Slow down in Twilio's body is a 429 whose message names no OAuth error:
/// the next poll comes 5 s later (not as soon as for a failed poll).
#[test]
fn opaque_slow_down() {
    let provider = Provider::start(opaque_twilio());
    flows::slow_down(
        &provider,
        &twilio_config(&provider, NAME, ""),
        Duration::from_secs(1),
    );
    assert!(provider.requests().iter().any(|r| r.status == Some(429)));
}

/// A denial in Twilio's body says so in words ("rejected"), which end the
/// login as denied; so does an expiry ("expired").
#[test]
fn opaque_denial_and_expiry() {
    let provider = Provider::start(opaque_twilio());
    flows::denial(&provider, &twilio_config(&provider, NAME, ""));
    let provider = Provider::start(opaque_twilio());
    flows::device_code_expiry(&provider, &twilio_config(&provider, NAME, ""));
}

/// A refresh refused with Twilio's 400 ("Invalid refresh token", no OAuth
/// word): the session is gone, loudly, and the status says login required.
#[test]
fn an_opaque_400_on_refresh_means_login_required() {
    let provider = Provider::start(opaque_twilio());
    let (daemon, _) = flows::logged_in(&provider, &twilio_config(&provider, NAME, ""));
    provider.revoke_all();
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EXIT_LOGIN_REQUIRED), "{err}");
    assert!(
        err.contains("login required") && err.contains("Twilio error 20001: Invalid refresh token"),
        "{err}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tokenctl(&["--json", "status", NAME]))).unwrap();
    assert_eq!(status[0]["state"], "login_required", "{status}");
    assert!(
        daemon.log().contains("session ended by the provider"),
        "{}",
        daemon.log()
    );
    let refusals: Vec<_> = provider
        .requests()
        .into_iter()
        .filter(|r| r.is_refresh() && r.outcome == "invalid_grant")
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    provider.assert_no_violations();
}

/// A 401 on a refresh is about the account's credentials, not the session,
/// even when its message says "expired": the session stays, its token is
/// still served, and the next refresh (the account fine again) works.
#[test]
fn a_401_on_refresh_keeps_the_session() {
    let provider = Provider::start(opaque_twilio());
    let (daemon, _) = flows::logged_in(&provider, &twilio_config(&provider, NAME, ""));
    let first = token(&daemon, NAME, &[]);
    provider.inject(
        Endpoint::Token,
        tokend_emulator::Fault::Body {
            status: 401,
            content_type: Some("application/json".into()),
            body: bytes::Bytes::from_static(
                br#"{"code":20003,"message":"Authenticate: the auth token has expired","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
            ),
        },
        1,
    );
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert_ne!(out.status.code(), Some(EXIT_LOGIN_REQUIRED), "{err}");
    assert!(
        err.contains("Twilio error 20003: Authenticate: the auth token has expired"),
        "{err}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tokenctl(&["--json", "status", NAME]))).unwrap();
    assert_ne!(status[0]["state"], "login_required", "{status}");
    assert!(
        !daemon.log().contains("session ended by the provider"),
        "{}",
        daemon.log()
    );
    assert_eq!(token(&daemon, NAME, &[]), first);
    // The refresh token was kept: the next refresh (a caller refusing its
    // token may start one 5 s after a failed one) is granted.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !provider
        .requests()
        .iter()
        .any(|r| r.is_refresh() && r.outcome == "refreshed")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no refresh after the 401\nlog:\n{}",
            daemon.log()
        );
        let mut client = tokend::client::Client::connect(&daemon.socket).expect("connect");
        let _ = client.token_replacing(NAME, &first);
        std::thread::sleep(Duration::from_millis(500));
    }
    let later = token(&daemon, NAME, &[]);
    assert_ne!(later, first);
    assert!(provider.is_valid_access_token(&later));
    provider.assert_no_violations();
}
