//! A refresh the provider has not answered within `http_timeout`, through
//! the real `tokend` and `tokenctl`: its callers are told at once, its
//! answer is listened for on the same connection, and no other refresh is
//! sent meanwhile (the provider may still act on the one out, rotating the
//! refresh token it carries). Listening ends when the provider answers
//! other refreshes and not this one; refreshes behind unanswered ones are
//! not sent at all.
//!
//! Sessions are seeded into an encrypted-file store (granted by the
//! emulator), so no test waits for a device login.

use crate::support;

use std::process::Output;
use std::time::Duration;

use support::daemon::{Daemon, stderr};
use support::file_store::{FileStore, Seeded};
use support::provider::{Provider, fast};
use tokend_emulator::{Endpoint, Fault};

/// Exit code of `tokenctl` when the provider is unavailable.
const EXIT_UNAVAILABLE: i32 = 6;
/// Said while a refresh's late answer is listened for.
const LISTENING: &str = "keeps the connection open for a late answer";
const REFRESHED: &str = "event=\"refreshed\"";

/// A daemon (`http_timeout = 2`, and `keys`) with a session for each of
/// `names` at `provider`, their access tokens living an hour; the
/// provider's next tokens live two.
fn seeded(provider: &Provider, names: &[&str], keys: &str) -> (FileStore, Vec<Seeded>, Daemon) {
    let config: String = names.iter().map(|name| provider.config(name)).collect();
    let store = FileStore::new();
    let sessions = store.seed(provider, &config, |_| Duration::from_secs(3600));
    let mut options = store.options();
    options.daemon_keys = format!("http_timeout = 2\n{keys}");
    let daemon = Daemon::start_with(&config, options);
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    (store, sessions, daemon)
}

/// Forces a refresh of `name`: asks for more life than its token has.
fn force_refresh(daemon: &Daemon, name: &str) -> Output {
    daemon.tokenctl(&["token", name, "--min-valid", "3700"])
}

/// `tokenctl --json status NAME`, parsed.
fn status(daemon: &Daemon, name: &str) -> serde_json::Value {
    let out = daemon.tokenctl(&["--json", "status", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<serde_json::Value>(&support::daemon::stdout(&out)).unwrap()[0].clone()
}

fn assert_unavailable(out: &Output, said: &str) {
    assert_eq!(out.status.code(), Some(EXIT_UNAVAILABLE), "{}", stderr(out));
    assert!(stderr(out).contains(said), "{}", stderr(out));
}

/// The provider answers after `http_timeout` (having rotated the refresh
/// token on arrival): the answer is taken, and the session keeps working.
/// Before, the connection was closed at `http_timeout`, the retry
/// presented the spent refresh token, and the provider revoked the login.
#[test]
fn a_refresh_answered_late_keeps_its_tokens() {
    let provider = Provider::start(fast());
    let (_store, sessions, daemon) = seeded(&provider, &["demo"], "");
    provider.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(5)), 1);
    let out = force_refresh(&daemon, "demo");
    assert_unavailable(&out, LISTENING);
    // Asked again while the answer is awaited: told the same, no request.
    let again = force_refresh(&daemon, "demo");
    assert_unavailable(&again, LISTENING);
    assert_eq!(provider.refresh_count(), 1);
    assert_eq!(
        support::daemon::token(&daemon, "demo", &[]),
        sessions[0].access_token
    );

    daemon.wait_for_log(1, &[REFRESHED]);
    let fresh = support::daemon::token(&daemon, "demo", &["--min-valid", "3700"]);
    assert!(provider.is_valid_access_token(&fresh));
    assert_eq!(provider.refresh_count(), 1, "a second refresh was sent");
    assert!(!daemon.log().contains("event=\"login_required\""));
    provider.assert_no_violations();
}

/// A refresh the provider never answers while it answers others of the
/// endpoint is taken as lost `http_timeout` after the first of those: the
/// session retries with the same refresh token and gets new tokens.
#[test]
fn a_hang_is_given_up_once_the_provider_answers_others() {
    let provider = Provider::start(fast());
    let (_store, sessions, daemon) = seeded(&provider, &["hung", "other"], "");
    provider.inject(Endpoint::Token, Fault::Hang, 1);
    let out = force_refresh(&daemon, "hung");
    assert_unavailable(&out, LISTENING);
    let state = status(&daemon, "hung");
    assert!(
        state["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains(LISTENING),
        "{state}"
    );

    let other = support::daemon::token(&daemon, "other", &["--min-valid", "3700"]);
    assert!(provider.is_valid_access_token(&other));
    let refresh_token = sessions[0].refresh_token.clone();
    provider.wait_for_count(1, move |r| {
        r.outcome == "refreshed" && r.field("refresh_token") == Some(refresh_token.as_str())
    });
    let fresh = support::daemon::token(&daemon, "hung", &["--min-valid", "3700"]);
    assert!(provider.is_valid_access_token(&fresh));
    provider.assert_no_violations();
}

/// With every permit of the endpoint held by a refresh that has had no
/// answer for `http_timeout`, another session's refresh is not sent: it
/// fails at once, naming the wait, and the provider sees one request.
#[test]
fn a_refresh_is_not_sent_behind_unanswered_ones() {
    let provider = Provider::start(fast());
    let (_store, sessions, daemon) = seeded(
        &provider,
        &["hung", "queued"],
        "max_concurrent_refreshes = 1\n",
    );
    provider.inject(Endpoint::Token, Fault::Hang, 1);
    let out = force_refresh(&daemon, "hung");
    assert_unavailable(&out, LISTENING);
    let out = force_refresh(&daemon, "queued");
    assert_unavailable(
        &out,
        "the 1 refreshes already sent there have had no answer for",
    );
    assert_eq!(provider.refresh_count(), 1, "sent behind a hung refresh");
    assert_eq!(
        support::daemon::token(&daemon, "queued", &[]),
        sessions[1].access_token
    );
}

/// A refresh not answered in time that the provider did carry out
/// (rotating the refresh token sent), whose answer never came: when the
/// retry's spent token makes the provider end the session, the end says
/// the refresh before it got no answer in time (it blamed the provider
/// alone). Here the listening ends as the provider answers another
/// session's refresh, before the late answer (delayed 10 s) comes.
#[test]
fn a_revocation_after_an_unanswered_refresh_names_it() {
    let provider = Provider::start(fast());
    let (_store, _sessions, daemon) = seeded(&provider, &["late", "other"], "");
    provider.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(10)), 1);
    let out = force_refresh(&daemon, "late");
    let said = stderr(&out);
    assert_unavailable(&out, "sent the request to");
    assert!(said.contains("no complete answer within 2 s"), "{said}");
    assert!(!said.contains("could not reach"), "{said}");
    let _ = support::daemon::token(&daemon, "other", &["--min-valid", "3700"]);
    let ended = daemon.wait_for_log(1, &["session ended by the provider"]);
    assert!(
        ended[0].contains("the refresh before it was sent but got no answer in time"),
        "{ended:?}"
    );
}
