//! The device-grant story every dialect must tell, as reusable scenarios:
//! each starts the real `tokend` with a provider table, drives `tokenctl`,
//! plays the person on the emulator, and checks what happened on both
//! sides. A dialect's test file runs them against its emulator and adds its
//! own error states.

use std::time::Duration;

use tokend_emulator::RecordedRequest;

use super::daemon::{Daemon, LoginRun, stderr, token};
use super::provider::Provider;

/// The provider name the scenarios use.
pub const NAME: &str = "demo";

/// Exit code of `tokenctl login` when the login failed.
pub const EXIT_LOGIN_FAILED: i32 = 8;

/// Exit code of `tokenctl token` when a login is required.
pub const EXIT_LOGIN_REQUIRED: i32 = 4;

/// Logs in through `tokenctl login --json`, approving as soon as the prompt
/// is shown; returns the daemon and the prompt.
pub fn logged_in(provider: &Provider, providers: &str) -> (Daemon, serde_json::Value) {
    let daemon = Daemon::start(providers);
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.approve(&run.user_code()).expect("approve");
    let prompt = run.prompt.clone();
    let (done, err, code) = run.finish();
    assert_eq!(
        code,
        0,
        "login failed: {done} {err}\nlog:\n{}",
        daemon.log()
    );
    assert_eq!(done["ok"], true, "{done}");
    (daemon, prompt)
}

/// Login, approve, token; then tokens that live `lifetime` expire and are
/// refreshed ahead of time, each refresh with the refresh token the one
/// before handed out (the emulator flags any reuse as a violation, and the
/// presented tokens are checked to be all different). `refresh_field` is
/// the dialect's name of the refresh token in requests.
pub fn login_then_refresh_with_rotation(
    provider: &Provider,
    providers: &str,
    refresh_field: &str,
) -> Daemon {
    let (daemon, _) = logged_in(provider, providers);
    let first = token(&daemon, NAME, &["--min-valid", "0"]);
    assert!(
        provider.is_valid_access_token(&first),
        "the provider does not accept the first token"
    );
    let requests = provider.wait_for_count(2, |r| r.is_refresh() && r.outcome == "refreshed");
    let later = token(&daemon, NAME, &["--min-valid", "1"]);
    assert_ne!(first, later, "the token was never replaced");
    assert!(
        provider.is_valid_access_token(&later),
        "the provider does not accept the refreshed token"
    );
    let presented: Vec<&str> = requests
        .iter()
        .filter(|r| r.is_refresh())
        .map(|r| {
            r.field(refresh_field)
                .expect("a refresh token in the refresh")
        })
        .collect();
    let distinct: std::collections::BTreeSet<_> = presented.iter().collect();
    assert_eq!(
        distinct.len(),
        presented.len(),
        "a refresh token was presented twice"
    );
    provider.assert_no_violations();
    daemon
}

/// The person denies: the login fails saying so, and no token is served.
pub fn denial(provider: &Provider, providers: &str) {
    let daemon = Daemon::start(providers);
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.deny(&run.user_code()).expect("deny");
    let (done, err, code) = run.finish();
    assert_eq!(code, EXIT_LOGIN_FAILED, "{done} {err}");
    assert_eq!(done["ok"], false);
    assert!(err.contains("denied"), "{err}");
    assert!(err.contains(&format!("provider `{NAME}`")), "{err}");
    let out = daemon.tokenctl(&["token", NAME]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_LOGIN_REQUIRED),
        "{}",
        stderr(&out)
    );
    // Status says how the login ended, for whoever did not wait for it.
    let status = daemon.tokenctl(&["--json", "status", NAME]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let last_error = status[0]["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("denied"), "{status}");
    provider.assert_no_violations();
}

/// The device code expires at the provider before the person answers:
/// the provider's "expired" answer ends the login, and polling stops.
pub fn device_code_expiry(provider: &Provider, providers: &str) {
    let daemon = Daemon::start(providers);
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.expire_device_codes();
    let (done, err, code) = run.finish();
    assert_eq!(
        code,
        EXIT_LOGIN_FAILED,
        "{done} {err}\nlog:\n{}",
        daemon.log()
    );
    assert!(err.contains("expired"), "{err}");
    let polls = provider.polls();
    assert_eq!(polls.len(), 1, "{polls:#?}");
    provider.assert_no_violations();
}

/// The provider asks to slow down at the first poll: the next comes at
/// least `interval` plus 5 s later (RFC 8628 §3.5), and gets the tokens.
pub fn slow_down(provider: &Provider, providers: &str, interval: Duration) {
    provider.slow_down_next_polls(1);
    let daemon = Daemon::start(providers);
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.wait_for_count(1, RecordedRequest::is_poll);
    provider.approve(&run.user_code()).expect("approve");
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}\nlog:\n{}", daemon.log());
    let polls = provider.polls();
    assert_eq!(polls[0].outcome, "slow_down", "{polls:#?}");
    assert_eq!(polls.len(), 2, "{polls:#?}");
    for pair in polls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= interval + Duration::from_secs(5),
            "poll {} came {gap:?} after the one before",
            pair[1].index
        );
    }
    provider.assert_no_violations();
}

/// No secret the provider or the config handed out is in the daemon's log:
/// every token the provider issued (the newest refresh token too, which the
/// daemon has not sent back yet), and every token or code the daemon sent.
pub fn assert_log_has_no_secrets(daemon: &Daemon, provider: &Provider, extra: &[&str]) {
    let log = daemon.log();
    let mut secrets: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    secrets.extend(provider.issued_tokens());
    for request in provider.requests() {
        for (name, value) in &request.fields {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with("token") || (lower.ends_with("code") && lower != "user_code") {
                secrets.push(value.clone());
            }
        }
    }
    for secret in secrets.iter().filter(|s| s.len() > 4) {
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
    }
}

/// Kills `daemon` (`kill -9`), starts it again, and checks that what the
/// store kept is the provider's current refresh token: the restarted
/// daemon's refresh succeeds (the emulator revokes the whole family when an
/// old one is reused, and records that as a violation) and `name` gets a
/// token again.
pub fn assert_a_crash_keeps_the_current_refresh_token(
    daemon: &mut Daemon,
    provider: &Provider,
    name: &str,
) {
    daemon.kill();
    let refreshes = provider.refresh_count();
    daemon.restart();
    provider.wait_for_count(refreshes + 1, |r| {
        r.is_refresh() && r.outcome == "refreshed"
    });
    token(daemon, name, &["--min-valid", "0"]);
    provider.assert_no_violations();
}
