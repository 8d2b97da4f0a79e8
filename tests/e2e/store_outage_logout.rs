//! A logout while the store cannot be used: it is a logout all the same.
//! The record is deleted when the store works again; a stop before then
//! notes the logout beside the store (`pending-logouts`), so that the next
//! start deletes the record rather than bring the session back; and where
//! nothing can be noted, the stop says so and what undoes it.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, stderr, stdout, token};
use support::file_store::{FileStore, exchange};
use support::provider::Provider;

/// The retry loop probes after a backoff of its own (doubling from a
/// second): the store's return is seen within that, not at once.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// A logout while the store cannot be used fails (the record is still
/// there), but it is a logout: the record is deleted when the store works
/// again, and a restart does not bring the session back.
#[test]
fn a_logout_during_an_outage_is_carried_out_when_the_store_is_back() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers = format!("{}{}", provider.config("gone"), provider.config("kept"));
    let seeded = store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(&providers, store.options());
    assert_eq!(
        token(&daemon, "gone", &["--min-valid", "0"]),
        seeded[0].access_token
    );

    // The records' directory replaced by a file: the delete cannot be made.
    let records = store.sessions_dir();
    let away = records.with_extension("away");
    std::fs::write(&away, b"not a directory").unwrap();
    exchange(&records, &away);
    let out = daemon.tokenctl(&["logout", "gone"]);
    assert!(!out.status.success(), "the delete failed, and says so");
    assert!(
        stderr(&out).contains("logged out in tokend, but its record could not be deleted")
            && stderr(&out).contains("not a directory"),
        "{}",
        stderr(&out)
    );
    let status = stdout(&daemon.tokenctl(&["--json", "status", "gone"]));
    assert!(status.contains("\"state\":\"logged_out\""), "{status}");
    assert!(
        status.contains("not a directory"),
        "status says why the record is still there: {status}"
    );

    // The directory back: the store's recovery deletes the record.
    exchange(&records, &away);
    std::fs::remove_file(&away).unwrap();
    daemon.wait_for_log_within(RECOVERY_TIMEOUT, 1, &["after the store came back"]);
    assert!(!store.record("gone").exists(), "the record was not deleted");
    assert!(store.record("kept").exists());
    assert!(
        !store.state_dir().join("pending-logouts").exists(),
        "the logout's note is removed once the record is deleted"
    );

    // Restarted, it stays logged out; the other session is untouched.
    daemon.stop();
    daemon.restart();
    let out = daemon.tokenctl(&["token", "gone"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        token(&daemon, "kept", &["--min-valid", "0"]),
        seeded[1].access_token
    );
}

/// A logout whose delete the store could not make, and a stop before the
/// store works again: the logout is noted beside the store, the stop says
/// so, and the next start deletes the record instead of bringing the
/// session back.
#[test]
fn a_logout_the_store_could_not_carry_out_stays_done_across_a_restart() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers = provider.config("gone");
    store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(&providers, store.options());
    store.break_records();
    assert!(!daemon.tokenctl(&["logout", "gone"]).status.success());
    let journal = store.state_dir().join("pending-logouts");
    let noted = std::fs::read_to_string(&journal).expect("the logout is noted");
    assert!(noted.lines().any(|l| l.ends_with(" gone")), "{noted}");
    daemon.stop();
    let said = daemon.wait_for_log(1, &["event=\"logout_pending_at_stop\""]);
    assert!(
        said[0].contains("provider=gone") && said[0].contains("the next start deletes the record"),
        "{said:?}"
    );
    assert!(
        !daemon.log().contains("unsaved_at_stop"),
        "{}",
        daemon.log()
    );
    // The delete's retries are said as deletes, not saves.
    assert!(
        daemon.log().contains("could not delete the stored session")
            && !daemon.log().contains("could not save the session"),
        "{}",
        daemon.log()
    );

    store.mend_records();
    assert!(store.record("gone").exists(), "the store still has it");
    daemon.restart();
    daemon.wait_for_log(1, &["event=\"logout_completed\"", "provider=gone"]);
    let out = daemon.tokenctl(&["token", "gone"]);
    assert!(
        stderr(&out).contains("tokenctl login gone"),
        "{}",
        stderr(&out)
    );
    assert!(!store.record("gone").exists());
    assert!(!journal.exists(), "nothing left pending");
}

