//! Who besides its owner may read or write a key file: the mode's group
//! and other bits, or, when the file has a POSIX ACL, the ACL's entries.
//!
//! Why the ACL: systemd hands a credential (`LoadCredential=`,
//! `LoadCredentialEncrypted=`) to a service that runs as another user
//! (`User=tokend`) as a root-owned file of mode 0400 plus an ACL entry
//! that lets that one user read it. With an ACL the mode's group bits
//! show the ACL's mask, so `ls -l` shows 0440 although no group may read
//! the file: judged by its mode alone, the credential the system unit is
//! documented with would be refused.

use std::fs::File;

use rustix::io::Errno;

/// The extended attribute that holds a file's access ACL.
const ACL_XATTR: &str = "system.posix_acl_access";
/// The only version of the attribute's format Linux writes.
const ACL_VERSION: u32 = 2;
/// Entry tags (`linux/posix_acl.h`).
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
/// Bytes of the header (the version) and of each entry (tag, permissions, id).
const HEADER_LEN: usize = 4;
const ENTRY_LEN: usize = 8;
/// Room for far more entries than any key file has; a larger ACL is refused.
const MAX_ACL_LEN: usize = HEADER_LEN + 64 * ENTRY_LEN;

/// Whom, besides the file's owner and `reader` (the user tokend runs as),
/// the file lets read or write it, said for a person ("others", "user
/// 1001 through its ACL"); `None` when nobody. `mode` is the file's mode.
pub(super) fn others_with_access(file: &File, mode: u32, reader: u32) -> Option<String> {
    let mut buffer = [0u8; MAX_ACL_LEN];
    match rustix::fs::fgetxattr(file, ACL_XATTR, &mut buffer[..]) {
        Ok(len) => acl_others(&buffer[..len], reader),
        // No ACL (or none possible on this file system): the mode says it.
        Err(Errno::NODATA | Errno::NOTSUP) => mode_others(mode),
        Err(Errno::RANGE) => Some("anyone its ACL lets in (too many entries to check)".to_owned()),
        Err(e) => Some(format!(
            "anyone its ACL lets in (the ACL cannot be read: {e})"
        )),
    }
}

/// Whom a plain mode lets in besides the owner: the group's or
/// everyone's bits, "others" to the person either way.
fn mode_others(mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| "others".to_owned())
}

/// Whom an ACL (the attribute's bytes) lets in besides the owner and
/// `reader`. The mask limits named users, named groups and the owning
/// group, as the kernel applies it.
fn acl_others(acl: &[u8], reader: u32) -> Option<String> {
    let unreadable = || Some("anyone its ACL lets in (not an ACL format known here)".to_owned());
    let Some((version, entries)) = acl.split_first_chunk::<HEADER_LEN>() else {
        return unreadable();
    };
    if u32::from_le_bytes(*version) != ACL_VERSION || entries.len() % ENTRY_LEN != 0 {
        return unreadable();
    }
    let entries: Vec<(u16, u16, u32)> = entries
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            (
                u16::from_le_bytes([e[0], e[1]]),
                u16::from_le_bytes([e[2], e[3]]),
                u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            )
        })
        .collect();
    let mask = entries
        .iter()
        .find(|(tag, _, _)| *tag == MASK)
        .map_or(0o7, |(_, perm, _)| *perm);
    entries.iter().find_map(|&(tag, perm, id)| match tag {
        USER_OBJ | MASK => None,
        USER if id == reader => None,
        USER => (perm & mask != 0).then(|| format!("user {id} through its ACL")),
        GROUP_OBJ => (perm & mask != 0).then(|| "its group through its ACL".to_owned()),
        GROUP => (perm & mask != 0).then(|| format!("group {id} through its ACL")),
        OTHER => (perm != 0).then(|| "everyone".to_owned()),
        _ => Some("anyone its ACL lets in (an entry of a kind not known here)".to_owned()),
    })
}

/// The attribute's bytes for `entries` (tag, permissions, id), as the
/// kernel keeps them.
#[cfg(test)]
pub(super) fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut bytes = ACL_VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&perm.to_le_bytes());
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    bytes
}

/// An id for the entries that have none (owner, owning group, mask, others).
#[cfg(test)]
pub(super) const ANY: u32 = u32::MAX;

/// What systemd makes of a credential for a service of another user,
/// `reader`: 0400, and read for that user (mask r); with `group_read`, read
/// for the owning group too.
#[cfg(test)]
pub(super) fn systemd_credential_with(reader: u32, group_read: u16) -> Vec<(u16, u16, u32)> {
    vec![
        (USER_OBJ, 4, ANY),
        (USER, 4, reader),
        (GROUP_OBJ, group_read, ANY),
        (MASK, 4, ANY),
        (OTHER, 0, ANY),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systemd_credential(reader: u32) -> Vec<(u16, u16, u32)> {
        systemd_credential_with(reader, 0)
    }

    #[test]
    fn an_acl_that_lets_only_tokends_user_in_is_private() {
        assert_eq!(acl_others(&acl(&systemd_credential(999)), 999), None);
    }

    #[test]
    fn an_acl_that_lets_anyone_else_in_is_not() {
        // Another user.
        assert_eq!(
            acl_others(&acl(&systemd_credential(1001)), 999).as_deref(),
            Some("user 1001 through its ACL")
        );
        // The owning group, a named group, everyone.
        let mut owning_group = systemd_credential(999);
        owning_group[2].1 = 4;
        assert_eq!(
            acl_others(&acl(&owning_group), 999).as_deref(),
            Some("its group through its ACL")
        );
        let mut named_group = systemd_credential(999);
        named_group.push((GROUP, 6, 50));
        assert_eq!(
            acl_others(&acl(&named_group), 999).as_deref(),
            Some("group 50 through its ACL")
        );
        let mut everyone = systemd_credential(999);
        everyone[4].1 = 4;
        assert_eq!(
            acl_others(&acl(&everyone), 999).as_deref(),
            Some("everyone")
        );
    }

    #[test]
    fn the_mask_limits_named_entries_as_the_kernel_does() {
        let masked = [
            (USER_OBJ, 6, ANY),
            (USER, 4, 1001),
            (GROUP_OBJ, 4, ANY),
            (GROUP, 4, 50),
            (MASK, 0, ANY),
            (OTHER, 0, ANY),
        ];
        assert_eq!(acl_others(&acl(&masked), 999), None);
    }

    #[test]
    fn an_acl_not_understood_is_not_trusted() {
        assert!(acl_others(&[2, 0, 0], 999).is_some());
        let mut wrong_version = acl(&systemd_credential(999));
        wrong_version[0] = 3;
        assert!(acl_others(&wrong_version, 999).is_some());
        assert!(acl_others(&acl(&[(0x40, 4, ANY)]), 999).is_some());
    }

    #[test]
    fn without_an_acl_the_mode_says() {
        assert_eq!(mode_others(0o600), None);
        assert_eq!(mode_others(0o400), None);
        assert_eq!(mode_others(0o640).as_deref(), Some("others"));
        assert_eq!(mode_others(0o604).as_deref(), Some("others"));
    }
}
