//! The encrypted file store with the real daemon: sessions survive stops
//! and crashes, records are private and sealed, a modified file or another
//! key is a clear error (never a misread session), a failed write loses
//! nothing, and logout and `--prune` remove records.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, login, stderr, stdout, token};
use support::file_store::{FileStore, assert_no_secret_in_files, mode};
use support::provider::Provider;

mod disk_full;
mod failed_writes;
mod prune;
mod state_directory;

fn status(daemon: &Daemon, name: &str) -> serde_json::Value {
    let out = daemon.tokenctl(&["--json", "status", name]);
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
    all[0].clone()
}

fn start(provider: &Provider, store: &FileStore) -> Daemon {
    Daemon::start_with(&provider.config("demo"), store.options())
}

fn approve(provider: &Provider) -> impl FnOnce(&str) + '_ {
    |code| {
        provider.approve(code).unwrap();
    }
}

#[test]
fn sessions_survive_stop_and_kill_in_private_sealed_files() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let mut daemon = start(&provider, &store);
    let first = login(&daemon, "demo", approve(&provider));
    assert_eq!(store.files(), ["demo.session"]);
    assert_eq!(mode(&store.sessions_dir()), 0o700);
    assert_eq!(mode(&store.record("demo")), 0o600);

    // A clean stop, then a crash: the stored access token is served again,
    // with no login and no refresh.
    daemon.stop();
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);
    daemon.kill();
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);
    assert_eq!(status(&daemon, "demo")["state"], "active");
    assert_eq!(provider.refresh_count(), 0);
    assert_eq!(provider.device_codes().len(), 1, "no second login");

    // A refresh rotates the refresh token; the rotated one is what a
    // restart finds (the emulator would flag the old one's reuse).
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    let second = token(&daemon, "demo", &["--min-valid", "3700"]);
    daemon.kill();
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "3700"]), second);
    provider.set_access_token_lifetime(Duration::from_secs(14_400));
    let third = token(&daemon, "demo", &["--min-valid", "7300"]);
    assert_ne!(third, second);
    provider.assert_no_violations();
    assert_eq!(provider.refresh_count(), 2);

    // Only sealed records: no token in the clear anywhere, log included.
    let mut secrets = provider.secrets_sent();
    secrets.extend([first, second, third]);
    assert!(secrets.len() >= 6, "{}", secrets.len());
    assert_no_secret_in_files(&[store.root(), daemon.dir.path()], &secrets);
    // No temporary file left: the record, and its spare (a refresh
    // swapped the old record's file out, for the next save to write).
    let spare = FileStore::spare("demo");
    assert_eq!(store.all_files(), [spare.as_str(), "demo.session"]);
}

