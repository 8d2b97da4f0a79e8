//! Trouble at the files, told apart: what is wrong with one record (a
//! directory, a FIFO, an immutable or unreadable file in its place) fails
//! that record alone; what is wrong with the store (a directory others can
//! change or of another uid, a full disk) fails it all, and the change
//! feed says when it is mended.

use std::os::unix::fs::PermissionsExt as _;

use super::super::files::{what_is_full, with_what_is_full};
use super::*;

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

/// A daemon's store writes only into the state directory it locked: one
/// removed, or replaced by another (a file system lazily unmounted, or
/// mounted over it), is an outage naming it, nothing is made in its place,
/// and the store works again once it is back. It made the directories
/// again, and wrote there, with no lock in them.
#[test]
fn a_daemons_store_writes_only_into_the_state_directory_it_locked() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let held = crate::store::HeldLock::default();
    let lock = crate::store::StoreLock::acquire(&crate::store::LockTarget::file_store(&state))
        .expect("the daemon's lock");
    held.record(&lock);
    let store = EncryptedFileStore::new(&state, key(1)).locked_by(held);
    store.save("github", &record("rt-1")).unwrap();

    let away = root.path().join("away");
    fs::rename(&state, &away).unwrap();
    let err = store.save("github", &record("rt-2")).unwrap_err();
    assert!(err.is_store_wide(), "{err}");
    let said = err.to_string();
    assert!(
        said.contains(&format!(
            "the state directory {} was removed or replaced",
            state.display()
        )) && said.contains("nothing is there now"),
        "{said}"
    );
    assert!(!state.exists(), "the state directory was made again");

    fs::create_dir(&state).unwrap();
    let err = store.save("github", &record("rt-2")).unwrap_err();
    assert!(
        err.to_string().contains("another directory is there now"),
        "{err}"
    );
    assert!(store.list().is_err());
    assert_eq!(
        fs::read_dir(&state).unwrap().count(),
        0,
        "written into another"
    );

    fs::remove_dir(&state).unwrap();
    fs::rename(&away, &state).unwrap();
    store.save("github", &record("rt-2")).unwrap();
    assert_eq!(store.load("github").unwrap(), Some(record("rt-2")));
    drop(lock);
}

/// The records' directory removed under the daemon (`rm -rf sessions`):
/// made again, the call that finds it gone fails as the store's, once,
/// and the store says its records were lost, so that the broker saves
/// every session again. It was made again quietly: the other sessions'
/// records were gone until their next refresh, and a restart before then
/// found them logged out.
#[test]
fn records_removed_under_the_daemon_are_said_lost() {
    let state = tempfile::tempdir().unwrap();
    let store = EncryptedFileStore::new(state.path(), key(1));
    store.save("github", &record("rt-github-1")).unwrap();
    store.save("gitlab", &record("rt-gitlab-1")).unwrap();
    assert!(!store.take_lost_records());
    fs::remove_dir_all(store.directory()).unwrap();

    // A refresh's preparation leaves it to the save (it made the directory
    // and kept quiet, and the save found it there).
    let prepared = store.prepare_save("github");
    assert!(prepared.temp_path().is_none());
    assert!(!store.directory().exists());
    let err = store
        .save_prepared("github", &record("rt-github-2"), prepared)
        .unwrap_err();
    assert!(err.is_store_wide(), "{err}");
    assert!(
        err.to_string().contains("was removed while tokend ran"),
        "{err}"
    );
    assert!(store.directory().is_dir(), "made again");
    assert!(store.take_lost_records());
    assert!(!store.take_lost_records(), "said once");
    store.save("github", &record("rt-github-2")).unwrap();
    assert_eq!(store.list().unwrap(), ["github"]);
}
