//! What a restart does with stored sessions: a session is restored only
//! into the client and endpoint it belongs to, and a stored token the
//! provider no longer accepts turns into "login required" for that provider
//! alone, and says so after the next restart too. Real daemon restarts
//! with the encrypted file store.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, login, stderr, stdout, token};
use support::file_store::FileStore;
use support::provider::{Provider, fast};
use tokend_emulator::Rfc8628Options;

fn status(daemon: &Daemon, name: &str) -> serde_json::Value {
    let out = daemon.tokenctl(&["--json", "status", name]);
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
    all[0].clone()
}

#[test]
fn a_changed_client_id_or_token_endpoint_does_not_inherit_the_session() {
    let provider = Provider::rfc8628();
    let elsewhere = Provider::rfc8628();
    let store = FileStore::new();
    let mut daemon = Daemon::start_with(&provider.config("demo"), store.options());
    let first = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });

    // Same name, another client id: not restored, nothing sent with the old token.
    daemon.stop();
    daemon.write_config(
        &provider
            .config("demo")
            .replace("tokend-test", "another-client"),
    );
    daemon.restart();
    daemon.wait_for_log(1, &["event=\"restore_skipped\""]);
    assert_eq!(status(&daemon, "demo")["state"], "logged_out");
    let out = daemon.tokenctl(&["token", "demo", "--min-valid", "0"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));

    // Same client, another token endpoint (another server): not restored.
    daemon.stop();
    daemon.write_config(&elsewhere.config("demo"));
    daemon.restart();
    assert_eq!(
        daemon.wait_for_log(2, &["event=\"restore_skipped\""]).len(),
        2
    );
    let out = daemon.tokenctl(&["token", "demo", "--min-valid", "0"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        elsewhere.requests().is_empty(),
        "the old session went elsewhere"
    );
    assert_eq!(provider.refresh_count(), 0);

    // The skipped record was left alone: back to the first config, it is
    // the session again.
    daemon.stop();
    daemon.write_config(&provider.config("demo"));
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);
    provider.assert_no_violations();
}

