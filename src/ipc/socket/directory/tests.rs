//! Who may search a directory (mode bits, ACLs), and the directories
//! tokend creates for its socket.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::{
    ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_XATTR_VERSION, create, group_may_search,
    group_reach_warning,
};

const GROUP: u32 = 1234;
const OTHER_GROUP: u32 = 1000;

/// An ACL attribute holding `entries` (tag, permissions, id), after the
/// owner's entry every ACL has.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut bytes = ACL_XATTR_VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in [(0x01, 0o7, u32::MAX)].iter().chain(entries) {
        bytes.extend(tag.to_le_bytes());
        bytes.extend(perm.to_le_bytes());
        bytes.extend(id.to_le_bytes());
    }
    bytes
}

#[test]
fn mode_bits_decide_without_an_acl() {
    // The directory's own group: its group bits, whatever others get.
    assert!(group_may_search(0o710, GROUP, None, GROUP));
    assert!(!group_may_search(0o700, GROUP, None, GROUP));
    assert!(!group_may_search(0o701, GROUP, None, GROUP));
    // Another group: the bits for others.
    assert!(group_may_search(0o755, OTHER_GROUP, None, GROUP));
    assert!(group_may_search(0o711, OTHER_GROUP, None, GROUP));
    assert!(!group_may_search(0o750, OTHER_GROUP, None, GROUP));
    // /run/user/UID.
    assert!(!group_may_search(0o700, OTHER_GROUP, None, GROUP));
}

#[test]
fn an_acl_entry_for_the_group_lets_it_search_unless_masked() {
    let granted = acl(&[
        (ACL_GROUP_OBJ, 0o0, u32::MAX),
        (ACL_GROUP, 0o1, GROUP),
        (ACL_MASK, 0o1, u32::MAX),
        (ACL_OTHER, 0o0, u32::MAX),
    ]);
    // `setfacl -m g:tokens:x /run/user/1000`: the mode shows the mask.
    assert!(group_may_search(0o710, OTHER_GROUP, Some(&granted), GROUP));
    assert!(!group_may_search(
        0o710,
        OTHER_GROUP,
        Some(&granted),
        GROUP + 1
    ));
    let masked = acl(&[
        (ACL_GROUP_OBJ, 0o0, u32::MAX),
        (ACL_GROUP, 0o1, GROUP),
        (ACL_MASK, 0o0, u32::MAX),
        (ACL_OTHER, 0o1, u32::MAX),
    ]);
    // A matching entry decides, even when others could search.
    assert!(!group_may_search(0o701, OTHER_GROUP, Some(&masked), GROUP));
}

#[test]
fn without_a_matching_entry_the_acl_s_other_entry_decides() {
    let others_search = acl(&[
        (ACL_GROUP_OBJ, 0o0, u32::MAX),
        (ACL_GROUP, 0o7, GROUP + 1),
        (ACL_MASK, 0o7, u32::MAX),
        (ACL_OTHER, 0o1, u32::MAX),
    ]);
    assert!(group_may_search(
        0o771,
        OTHER_GROUP,
        Some(&others_search),
        GROUP
    ));
    // The owning group's entry matches when it is the group.
    assert!(!group_may_search(0o771, GROUP, Some(&others_search), GROUP));
}

#[test]
fn an_acl_that_cannot_be_read_leaves_the_mode_bits_to_decide() {
    assert!(group_may_search(0o710, GROUP, Some(&[2, 0, 0]), GROUP));
    let mut wrong_version = acl(&[(ACL_OTHER, 0o0, u32::MAX)]);
    wrong_version[0] = 1;
    assert!(group_may_search(
        0o711,
        OTHER_GROUP,
        Some(&wrong_version),
        GROUP
    ));
}

#[test]
fn a_private_socket_s_new_directories_are_0700() {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("a/b");
    create(&dir, 0o600, None).unwrap();
    for d in [top.path().join("a"), dir] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
}

#[test]
fn a_shared_socket_s_new_directories_are_0710_with_its_group() {
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = top.path().join("a/b");
    // The process's own group: one it may give without privileges.
    let gid = rustix::process::getegid().as_raw();
    create(&dir, 0o660, Some(gid)).unwrap();
    for d in [top.path().join("a"), dir.clone()] {
        let meta = std::fs::metadata(&d).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o710, "{}", d.display());
        assert_eq!(meta.gid(), gid, "{}", d.display());
    }
    // Above a searchable temporary directory, the group reaches the socket.
    let socket = dir.join("tokend.sock");
    assert_eq!(group_reach_warning(&socket, 0o660, Some(gid)), None);
    // Not through a directory of mode 0700.
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let warning = group_reach_warning(&socket, 0o660, Some(gid)).expect("a warning");
    assert!(
        warning.contains(&format!("{} (mode 0700", top.path().display())),
        "{warning}"
    );
    assert!(warning.contains("set `socket` in [daemon]"), "{warning}");
    // A socket only its owner may use warns of nothing.
    assert_eq!(group_reach_warning(&socket, 0o600, Some(gid)), None);
}
