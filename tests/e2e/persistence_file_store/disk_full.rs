//! A disk that fills up after a login. A save writes the record's spare
//! file in place (see `store::encrypted_file::spare`), which needs no new
//! space; but a first login's record had no spare until its first
//! refresh, whose save needed a new file: on a full disk the rotated
//! refresh token stayed in memory only, and a stop or a crash lost the
//! session (the restart presented the retired token). The first save now
//! makes the spare while there is room.

use super::*;
use crate::support::mount_namespace;
use crate::support::provider::fast;
use std::io::Write as _;

/// How many 4 KiB blocks the filler may take at most (the disk holds 16).
const FILLER_BLOCKS: usize = 64;

/// A daemon of `providers` (one of them `demo`, logged in) whose sessions
/// directory is a small disk in its mount namespace, then filled up: the
/// provider, the store, the daemon and the directory as the daemon sees
/// it. `None` (the test skipped) without root.
fn logged_in_on_a_full_disk(
    test: &str,
    names: &[&str],
) -> Option<(Provider, FileStore, Daemon, String)> {
    if !rustix::process::geteuid().is_root() {
        support::skip::say(format_args!(
            "SKIPPED {test}: needs root (a mount namespace)"
        ));
        return None;
    }
    let provider = Provider::start(fast());
    let store = FileStore::new();
    std::fs::create_dir(store.sessions_dir()).unwrap();
    let mut options = store.options();
    options.wrapper = mount_namespace::with_small_disk(&store.sessions_dir(), "64k");
    let configs: String = names.iter().map(|name| provider.config(name)).collect();
    let daemon = Daemon::start_with(&configs, options);
    login(&daemon, "demo", approve(&provider));

    // The disk fills up (as the daemon sees it: its mount namespace).
    let seen = format!(
        "/proc/{}/root{}",
        daemon.pid(),
        store.sessions_dir().display()
    );
    let mut filler = std::fs::File::create(format!("{seen}/filler")).unwrap();
    let full = (0..FILLER_BLOCKS).any(|_| filler.write_all(&[b'x'; 4096]).is_err());
    assert!(full, "the small disk did not fill up");
    Some((provider, store, daemon, seen))
}

/// Logs `other` in on the full disk: its first record needs new space,
/// so the store is down (its tokens are kept in memory), as the login
/// says.
fn logs_in_other_unsaved(daemon: &Daemon, provider: &Provider) {
    let other = support::daemon::LoginRun::start(&daemon.socket, "other");
    provider.approve(&other.user_code()).unwrap();
    let (done, _, _) = other.finish();
    assert!(
        done["unsaved"]
            .as_str()
            .is_some_and(|why| why.contains("No space left")),
        "{done}"
    );
}

#[test]
fn a_refresh_after_a_login_is_saved_on_a_full_disk() {
    let Some((_provider, _store, mut daemon, _)) =
        logged_in_on_a_full_disk("a_refresh_after_a_login_is_saved_on_a_full_disk", &["demo"])
    else {
        return;
    };

    // The refresh's save goes over the spare: saved, nothing left unsaved.
    support::daemon::refresh_now(&daemon, "demo");
    let saved = daemon.wait_for_log(1, &["event=\"refresh_saved\""]);
    assert!(saved[0].contains("ok=true"), "{saved:?}");
    assert!(status(&daemon, "demo")["unsaved"].is_null());
    assert!(daemon.stop().success());
    assert!(!daemon.log().contains("No space left"), "{}", daemon.log());
}

/// A session the provider ends while the disk is full and the store is
/// down for it (another provider's first record could not be written):
/// the ended session's record, which takes the dead refresh token out of
/// the store, is written all the same, over the record's spare (no new
/// space needed), and the spare is cleared of the record before it.
#[test]
fn a_revocation_on_a_full_disk_takes_the_dead_token_out_of_the_store() {
    let Some((provider, store, daemon, seen)) = logged_in_on_a_full_disk(
        "a_revocation_on_a_full_disk_takes_the_dead_token_out_of_the_store",
        &["demo", "other"],
    ) else {
        return;
    };
    logs_in_other_unsaved(&daemon, &provider);

    provider.revoke_all();
    let stale = token(&daemon, "demo", &[]);
    let mut client = tokend::client::Client::connect(&daemon.socket).expect("connect");
    assert!(client.token_replacing("demo", &stale).is_err());
    daemon.wait_for_log(1, &["session ended by the provider"]);
    let ended = store
        .load_seen_by(daemon.pid(), "demo")
        .expect("the ended session's record");
    assert!(
        ended.refresh_token.is_none() && ended.ended.is_some(),
        "{ended:?}\n{}",
        daemon.log()
    );
    let spare = std::fs::read(format!("{seen}/{}", FileStore::spare("demo"))).unwrap_or_default();
    assert!(
        spare.iter().all(|b| *b == 0),
        "the spare holds the record before"
    );
}

/// Another provider's first login, whose record needs a new file, takes
/// the store down on a full disk; a refresh of `demo` after it is saved
/// all the same, over its record's spare. (It was not even tried while
/// the store was down: the rotated refresh token stayed in memory only,
/// and a crash then lost the session, the provider refusing the retired
/// token the restart presented.)
#[test]
fn a_refresh_is_saved_while_another_records_first_write_keeps_the_store_down() {
    let Some((provider, _store, mut daemon, _)) = logged_in_on_a_full_disk(
        "a_refresh_is_saved_while_another_records_first_write_keeps_the_store_down",
        &["demo", "other"],
    ) else {
        return;
    };
    logs_in_other_unsaved(&daemon, &provider);
    support::daemon::refresh_now(&daemon, "demo");
    let saved = daemon.wait_for_log(1, &["provider=demo event=\"refresh_saved\""]);
    assert!(saved[0].contains("ok=true"), "{saved:?}\n{}", daemon.log());
    assert!(
        status(&daemon, "demo")["unsaved"].is_null(),
        "{}",
        status(&daemon, "demo")
    );
    assert!(daemon.stop().success());
}