/// The same with nowhere to note the logout (its file's place taken by a
/// directory): the stop says the next start finds the session again and
/// what undoes that (not "log in", which a lost refresh token needs); and
/// so it is, until that logout.
#[test]
fn a_stop_before_a_logouts_delete_with_no_note_says_the_session_comes_back() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers = provider.config("gone");
    let seeded = store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(&providers, store.options());
    std::fs::create_dir(store.state_dir().join("pending-logouts")).unwrap();
    store.break_records();
    assert!(!daemon.tokenctl(&["logout", "gone"]).status.success());
    daemon.wait_for_log(1, &["cannot note the logout"]);
    daemon.stop();
    let said = daemon.wait_for_log(1, &["event=\"unsaved_at_stop\""]);
    assert!(
        said[0].contains("provider=gone")
            && said[0].contains("the next start finds the session again")
            && said[0].contains("run `tokenctl logout gone` once the store works")
            && !said[0].contains("tokenctl login"),
        "{said:?}"
    );

    store.mend_records();
    daemon.restart();
    assert_eq!(
        token(&daemon, "gone", &["--min-valid", "0"]),
        seeded[0].access_token
    );
    assert!(daemon.tokenctl(&["logout", "gone"]).status.success());
    assert!(!store.record("gone").exists());
}

/// A login after such a noted logout, the store still down at the stop:
/// the login was in memory alone and is lost. The stop says what the next
/// start finds: not the record from before the logout (the note has it
/// deleted, as "the store's older copy" would have suggested) but the
/// session logged out, and that a login brings it back.
#[test]
fn a_login_lost_at_a_stop_after_a_noted_logout_says_the_session_starts_logged_out() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers = provider.config("again");
    let seeded = store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(&providers, store.options());
    store.break_records();
    assert!(!daemon.tokenctl(&["logout", "again"]).status.success());
    let renewed = support::login_run::login_unsaved(&daemon, "again", |code| {
        provider.approve(code).unwrap();
    });
    assert_ne!(renewed, seeded[0].access_token);
    daemon.stop();
    let said = daemon.wait_for_log(1, &["event=\"unsaved_at_stop\""]);
    assert!(
        said[0].contains("provider=again")
            && said[0].contains("the next start deletes the record from before its logout")
            && said[0].contains("run `tokenctl login again` then")
            && !said[0].contains("older copy"),
        "{said:?}"
    );

    store.mend_records();
    daemon.restart();
    daemon.wait_for_log(1, &["event=\"logout_completed\"", "provider=again"]);
    let out = daemon.tokenctl(&["token", "again"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!store.record("again").exists());
}

/// A logout while the store is already known to be down (an earlier save
/// failed), and then a crash: the delete is not tried against a store that
/// is down, but the logout is noted all the same, so the next start
/// deletes the record rather than hand out the logged-out session's tokens.
#[test]
fn a_logout_while_the_store_is_known_down_survives_a_crash() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers = format!("{}{}", provider.config("gone"), provider.config("other"));
    store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(&providers, store.options());
    store.break_records();
    // A refresh whose save fails: the store is down from then on.
    support::daemon::refresh_now(&daemon, "other");
    daemon.wait_for_log(1, &["event=\"store_unavailable\""]);

    assert!(!daemon.tokenctl(&["logout", "gone"]).status.success());
    let journal = store.state_dir().join("pending-logouts");
    let noted = std::fs::read_to_string(&journal)
        .unwrap_or_else(|e| panic!("the logout is not noted ({e}):\n{}", daemon.log()));
    assert!(noted.lines().any(|l| l.ends_with(" gone")), "{noted}");

    daemon.kill();
    store.mend_records();
    assert!(store.record("gone").exists(), "the store still has it");
    daemon.restart();
    daemon.wait_for_log(1, &["event=\"logout_completed\"", "provider=gone"]);
    let out = daemon.tokenctl(&["token", "gone"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!store.record("gone").exists());
}

