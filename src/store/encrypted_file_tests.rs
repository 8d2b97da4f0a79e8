//! Unit tests of the encrypted file store on a temporary directory.

use std::os::unix::fs::PermissionsExt as _;

use super::files::{what_is_full, with_what_is_full};
use super::*;
use crate::secret::Secret;
use crate::store::STORED_SESSION_VERSION;
use crate::store::key::KEY_LEN;

pub(super) fn key(byte: u8) -> StoreKey {
    StoreKey::from_bytes(&[byte; KEY_LEN]).unwrap()
}

pub(super) fn record(refresh: &str) -> StoredSession {
    StoredSession {
        version: STORED_SESSION_VERSION,
        identity: "rfc8628|http://127.0.0.1/token|cid".into(),
        refresh_token: Some(Secret::from(refresh)),
        obtained_at: 1_790_000_000,
        scope: Some("repo".into()),
        access_token: Some(Secret::from(format!("at-of-{refresh}"))),
        token_type: Some("Bearer".into()),
        expires_at: Some(1_790_003_600),
        refresh_expires_at: None,
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trip_list_delete_and_modes() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(&state.path().join("deep/state"), key(1));
    assert_eq!(store.load("github").unwrap(), None);
    assert_eq!(store.list().unwrap(), Vec::<String>::new());
    store.save("github", &record("rt-github-1")).unwrap();
    store.save("trakt", &record("rt-trakt-1")).unwrap();
    store.save("github", &record("rt-github-2")).unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-github-2")));
    assert_eq!(store.list().unwrap(), ["github", "trakt"]);

    assert_eq!(mode(store.directory()), 0o700);
    let file = store.file_of("github").unwrap();
    assert_eq!(mode(&file), 0o600);
    // The records, and github's spare (its earlier record, left by the
    // second save's swap): no temporary file is left.
    let spare = ".github.spare";
    assert_eq!(
        store.file_names(),
        [spare, "github.session", "trakt.session"]
    );
    assert_eq!(mode(&store.directory().join(spare)), 0o600);
    for file in [file, store.directory().join(spare)] {
        let bytes = fs::read(&file).unwrap();
        for secret in ["rt-github-2", "at-of-rt-github-2", "rt-github-1"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in the clear in {}",
                file.display()
            );
        }
    }

    // A logout takes the spare with the record.
    store.delete("github").unwrap();
    store.delete("github").unwrap();
    assert_eq!(store.load("github").unwrap(), None);
    assert_eq!(store.list().unwrap(), ["trakt"]);
    assert_eq!(store.file_names(), ["trakt.session"]);
}

#[test]
fn a_loose_directory_is_made_private() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    fs::create_dir(store.directory()).unwrap();
    fs::set_permissions(store.directory(), fs::Permissions::from_mode(0o755)).unwrap();
    store.list().unwrap();
    assert_eq!(mode(store.directory()), 0o700);
}

#[test]
fn tampered_swapped_and_foreign_files_are_corrupt() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    store.save("gitlab", &record("rt-gitlab-1")).unwrap();
    let github = store.file_of("github").unwrap();
    let gitlab = store.file_of("gitlab").unwrap();

    // One flipped bit in the ciphertext.
    let good = fs::read(&github).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 20;
    bad[last] ^= 0x40;
    fs::write(&github, &bad).unwrap();
    let err = store.load("github").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("modified or damaged"), "{err}");
    assert!(err.to_string().contains("tokenctl logout github"), "{err}");

    // gitlab's file under github's name: sealed for another provider.
    fs::copy(&gitlab, &github).unwrap();
    let err = store.load("github").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

    // Plain JSON, as if someone wrote a record by hand.
    fs::write(&github, record("rt-x").to_bytes().as_slice()).unwrap();
    let err = store.load("github").unwrap_err();
    assert!(
        err.to_string().contains("not a tokend session file"),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("rt-x"));

    // Writing a new record replaces the damaged one.
    store.save("github", &record("rt-github-2")).unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-github-2")));
}

#[test]
fn another_key_is_a_clear_error() {
    let state = tempfile::tempdir().unwrap();
    EncryptedFileStore::new(state.path(), key(1))
        .save("github", &record("rt-github-1"))
        .unwrap();
    let other = EncryptedFileStore::new(state.path(), key(2));
    let err = other.load("github").unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("another key"), "{text}");
    assert!(text.contains(&key(1).id().to_string()), "{text}");
    assert!(text.contains(&key(2).id().to_string()), "{text}");
}

