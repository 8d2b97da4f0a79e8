//! A store that cannot be used is one outage, not one per session: with
//! hundreds of sessions in a locked keyring, or in a state directory that
//! cannot be used, the daemon logs the outage once, `tokenctl status` and
//! the socket show it once, token requests name it; when the store works
//! again the daemon says so once and every session is restored. A locked
//! keyring whose unlock prompt nobody answers is such an outage too, and
//! ends however the keyring is unlocked.

use crate::support;

use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, stderr, stdout, token};
use support::file_store::{FileStore, Seeded, exchange};
use support::keyring::TestKeyring;
use support::provider::Provider;
use tokend::client::Client;

mod locked_keyring;
mod not_the_default;

const SESSIONS: usize = 200;

const UNAVAILABLE: &[&str] = &["event=\"store_unavailable\""];
const AVAILABLE: &[&str] = &["event=\"store_available\""];
/// The store's change feed is open (its watches are live).
const WATCHING: &[&str] = &["watching the store for a change that may end the outage"];
/// The summary line of a recovery.
const RECOVERED: &[&str] = &["after the store came back: restored 200 stored session(s)"];

/// The retry loop probes after a backoff of its own (doubling from a
/// second): the store's return is seen within that, not at once.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);

fn providers(provider: &Provider) -> String {
    (0..SESSIONS)
        .map(|i| provider.config(&format!("p{i:03}")))
        .collect()
}

/// Log lines holding every one of `needles`.
fn count(daemon: &Daemon, needles: &[&str]) -> usize {
    daemon
        .log()
        .lines()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .count()
}

