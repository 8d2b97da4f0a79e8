//! `dialect = "oracle"` end to end: the real `tokend` and `tokenctl`
//! against the strict Oracle identity domain emulator (unauthenticated
//! `/oauth2/v1/device` with `response_type` and `scope`, no `interval` so
//! polls every 5 s, the three client authentications at the token
//! endpoint, refresh tokens only with `offline_access`).

use crate::support;

use std::process::Command;
use std::time::Duration;

use support::daemon::{stderr, token};
use support::flows::{self, EXIT_LOGIN_REQUIRED, NAME};
use support::provider::Provider;
use tokend_emulator::{AuthSeen, ClientAuthMode, Endpoint, OracleOptions, RecordedRequest};

/// What RFC 8628 says to use when the provider gives no interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

fn with_auth(client_auth: ClientAuthMode) -> OracleOptions {
    OracleOptions {
        client_auth,
        access_token_lifetime: Duration::from_secs(4),
        ..oracle()
    }
}

/// A confidential client with no `client_auth` in its config sends its
/// secret in HTTP Basic, which Oracle wants on refreshes (the emulator
/// refuses a refresh with the secret in the body).
#[test]
fn a_confidential_client_polls_every_five_seconds_and_refreshes_with_basic_auth() {
    let provider = Provider::start(with_auth(ClientAuthMode::SecretPost("s3cret".into())));
    let config = oracle_config(&provider, NAME, "client_secret = \"s3cret\"");
    let daemon = flows::login_then_refresh_with_rotation(&provider, &config, "refresh_token");
    let requests = provider.requests();
    let refreshes: Vec<_> = requests.iter().filter(|r| r.is_refresh()).collect();
    assert!(!refreshes.is_empty());
    for refresh in refreshes {
        assert_eq!(refresh.auth, AuthSeen::Basic, "{refresh}");
    }
    let device = requests
        .iter()
        .find(|r| r.endpoint == Endpoint::DeviceAuthorization)
        .unwrap();
    assert_eq!(device.field("response_type"), Some("device_code"));
    assert_eq!(
        device.field("scope"),
        Some("urn:opc:idm:__myscopes__ offline_access")
    );
    // Unauthenticated: no secret went to the device endpoint.
    assert_eq!(device.auth, AuthSeen::ClientId);
    // The first poll waited RFC 8628's default interval.
    let poll = requests.iter().find(|r| r.is_poll()).unwrap();
    assert!(
        poll.at - device.at >= DEFAULT_INTERVAL,
        "{:?}",
        poll.at - device.at
    );
    assert_eq!(poll.auth, AuthSeen::Basic);
    flows::assert_log_has_no_secrets(&daemon, &provider, &["s3cret"]);
}

fn login_as(mode: ClientAuthMode, extra: &str, seen: &AuthSeen) {
    let provider = Provider::start(OracleOptions {
        client_auth: mode,
        ..oracle()
    });
    let (_daemon, prompt) = flows::logged_in(&provider, &oracle_config(&provider, NAME, extra));
    assert_eq!(
        prompt["verification_uri"],
        provider.verification_uri().as_str()
    );
    assert!(
        prompt["verification_uri"]
            .as_str()
            .unwrap()
            .ends_with("/ui/v1/device")
    );
    let poll = provider
        .requests()
        .into_iter()
        .find(RecordedRequest::is_poll)
        .unwrap();
    assert_eq!(&poll.auth, seen);
    provider.assert_no_violations();
}

#[test]
fn a_public_client() {
    login_as(ClientAuthMode::Public, "", &AuthSeen::ClientId);
}

#[test]
fn a_secret_post_client() {
    login_as(
        ClientAuthMode::SecretPost("s3cret".into()),
        "client_secret = \"s3cret\"\nclient_auth = \"client_secret_post\"",
        &AuthSeen::SecretPost,
    );
}

