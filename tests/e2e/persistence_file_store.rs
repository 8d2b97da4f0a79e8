//! The encrypted file store with the real daemon: sessions survive stops
//! and crashes, records are private and sealed, a modified file or another
//! key is a clear error (never a misread session), a failed write loses
//! nothing, and logout and `--prune` remove records.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, login, stderr, stdout, token};
use support::file_store::{FileStore, assert_no_secret_in_files, mode};
use support::flows::assert_a_crash_keeps_the_current_refresh_token;
use support::provider::{Provider, fast};
use tokend_emulator::Rfc8628Options;

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
    assert_eq!(store.files(), [spare.as_str(), "demo.session"]);
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
    assert_eq!(alpha["state"], "logged_out", "{alpha}");
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
            "logged_out"
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

#[test]
fn a_failed_write_loses_nothing_shows_in_status_and_is_retried() {
    let provider = Provider::start(Rfc8628Options {
        access_token_lifetime: Duration::from_secs(3),
        ..fast()
    });
    let store = FileStore::new();
    let mut daemon = start(&provider, &store);
    login(&daemon, "demo", approve(&provider));

    // The sessions directory becomes unusable (a file where it was): as
    // root, permission bits would not stop the daemon.
    store.break_records();
    let failed = daemon.wait_for_log(1, &["event=\"refresh_saved\"", "ok=false"]);
    let status_now = status(&daemon, "demo");
    let error = status_now["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("not a directory"), "{status_now}");
    assert_eq!(status_now["state"], "active");
    // Tokens keep coming from memory, refresh after refresh.
    daemon.wait_for_log(failed.len() + 1, &["event=\"refresh_saved\"", "ok=false"]);
    token(&daemon, "demo", &["--min-valid", "0"]);

    // The directory comes back; the next save writes the newest token.
    let saved = ["event=\"refresh_saved\"", "ok=true"];
    let saved_before = daemon.wait_for_log(0, &saved).len();
    store.mend_records();
    daemon.wait_for_log(saved_before + 1, &saved);
    assert!(status(&daemon, "demo")["last_error"].is_null());

    // A crash now: the stored refresh token is the current one.
    assert_a_crash_keeps_the_current_refresh_token(&mut daemon, &provider, "demo");
}

/// A login whose tokens the store cannot take is not "Logged in" and exit
/// 0: the person is told it is not saved and why, exit 9, as a logout
/// whose record could not be deleted is (a stop before the store works
/// loses it). Once the store works, it is saved.
#[test]
fn a_login_the_store_cannot_take_says_so() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let daemon = start(&provider, &store);
    store.break_records();
    let run = support::login_run::LoginRun::start(&daemon.socket, "demo");
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 9, "{done} {err}");
    assert_eq!(done["ok"], true, "{done}");
    assert!(
        done["unsaved"]
            .as_str()
            .unwrap()
            .contains("not a directory"),
        "{done}"
    );
    assert!(
        err.contains("logged in to demo, but the session could not be saved"),
        "{err}"
    );
    token(&daemon, "demo", &["--min-valid", "0"]);
    store.mend_records();
    // The status probes the store at once and shows it saved.
    let mut saved = serde_json::Value::Null;
    for _ in 0..100 {
        saved = status(&daemon, "demo")["saved"].clone();
        if saved == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(saved, true, "{}", daemon.log());
}

/// A daemon on the encrypted file store with `alpha` and `beta` logged in.
fn alpha_and_beta_logged_in() -> (Provider, FileStore, Daemon) {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let both = format!("{}{}", provider.config("alpha"), provider.config("beta"));
    let daemon = Daemon::start_with(&both, store.options());
    login(&daemon, "alpha", approve(&provider));
    login(&daemon, "beta", approve(&provider));
    (provider, store, daemon)
}