#[test]
fn a_crash_mid_write_leaves_the_old_record_and_a_temp_file_that_start_removes() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    // What a crash before the rename leaves: a complete or partial temp
    // file, named with the pid of a process that is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let temp = store.directory().join(format!(".github.{dead}.0.tmp"));
    fs::write(&temp, b"tokendS\x01partial").unwrap();
    // One of a live process (pid 1): a second daemon started by mistake
    // must not remove the first one's save in progress.
    let alive = store.directory().join(".github.1.0.tmp");
    fs::write(&alive, b"tokendS\x01partial").unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-github-1")));
    assert_eq!(store.list().unwrap(), ["github"]);
    assert_eq!(store.remove_stale_temp_files(), 1);
    assert!(!temp.exists());
    assert!(alive.exists());
}

#[test]
fn unusable_directories_and_names_are_errors() {
    let state = tempfile::tempdir().unwrap();
    fs::write(state.path().join(SESSIONS_DIR), b"not a directory").unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    let err = store.save("github", &record("rt-1")).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(err.to_string().contains("state_directory"), "{err}");
    for name in ["", "../etc", ".hidden", "a/b"] {
        assert!(store.file_of(name).is_err(), "{name:?}");
    }
}

#[test]
fn a_prepared_save_writes_through_the_file_made_beforehand() {
    use std::os::unix::fs::MetadataExt as _;
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    let prepared = store.prepare_save("github");
    let temp = prepared.temp_path().expect("a temporary file").to_owned();
    assert_eq!(mode(&temp), 0o600);
    let made = fs::metadata(&temp).unwrap().ino();
    store
        .save_prepared("github", &record("rt-github-2"), prepared)
        .unwrap();
    // The record is the very file made beforehand, now holding the new
    // record; the old record's file is the spare.
    assert_eq!(
        fs::metadata(store.file_of("github").unwrap())
            .unwrap()
            .ino(),
        made
    );
    assert_eq!(store.load("github").unwrap(), Some(record("rt-github-2")));
    let spare = ".github.spare";
    assert_eq!(store.file_names(), [spare, "github.session"]);
    // With a spare there, a preparation has nothing to make.
    assert!(store.prepare_save("github").temp_path().is_none());
}

#[test]
fn an_unused_or_misdirected_preparation_leaves_no_file() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    // A refresh that failed: the preparation is dropped.
    drop(store.prepare_save("github"));
    assert_eq!(store.file_names(), ["github.session"]);
    // Made for another record: not used, removed, and the save still right
    // (it leaves github's spare, the old record's file).
    let prepared = store.prepare_save("trakt");
    store
        .save_prepared("github", &record("rt-github-2"), prepared)
        .unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-github-2")));
    let spare = ".github.spare";
    assert_eq!(store.file_names(), [spare, "github.session"]);
    // A name that is no provider's prepares nothing; its save says why.
    let prepared = store.prepare_save("../etc");
    assert!(prepared.temp_path().is_none());
    assert!(
        store
            .save_prepared("../etc", &record("rt-1"), prepared)
            .is_err()
    );
}

#[test]
fn a_directory_replaced_after_the_preparation_fails_the_save_as_without_one() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    let prepared = store.prepare_save("github");
    assert!(prepared.temp_path().is_some());
    let away = state.path().join("sessions.away");
    fs::rename(store.directory(), &away).unwrap();
    fs::write(store.directory(), b"in the way").unwrap();
    let err = store
        .save_prepared("github", &record("rt-github-2"), prepared)
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
    // The directory comes back with the old record in it.
    fs::remove_file(store.directory()).unwrap();
    fs::rename(&away, store.directory()).unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-github-1")));
}

/// A batch gives what loading each record gives: a record, none, a damaged
/// one, another key's, an invalid name (one directory check for all).
#[test]
fn a_batch_loads_as_each_record_would() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    store.save("damaged", &record("rt-damaged-1")).unwrap();
    fs::write(store.file_of("damaged").unwrap(), b"tokendS\x01short").unwrap();
    EncryptedFileStore::new(state.path(), key(2))
        .save("foreign", &record("rt-foreign-1"))
        .unwrap();
    let names: Vec<String> = ["github", "none", "damaged", "foreign", "../etc"]
        .into_iter()
        .map(String::from)
        .collect();
    let batch = store.load_batch(&names);
    let each: Vec<LoadResult> = names.iter().map(|name| store.load(name)).collect();
    assert_eq!(batch, each);
    assert_eq!(batch[0], Ok(Some(record("rt-github-1"))));
    assert_eq!(batch[1], Ok(None));
    assert!(
        matches!(batch[2], Err(StoreError::Corrupt { .. })),
        "{batch:?}"
    );
    assert!(
        matches!(batch[3], Err(StoreError::WrongKey { .. })),
        "{batch:?}"
    );
    assert!(
        matches!(batch[4], Err(StoreError::Failed { .. })),
        "{batch:?}"
    );
}

