//! `dialect = "trakt"` end to end: the real `tokend` and `tokenctl` against
//! the strict Trakt emulator (JSON bodies, `code`, status-code answers,
//! refreshes at `/oauth/token` with `redirect_uri`, single-use refresh
//! tokens, `created_at`).

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use support::daemon::{Daemon, LoginRun, stderr, token};
use support::file_store::{FileStore, granted_records};
use support::flows::{self, EXIT_LOGIN_FAILED, EXIT_LOGIN_REQUIRED, NAME};
use support::provider::Provider;
use tokend::store::{EncryptedFileStore, Store as _, StoreKey};
use tokend_emulator::{
    Endpoint, Fault, RecordedRequest, TraktOptions, TraktPollBodies, TraktRefreshErrors,
};

fn short_lived() -> TraktOptions {
    TraktOptions {
        access_token_lifetime: Duration::from_secs(4),
        ..fast_trakt()
    }
}

#[test]
fn login_token_expiry_and_single_use_refresh_tokens() {
    let provider = Provider::start(short_lived());
    let daemon = flows::login_then_refresh_with_rotation(
        &provider,
        &trakt_config(&provider, NAME, ""),
        "refresh_token",
    );
    // Every request spoke Trakt: JSON with its API headers; polls with
    // `code`, refreshes at /oauth/token with the OOB redirect URI.
    for request in provider.requests() {
        if request.endpoint == Endpoint::Approval {
            continue;
        }
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/json"),
            "{request}"
        );
        assert_eq!(request.header("trakt-api-version"), Some("2"), "{request}");
        if request.is_poll() {
            assert_eq!(request.path, "/oauth/device/token");
            assert!(request.field("code").is_some());
        }
        if request.is_refresh() {
            assert_eq!(request.path, "/oauth/token");
            assert_eq!(
                request.field("redirect_uri"),
                Some("urn:ietf:wg:oauth:2.0:oob")
            );
        }
    }
    let status: serde_json::Value = serde_json::from_str(&support::daemon::stdout(
        &daemon.tokenctl(&["--json", "status", NAME]),
    ))
    .unwrap();
    assert_eq!(status[0]["dialect"], "trakt");
    assert_eq!(status[0]["scopes"], serde_json::json!(["public"]));
    flows::assert_log_has_no_secrets(&daemon, &provider, &["tokend-test-secret"]);
}

#[test]
fn the_prompt_uses_verification_url() {
    let provider = Provider::start(fast_trakt());
    let (_daemon, prompt) = flows::logged_in(&provider, &trakt_config(&provider, NAME, ""));
    assert_eq!(
        prompt["verification_uri"],
        provider.verification_uri().as_str()
    );
    assert!(prompt["verification_uri_complete"].is_null(), "{prompt}");
    provider.assert_no_violations();
}

#[test]
fn denial_is_418() {
    let provider = Provider::start(fast_trakt());
    flows::denial(&provider, &trakt_config(&provider, NAME, ""));
    assert!(provider.requests().iter().any(|r| r.status == Some(418)));
}

#[test]
fn device_code_expiry_is_410() {
    let provider = Provider::start(fast_trakt());
    flows::device_code_expiry(&provider, &trakt_config(&provider, NAME, ""));
    assert!(provider.requests().iter().any(|r| r.status == Some(410)));
}

#[test]
fn slow_down_is_429() {
    let provider = Provider::start(fast_trakt());
    flows::slow_down(
        &provider,
        &trakt_config(&provider, NAME, ""),
        Duration::from_secs(1),
    );
    assert!(provider.requests().iter().any(|r| r.status == Some(429)));
}

#[test]
fn plain_text_poll_bodies_are_ignored() {
    let provider = Provider::start(TraktOptions {
        poll_bodies: TraktPollBodies::Text,
        ..fast_trakt()
    });
    let daemon = Daemon::start(&trakt_config(&provider, NAME, ""));
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.wait_for_count(2, RecordedRequest::is_poll);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    provider.assert_no_violations();
}

