//! The rule for one directory, for the directories above a path, for a
//! file, and for what symbolic links lead to.

use std::os::unix::fs::PermissionsExt as _;

use super::*;

/// A group no user has as a private group: these cases are about
/// owners and modes.
const NOGROUP: u32 = 65534;

const ME: Owners = Owners {
    uid: 1000,
    service_user: false,
};

#[test]
fn the_rule_for_one_directory() {
    let dir = Path::new("/x");
    assert!(check_one(dir, 0, NOGROUP, 0o755, ME).is_ok());
    assert!(check_one(dir, 1000, NOGROUP, 0o700, ME).is_ok());
    // /tmp: world-writable but sticky, root's.
    assert!(check_one(dir, 0, NOGROUP, 0o1777, ME).is_ok());
    let e = check_one(dir, 1001, NOGROUP, 0o755, ME).unwrap_err();
    assert_eq!(e.why, "belongs to another user");
    let e = check_one(dir, 0, NOGROUP, 0o777, ME).unwrap_err();
    assert_eq!(e.why, "is writable by every user");
    let e = check_one(dir, 1000, NOGROUP, 0o775, ME).unwrap_err();
    assert_eq!(e.why, "is writable by its group");
    // Sticky does not make another user's directory trusted.
    assert!(check_one(dir, 1001, NOGROUP, 0o1777, ME).is_err());
    // A check beside the daemon trusts the service user too, when
    // there is one, but never a user who is neither.
    assert!(check_one(dir, 54321, NOGROUP, 0o755, Owners::beside_the_daemon()).is_err());
    if let Some(service) = service_user_uid() {
        assert!(check_one(dir, service, NOGROUP, 0o755, Owners::beside_the_daemon()).is_ok());
        assert!(check_one(dir, service, NOGROUP, 0o755, Owners::of_uid(1000)).is_err());
    }
    assert!(
        e.to_string()
            .starts_with("/x (owner uid 1000, mode 0775) is writable by its group;")
    );
}

/// A directory anyone may write to, anywhere above, is named; a
/// missing tail is skipped; a symbolic link is judged by both sides.
#[test]
fn every_ancestor_is_checked() {
    let me = Owners::daemon();
    let top = tempfile::tempdir().unwrap();
    let open = top.path().join("open");
    let deep = open.join("a").join("b");
    std::fs::create_dir_all(&deep).unwrap();
    assert!(check_ancestors(&deep.join("not-yet"), me).is_ok());
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = check_ancestors(&deep.join("not-yet"), me).unwrap_err();
    assert_eq!(e.path, open);
    // Sticky: fine.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(check_ancestors(&deep, me).is_ok());
    // A link from a safe place into the open directory.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let safe = tempfile::tempdir().unwrap();
    let link = safe.path().join("link");
    std::os::unix::fs::symlink(&deep, &link).unwrap();
    assert_eq!(check_ancestors(&link, me).unwrap_err().path, open);
    // Another user's directory, sticky or not (needs root to chown).
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let nobody = rustix::fs::Uid::from_raw(65534);
    rustix::fs::chown(&open, Some(nobody), None).unwrap();
    for mode in [0o755, 0o1777] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = check_ancestors(&deep, me).unwrap_err();
        assert_eq!(
            (e.path.as_path(), e.why),
            (open.as_path(), "belongs to another user")
        );
        assert_eq!((e.owner, e.mode), (65534, mode));
    }
}

/// A program others may write is refused, sticky bit or not; so is
/// one in a directory others may write.
#[test]
fn a_file_others_can_write_is_refused() {
    let me = Owners::daemon();
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("hook");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(check_file(&program, me).is_ok());
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(check_file(&program, me).unwrap_err().path, program);
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(check_file(&program, me).unwrap_err().path, dir.path());
}