/// A directory the store cannot use fails every record of the batch with
/// the same store-wide error, as each load would.
#[test]
fn a_batch_in_an_unusable_directory_fails_as_a_whole() {
    let state = tempfile::tempdir().unwrap();
    fs::write(state.path().join(SESSIONS_DIR), b"not a directory").unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    let names = vec!["github".to_owned(), "gitlab".to_owned()];
    let batch = store.load_batch(&names);
    assert_eq!(batch.len(), 2);
    for result in &batch {
        let err = result.as_ref().unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
    assert_eq!(batch[0], store.load("github"));
}

/// Something other than a file at a record's path (a directory, a FIFO)
/// is that record's problem: load, save and delete say so without calling
/// the whole store unusable, and a FIFO does not hold the reader.
#[test]
fn a_directory_or_fifo_at_a_record_path_is_that_records_problem() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("ok", &record("rt-ok")).unwrap();
    let dir = store.file_of("dir").unwrap();
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("inside"), b"x").unwrap();
    let fifo = store.file_of("fifo").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    for provider in ["dir", "fifo"] {
        let err = store.load(provider).unwrap_err();
        assert!(!err.is_store_wide(), "load {provider}: {err}");
        assert!(err.to_string().contains("remove it by hand"), "{err}");
    }
    for err in [
        store.save("dir", &record("rt-dir")).unwrap_err(),
        store.delete("dir").unwrap_err(),
    ] {
        assert!(!err.is_store_wide(), "{err}");
        assert!(err.to_string().contains("is not a session file"), "{err}");
    }
    // Every other record is as it was, and the batch reads them all.
    assert!(store.load("ok").unwrap().is_some());
    let batch = store.load_batch(&["fifo".into(), "ok".into(), "dir".into()]);
    assert!(batch[1].as_ref().unwrap().is_some());
    assert!(
        batch
            .iter()
            .all(|r| r.as_ref().err().is_none_or(|e| !e.is_store_wide()))
    );
}

/// An immutable record (`chattr +i`, as a hardening or backup tool may
/// leave one) is its provider's own trouble, named, not an outage of the
/// store: every probe failed on it, for good, and every other session's
/// saves waited with it. Needs root and a file system with the attribute.
#[test]
fn an_immutable_record_is_that_records_problem() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("stuck", &record("rt-1")).unwrap();
    store.save("ok", &record("rt-ok")).unwrap();
    let path = store.file_of("stuck").unwrap();
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        eprintln!("SKIPPED an_immutable_record_is_that_records_problem: chattr +i needs root");
        return;
    }
    let saved = store.save("stuck", &record("rt-2"));
    let deleted = store.delete("stuck");
    assert!(chattr("-i"));
    for err in [saved.unwrap_err(), deleted.unwrap_err()] {
        assert!(!err.is_store_wide(), "{err}");
        assert!(
            err.to_string().contains("immutable or append-only"),
            "{err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
    store.save("ok", &record("rt-ok-2")).unwrap();
    store.save("stuck", &record("rt-3")).unwrap();
    // The directory immutable: the store's trouble, named so, for every
    // record (not blamed on one).
    let sessions = state.path().join(SESSIONS_DIR);
    let dir_attr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&sessions)
            .status()
            .is_ok_and(|s| s.success())
    };
    for flag in ["i", "a"] {
        assert!(dir_attr(&format!("+{flag}")));
        let saved = store.save("ok", &record("rt-ok-3"));
        let new = store.save("new", &record("rt-new"));
        let writable = store.check_writable();
        assert!(dir_attr(&format!("-{flag}")));
        for err in [saved.unwrap_err(), new.unwrap_err(), writable.unwrap_err()] {
            assert!(err.is_store_wide(), "+{flag}: {err}");
            assert!(err.to_string().contains("lsattr -d"), "+{flag}: {err}");
        }
    }
    // No temporary file was left by the failed saves.
    let names: Vec<String> = fs::read_dir(&sessions)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
}

