//! Provider faults the other suites leave out, through the real `tokend`
//! and `tokenctl`: an outage of several sessions that ends, a connection
//! reset mid-answer, refused connections, and answers with another
//! `token_type` or without the optional fields.
//!
//! Covered elsewhere, not repeated here: a provider that hangs or answers
//! late (`late_answers.rs`), a single session through an outage
//! (`refresh.rs`), HTML pages, missing `access_token`, absurd expiries, huge,
//! endless and dripping bodies, redirects (`malformed_answers.rs`), and the
//! store failing during refreshes (`persistence_file_store.rs`).
//!
//! Sessions are seeded into an encrypted-file store (granted by the
//! emulator, sealed as the daemon would have), so no test waits for device
//! logins.

use crate::support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use support::daemon::{Daemon, stderr, stdout, token};
use support::file_store::{FileStore, Seeded};
use support::provider::{Provider, fast, json_answer};
use tokend_emulator::{Endpoint, Fault};

mod endpoint_back;
mod outage_log;
mod retry_after;
mod retry_after_logins;
mod secrets;

/// Exit code of `tokenctl` when the provider is unavailable.
const EXIT_UNAVAILABLE: i32 = 6;

/// A daemon with a short HTTP timeout for `providers`, whose sessions are
/// seeded with access tokens living `lifetime`.
fn seeded(
    provider: &Provider,
    providers: &str,
    lifetime: Duration,
) -> (FileStore, Vec<Seeded>, Daemon) {
    let store = FileStore::new();
    let sessions = store.seed(provider, providers, |_| lifetime);
    let mut options = store.options();
    options.daemon_keys = "http_timeout = 2\n".into();
    let daemon = Daemon::start_with(providers, options);
    (store, sessions, daemon)
}

/// One provider `demo` with a session whose access token lives an hour.
fn one_session() -> (Provider, FileStore, Seeded, Daemon) {
    let provider = Provider::start(fast());
    let (store, mut sessions, daemon) = seeded(
        &provider,
        &provider.config("demo"),
        Duration::from_secs(3600),
    );
    (provider, store, sessions.remove(0), daemon)
}