#[test]
fn unknown_and_used_codes_end_the_login_clearly() {
    for (status, words) in [
        (404, "Trakt does not know this device code"),
        (409, "already exchanged"),
    ] {
        let provider = Provider::start(fast_trakt());
        provider.inject(
            Endpoint::Token,
            Fault::Body {
                status,
                content_type: None,
                body: Bytes::new(),
            },
            1,
        );
        let daemon = Daemon::start(&trakt_config(&provider, NAME, ""));
        let (done, err, code) = LoginRun::start(&daemon.socket, NAME).finish();
        assert_eq!(code, EXIT_LOGIN_FAILED, "{done} {err}");
        assert!(
            err.contains(words) && err.contains("provider `demo`"),
            "{err}"
        );
    }
}

#[test]
fn a_spent_refresh_token_means_login_required_in_every_error_style() {
    for style in [TraktRefreshErrors::Json400, TraktRefreshErrors::Json401] {
        let provider = Provider::start(TraktOptions {
            refresh_errors: style,
            access_token_lifetime: Duration::from_secs(3600),
            ..fast_trakt()
        });
        let (daemon, _) = flows::logged_in(&provider, &trakt_config(&provider, NAME, ""));
        provider.revoke_all();
        let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_LOGIN_REQUIRED),
            "{style:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("invalid_grant"), "{}", stderr(&out));
        provider.assert_no_violations();
    }
}

/// A config that names Trakt's two endpoints instead of `base_url` (as the
/// example config allows): refreshes still go to `/oauth/token`, beside
/// the device token endpoint, not to it (which Trakt answers with 400).
#[test]
fn explicit_endpoints_without_base_url_refresh_at_oauth_token() {
    let provider = Provider::start(short_lived());
    let config = format!(
        "[providers.{NAME}]\ndialect = \"trakt\"\ndevice_authorization_endpoint = \"{}\"\ntoken_endpoint = \"{}\"\nclient_id = \"tokend-test\"\nclient_secret = \"tokend-test-secret\"\n",
        provider.device_authorization_endpoint(),
        provider.token_endpoint(),
    );
    assert!(!config.contains("base_url"));
    let _daemon = flows::login_then_refresh_with_rotation(&provider, &config, "refresh_token");
    let refreshes: Vec<RecordedRequest> = provider
        .requests()
        .into_iter()
        .filter(RecordedRequest::is_refresh)
        .collect();
    assert!(!refreshes.is_empty());
    for request in refreshes {
        assert_eq!(request.path, "/oauth/token", "{request}");
    }
}

#[test]
fn a_bodiless_400_refresh_keeps_the_session_and_says_why() {
    let provider = Provider::start(TraktOptions {
        refresh_errors: TraktRefreshErrors::Empty400,
        access_token_lifetime: Duration::from_secs(3600),
        ..fast_trakt()
    });
    let (daemon, _) = flows::logged_in(&provider, &trakt_config(&provider, NAME, ""));
    let first = token(&daemon, NAME, &[]);
    provider.revoke_all();
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Bad Request (HTTP 400): an empty body; Trakt answers so when it no longer takes the refresh token: if this goes on, log in again"),
        "{}",
        stderr(&out)
    );
    // Not proof enough to drop the session: the valid token is still served.
    assert_eq!(token(&daemon, NAME, &[]), first);
}