#[test]
fn a_stored_token_rejected_at_start_needs_a_login_and_others_start_normally() {
    // Short-lived tokens for `revoked`, so the restarted daemon tries its
    // refresh token soon; `steady` keeps an hour-long access token.
    let revoked = Provider::start(Rfc8628Options {
        access_token_lifetime: Duration::from_secs(4),
        ..fast()
    });
    let steady = Provider::rfc8628();
    let store = FileStore::new();
    let providers = format!("{}{}", revoked.config("revoked"), steady.config("steady"));
    let mut daemon = Daemon::start_with(&providers, store.options());
    login(&daemon, "revoked", |code| {
        revoked.approve(code).unwrap();
    });
    let steady_token = login(&daemon, "steady", |code| {
        steady.approve(code).unwrap();
    });
    daemon.stop();

    // While the daemon is down, the provider ends the login.
    revoked.revoke_all();
    daemon.restart();
    revoked.wait_for_count(1, |r| r.is_refresh() && r.outcome == "invalid_grant");
    daemon.wait_for_log(1, &["event=\"login_required\""]);
    let gone = status(&daemon, "revoked");
    assert_eq!(gone["state"], "login_required", "{gone}");
    let out = daemon.tokenctl(&["token", "revoked"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("login required")
            && err.contains("invalid_grant")
            && err.contains("tokenctl login revoked"),
        "{err}"
    );
    // The dead refresh token is gone from the store, so the next start
    // does not present it again; the record says when and why it ended.
    assert_eq!(store.files(), ["revoked.session", "steady.session"]);
    let ended = store.load("revoked").expect("the ended session's record");
    assert!(ended.refresh_token.is_none() && ended.access_token.is_none());
    // Nor in the spare, which held the record before it.
    let spare =
        std::fs::read(store.sessions_dir().join(FileStore::spare("revoked"))).unwrap_or_default();
    assert!(
        spare.iter().all(|b| *b == 0),
        "the spare holds the dead tokens"
    );
    assert!(
        ended
            .ended
            .as_ref()
            .is_some_and(|end| end.reason.contains("invalid_grant")),
        "{ended:?}"
    );

    // Restarted again, the session still says why a login is needed (it
    // said "logged out", the reason gone), and nothing is sent.
    let refreshes = revoked.refresh_count();
    daemon.stop();
    daemon.restart();
    daemon.wait_for_log(1, &["event=\"restored_ended\""]);
    let still = status(&daemon, "revoked");
    assert_eq!(still["state"], "login_required", "{still}");
    let said = still["last_error"].as_str().unwrap_or_default();
    assert!(
        said.contains("invalid_grant") && said.contains("(the session ended at "),
        "{still}"
    );
    let out = daemon.tokenctl(&["token", "revoked"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid_grant"), "{}", stderr(&out));
    assert_eq!(revoked.refresh_count(), refreshes);
    // A logout deletes the ended session's record, as any.
    let out = daemon.tokenctl(&["logout", "revoked"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status(&daemon, "revoked")["state"], "logged_out");
    assert_eq!(store.files(), ["steady.session"]);

    // The other session came back as it was: no login, no refresh.
    assert_eq!(status(&daemon, "steady")["state"], "active");
    assert_eq!(token(&daemon, "steady", &[]), steady_token);
    assert_eq!(steady.refresh_count(), 0);
    assert_eq!(steady.device_codes().len(), 1);
    // The revoked token was presented once, and it was the current one.
    revoked.assert_no_violations();
}

/// A provider that issues no refresh token (a GitHub OAuth app, an Oracle
/// login without `offline_access`): the access token is all the session
/// has, and the store keeps it, so a restart (a reboot) needs no new
/// login. A logout removes it as it removes any record.
#[test]
fn a_session_without_a_refresh_token_survives_a_restart() {
    let provider = Provider::start(Rfc8628Options {
        issue_refresh_tokens: false,
        ..fast()
    });
    let store = FileStore::new();
    let mut daemon = Daemon::start_with(&provider.config("gh"), store.options());
    let first = login(&daemon, "gh", |code| {
        provider.approve(code).unwrap();
    });
    assert_eq!(store.files(), ["gh.session"]);
    daemon.stop();
    daemon.restart();
    assert_eq!(status(&daemon, "gh")["state"], "active");
    assert_eq!(token(&daemon, "gh", &[]), first);
    assert_eq!(provider.device_codes().len(), 1, "no second login");

    let out = daemon.tokenctl(&["logout", "gh"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(store.files().is_empty(), "{:?}", store.files());
    daemon.stop();
    daemon.restart();
    assert_eq!(status(&daemon, "gh")["state"], "logged_out");
}

/// The memory store (the packaged system config's): a provider removed
/// from the config has its session forgotten by the reload, as no `tokend
/// --prune` (another process, with a memory of its own) can reach it, and
/// that command says so rather than "holds 0 sessions". Before, the
/// tokens stayed in the daemon for its life, and the name added back came
/// back logged in with them.
#[test]
fn the_memory_store_forgets_a_removed_provider_at_the_reload() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&format!(
        "{}{}",
        provider.config("kept"),
        provider.config("gone")
    ));
    for name in ["kept", "gone"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    daemon.write_config(&provider.config("kept"));
    daemon.reload();
    daemon.write_config(&format!(
        "{}{}",
        provider.config("kept"),
        provider.config("gone")
    ));
    daemon.reload();
    assert_eq!(status(&daemon, "gone")["state"], "logged_out");
    assert_eq!(status(&daemon, "kept")["state"], "active");
    let pruned = daemon.tokend(&["--prune"]);
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    assert!(
        stdout(&pruned)
            .contains("store = \"memory\" keeps the sessions in the running daemon's memory"),
        "{}",
        stdout(&pruned)
    );
}