/// The outage as a person and a program see it: `reason` once in the log,
/// once under the status table, once beside the JSON (on stderr), once in
/// the stream's `done` line; no session carries it as its own error; a
/// token request is told it.
fn assert_one_outage_shown_once(daemon: &Daemon, reason: &str) {
    daemon.wait_for_log(1, UNAVAILABLE);

    let out = daemon.tokenctl(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('p')).collect();
    assert_eq!(rows.len(), SESSIONS, "{text}");
    assert!(rows.iter().all(|row| row.contains("logged_out")), "{text}");
    let mentions: Vec<&str> = text.lines().filter(|l| l.contains(reason)).collect();
    assert_eq!(mentions.len(), 1, "{text}");
    assert!(
        mentions[0].starts_with("store: unavailable since ") && mentions[0].ends_with("(retrying)"),
        "{text}"
    );
    assert!(!text.contains("last error"), "{text}");

    let out = daemon.tokenctl(&["--json", "status"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert_eq!(all.len(), SESSIONS);
    assert!(all.iter().all(|p| p["last_error"].is_null()), "{all:?}");
    assert_eq!(stderr(&out).matches(reason).count(), 1, "{}", stderr(&out));

    let mut client = Client::connect(&daemon.socket).expect("connect");
    let mut stream = client.status_stream(None).expect("ask for the status");
    assert_eq!(stream.by_ref().flatten().count(), SESSIONS);
    let store = stream.store().expect("the store's state in the done line");
    assert_eq!(store.state, "unavailable");
    assert!(store.since.is_some(), "{store:?}");
    assert!(
        store.reason.as_deref().is_some_and(|r| r.contains(reason)),
        "{store:?}"
    );

    // The health check: the store, once, not a line per waiting session.
    let out = daemon.tokenctl(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.matches(reason).count(), 1, "{text}");
    assert!(text.lines().count() <= 2, "{text}");

    // Not "log in" (which would start a second session): the store's problem,
    // with a code and an exit status of its own (not "internal", 1).
    let out = daemon.tokenctl(&["token", "p000", "--min-valid", "0"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(stderr(&out).contains(reason), "{}", stderr(&out));
    let answer = client
        .token("p000", Some(0))
        .expect_err("no token while the store is down");
    match answer {
        tokend::client::ClientError::Daemon(body) => {
            assert_eq!(
                body.code,
                tokend::protocol::ErrorCode::StoreError,
                "{body:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The store's return: said once, every session restored with its own
/// tokens, and no session had a retry or a warning of its own.
fn assert_back_once_with_every_session(daemon: &Daemon, seeded: &[Seeded]) {
    daemon.wait_for_log_within(RECOVERY_TIMEOUT, 1, RECOVERED);
    assert_eq!(count(daemon, UNAVAILABLE), 1, "{}", daemon.log());
    assert_eq!(count(daemon, AVAILABLE), 1, "{}", daemon.log());
    assert_eq!(count(daemon, &["could not load the stored session"]), 0);

    let out = daemon.tokenctl(&["--json", "status"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert!(all.iter().all(|p| p["state"] == "active"), "{all:?}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    for i in [0, SESSIONS / 2, SESSIONS - 1] {
        assert_eq!(
            token(daemon, &seeded[i].name, &["--min-valid", "0"]),
            seeded[i].access_token
        );
    }
}

#[test]
fn a_locked_keyring_is_one_outage_for_every_session() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "a_locked_keyring_is_one_outage") else {
        return;
    };
    let provider = Provider::rfc8628();
    let providers = providers(&provider);
    let seeded = keyring.seed(&provider, &providers, Duration::from_secs(4 * 3600));
    keyring.lock_default_collection();
    let mut daemon = Daemon::start_with(&providers, DaemonOptions::with_keyring_on(&bus));
    assert_one_outage_shown_once(&daemon, "unlock your keyring");
    // systemd's STATUS= says why the sessions show as logged out.
    let status = daemon.wait_for_notification("the Secret Service is unavailable");
    assert!(status.contains("unlock your keyring"), "{status}");

    // Unlocked, as at a login: the retry loop finds it on its own.
    keyring.unlock_default_collection();
    assert_back_once_with_every_session(&daemon, &seeded);
    assert_eq!(provider.refresh_count(), 0, "restored, not refreshed");
    let status = daemon.wait_for_notification(" active");
    assert!(!status.contains("unavailable"), "{status}");
}

#[test]
fn an_unusable_state_directory_is_one_outage_for_every_session() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers = providers(&provider);
    let seeded = store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    // A file where the records' directory should be.
    let records = store.sessions_dir();
    let away = records.with_extension("away");
    std::fs::write(&away, b"not a directory").unwrap();
    exchange(&records, &away);
    let daemon = Daemon::start_with(&providers, store.options());
    assert_one_outage_shown_once(&daemon, "it is not a directory");

    // The directory back, in one step (the daemon may look at any moment),
    // seen by the store's watch on its directories, not at the next probe.
    daemon.wait_for_log(1, WATCHING);
    exchange(&records, &away);
    std::fs::remove_file(&away).unwrap();
    assert_back_once_with_every_session(&daemon, &seeded);
    let back = daemon.wait_for_log(1, AVAILABLE);
    assert!(back[0].contains("noticed=\"store_change\""), "{back:?}");
    assert_eq!(provider.refresh_count(), 0, "restored, not refreshed");
}

/// A refresh during an outage leaves its rotated refresh token in memory
/// alone. A stop writes it if the store is back (else the next start would
/// present the rotated-away token, and the provider would revoke the
/// login); if the store is still down, the stop says which session a
/// restart may find dead.
#[test]
fn a_stop_writes_what_an_outage_left_in_memory() {
    let provider = Provider::start(tokend_emulator::Rfc8628Options {
        access_token_lifetime: Duration::from_secs(4),
        ..support::provider::fast()
    });
    let store = FileStore::new();
    let mut daemon = Daemon::start_with(&provider.config("demo"), store.options());
    support::daemon::login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let records = store.sessions_dir();
    let away = records.with_extension("away");
    std::fs::write(&away, b"not a directory").unwrap();

    // Down during a refresh (4 s tokens): the new refresh token is in
    // memory only; back before the retry loop looks; then stopped.
    exchange(&records, &away);
    let refreshes = provider.refresh_count();
    provider.wait_for_count(refreshes + 1, |r| {
        r.is_refresh() && r.outcome == "refreshed"
    });
    let said = daemon.wait_for_log(1, &["could not save the session"]);
    // The store's outage, said once by the store's health: not a warning
    // per session and write.
    assert!(!said[0].contains("WARN"), "{said:?}");
    exchange(&records, &away);
    daemon.stop();
    assert!(
        !daemon.log().contains("unsaved_at_stop"),
        "{}",
        daemon.log()
    );
    // The next start presents the newest refresh token: no reuse, no
    // revocation, a token.
    let refreshes = provider.refresh_count();
    daemon.restart();
    provider.wait_for_count(refreshes + 1, |r| {
        r.is_refresh() && r.outcome == "refreshed"
    });
    let out = daemon.tokenctl(&["token", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    provider.assert_no_violations();

    // Down again at the stop: said, by name.
    exchange(&records, &away);
    let refreshes = provider.refresh_count();
    provider.wait_for_count(refreshes + 1, |r| {
        r.is_refresh() && r.outcome == "refreshed"
    });
    daemon.wait_for_log(2, &["could not save the session"]);
    daemon.stop();
    let said = daemon.wait_for_log(1, &["event=\"unsaved_at_stop\""]);
    assert!(said[0].contains("provider=demo"), "{said:?}");
}

/// One record the store cannot replace (here a directory where `bad`'s
/// file goes; in a keyring, two items matching it) is that session's
/// trouble, not the store's: it does not make an outage, and it does not
/// keep a later one going. Once the store works again the outage ends,
/// though `bad` still cannot be saved, and no outage reason, which every
/// caller may read, names `bad`.
#[test]
fn a_record_that_cannot_be_replaced_does_not_prolong_an_outage() {
    let provider = Provider::start(tokend_emulator::Rfc8628Options {
        access_token_lifetime: Duration::from_secs(4),
        ..support::provider::fast()
    });
    let store = FileStore::new();
    let both = format!("{}{}", provider.config("bad"), provider.config("good"));
    let daemon = Daemon::start_with(&both, store.options());
    for name in ["bad", "good"] {
        support::daemon::login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    // A directory put in place of `bad`'s record in one step (the daemon
    // may be writing it at any moment).
    let in_the_way = store.state_dir().join("in-the-way");
    std::fs::create_dir(&in_the_way).unwrap();
    exchange(&store.record("bad"), &in_the_way);
    std::fs::remove_file(&in_the_way).unwrap();
    let said = daemon.wait_for_log(1, &["could not save the session", "provider=bad"]);
    // That record's own trouble: a warning.
    assert!(said[0].contains("WARN"), "{said:?}");
    assert_eq!(count(&daemon, UNAVAILABLE), 0, "{}", daemon.log());

    // Now the store goes down for everyone, and comes back.
    let records = store.sessions_dir();
    let away = records.with_extension("away");
    std::fs::write(&away, b"not a directory").unwrap();
    exchange(&records, &away);
    daemon.wait_for_log(1, UNAVAILABLE);
    daemon.wait_for_log(1, WATCHING);
    exchange(&records, &away);
    std::fs::remove_file(&away).unwrap();
    daemon.wait_for_log_within(RECOVERY_TIMEOUT, 1, AVAILABLE);

    let out = daemon.tokenctl(&["--json", "status"]);
    assert!(stderr(&out).is_empty(), "no outage shown: {}", stderr(&out));
    let outages: Vec<String> = daemon.wait_for_log(1, UNAVAILABLE);
    assert!(
        outages.iter().all(|line| !line.contains("bad")),
        "{outages:?}"
    );
    // `good` is saved again; `bad` is served from memory and says why it
    // is not saved.
    daemon.wait_for_log(1, &["event=\"refresh_saved\"", "ok=true", "provider=good"]);
    let out = daemon.tokenctl(&["--json", "status", "bad"]);
    assert!(
        stdout(&out).contains("is not a session file"),
        "{}\n{}",
        stdout(&out),
        daemon.log()
    );
    token(&daemon, "bad", &["--min-valid", "0"]);
}

/// A state directory on a file system that came up read-only (a boot's
/// fsck trouble, `errors=remount-ro`): the start reads its sessions and
/// serves their tokens, and says at once that nothing can be saved, an
/// outage that status and monitoring show, until the file system takes
/// writes again. Before, nothing said so (status and `status --check` were
/// fine) until the first refresh rotated a token it could not save.
#[test]
fn a_read_only_state_directory_at_start_is_an_outage_said_at_once() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let Some(disk) = support::tmpfs::Tmpfs::over_or_skip(
        &store.state_dir(),
        "1m",
        "a_read_only_state_directory_at_start_is_an_outage_said_at_once",
    ) else {
        return;
    };
    let config = provider.config("demo");
    let seeded = store.seed(&provider, &config, |_| Duration::from_secs(4 * 3600));
    // A first start leaves the lock file (a read-only one is locked as it is).
    let mut daemon = Daemon::start_with(&config, store.options());
    daemon.stop();
    disk.read_only(true);
    daemon.restart();
    let down = daemon.wait_for_log(1, UNAVAILABLE);
    assert!(down[0].contains("read-only file system"), "{down:?}");
    // The way out is the mount, not another state directory (set already,
    // and one elsewhere would leave the records behind).
    assert!(
        down[0].contains("`mount`") && !down[0].contains("set `state_directory`"),
        "{down:?}"
    );
    assert_eq!(
        token(&daemon, "demo", &["--min-valid", "0"]),
        seeded[0].access_token
    );
    let check = daemon.tokenctl(&["status", "--check"]);
    assert!(!check.status.success(), "{}", stdout(&check));
    disk.read_only(false);
    daemon.wait_for_log_within(RECOVERY_TIMEOUT, 1, AVAILABLE);
}

/// The daemon holds nothing open for writing in its state directory (its
/// lock is held through a read-only descriptor): an administrator's
/// `mount -o remount,ro` of that file system (maintenance, a snapshot)
/// works while it runs. It failed as busy before.
#[test]
fn the_state_directory_can_be_remounted_read_only_under_a_running_daemon() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let Some(disk) = support::tmpfs::Tmpfs::over_or_skip(
        &store.state_dir(),
        "1m",
        "the_state_directory_can_be_remounted_read_only_under_a_running_daemon",
    ) else {
        return;
    };
    let config = provider.config("demo");
    store.seed(&provider, &config, |_| Duration::from_secs(4 * 3600));
    let daemon = Daemon::start_with(&config, store.options());
    disk.read_only(true);
    disk.read_only(false);
    drop(daemon);
}