#[test]
fn a_bodiless_400_refresh_ends_the_session_once_its_token_has_expired() {
    let provider = Provider::start(TraktOptions {
        refresh_errors: TraktRefreshErrors::Empty400,
        access_token_lifetime: Duration::from_secs(3),
        ..fast_trakt()
    });
    let (daemon, _) = flows::logged_in(&provider, &trakt_config(&provider, NAME, ""));
    provider.revoke_all();
    // While the token works, the refusal is retried; once it has expired,
    // the next refresh refused so ends the session, loudly. A caller's
    // request brings that refresh on (at most one per 5 s after a failure).
    daemon.wait_for_log(1, &["event=\"refresh_failed\""]);
    let mut code = None;
    for _ in 0..30 {
        let out = daemon.tokenctl(&["token", NAME]);
        code = out.status.code();
        if code == Some(EXIT_LOGIN_REQUIRED) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(code, Some(EXIT_LOGIN_REQUIRED), "{}", daemon.log());
    daemon.wait_for_log(1, &["event=\"login_required\""]);
    let status = daemon.tokenctl(&["--json", "status", NAME]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["state"], "login_required", "{status}");
}

/// A single bare 400 in passing ("sometimes 400 with no body") to the
/// refresh of a token that lives 20 s: retried while that token still
/// works, so the retry brings a new one and the session never goes
/// without. The refusal's backoff (30 to 60 s) put the retry past the
/// expiry, where requests were refused and another bare 400 would have
/// ended the session.
#[test]
fn a_bare_400_in_passing_is_retried_before_the_token_expires() {
    const LIFETIME: Duration = Duration::from_secs(20);
    let provider = Provider::start(TraktOptions {
        access_token_lifetime: LIFETIME,
        ..fast_trakt()
    });
    let (daemon, _) = flows::logged_in(&provider, &trakt_config(&provider, NAME, ""));
    let granted = provider.polls().last().expect("the granted poll").at;
    provider.inject(
        Endpoint::Token,
        Fault::Body {
            status: 400,
            content_type: None,
            body: Bytes::new(),
        },
        1,
    );
    // Long enough for a retry after a refusal's backoff, to say when it came.
    daemon.wait_for_log_within(
        Duration::from_secs(90),
        1,
        &["event=\"refreshed\"", "after 1 failed refresh"],
    );
    let refreshes: Vec<RecordedRequest> = provider
        .requests()
        .into_iter()
        .filter(RecordedRequest::is_refresh)
        .collect();
    assert_eq!(refreshes.len(), 2, "{refreshes:#?}");
    assert_eq!(refreshes[0].outcome, "fault:body");
    assert_eq!(refreshes[1].outcome, "refreshed");
    let retried_after = refreshes[1].at - granted;
    assert!(
        retried_after < LIFETIME,
        "retried {retried_after:?} after the login, past the token's {LIFETIME:?}\nlog:\n{}",
        daemon.log()
    );
    assert!(
        !daemon.log().contains("event=\"access_expired\""),
        "{}",
        daemon.log()
    );
    assert!(provider.is_valid_access_token(&token(&daemon, NAME, &[])));
    provider.assert_no_violations();
}

#[test]
fn a_wrong_client_secret_is_refused_by_the_emulator() {
    let provider = Provider::start(fast_trakt());
    let config = trakt_config(&provider, NAME, "").replace("tokend-test-secret", "not-the-secret");
    let daemon = Daemon::start(&config);
    let (done, err, code) = LoginRun::start(&daemon.socket, NAME).finish();
    assert_eq!(code, EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(err.contains("HTTP 401"), "{err}");
    assert_eq!(
        provider.violations().len(),
        1,
        "{:?}",
        provider.violations()
    );
}

/// Trakt with a 1 s poll interval.
fn fast_trakt() -> TraktOptions {
    TraktOptions {
        interval: Duration::from_secs(1),
        ..TraktOptions::default()
    }
}

/// The table for a Trakt emulator with default options, plus `extra`.
fn trakt_config(provider: &Provider, name: &str, extra: &str) -> String {
    provider.base_config(
        name,
        "trakt",
        &format!("client_id = \"tokend-test\"\nclient_secret = \"tokend-test-secret\"\n{extra}"),
    )
}

/// A rate limiter's 429 with `Retry-After` in front of Trakt's poll: the
/// next poll waits what it asks (8 s here, more than the 1 s interval plus
/// slow-down's 5 s), and the login then goes through.
#[test]
fn a_429_with_retry_after_holds_the_next_poll_back() {
    let provider = Provider::start(fast_trakt());
    let daemon = Daemon::start(&trakt_config(&provider, NAME, ""));
    provider.inject(
        Endpoint::Token,
        Fault::RetryAfter {
            status: 429,
            retry_after: "8".into(),
        },
        1,
    );
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    let polls = provider.polls();
    assert!(polls.len() >= 2, "{polls:?}");
    let gap = polls[1].at - polls[0].at;
    assert!(gap >= Duration::from_secs(8), "polled again after {gap:?}");
    provider.assert_no_violations();
}

/// A Trakt record written before the refresh endpoint counted in a
/// session's identity (2026-12-02) carries `trakt|TOKEN|CLIENT`, without
/// the refresh endpoint the dialect finds beside the token endpoint: it is
/// still this provider's, so it is restored (not "the config changed",
/// which asked every Trakt user for a new login after the upgrade), and
/// saved again under today's identity.
#[test]
fn a_record_from_before_the_refresh_endpoint_counted_is_restored() {
    let provider = Provider::start(fast_trakt());
    let store = FileStore::new();
    let config = trakt_config(&provider, NAME, "");
    let (seeded, mut record) =
        granted_records(&provider, &config, |_| Duration::from_secs(3600)).remove(0);
    let today = record.identity.clone();
    let (older, _) = today
        .split_once("|refresh=")
        .expect("a Trakt identity names its refresh endpoint");
    record.identity = older.to_owned();
    let records = || {
        let key = StoreKey::read_file(&store.key_path()).expect("the store key");
        EncryptedFileStore::new(&store.state_dir(), key)
    };
    records()
        .save(NAME, &record)
        .expect("seal the older record");

    let daemon = Daemon::start_with(&config, store.options());
    assert_eq!(
        token(&daemon, NAME, &["--min-valid", "0"]),
        seeded.access_token
    );
    // Saved again at once; bounded wait for that write.
    let mut identity = String::new();
    for _ in 0..200 {
        identity = records()
            .load(NAME)
            .expect("read the record")
            .expect("a record")
            .identity;
        if identity == today {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(identity, today, "{}", daemon.log());
    assert_eq!(provider.refresh_count(), 0);

    // A refresh endpoint the config names elsewhere is no older Trakt
    // session's: a record without it stays refused.
    let elsewhere = config.replace(
        "client_id",
        &format!(
            "refresh_endpoint = \"{}elsewhere/token\"\nclient_id",
            provider.base_url()
        ),
    );
    assert_ne!(elsewhere, config);
    drop(daemon);
    records()
        .save(NAME, &record)
        .expect("seal the older record");
    let daemon = Daemon::start_with(&elsewhere, store.options());
    let status = daemon.tokenctl(&["--json", "status", NAME]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["state"], "logged_out", "{status}");
}

/// An error to the device-code request that quotes the app's client
/// secret, which that request does not carry (Trakt's sends the client id
/// alone): the secret is kept out of the login's error and the log, as it
/// is out of the answers to the requests that carry it.
#[test]
fn a_device_code_error_quoting_the_client_secret_does_not_show_it() {
    let provider = Provider::start(fast_trakt());
    provider.inject(
        Endpoint::DeviceAuthorization,
        Fault::Body {
            status: 400,
            content_type: Some("application/json".into()),
            body: bytes::Bytes::from(
                r#"{"error":"invalid_request","error_description":"app tokend-test (secret tokend-test-secret) is disabled"}"#,
            ),
        },
        1,
    );
    let daemon = Daemon::start(&trakt_config(&provider, NAME, ""));
    let (done, err, code) = support::daemon::LoginRun::start(&daemon.socket, NAME).finish();
    assert_ne!(code, 0, "{done} {err}");
    assert!(err.contains("(secret [redacted])"), "{err}");
    for (what, text) in [
        ("error", &err),
        ("done", &done.to_string()),
        ("log", &daemon.log()),
    ] {
        assert!(
            !text.contains("tokend-test-secret"),
            "the client secret in the {what}"
        );
    }
}
