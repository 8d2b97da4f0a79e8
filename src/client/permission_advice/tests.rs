//! Which place on the way to the socket shuts a user out, and what is said.

use super::*;

const ALICE: u32 = 1000;
const ROOT_GROUP: u32 = 0;
const DAEMON_GROUP: u32 = 1;
const ADM_GROUP: u32 = 4;

fn dir(path: &str, mode: u32, gid: u32) -> Place {
    Place {
        path: path.into(),
        mode,
        uid: 0,
        gid,
        directory: true,
    }
}

fn socket(path: &str, mode: u32, gid: u32) -> Place {
    Place {
        directory: false,
        ..dir(path, mode, gid)
    }
}

/// `alice`, in no group but her own.
fn alice(places: &[Place]) -> Option<(&Place, Shut)> {
    first_shut(places, ALICE, |gid| gid == ALICE)
}

fn shut_at(found: Option<(&Place, Shut)>) -> Option<(&str, Shut)> {
    found.map(|(place, shut)| (place.path.to_str().unwrap(), shut))
}

/// The shipped unit's case: runtime directory 0755 root, socket 0600
/// root. The socket shuts other users out by its mode, whatever its group
/// (it was "for group `root`", the directory's group, as any group bits
/// counted and the directory came first).
#[test]
fn a_socket_for_its_owner_alone_names_no_group() {
    let places = [
        dir("/run", 0o755, ROOT_GROUP),
        dir("/run/tokend", 0o755, ROOT_GROUP),
        socket("/run/tokend/tokend.sock", 0o600, ROOT_GROUP),
    ];
    assert_eq!(
        shut_at(alice(&places)),
        Some(("/run/tokend/tokend.sock", Shut::ByMode))
    );
}

/// Directory 0755 of group `daemon`, socket 0660 of group `adm`: the
/// socket's group is the way in (the directory's was named).
#[test]
fn the_group_named_is_the_one_whose_bits_let_in() {
    let places = [
        dir("/run/tokend", 0o755, DAEMON_GROUP),
        socket("/run/tokend/tokend.sock", 0o660, ADM_GROUP),
    ];
    assert_eq!(
        shut_at(alice(&places)),
        Some(("/run/tokend/tokend.sock", Shut::ByGroup))
    );
    // A directory only its group may pass through is the one to blame,
    // wherever on the way it is.
    let places = [
        dir("/srv", 0o750, DAEMON_GROUP),
        dir("/srv/tokend", 0o755, ROOT_GROUP),
        socket("/srv/tokend/tokend.sock", 0o660, ADM_GROUP),
    ];
    assert_eq!(shut_at(alice(&places)), Some(("/srv", Shut::ByGroup)));
    // Group bits that grant only what other users have already (0755) or
    // not what is needed (0640: read, not write) are no way in.
    let places = [socket("/s.sock", 0o640, ADM_GROUP)];
    assert_eq!(shut_at(alice(&places)), Some(("/s.sock", Shut::ByMode)));
}

/// A member of the group, or the owner, passes where its class may; is
/// shut out by the mode where it may not, even if other users may.
#[test]
fn the_class_that_applies_decides() {
    let shared = [
        dir("/run/tokend-alice", 0o2710, ADM_GROUP),
        socket("/run/tokend-alice/tokend.sock", 0o660, ADM_GROUP),
    ];
    assert_eq!(
        first_shut(&shared, ALICE, |gid| gid == ADM_GROUP).map(|(_, s)| s),
        None
    );
    let own = [Place {
        uid: ALICE,
        ..socket("/s.sock", 0o600, ALICE)
    }];
    assert!(alice(&own).is_none());
    let odd = [Place {
        uid: ALICE,
        ..socket("/s.sock", 0o066, ALICE)
    }];
    assert_eq!(shut_at(alice(&odd)), Some(("/s.sock", Shut::ByMode)));
    // Every mode lets in: nothing to blame (an ACL refused, say).
    assert!(alice(&[socket("/s.sock", 0o666, ROOT_GROUP)]).is_none());
}

/// What is said of a place shut by its mode: its mode, owner and group,
/// who may, and what decides that; never "for group" its group.
#[test]
fn a_place_shut_by_its_mode_is_said_truthfully() {
    let said = mode_advice(
        &socket("/run/tokend/tokend.sock", 0o600, ROOT_GROUP),
        ALICE,
        false,
    );
    assert_eq!(
        said,
        "/run/tokend/tokend.sock is mode 0600, owner `root`, group `root`: only its owner may \
         connect; the daemon's config decides who may (`socket_mode` and `socket_group` in \
         [daemon])"
    );
    let said = mode_advice(&dir("/run/user/0", 0o700, ROOT_GROUP), ALICE, false);
    assert!(
        said.starts_with(
            "/run/user/0 is mode 0700, owner `root`, group `root`: only its owner may pass \
             through it; the socket must be in a directory its users can reach"
        ),
        "{said}"
    );
    let said = mode_advice(&socket("/s.sock", 0o000, ROOT_GROUP), ALICE, false);
    assert!(said.contains(": no one but root may connect;"), "{said}");
    let said = mode_advice(&socket("/s.sock", 0o606, ROOT_GROUP), ALICE, true);
    assert!(
        said.contains(": its group, which this user is in, may not connect;"),
        "{said}"
    );
}

/// A place shut by its group names that group and its mode.
#[test]
fn a_place_for_a_group_names_it() {
    // A gid no group has: shown as its number.
    let said = group_advice(&socket("/s.sock", 0o660, 4_000_123), "alice");
    assert_eq!(
        said,
        "/s.sock is for group `4000123` (mode 0660), and this user is not in it: add the user \
         to it (then log in again), or the daemon's config decides who may"
    );
}

/// A socket refused under an `XDG_RUNTIME_DIR` of another user (left by
/// `su`) is said to be that: the advice blamed the daemon's config.
#[test]
fn a_runtime_directory_of_another_user_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let owner = std::fs::metadata(dir.path()).unwrap().uid();
    let socket = dir.path().join("tokend/tokend.sock");
    let other = owner + 1000;
    let advice = runtime_dir_of_another(&socket, Some(dir.path()), other).unwrap();
    assert_eq!(
        advice,
        format!(
            "XDG_RUNTIME_DIR ({}) is uid {owner}'s, not this user's (uid {other}; left by \
             `su`?): unset it, or set it to /run/user/{other}",
            dir.path().display()
        )
    );
    // The user's own, a socket elsewhere, or no variable: nothing to say.
    assert_eq!(
        runtime_dir_of_another(&socket, Some(dir.path()), owner),
        None
    );
    assert_eq!(
        runtime_dir_of_another(
            Path::new("/run/tokend/tokend.sock"),
            Some(dir.path()),
            other
        ),
        None
    );
    assert_eq!(runtime_dir_of_another(&socket, None, other), None);
}

/// The places looked at are every directory from the root down, then the
/// socket.
#[test]
fn the_places_are_the_directories_down_to_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tokend.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let places = places_on_the_way(&socket);
    let paths: Vec<&Path> = places.iter().map(|p| p.path.as_path()).collect();
    let expected: Vec<&Path> = {
        let mut up: Vec<&Path> = socket.ancestors().collect();
        up.reverse();
        up
    };
    assert_eq!(paths, expected);
    assert!(places[..places.len() - 1].iter().all(|p| p.directory));
    assert!(!places.last().unwrap().directory);
}