/// Told to put the secret in the body, tokend does so on refreshes too,
/// and Oracle refuses that: the emulator holds to that rule.
#[test]
fn a_refresh_with_the_secret_in_the_body_is_refused() {
    let provider = Provider::start(with_auth(ClientAuthMode::SecretBasic("s3cret".into())));
    let config = oracle_config(
        &provider,
        NAME,
        "client_secret = \"s3cret\"\nclient_auth = \"client_secret_post\"",
    );
    let (_daemon, _) = flows::logged_in(&provider, &config);
    let refusals = provider.wait_for_count(1, RecordedRequest::is_refresh);
    let refresh = refusals.iter().find(|r| r.is_refresh()).unwrap();
    assert_eq!(refresh.auth, AuthSeen::SecretPost, "{refresh}");
    assert!(
        provider
            .violations()
            .iter()
            .any(|v| v.contains("must use client_secret_basic")),
        "{:?}",
        provider.violations()
    );
}

#[test]
fn denial() {
    let provider = Provider::start(oracle());
    flows::denial(&provider, &oracle_config(&provider, NAME, ""));
}

#[test]
fn device_code_expiry() {
    let provider = Provider::start(oracle());
    flows::device_code_expiry(&provider, &oracle_config(&provider, NAME, ""));
}

#[test]
fn slow_down() {
    let provider = Provider::start(oracle());
    flows::slow_down(
        &provider,
        &oracle_config(&provider, NAME, ""),
        DEFAULT_INTERVAL,
    );
}

#[test]
fn without_offline_access_there_is_no_refresh_and_the_check_warns() {
    // Tokens live 600 s: asking for all of it (some has passed) needs a
    // new one, which only a login could give.
    let provider = Provider::start(OracleOptions {
        access_token_lifetime: Duration::from_secs(600),
        ..oracle()
    });
    let config = oracle_config(&provider, NAME, "scopes = [\"urn:opc:idm:__myscopes__\"]");
    let check_dir = tempfile::tempdir().unwrap();
    let check_file = check_dir.path().join("config.toml");
    // (In a directory of its own: `--check` refuses a socket in a
    // directory others may write to, as the daemon does.)
    std::fs::write(
        &check_file,
        format!(
            "[daemon]\nsocket = \"{}\"\n{config}",
            check_dir.path().join("unused.sock").display()
        ),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("--check")
        .arg("--config")
        .arg(&check_file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let warnings = String::from_utf8_lossy(&check.stderr);
    assert!(
        warnings.contains(
            "warning: Oracle issues a refresh token only with the `offline_access` scope"
        ),
        "{warnings}"
    );

    let (daemon, _) = flows::logged_in(&provider, &config);
    let first = token(&daemon, NAME, &["--min-valid", "0"]);
    assert!(provider.is_valid_access_token(&first));
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "600"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_LOGIN_REQUIRED),
        "{}",
        stderr(&out)
    );
    // The token still works: it is said to be too short-lived for the
    // request, not expired.
    let said = stderr(&out);
    assert!(
        said.contains("less than the 600 s asked for")
            && said.contains("the provider issued no refresh token")
            && !said.contains("expired"),
        "{said}"
    );
    // Longer than any token the provider issues: a login would not help.
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "601"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("issues tokens valid for 600 s, less than the 601 s asked for"),
        "{}",
        stderr(&out)
    );
    assert_eq!(provider.refresh_count(), 0);
    provider.assert_no_violations();
}

#[test]
fn a_missing_scope_is_caught_before_any_request() {
    let provider = Provider::start(oracle());
    let config = oracle_config(&provider, NAME, "scopes = []");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!("[daemon]\nsocket = \"/tmp/unused.sock\"\n{config}"),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("--check")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let errors = String::from_utf8_lossy(&check.stderr);
    assert!(
        errors.contains("dialect \"oracle\" requires `scopes`"),
        "{errors}"
    );
}

/// Oracle as it is: its answers carry no interval, so clients poll every
/// 5 s whatever the test would like.
fn oracle() -> OracleOptions {
    OracleOptions::default()
}

/// The table for an Oracle emulator (public client), plus `extra`
/// (which sets `scopes` when it has any).
fn oracle_config(provider: &Provider, name: &str, extra: &str) -> String {
    let scopes = if extra.contains("scopes") {
        ""
    } else {
        "scopes = [\"urn:opc:idm:__myscopes__\", \"offline_access\"]\n"
    };
    provider.base_config(
        name,
        "oracle",
        &format!("client_id = \"tokend-test\"\n{scopes}{extra}"),
    )
}