fn status(daemon: &Daemon, name: &str) -> serde_json::Value {
    let out = daemon.tokenctl(&["--json", "status", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()[0].clone()
}

/// A `token` request for more life than `name`'s token has, which makes
/// a refresh, failing as the provider is unavailable (exit 6).
fn token_fails_unavailable(daemon: &Daemon, name: &str) {
    let out = daemon.tokenctl(&["token", name, "--min-valid", "1200"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
}

/// `tokenctl --json token NAME ARGS`, parsed.
fn token_json(daemon: &Daemon, name: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "token", name];
    all.extend_from_slice(args);
    let out = daemon.tokenctl(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn several_sessions_ride_out_an_outage_and_recover_by_themselves() {
    let provider = Provider::start(fast());
    let names = ["a", "b", "c", "d"];
    let providers: String = names.iter().map(|n| provider.config(n)).collect();
    // Due for refresh within seconds, valid long enough to be served all along.
    let (_store, sessions, daemon) = seeded(&provider, &providers, Duration::from_secs(20));
    provider.set_unavailable(true);
    // Every session tries, fails, and keeps serving its token meanwhile.
    for session in &sessions {
        let refresh_token = session.refresh_token.clone();
        provider.wait_for_count(1, move |r| {
            r.is_refresh()
                && r.status == Some(503)
                && r.field("refresh_token") == Some(refresh_token.as_str())
        });
        assert_eq!(
            token(&daemon, &session.name, &["--min-valid", "1"]),
            session.access_token
        );
        let state = status(&daemon, &session.name);
        assert_eq!(state["state"], "active", "{state}");
        assert!(
            state["last_error"]
                .as_str()
                .unwrap_or_default()
                .contains("503"),
            "{state}"
        );
    }
    let logins_before = provider
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::DeviceAuthorization)
        .count();
    provider.set_unavailable(false);
    // Each one refreshes on its own backoff, with no one asking (the
    // daemon's log line comes once the new tokens are installed).
    for session in &sessions {
        let refresh_token = session.refresh_token.clone();
        provider.wait_for_count(1, move |r| {
            r.outcome == "refreshed" && r.field("refresh_token") == Some(refresh_token.as_str())
        });
        daemon.wait_for_log(
            1,
            &[&format!("provider={} event=\"refreshed\"", session.name)],
        );
    }
    for session in &sessions {
        let fresh = token(&daemon, &session.name, &["--min-valid", "1"]);
        assert_ne!(fresh, session.access_token);
        assert!(provider.is_valid_access_token(&fresh));
        assert!(status(&daemon, &session.name)["last_error"].is_null());
    }
    let logins_after = provider
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::DeviceAuthorization)
        .count();
    assert_eq!(logins_before, logins_after, "nobody logged in again");
    provider.assert_no_violations();
}

/// Makes the next refresh meet `fault` and forces one with a `token`
/// request for more life than the session's token has: that request's
/// output (good answers from then on carry tokens that would satisfy it).
fn refresh_meeting(provider: &Provider, daemon: &Daemon, fault: Fault) -> std::process::Output {
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    provider.inject(Endpoint::Token, fault, 1);
    daemon.tokenctl(&["token", "demo", "--min-valid", "3700"])
}

/// Seeds one session valid for an hour, makes the next refresh meet
/// `fault`, forces a refresh, and checks that it fails as unavailable with
/// `problem` in the message, that the session still serves its token, and
/// that the next refresh (same refresh token) succeeds.
fn a_refresh_fault_costs_nothing(fault: Fault, problem: &str) {
    let (provider, _store, session, daemon) = one_session();
    let out = refresh_meeting(&provider, &daemon, fault);
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(problem), "{}", stderr(&out));
    assert_eq!(token(&daemon, "demo", &[]), session.access_token);
    let state = status(&daemon, "demo");
    assert_eq!(state["state"], "active", "{state}");
    assert!(
        state["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains(problem),
        "{state}"
    );
    // The retry presents the same refresh token and gets new tokens.
    let refresh_token = session.refresh_token.clone();
    provider.wait_for_count(1, move |r| {
        r.outcome == "refreshed" && r.field("refresh_token") == Some(refresh_token.as_str())
    });
    let fresh = token(&daemon, "demo", &["--min-valid", "3700"]);
    assert!(provider.is_valid_access_token(&fresh));
    provider.assert_no_violations();
}

#[test]
fn a_connection_reset_mid_answer_is_a_transient_failure() {
    a_refresh_fault_costs_nothing(
        Fault::ResetMidBody,
        "answered HTTP 200, but the answer was cut off",
    );
}

/// RFC 6749's "try again later" code with 400, as Microsoft's token
/// endpoint sends it: a passing trouble like a 503, not a refusal (which
/// would wait out a refusal's long backoff).
#[test]
fn temporarily_unavailable_with_400_is_a_passing_trouble() {
    a_refresh_fault_costs_nothing(
        Fault::Body {
            status: 400,
            content_type: Some("application/json".into()),
            body: Bytes::from_static(
                br#"{"error":"temporarily_unavailable","error_description":"AADSTS90033: busy"}"#,
            ),
        },
        "AADSTS90033",
    );
}

#[test]
fn refused_connections_leave_the_session_serving() {
    // Tokens granted by one emulator; the daemon's token endpoint is a
    // loopback port where nothing listens.
    let provider = Provider::start(fast());
    let port = support::provider::closed_port();
    let table = format!(
        "[providers.demo]\ndevice_authorization_endpoint = \"http://127.0.0.1:{port}/device\"\ntoken_endpoint = \"http://127.0.0.1:{port}/token\"\nclient_id = \"tokend-test\"\n"
    );
    let (_store, sessions, daemon) = seeded(&provider, &table, Duration::from_secs(3600));
    let out = daemon.tokenctl(&["token", "demo", "--min-valid", "3700"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
    assert_eq!(token(&daemon, "demo", &[]), sessions[0].access_token);
    assert!(provider.is_valid_access_token(&sessions[0].access_token));
    let state = status(&daemon, "demo");
    assert_eq!(state["state"], "active", "{state}");
    assert!(!state["last_error"].is_null(), "{state}");
}

#[test]
fn another_token_type_is_handed_on_as_the_provider_said() {
    let (provider, _store, _session, daemon) = one_session();
    provider.inject(
        Endpoint::Token,
        json_answer(r#"{"access_token":"pop-token-1","token_type":"DPoP","expires_in":7200}"#),
        1,
    );
    let answer = token_json(&daemon, "demo", &["--min-valid", "3700"]);
    assert_eq!(answer["access_token"], "pop-token-1", "{answer}");
    // A caller that only speaks Bearer can tell.
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    assert_eq!(status(&daemon, "demo")["state"], "active");
}

#[test]
fn an_answer_without_optional_fields_keeps_the_refresh_token() {
    let (provider, store, session, daemon) = one_session();
    // No token_type, no expires_in, no refresh_token, no scope.
    provider.inject(
        Endpoint::Token,
        json_answer(r#"{"access_token":"bare-token"}"#),
        1,
    );
    let answer = token_json(&daemon, "demo", &["--min-valid", "3700"]);
    assert_eq!(answer["access_token"], "bare-token", "{answer}");
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    // An unknown expiry is not made up.
    assert!(answer["expires_at"].is_null(), "{answer}");
    let state = status(&daemon, "demo");
    assert_eq!(state["state"], "active", "{state}");
    assert!(state["last_error"].is_null(), "{state}");
    // The refresh token was kept: logout/login are not needed, and a
    // restart refreshes with it (the access token of unknown expiry is not
    // restored).
    drop(daemon);
    let mut options = store.options();
    options.daemon_keys = "http_timeout = 2\n".into();
    let daemon = Daemon::start_with(&provider.config("demo"), options);
    let refresh_token = session.refresh_token.clone();
    provider.wait_for_count(1, move |r| {
        r.outcome == "refreshed" && r.field("refresh_token") == Some(refresh_token.as_str())
    });
    let fresh = token(&daemon, "demo", &[]);
    assert!(provider.is_valid_access_token(&fresh));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let answer = token_json(&daemon, "demo", &[]);
    assert!(answer["expires_at"].as_u64().unwrap() > now, "{answer}");
    provider.assert_no_violations();
}