#[test]
fn logout_deletes_the_record_and_prune_removes_unconfigured_providers() {
    let (provider, store, mut daemon) = alpha_and_beta_logged_in();
    assert_eq!(store.files(), ["alpha.session", "beta.session"]);
    let out = daemon.tokenctl(&["logout", "alpha"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(store.files(), ["beta.session"]);
    login(&daemon, "alpha", approve(&provider));

    // alpha leaves the config: its record stays until pruned.
    daemon.stop();
    daemon.write_config(&provider.config("beta"));
    daemon.restart();
    assert_eq!(store.files(), ["alpha.session", "beta.session"]);
    let out = daemon.tokend(&["--prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "removed the stored session of `alpha` (not in the config) from the encrypted file store in {}\n",
            store.state_dir().display()
        )
    );
    assert_eq!(store.files(), ["beta.session"]);
    let out = daemon.tokend(&["--prune"]);
    assert!(
        stdout(&out).starts_with("nothing to prune"),
        "{}",
        stdout(&out)
    );
    token(&daemon, "beta", &["--min-valid", "0"]);

    // A spare left without its record (a logout by a version before
    // spares) holds a sealed refresh token: pruned too.
    std::fs::copy(
        store.record("beta"),
        store.sessions_dir().join(FileStore::spare("gamma")),
    )
    .unwrap();
    let out = daemon.tokend(&["--prune"]);
    assert!(
        stdout(&out).starts_with("removed the stored session of `gamma`"),
        "{}",
        stdout(&out)
    );
    assert_eq!(store.files(), ["beta.session"]);

    // A report that cannot be written (a full disk): said on stderr with
    // what was removed, and exit 1. It panicked, the list lost.
    std::fs::copy(
        store.record("beta"),
        store.sessions_dir().join(FileStore::spare("delta")),
    )
    .unwrap();
    let out = daemon
        .tokend_command(&["--prune"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tokend: cannot write the output: No space left on device")
            && err.contains("the sessions were removed all the same")
            && err.contains("removed the stored session of `delta`")
            && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(store.files(), ["beta.session"]);

    // A state directory that is not there (a typo'd `state_directory`) is
    // said as such, not as a store holding no session.
    daemon.stop();
    let moved = store.state_dir().with_extension("moved");
    std::fs::rename(store.state_dir(), &moved).unwrap();
    let out = daemon.tokend(&["--prune"]);
    std::fs::rename(&moved, store.state_dir()).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "nothing to prune: {} does not exist (check `state_directory`)\n",
            store.state_dir().display()
        )
    );
}

/// `tokend --check` and `--prune` run by an administrator from a shell,
/// beside the system service: there is no `$CREDENTIALS_DIRECTORY` there
/// (systemd gives the key credential to the service only). The check warns
/// that the key is not checked instead of failing; the prune needs no key
/// (it lists and deletes records, never opens one), may be run as root on
/// the service user's directory without taking it over (before, it failed
/// on the owner, or, with no directory yet, created one root's own that
/// locked the service out), and never creates the directory.
#[test]
fn check_and_prune_work_from_a_shell_beside_the_service() {
    use std::os::unix::fs::MetadataExt as _;
    let (provider, store, mut daemon) = alpha_and_beta_logged_in();
    daemon.stop();
    daemon.write_config(&provider.config("beta"));
    // A shell's environment: the state directory named (root's default is
    // /var/lib/tokend, the service's), no credentials.
    let admin = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
            .args(args)
            .arg("--config")
            .arg(&daemon.config)
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG")
            .env("STATE_DIRECTORY", store.state_dir())
            .output()
            .unwrap()
    };
    let check = admin(&["--check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("tokend-store-key") && stderr(&check).contains("not checked here"),
        "{}",
        stderr(&check)
    );
    // The service's user owns the directory (here another uid than ours).
    let sessions = store.sessions_dir();
    rustix::fs::chown(
        &sessions,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .unwrap();
    let mode_before = std::fs::metadata(&sessions).unwrap().mode();
    let prune = admin(&["--prune"]);
    assert!(prune.status.success(), "{}", stderr(&prune));
    assert!(stdout(&prune).contains("`alpha`"), "{}", stdout(&prune));
    assert_eq!(store.files(), ["beta.session"]);
    let meta = std::fs::metadata(&sessions).unwrap();
    assert_eq!((meta.uid(), meta.mode()), (65534, mode_before));

    // With no sessions directory yet, nothing is pruned and none is made.
    std::fs::remove_dir_all(&sessions).unwrap();
    let prune = admin(&["--prune"]);
    assert!(prune.status.success(), "{}", stderr(&prune));
    assert!(
        stdout(&prune).starts_with("nothing to prune"),
        "{}",
        stdout(&prune)
    );
    assert!(!sessions.exists(), "prune made the store's directory");
}

#[test]
fn a_record_that_cannot_be_saved_is_retried_without_refreshing_again() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let mut daemon = start(&provider, &store);
    login(&daemon, "demo", approve(&provider));

    // This record alone cannot be replaced (a directory where it was; as
    // root, permission bits would not stop the daemon); the store works.
    std::fs::remove_file(store.record("demo")).unwrap();
    std::fs::create_dir(store.record("demo")).unwrap();
    std::fs::write(store.record("demo").join("in-the-way"), b"x").unwrap();
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    let refreshed = token(&daemon, "demo", &["--min-valid", "3700"]);
    daemon.wait_for_log(1, &["event=\"refresh_saved\"", "ok=false"]);
    assert_eq!(status(&daemon, "demo")["saved"], false);
    assert_eq!(provider.refresh_count(), 1);

    // The record's place is free again: the save is retried by itself,
    // with the tokens already had, not with another refresh.
    std::fs::remove_dir_all(store.record("demo")).unwrap();
    daemon.wait_for_log_within(Duration::from_secs(120), 1, &["event=\"store_recovered\""]);
    let saved = status(&daemon, "demo");
    assert_eq!(saved["saved"], true, "{saved}");
    assert!(saved["last_error"].is_null(), "{saved}");
    assert_eq!(provider.refresh_count(), 1, "{}", daemon.log());
    assert_eq!(token(&daemon, "demo", &["--min-valid", "3700"]), refreshed);

    // A crash now: the record holds the current refresh token (the
    // emulator flags the use of a rotated one).
    daemon.kill();
    daemon.restart();
    assert_eq!(token(&daemon, "demo", &["--min-valid", "3700"]), refreshed);
    provider.set_access_token_lifetime(Duration::from_secs(14_400));
    token(&daemon, "demo", &["--min-valid", "7300"]);
    assert_eq!(provider.refresh_count(), 2);
    provider.assert_no_violations();
}
