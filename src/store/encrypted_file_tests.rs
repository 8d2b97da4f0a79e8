//! Unit tests of the encrypted file store on a temporary directory.

use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::secret::Secret;
use crate::store::STORED_SESSION_VERSION;
use crate::store::key::KEY_LEN;

#[path = "encrypted_file_trouble_tests.rs"]
mod trouble;

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
        ended: None,
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
    // The records and their spares (github's its earlier record, left by
    // the second save's swap; trakt's the zeros its first save made): no
    // temporary file is left.
    let spare = ".github.spare";
    assert_eq!(
        store.file_names(),
        [spare, ".trakt.spare", "github.session", "trakt.session"]
    );
    assert_eq!(mode(&store.directory().join(spare)), 0o600);
    assert_eq!(mode(&store.directory().join(".trakt.spare")), 0o600);
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
    assert_eq!(store.file_names(), [".trakt.spare", "trakt.session"]);
}

/// A record saved before spares were made at a first save (or whose spare
/// could not be made): a save into a new file, made beforehand or not.
fn without_its_spare(store: &EncryptedFileStore, provider: &str) {
    fs::remove_file(store.directory().join(format!(".{provider}.spare"))).unwrap();
}

#[test]
fn a_loose_directory_is_made_private() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    fs::create_dir(store.directory()).unwrap();
    fs::set_permissions(store.directory(), fs::Permissions::from_mode(0o755)).unwrap();
    store.list().unwrap();
    assert_eq!(mode(store.directory()), 0o700);
    // Open to its group alone is loose too (a `umask 007`, a shared
    // group's directory): its members would see which providers have
    // sessions, and could plant files.
    fs::set_permissions(store.directory(), fs::Permissions::from_mode(0o750)).unwrap();
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

/// A records directory that is a symbolic link is refused as such (it was
/// "not a directory", with advice that did not help).
#[test]
fn a_records_directory_that_is_a_symlink_is_named_as_one() {
    let state = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), state.path().join(SESSIONS_DIR)).unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    let err = store
        .save("github", &record("rt-1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is a symbolic link to")
            && err.contains(&elsewhere.path().display().to_string())
            && !err.contains("not a directory"),
        "{err}"
    );
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
    without_its_spare(&store, "github");
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
    without_its_spare(&store, "github");
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
    without_its_spare(&store, "github");
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