#[test]
fn a_modified_or_swapped_record_is_rejected_and_the_others_carry_on() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers = format!("{}{}", provider.config("alpha"), provider.config("beta"));
    let mut daemon = Daemon::start_with(&providers, store.options());
    login(&daemon, "alpha", approve(&provider));
    let beta = login(&daemon, "beta", approve(&provider));
    daemon.stop();

    // One bit of alpha's ciphertext flipped.
    let mut bytes = std::fs::read(store.record("alpha")).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x04;
    std::fs::write(store.record("alpha"), &bytes).unwrap();
    daemon.restart();
    let alpha = status(&daemon, "alpha");
    // Not "logged out": a login would replace it (see `record_reread`).
    assert_eq!(alpha["state"], "unreadable", "{alpha}");
    let error = alpha["last_error"].as_str().unwrap();
    assert!(
        error.contains("modified or damaged") && error.contains("tokenctl logout alpha"),
        "{error}"
    );
    assert!(daemon.log().contains("could not load the stored session"));
    let out = daemon.tokenctl(&["token", "alpha"]);
    assert!(!out.status.success());
    assert_eq!(token(&daemon, "beta", &["--min-valid", "0"]), beta);
    // Nothing of the damaged record was used.
    assert_eq!(provider.refresh_count(), 0);

    // beta's record under alpha's name: sealed for beta, refused for alpha.
    daemon.stop();
    std::fs::copy(store.record("beta"), store.record("alpha")).unwrap();
    daemon.restart();
    let error = status(&daemon, "alpha")["last_error"].to_string();
    assert!(error.contains("another provider's file"), "{error}");
    assert_eq!(token(&daemon, "beta", &["--min-valid", "0"]), beta);

    // Logout removes the bad record; a new login writes a good one.
    let out = daemon.tokenctl(&["logout", "alpha"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(store.files(), ["beta.session"]);
    let alpha = login(&daemon, "alpha", approve(&provider));
    daemon.kill();
    daemon.restart();
    assert_eq!(token(&daemon, "alpha", &["--min-valid", "0"]), alpha);
    assert_eq!(provider.refresh_count(), 0);
    provider.assert_no_violations();
}

#[test]
fn hundreds_of_records_are_all_restored_and_a_bad_one_stays_alone() {
    // More records than the daemon reads in its first batches at once, so
    // that reading goes on while earlier batches are applied.
    const COUNT: usize = 700;
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers: String = (0..COUNT)
        .map(|i| provider.config(&format!("p{i:05}")))
        .collect();
    let seeded = store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    let damaged = "p00400";
    let mut bytes = std::fs::read(store.record(damaged)).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x04;
    std::fs::write(store.record(damaged), &bytes).unwrap();

    let daemon = Daemon::start_with(&providers, store.options());
    let out = daemon.tokenctl(&["--json", "status"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert_eq!(all.len(), COUNT);
    for entry in &all {
        let expected = if entry["name"] == damaged {
            "unreadable"
        } else {
            "active"
        };
        assert_eq!(entry["state"], expected, "{entry}");
    }
    // Each session got its own record: the first, the last and one from a
    // middle batch hand out exactly the access token seeded for them.
    for i in [0, 399, 401, COUNT - 1] {
        assert_eq!(
            token(&daemon, &seeded[i].name, &["--min-valid", "0"]),
            seeded[i].access_token
        );
    }
    assert!(
        daemon
            .log()
            .contains(&format!("restored {} stored session(s)", COUNT - 1))
    );
    assert_eq!(provider.refresh_count(), 0);
}

#[test]
fn another_key_is_a_clear_error_and_the_right_key_still_works() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let mut daemon = start(&provider, &store);
    let first = login(&daemon, "demo", approve(&provider));
    daemon.stop();

    let old_key = store.new_key();
    daemon.restart();
    let error = status(&daemon, "demo")["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("written with another key") && error.contains("start tokend with that key"),
        "{error}"
    );
    // A token request says the same, not "log in" (which would start a
    // second session over the one the right key still opens).
    let out = daemon.tokenctl(&["token", "demo"]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("written with another key"), "{said}");
    assert!(!said.contains("login required"), "{said}");
    // The key id is logged at start, so the two ids in the error can be
    // told apart by whoever reads the journal.
    assert!(daemon.log().contains("key_id="), "{}", daemon.log());

    // The record is intact: with the old key back it is the session again.
    daemon.stop();
    store.set_key(&old_key);
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);
}

/// The key as systemd hands a credential to a service of another user
/// (`User=tokend` in the system unit): mode 0400 plus an ACL entry for that
/// user, which shows as 0440. It is the store's key: a login is kept
/// across a restart. (Judged by its mode alone it was refused, and the
/// system service could not start on systems whose credentials file
/// system keeps ACLs.)
#[test]
fn a_systemd_credential_readable_through_its_acl_is_the_key() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    store.grant_key_through_acl();
    let mut daemon = start(&provider, &store);
    let first = login(&daemon, "demo", approve(&provider));
    daemon.stop();
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), first);
    assert_eq!(provider.device_codes().len(), 1, "no second login");
}

#[test]
fn check_reports_key_problems_at_their_position() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let daemon = start(&provider, &store);
    let key = store.root().join("loose.key");
    std::fs::write(&key, [1u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    let text = text.replacen(
        "store = \"encrypted-file\"\n",
        &format!(
            "store = \"encrypted-file\"\nstore_key_file = \"{}\"\n",
            key.display()
        ),
        1,
    );
    std::fs::write(&daemon.config, text).unwrap();
    let out = daemon.tokend(&["--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("config.toml:5:18: cannot use")
            && err.contains("readable or writable by others (mode 0644)"),
        "{err}"
    );
}