/// A state directory below a directory anyone may write to (no sticky
/// bit) is not used: its owner could swap `sessions/` for an old copy and
/// bring back a record a logout deleted. Once the directory above is safe,
/// the store works.
#[test]
fn a_store_below_a_directory_others_can_change_is_not_used() {
    let top = tempfile::tempdir().unwrap();
    let open = top.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let store = EncryptedFileStore::new(&open.join("state"), key(1));
    let e = store
        .save("github", &record("rt-1"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{} (owner uid", open.display()))
            && e.contains("writable by every user"),
        "{e}"
    );
    assert!(
        !open.join("state").exists(),
        "made below the open directory"
    );
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    store.save("github", &record("rt-1")).unwrap();
}

/// The next notice of `feed`, within 30 s.
async fn wait(feed: &mut crate::store::ChangeFeed) {
    use futures_util::StreamExt as _;
    tokio::time::timeout(std::time::Duration::from_secs(30), feed.next())
        .await
        .expect("a notice within 30 s")
        .expect("the feed is open");
}

/// The change feed (see `changes`): a records' directory put back where a
/// file stood, and a state directory made private again, each give a
/// notice, after which the store works.
#[tokio::test]
async fn the_change_feed_notices_a_mended_directory() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let store = EncryptedFileStore::new(&state, key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    let away = state.join("sessions.away");
    fs::rename(store.directory(), &away).unwrap();
    fs::write(store.directory(), b"in the way").unwrap();
    assert!(store.list().is_err());
    let mut feed = store.change_feed().expect("a feed");
    fs::remove_file(store.directory()).unwrap();
    fs::rename(&away, store.directory()).unwrap();
    wait(&mut feed).await;
    assert_eq!(store.list().unwrap(), ["github"]);
    drop(feed);

    // Writable by others, not sticky: untrusted until made private again.
    let store = EncryptedFileStore::new(&state, key(1));
    fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(store.list().is_err());
    let mut feed = store.change_feed().expect("a feed");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    wait(&mut feed).await;
    assert_eq!(store.list().unwrap(), ["github"]);
}

/// A record file that cannot be read for its own sake (here a symbolic
/// link to itself; a file restored from a backup as root fails alike for
/// tokend's user) is that record's trouble: the other records load, and
/// the store as a whole is not reported down (which would retry and fail
/// again for good while the file stays).
#[test]
fn a_record_unreadable_for_its_own_sake_fails_alone() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    std::os::unix::fs::symlink("looping.session", store.directory().join("looping.session"))
        .unwrap();
    let names: Vec<String> = ["looping", "github"]
        .into_iter()
        .map(String::from)
        .collect();
    let batch = store.load_batch(&names);
    let Err(StoreError::Corrupt {
        provider, reason, ..
    }) = &batch[0]
    else {
        panic!("{batch:?}");
    };
    assert_eq!(provider, "looping");
    assert!(
        reason.contains("looping.session") && reason.contains("tokenctl logout looping"),
        "{reason}"
    );
    assert_eq!(batch[1], Ok(Some(record("rt-github-1"))));
}

/// A store-wide failure's reason, shown to every caller that may see any
/// provider, does not name the record (whose name is its provider's).
#[test]
fn a_store_wide_read_failure_names_the_directory_not_the_record() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("secret-project.session");
    let error = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
    let failure = files::read_failure(&path, "secret-project", &error);
    assert!(failure.is_store_wide(), "{failure:?}");
    let said = failure.to_string();
    assert!(!said.contains("secret-project"), "{said}");
    assert!(said.contains(&state.path().display().to_string()), "{said}");
}

/// A record's bytes are written into one buffer sized up front: a buffer
/// that grew would leave its earlier copies, with the tokens in them,
/// freed unzeroed (serde_json's `to_vec` starts at 128 bytes).
#[test]
fn a_records_bytes_never_grow_their_buffer() {
    for length in [8, 2000, 9000] {
        let session = record(&"r".repeat(length));
        let bytes = session.to_bytes();
        assert_eq!(bytes.capacity(), session.bytes_capacity(), "{length}");
        assert_eq!(StoredSession::from_bytes(&bytes).unwrap(), session);
    }
}

/// A full disk's error says which limit: out of inodes, `df -h` shows free
/// space and the administrator looks in the wrong place.
#[test]
fn a_full_file_system_is_named_by_its_limit() {
    assert!(what_is_full(Some((64, 0))).contains("df -i"));
    assert!(what_is_full(Some((64, 12))).contains("df -h"));
    // btrfs and a tmpfs without a limit count no inodes: full of blocks.
    assert!(what_is_full(Some((0, 0))).contains("df -h"));
    assert!(what_is_full(None).contains("full"));
    let other = io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error());
    assert_eq!(with_what_is_full(Path::new("/"), &other), other.to_string());
    let full = io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
    assert!(with_what_is_full(Path::new("/"), &full).contains("(os error 28): "));
}

/// A records directory of another uid (restored from a backup, copied
/// from another machine) is refused with the way out that keeps its
/// records: `chown -R` to tokend's uid, not another `state_directory`.
#[test]
fn a_directory_of_another_uid_is_to_be_given_back_not_left() {
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        eprintln!("SKIPPED a_directory_of_another_uid_is_to_be_given_back_not_left: needs root");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-restored")).unwrap();
    let other = rustix::fs::Uid::from_raw(4321);
    rustix::fs::chown(store.directory(), Some(other), None).unwrap();
    let message = store.load("github").unwrap_err().to_string();
    assert!(message.contains("belongs to uid 4321"), "{message}");
    assert!(
        message.contains(&format!("chown -R 0 {}", store.directory().display())),
        "{message}"
    );
    assert!(!message.contains("state_directory"), "{message}");
}
