//! Provider faults the other suites leave out, through the real `tokend`
//! and `tokenctl`: an outage of several sessions that ends, a provider that
//! hangs, a connection reset mid-answer, refused connections, and answers
//! with another `token_type` or without the optional fields.
//!
//! Covered elsewhere, not repeated here: a single session through an outage
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

/// What a user and an administrator see after `out`: its stderr, the JSON
/// `status` of `demo`, and the daemon's log.
fn everything_said(daemon: &Daemon, out: &std::process::Output) -> String {
    let status = daemon.tokenctl(&["--json", "status", "demo"]);
    format!("{}{}{}", stderr(out), stdout(&status), daemon.log())
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
fn a_hanging_provider_is_cut_off_at_the_http_timeout() {
    a_refresh_fault_costs_nothing(Fault::Hang, "no complete answer within 2 s");
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
    let limited = provider.wait_for_count(1, |r| r.outcome == "fault:retry_after");
    let limited_at = limited
        .iter()
        .find(|r| r.outcome == "fault:retry_after")
        .unwrap()
        .at;
    let after = provider.wait_for_count(1, move |r| r.is_poll() && r.at > limited_at);
    let next = after
        .iter()
        .find(|r| r.is_poll() && r.at > limited_at)
        .unwrap();
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

/// A provider that echoes the request in its error text (a debugging
/// proxy, a framework's error page) gets the refresh token, the device
/// code and the client secret back into no message: not the `token`
/// caller's error, not `status`, not the log. A 503 (the session kept)
/// and a 400 `invalid_grant` (the session ended) alike, then a login whose
/// poll is echoed.
#[test]
fn secrets_a_provider_echoes_reach_no_message() {
    const CLIENT_SECRET: &str = "s3cr3t-client/value+1";
    use tokend_emulator::ClientAuthMode;
    let post = || ClientAuthMode::SecretPost(CLIENT_SECRET.into());
    let basic = || ClientAuthMode::SecretBasic(CLIENT_SECRET.into());
    for (http_status, client_auth, auth_key) in [
        (503, post(), "client_secret_post"),
        (400, post(), "client_secret_post"),
        // The secret goes in the Authorization header, which is echoed too.
        (503, basic(), "client_secret_basic"),
    ] {
        let provider = Provider::start(tokend_emulator::Rfc8628Options {
            client_auth,
            ..fast()
        });
        let config = provider.config_with(
            "demo",
            &format!("client_secret = \"{CLIENT_SECRET}\"\nclient_auth = \"{auth_key}\""),
        );
        let (_store, sessions, daemon) = seeded(&provider, &config, Duration::from_secs(3600));
        let session = &sessions[0];
        let out = refresh_meeting(&provider, &daemon, Fault::EchoRequest(http_status));
        assert!(!out.status.success());
        let encoded: String =
            url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
        // The Basic credentials as sent: base64 of the id and the secret.
        let requests = provider.requests();
        let header = requests.iter().find_map(|r| r.header("authorization"));
        let credentials = header.and_then(|h| h.strip_prefix("Basic "));
        assert_eq!(credentials.is_some(), auth_key == "client_secret_basic");
        let said = everything_said(&daemon, &out);
        assert!(
            said.contains("[redacted]"),
            "HTTP {http_status}: the echo was not seen: {said}"
        );
        let secrets = [session.refresh_token.as_str(), CLIENT_SECRET, &encoded];
        for secret in secrets.into_iter().chain(credentials) {
            assert!(
                !said.contains(secret),
                "HTTP {http_status}, {auth_key}: a secret in a message: {said}"
            );
        }
    }

    // A login whose poll is echoed: the device code stays out too.
    let provider = Provider::start(fast());
    provider.inject(Endpoint::Token, Fault::EchoRequest(400), 1);
    let daemon = Daemon::start(&provider.config("demo"));
    let (done, err, code) = support::daemon::LoginRun::start(&daemon.socket, "demo").finish();
    assert_ne!(code, 0, "{done} {err}");
    let polled = provider.requests();
    let device_code = polled
        .iter()
        .find_map(|r| r.field("device_code"))
        .expect("a poll");
    let said = format!("{done}{err}{}", daemon.log());
    assert!(said.contains("[redacted]"), "{said}");
    assert!(
        !said.contains(device_code),
        "the device code in a message: {said}"
    );
}

/// A credential in a configured endpoint's query (`?subscription-key=…`,
/// as API gateways ask) is not shown in the messages that name the
/// endpoint: the `token` caller's error, `status`, the log.
#[test]
fn a_credential_in_an_endpoints_query_is_not_shown() {
    let (provider, _store, daemon) = keyed_endpoint();
    let out = refresh_meeting(&provider, &daemon, Fault::Status(503));
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    let said = everything_said(&daemon, &out);
    assert!(
        said.contains("subscription-key=[redacted]&api-version=2"),
        "{said}"
    );
    assert!(!said.contains(KEY), "the key in a message: {said}");
}

/// An answer kept with a warning in the log (a new refresh token beside an
/// expiry past belief): the line names the endpoint without its query.
#[test]
fn a_credential_in_an_endpoints_query_is_not_logged() {
    let (provider, _store, daemon) = keyed_endpoint();
    let unbelievable = r#"{"access_token":"at-kept","token_type":"Bearer","expires_in":-1,"refresh_token":"rt-kept"}"#;
    let out = refresh_meeting(&provider, &daemon, json_answer(unbelievable));
    assert!(out.status.success(), "{}", stderr(&out));
    let said = everything_said(&daemon, &out);
    assert!(said.contains("expiry taken as unknown"), "{said}");
    assert!(!said.contains(KEY), "the key in a log line: {said}");
}

/// The credential of [`keyed_endpoint`]'s token endpoint.
const KEY: &str = "APIKEY-SECRET-123";

/// A session valid for an hour, its token endpoint carrying [`KEY`] in
/// its query (an API gateway's `subscription-key`).
fn keyed_endpoint() -> (Provider, impl Sized, Daemon) {
    let provider = Provider::start(fast());
    let config = format!(
        "[providers.demo]\ndevice_authorization_endpoint = \"{}\"\ntoken_endpoint = \"{}?subscription-key={KEY}&api-version=2\"\nclient_id = \"tokend-test\"\n",
        provider.device_authorization_endpoint(),
        provider.token_endpoint(),
    );
    let (store, _sessions, daemon) = seeded(&provider, &config, Duration::from_secs(3600));
    (provider, store, daemon)
}

/// A success answer that echoes the request (a debugging proxy, a broken
/// server) into its scope, token type and expiry: the refresh token the
/// request carried reaches neither the token's caller, nor `status` (which
/// use-only callers see), nor the log. The scope and type were passed on
/// as sent, and the warning about the expiry quoted it.
#[test]
fn a_success_answer_echoing_the_request_shows_none_of_its_secrets() {
    let (provider, _store, session, daemon) = one_session();
    let rt = &session.refresh_token;
    let body = format!(
        r#"{{"access_token":"at-echoed","token_type":"Bearer {rt}","expires_in":"{rt}","refresh_token":"rt-echoed","scope":"openid refresh_token={rt}"}}"#
    );
    let out = refresh_meeting(&provider, &daemon, json_answer(&body));
    assert!(out.status.success(), "{}", stderr(&out));
    let answer = token_json(&daemon, "demo", &[]);
    assert_eq!(answer["access_token"], "at-echoed", "{answer}");
    let said = format!("{}{answer}", everything_said(&daemon, &out));
    assert!(said.contains("expiry taken as unknown"), "{said}");
    assert!(
        !said.contains(rt.as_str()),
        "the refresh token shown: {said}"
    );
}
