//! The store lock with real files and real `flock`s: two open file
//! descriptions of one file conflict even within one process.

use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn target_in(dir: &Path) -> LockTarget {
    LockTarget::file_store(dir)
}

#[test]
fn a_second_lock_on_the_store_names_the_first_holder() {
    let dir = tempfile::tempdir().unwrap();
    let target = target_in(dir.path());
    let first = StoreLock::acquire(&target).expect("the first lock");
    let lock_file = dir.path().join(FILE_STORE_LOCK);
    assert_eq!(
        std::fs::metadata(&lock_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let err = StoreLock::acquire(&target).expect_err("a second lock");
    let pid = std::process::id();
    assert!(matches!(err, LockError::Held { holder: Some(p), .. } if p == pid));
    assert_eq!(
        err.to_string(),
        format!(
            "another tokend (pid {pid}) uses this store ({}): stop it first, or give this one another state_directory",
            dir.path().display()
        )
    );
    drop(first);
    drop(acquire_once_released(&target).expect("free once the holder is gone"));
}

/// The lock of `target`, taken again after this process released it.
///
/// Another test of this process may fork (it starts a child process)
/// while the lock is open: until that child execs, its copy of the
/// descriptor (close-on-exec) holds the lock too. That window is bounded;
/// a lock still held after 10 s is the failure. (The CI lost a run to it.)
fn acquire_once_released(target: &LockTarget) -> Result<StoreLock, LockError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match StoreLock::acquire(target) {
            Err(LockError::Held { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

#[test]
fn the_daemon_makes_its_state_directory_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let target = target_in(&state);
    let _lock = StoreLock::acquire(&target).unwrap();
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn nothing_is_made_under_a_directory_others_may_write() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let state = open.join("state");
    let err = StoreLock::acquire(&target_in(&state)).expect_err("an untrusted directory");
    assert!(
        matches!(&err, LockError::Unusable { reason, .. } if reason.contains("writable by every user")),
        "{err}"
    );
    assert!(!state.exists());
}

#[test]
fn a_symbolic_link_in_place_of_the_lock_file_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join(FILE_STORE_LOCK)).unwrap();
    let err = StoreLock::acquire(&target_in(dir.path())).expect_err("a symbolic link");
    assert!(matches!(err, LockError::Unusable { .. }), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
}

/// A lock file that cannot be opened for writing (here immutable, as a
/// read-only disk makes it) is still locked: the store is read and
/// refreshed there, and a second daemon must still be stopped (it only
/// warned, and both ran). Needs `chattr` on a file system that has the
/// attribute, and root; skipped otherwise.
#[test]
fn a_lock_file_that_cannot_be_written_still_locks() {
    let dir = tempfile::tempdir().unwrap();
    let target = target_in(dir.path());
    drop(StoreLock::acquire(&target).expect("the lock file made"));
    let lock_file = dir.path().join(FILE_STORE_LOCK);
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&lock_file)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if !chattr("+i") {
        eprintln!("SKIPPED a_lock_file_that_cannot_be_written_still_locks: chattr +i failed");
        return;
    }
    // Released above: see `acquire_once_released`.
    let first = acquire_once_released(&target);
    let second = StoreLock::acquire(&target);
    assert!(chattr("-i"), "chattr -i");
    assert!(first.is_ok(), "{:?}", first.err());
    assert!(
        matches!(second, Err(LockError::Held { .. })),
        "{:?}",
        second.err()
    );
}