/// A full disk takes the encrypted file store down (a save needs a new
/// file), but a delete still works there and frees space: a logout then is
/// carried out at once. It was not even tried, and its note beside the
/// store could not be written either: a crash before the store came back
/// brought the session back.
#[test]
fn a_logout_on_a_full_disk_deletes_the_record_at_once() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let Some(disk) = support::tmpfs::Tmpfs::over_or_skip(
        &store.state_dir(),
        "256k",
        "a_logout_on_a_full_disk_deletes_the_record_at_once",
    ) else {
        return;
    };
    let providers = format!("{}{}", provider.config("gone"), provider.config("next"));
    store.seed(&provider, &provider.config("gone"), |_| {
        Duration::from_secs(4 * 3600)
    });
    let daemon = Daemon::start_with(&providers, store.options());
    disk.fill();
    // A login's save needs a new file: the store is down.
    support::login_run::login_unsaved(&daemon, "next", |code| {
        provider.approve(code).unwrap();
    });
    daemon.wait_for_log(1, &["event=\"store_unavailable\""]);
    let out = daemon.tokenctl(&["logout", "gone"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!store.record("gone").exists(), "the record is still there");
}

/// A session the provider ends while its record cannot be written: the
/// ended session's record (no token) is not written, so the old record is
/// noted as a logout's would be, and the next start deletes it rather
/// than restore the ended session and hand out its access token again.
#[test]
fn a_revocation_the_store_could_not_write_stays_done_across_a_restart() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers = provider.config("gone");
    let seeded = store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(&providers, store.options());
    let stale = token(&daemon, "gone", &["--min-valid", "0"]);
    assert_eq!(stale, seeded[0].access_token);
    store.break_records();
    provider.revoke_all();
    let mut client = tokend::client::Client::connect(&daemon.socket).expect("connect");
    assert!(client.token_replacing("gone", &stale).is_err());
    daemon.wait_for_log(1, &["session ended by the provider"]);
    let journal = store.state_dir().join("pending-logouts");
    let noted = std::fs::read_to_string(&journal).expect("the old record is noted");
    assert!(noted.lines().any(|l| l.ends_with(" gone")), "{noted}");
    daemon.stop();

    store.mend_records();
    assert!(store.record("gone").exists(), "the store still has it");
    daemon.restart();
    daemon.wait_for_log(1, &["event=\"logout_completed\"", "provider=gone"]);
    let out = daemon.tokenctl(&["token", "gone", "--min-valid", "0"]);
    assert!(
        !out.status.success(),
        "the ended session's token was handed out"
    );
    assert!(!store.record("gone").exists());
}

/// A FIFO at the logout journal's path (the filesystem-fault audit): the
/// start read it with a plain open, which waited for a writer that never
/// came, and the log blamed a hung file system. Now it starts, and the
/// journal is an outage naming the file and what it is, until removed.
#[test]
fn a_fifo_at_the_logout_journal_is_an_outage_not_a_hung_start() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let config = provider.config("demo");
    let seeded = store.seed(&provider, &config, |_| Duration::from_secs(4 * 3600));
    let journal = store.state_dir().join("pending-logouts");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &journal,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let daemon = Daemon::start_with(&config, store.options());
    let down = daemon.wait_for_log(1, &["event=\"store_unavailable\""]);
    assert!(
        down[0].contains(&format!(
            "cannot read the logout journal {}: it is not a regular file but a FIFO",
            journal.display()
        )),
        "{down:?}"
    );
    assert!(!daemon.log().contains("slow_start"), "{}", daemon.log());

    // Removed: the store is read, and the session restored.
    std::fs::remove_file(&journal).unwrap();
    daemon.wait_for_log_within(RECOVERY_TIMEOUT, 1, &["event=\"store_available\""]);
    assert_eq!(
        token(&daemon, "demo", &["--min-valid", "0"]),
        seeded[0].access_token
    );
}
