//! Unit tests of the spare: saves that write the old record's file in
//! place, the padding that keeps records one length, and the files a spare
//! must never be (on a temporary directory, with a real file system).

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::super::tests::{key, record};
use super::super::{EncryptedFileStore, StoreKey};
use crate::store::Store;

fn store(state: &Path) -> EncryptedFileStore {
    EncryptedFileStore::new(state, key(7))
}

fn inode(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}

fn spare_of(store: &EncryptedFileStore, provider: &str) -> PathBuf {
    super::path_of(store.directory(), provider)
}

#[test]
fn a_save_writes_the_old_records_file_in_place_and_swaps_it_in() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    let record_path = store.file_of("github").unwrap();
    let spare = spare_of(&store, "github");
    store.save("github", &record("rt-1")).unwrap();
    // No record was there to swap out: a spare is made, zeros as long as
    // the record (no second copy of its secrets).
    let made = fs::read(&spare).unwrap();
    assert_eq!(made.len(), fs::read(&record_path).unwrap().len());
    assert!(made.iter().all(|b| *b == 0));
    let first = inode(&record_path);
    let zeros = inode(&spare);
    store.save("github", &record("rt-2")).unwrap();
    // Written in place and swapped, not renamed over: the first record's
    // file is the spare.
    assert_eq!(inode(&record_path), zeros);
    assert_eq!(inode(&spare), first);
    // The next save writes that very file and swaps it back in.
    store.save("github", &record("rt-3")).unwrap();
    assert_eq!(inode(&record_path), first);
    assert_eq!(inode(&spare), zeros);
    assert_eq!(store.load("github").unwrap(), Some(record("rt-3")));
    assert_eq!(fs::metadata(&record_path).unwrap().mode() & 0o777, 0o600);
    assert_eq!(store.list().unwrap(), ["github"]);
}

#[test]
fn a_sessions_records_are_one_length_from_save_to_save() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    let record_path = store.file_of("github").unwrap();
    let mut lengths = Vec::new();
    // Tokens a few bytes longer or shorter, as from one refresh to the next.
    for refresh in ["rt-1", "rt-12345", "rt-123456789012", "rt-12"] {
        store.save("github", &record(refresh)).unwrap();
        assert_eq!(store.load("github").unwrap(), Some(record(refresh)));
        lengths.push(fs::metadata(&record_path).unwrap().len());
    }
    assert!(lengths.iter().all(|&l| l == lengths[0]), "{lengths:?}");
    // A token far longer makes a longer record, and the spare follows.
    let long = "x".repeat(600);
    store.save("github", &record(&long)).unwrap();
    assert!(fs::metadata(&record_path).unwrap().len() > lengths[0]);
    store.save("github", &record("rt-short")).unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-short")));
    assert_eq!(fs::metadata(&record_path).unwrap().len(), lengths[0]);
}

#[test]
fn a_spare_with_another_name_or_loose_mode_is_replaced_not_written() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    store.save("github", &record("rt-1")).unwrap();
    store.save("github", &record("rt-2")).unwrap();
    let spare = spare_of(&store, "github");
    // A second name for the spare (here: the file another provider's
    // record would be): writing it in place would write there too.
    let other = store.file_of("trakt").unwrap();
    fs::hard_link(&spare, &other).unwrap();
    let before = fs::read(&other).unwrap();
    store.save("github", &record("rt-3")).unwrap();
    assert_eq!(
        fs::read(&other).unwrap(),
        before,
        "written through its other name"
    );
    assert_ne!(inode(&store.file_of("github").unwrap()), inode(&other));
    assert_eq!(store.load("github").unwrap(), Some(record("rt-3")));
    // A spare others may read is not written either: it would be the
    // record, with its mode.
    fs::set_permissions(&spare, fs::Permissions::from_mode(0o644)).unwrap();
    store.save("github", &record("rt-4")).unwrap();
    let mode = |path: &Path| fs::metadata(path).unwrap().mode() & 0o777;
    assert_eq!(mode(&store.file_of("github").unwrap()), 0o600);
    assert_eq!(mode(&spare), 0o600);
    assert_eq!(store.load("github").unwrap(), Some(record("rt-4")));
}

#[test]
fn a_spare_torn_by_a_crash_leaves_the_record_whole() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    store.save("github", &record("rt-1")).unwrap();
    store.save("github", &record("rt-2")).unwrap();
    // What a crash in the middle of the next save's write leaves.
    let spare = spare_of(&store, "github");
    let length = fs::metadata(&spare).unwrap().len();
    fs::write(&spare, vec![0xA5; usize::try_from(length / 2).unwrap()]).unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-2")));
    store.save("github", &record("rt-3")).unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-3")));
}

#[test]
fn a_logout_or_prune_removes_the_spare_with_the_record_and_a_restart_keeps_it() {
    let state = tempfile::tempdir().unwrap();
    let daemon = store(state.path());
    for provider in ["github", "github-x"] {
        daemon.save(provider, &record("rt-1")).unwrap();
        daemon.save(provider, &record("rt-2")).unwrap();
    }
    // A start clears temporary files, not spares: the next save uses it.
    assert_eq!(daemon.remove_stale_temp_files(), 0);
    assert!(spare_of(&daemon, "github").exists());
    let prune =
        EncryptedFileStore::for_maintenance(state.path(), StoreKey::from_bytes(&[0; 32]).unwrap());
    prune.delete("github").unwrap();
    assert!(!spare_of(&daemon, "github").exists());
    assert!(spare_of(&daemon, "github-x").exists());
    daemon.delete("github-x").unwrap();
    assert!(!spare_of(&daemon, "github-x").exists());
    assert_eq!(daemon.list().unwrap(), Vec::<String>::new());
    assert!(daemon.file_names().is_empty(), "{:?}", daemon.file_names());
}