/// A config that is a symbolic link is as safe as the directories above
/// its target: `conf/config.toml -> ../ww/c.toml` with `ww` writable by
/// all (not sticky) is refused, naming `ww`, the link and its target; the
/// same file named directly was refused, the link let it through.
#[test]
fn a_file_is_judged_by_the_directories_above_its_target() {
    let me = Owners::daemon();
    let top = tempfile::tempdir().unwrap();
    let (conf, ww) = (top.path().join("conf"), top.path().join("ww"));
    std::fs::create_dir(&conf).unwrap();
    std::fs::create_dir(&ww).unwrap();
    std::fs::write(ww.join("c.toml"), "").unwrap();
    std::fs::set_permissions(ww.join("c.toml"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = conf.join("config.toml");
    std::os::unix::fs::symlink("../ww/c.toml", &link).unwrap();
    assert!(check_file(&link, me).is_ok());
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o777)).unwrap();
    let direct = check_file(&ww.join("c.toml"), me).unwrap_err();
    assert_eq!((direct.path.as_path(), direct.via.len()), (ww.as_path(), 0));
    let e = check_file(&link, me).unwrap_err();
    assert_eq!(
        (e.path.as_path(), e.why),
        (ww.as_path(), "is writable by every user")
    );
    assert_eq!(
        e.via,
        [LinkHop {
            link: link.clone(),
            target: PathBuf::from("../ww/c.toml"),
        }]
    );
    assert!(
        e.to_string().contains(&format!(
            "is writable by every user, reached through the symbolic link {} -> ../ww/c.toml;",
            link.display()
        )),
        "{e}"
    );
    // Sticky, as /tmp: fine.
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(check_file(&link, me).is_ok());
    // The target itself writable by others: named as the file reached.
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(ww.join("c.toml"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = check_file(&link, me).unwrap_err();
    assert_eq!((e.path, e.via.len()), (ww.join("c.toml"), 1));
}

/// Every hop counts: a link whose target is itself a link kept in a
/// directory anyone may write is refused at that directory, naming the
/// first link; a link to a directory, in the middle of a path, too.
#[test]
fn every_link_on_the_way_is_followed() {
    let me = Owners::daemon();
    let top = tempfile::tempdir().unwrap();
    for dir in ["a", "b", "c"] {
        std::fs::create_dir(top.path().join(dir)).unwrap();
    }
    std::fs::write(top.path().join("c/file"), "").unwrap();
    std::os::unix::fs::symlink("../c/file", top.path().join("b/l2")).unwrap();
    std::os::unix::fs::symlink(top.path().join("b/l2"), top.path().join("a/l1")).unwrap();
    std::os::unix::fs::symlink("../b", top.path().join("a/dir")).unwrap();
    assert!(check_file(&top.path().join("a/l1"), me).is_ok());
    std::fs::set_permissions(top.path().join("b"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = check_file(&top.path().join("a/l1"), me).unwrap_err();
    assert_eq!(e.path, top.path().join("b"));
    assert_eq!(e.via.len(), 1, "{e}");
    let e = check_file(&top.path().join("a/dir/l2"), me).unwrap_err();
    assert_eq!(e.path, top.path().join("b"));
    assert_eq!(e.via[0].link, top.path().join("a/dir"));
    // `..` after a link goes up from its target, as the kernel's does:
    // a/dir/.. is `top`, and top/c/file is fine.
    assert!(check_file(&top.path().join("a/dir/../c/file"), me).is_ok());
    // A loop is left to the open, which fails on it.
    std::os::unix::fs::symlink("loop", top.path().join("c/loop")).unwrap();
    assert!(check_file(&top.path().join("c/loop"), me).is_ok());
}

/// A link another user owns in a sticky directory is hers to replace.
#[test]
fn a_link_another_user_owns_is_refused() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let me = Owners::daemon();
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(top.path().join("file"), "").unwrap();
    let link = top.path().join("link");
    std::os::unix::fs::symlink("file", &link).unwrap();
    assert!(check_file(&link, me).is_ok());
    rustix::fs::chownat(
        rustix::fs::CWD,
        &link,
        Some(rustix::fs::Uid::from_raw(65534)),
        None,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let e = check_file(&link, me).unwrap_err();
    assert_eq!((e.path, e.why), (link, "belongs to another user"));
}
