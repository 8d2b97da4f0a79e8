//! What a user the socket's permissions refuse is told: the place on the
//! way that shuts them out, as its mode says, and a group to join only
//! where that group's bits let in what other users' do not.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;
use std::path::Path;

use super::group_name;
use crate::support;
use support::daemon::stderr;
use support::other_uid::OtherUser;

/// `tokenctl status` as `nobody` on `socket`: refused (exit 3); its stderr.
fn refused(nobody: &OtherUser, socket: &Path) -> String {
    let out = nobody
        .command("tokenctl")
        .env_clear()
        .env("LC_ALL", "C.UTF-8")
        .arg("--socket")
        .arg(socket)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let said = stderr(&out);
    assert!(said.contains("Permission denied"), "{said}");
    said
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chgrp(path: &Path, gid: u32) {
    rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid))).unwrap();
}

/// The shipped unit's runtime directory (0755 root) and socket (0600
/// root): the socket's mode shuts other users out, and no group would let
/// them in (they were told the place "is for group `root`", the
/// directory's, and to join it). Then directory 0755 of group `daemon`,
/// socket 0660 of group `adm`: `adm` is the way in (`daemon` was named).
#[test]
fn the_refusal_names_the_place_and_a_group_only_where_it_lets_in() {
    let Some(nobody) =
        OtherUser::nobody_or_skip("the_refusal_names_the_place_and_a_group_only_where_it_lets_in")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let socket = dir.path().join("tokend.sock");
    // A listener is all it takes: the connect is refused before it.
    let _listener = UnixListener::bind(&socket).unwrap();
    chmod(&socket, 0o600);
    let said = refused(&nobody, &socket);
    assert!(
        said.contains(&format!(
            "{} is mode 0600, owner `root`, group `root`: only its owner may connect; the \
             daemon's config decides who may (`socket_mode` and `socket_group` in [daemon])",
            socket.display()
        )),
        "{said}"
    );
    assert!(!said.contains("is for group"), "{said}");

    let (daemon_group, adm) = (group_name(1), group_name(4));
    chgrp(dir.path(), 1);
    chgrp(&socket, 4);
    chmod(&socket, 0o660);
    let said = refused(&nobody, &socket);
    assert!(
        said.contains(&format!(
            "{} is for group `{adm}` (mode 0660), and this user is not in it: add the user to it",
            socket.display()
        )),
        "{said}"
    );
    assert!(!said.contains(&format!("`{daemon_group}`")), "{said}");
}