#[test]
fn a_spare_name_taken_by_a_directory_leaves_saves_working() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    store.save("github", &record("rt-1")).unwrap();
    // Not made by tokend, and not removed by it: the saves go on through
    // temporary files, which leave nothing behind.
    let spare = spare_of(&store, "github");
    fs::remove_file(&spare).unwrap();
    fs::create_dir(&spare).unwrap();
    for refresh in ["rt-2", "rt-3"] {
        store.save("github", &record(refresh)).unwrap();
        assert_eq!(store.load("github").unwrap(), Some(record(refresh)));
    }
    assert!(spare.is_dir());
    assert_eq!(store.file_names(), [".github.spare", "github.session"]);
}

/// A spare whose record is gone (an older tokend, which knew no spares,
/// removed the record at a logout) still holds a sealed refresh token: it
/// is listed, so that `--prune` and a logout's retry find it, and its
/// delete removes it; its load finds no record.
#[test]
fn a_spare_without_its_record_is_listed_and_deleted() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    store.save("gone", &record("rt-1")).unwrap();
    store.save("gone", &record("rt-2")).unwrap();
    store.save("kept", &record("rt-k")).unwrap();
    fs::remove_file(store.file_of("gone").unwrap()).unwrap();
    let spare = spare_of(&store, "gone");
    assert!(spare.exists());
    assert_eq!(store.list().unwrap(), ["gone", "kept"]);
    assert_eq!(store.load("gone").unwrap(), None);
    store.delete("gone").unwrap();
    assert!(!spare.exists());
    assert_eq!(store.list().unwrap(), ["kept"]);
}

/// A spare that cannot be removed fails the delete, before the record is
/// removed: the spare holds an earlier record, whose refresh token still
/// works at a provider that does not rotate them, and a logout said done
/// left it for good. The retry, once it can be removed, removes both.
#[test]
fn a_spare_that_cannot_be_removed_fails_the_delete() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    store.save("github", &record("rt-1")).unwrap();
    let spare = spare_of(&store, "github");
    fs::remove_file(&spare).unwrap();
    fs::create_dir(&spare).unwrap();
    fs::write(spare.join("in-the-way"), "").unwrap();
    let err = store.delete("github").unwrap_err();
    assert!(!err.is_store_wide(), "{err}");
    assert!(err.to_string().contains(".github.spare"), "{err}");
    assert!(
        store.file_of("github").unwrap().exists(),
        "the record stays"
    );
    fs::remove_dir_all(&spare).unwrap();
    store.delete("github").unwrap();
    assert!(!store.file_of("github").unwrap().exists());
}

/// A spare whose record is gone (an older tokend's logout, which knew no
/// spares, or a delete cut short) is removed when the record is looked
/// for: it held an earlier refresh token for good. Not in maintenance,
/// where `--prune` says what it removes.
#[test]
fn a_spare_without_its_record_goes_when_the_record_is_looked_for() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    store.save("github", &record("rt-1")).unwrap();
    store.save("github", &record("rt-2")).unwrap();
    let spare = spare_of(&store, "github");
    assert!(spare.exists());
    // The record goes as an older tokend's logout took it.
    fs::remove_file(store.file_of("github").unwrap()).unwrap();
    let pruning = EncryptedFileStore::for_maintenance(state.path(), key(7));
    assert_eq!(pruning.load("github").unwrap(), None);
    assert!(spare.exists(), "maintenance removed the spare");
    assert_eq!(store.load("github").unwrap(), None);
    assert!(!spare.exists(), "the spare stayed");
    assert_eq!(store.list().unwrap(), Vec::<String>::new());
}

/// An ended session's record (no token) leaves no earlier record behind:
/// the spare it was swapped with held the record before it, with the
/// dead refresh token and an access token that may still work, for as
/// long as the session stayed ended.
#[test]
fn an_ended_sessions_record_leaves_no_token_in_the_spare() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    let spare = spare_of(&store, "github");
    store.save("github", &record("rt-1")).unwrap();
    store.save("github", &record("rt-2")).unwrap();
    let ended = crate::store::StoredSession::ended("i", 1, "refused (invalid_grant)");
    store.save("github", &ended).unwrap();
    assert_eq!(store.load("github").unwrap(), Some(ended));
    let left = fs::read(&spare).unwrap_or_default();
    assert!(
        left.iter().all(|b| *b == 0),
        "the spare still holds a record"
    );
    // Every file the store has, the record's aside: zeros or nothing.
    for entry in fs::read_dir(store.directory()).unwrap() {
        let path = entry.unwrap().path();
        if path != store.file_of("github").unwrap() {
            assert!(
                fs::read(&path).unwrap().iter().all(|b| *b == 0),
                "{}",
                path.display()
            );
        }
    }
}

/// A crash between an ended session's record and its spare's clearing
/// left the record before in the spare: reading the ended record clears
/// it (a daemon's start reads every record).
#[test]
fn reading_an_ended_sessions_record_clears_a_spare_left_full() {
    let state = tempfile::tempdir().unwrap();
    let store = store(state.path());
    let spare = spare_of(&store, "github");
    store.save("github", &record("rt-1")).unwrap();
    let ended = crate::store::StoredSession::ended("i", 1, "refused (invalid_grant)");
    store.save("github", &ended).unwrap();
    // As a crash before the clearing leaves it.
    fs::write(&spare, b"the record before, sealed").unwrap();
    assert_eq!(store.load("github").unwrap(), Some(ended));
    let left = fs::read(&spare).unwrap_or_default();
    assert!(
        left.iter().all(|b| *b == 0),
        "the spare still holds a record"
    );
}
